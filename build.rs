//! Build metadata for `doorsync --version` and `status --json`: the git commit and the target triple.
//!
//! A build from a source tarball (no `.git`, or no git) says "unknown"; packagers may set
//! `DOORSYNC_GIT_COMMIT` to the commit the tarball was made from.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DOORSYNC_GIT_COMMIT");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=DOORSYNC_TARGET={target}");

    let commit = match std::env::var("DOORSYNC_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: the worktree's HEAD, the branch it points at, packed refs.
            let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(branch);
            }
            for name in &watched {
                if let Some(path) = git(&["rev-parse", "--git-path", name]) {
                    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
                    if path.exists() {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=DOORSYNC_GIT_COMMIT={commit}");
}
