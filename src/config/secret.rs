//! Files the configuration points at: secrets (mode 0600 checked, content never echoed), the extra CA
//! certificate, and serial port paths.
//!
//! Invariant: no error built here contains a byte of a secret file; only its path, mode or length.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::domain::Secret;

use super::error::{ConfigError, Problem};

/// Whether files named by the configuration must exist and be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChecks {
    /// A missing secret, CA or port file is an error; secrets and the CA are read into the `Config`.
    Required,
    /// A missing file is a warning (`check-config --no-files`, for a build machine). Files that do
    /// exist are still read and checked.
    WarnOnly,
}

/// Largest secret or CA file read; a bigger one is a wrong path, not a key.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a secret: refuses group/other access, strips the trailing newline, rejects empty content.
pub fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    let bytes = read_checked(path, true)?;
    let mut end = bytes.len();
    while end > 0 && matches!(bytes.get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    let content = bytes.get(..end).unwrap_or_default();
    if content.is_empty() {
        return Err(ConfigError::new(
            "",
            Problem::EmptySecret {
                path: path.to_path_buf(),
            },
        ));
    }
    let bad = |reason: &str| {
        ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: format!("{reason} (a secret file holds one line of text)"),
            },
        )
    };
    if content.contains(&0) {
        return Err(bad("holds a NUL byte"));
    }
    let text = std::str::from_utf8(content).map_err(|_| bad("is not valid UTF-8"))?;
    if text.lines().filter(|l| !l.trim().is_empty()).count() > 1 {
        return Err(bad("holds more than one non-empty line"));
    }
    Ok(Secret::new(content))
}

/// Reads an OSDP secure-channel base key: 32 hex characters (16 bytes), from a 0600 file.
pub fn read_scbk_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = read_secret_file(path)?;
    let trimmed = text.expose().trim_ascii();
    let bad = |reason: String| {
        ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason,
            },
        )
    };
    if trimmed.len() != 32 {
        return Err(bad(format!(
            "an SCBK must be 32 hex characters (16 bytes); the file holds {} characters",
            trimmed.len()
        )));
    }
    let mut key = [0u8; 16];
    hex::decode_to_slice(trimmed, &mut key)
        .map_err(|_| bad("an SCBK must be 32 hex characters (16 bytes); the file holds a non-hex character".into()))?;
    Ok(Secret::new(key.to_vec()))
}

/// Reads an extra root CA: PEM with at least one certificate whose body is valid base64.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = read_checked(path, false)?;
    let bad = |reason: &str| {
        ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: reason.into(),
            },
        )
    };
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(|e| bad(&format!("not a valid PEM certificate: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(bad("no -----BEGIN CERTIFICATE----- block (expected a PEM certificate)"));
    }
    Ok(bytes)
}

/// A port exists (a character device, or a symlink to a pty); nothing else is checked here because
/// opening a serial port has side effects (DTR) and may be held by the running daemon.
pub(crate) fn check_port(path: &Path) -> Result<(), ConfigError> {
    if path.is_dir() {
        Err(ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: "is a directory, not a serial device".into(),
            },
        ))
    } else if path.exists() {
        Ok(())
    } else {
        Err(ConfigError::new(
            "",
            Problem::FileMissing {
                path: path.to_path_buf(),
            },
        ))
    }
}

fn read_checked(path: &Path, secret: bool) -> Result<Vec<u8>, ConfigError> {
    let io = |e: std::io::Error| {
        let problem = if e.kind() == std::io::ErrorKind::NotFound {
            Problem::FileMissing {
                path: path.to_path_buf(),
            }
        } else {
            Problem::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        };
        ConfigError::new("", problem)
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // Mode of the opened file, not of the path: no window for a swap between check and read.
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: "not a regular file".into(),
            },
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if secret && mode & 0o077 != 0 {
        return Err(ConfigError::new(
            "",
            Problem::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            },
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            "",
            Problem::BadFile {
                path: path.to_path_buf(),
                reason: format!("larger than {MAX_FILE_BYTES} bytes; is this the right file?"),
            },
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "s3cr3t-VALUE-xyzzy";

    fn write(dir: &Path, name: &str, content: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn secret_with_mode_0600_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s", &format!("{CONTENT}\n"), 0o600);
        assert_eq!(read_secret_file(&p).unwrap().expose(), CONTENT.as_bytes());
        let p = write(dir.path(), "crlf", &format!("{CONTENT}\r\n"), 0o400);
        assert_eq!(read_secret_file(&p).unwrap().expose(), CONTENT.as_bytes());
    }

    #[test]
    fn secret_readable_by_others_is_refused_with_chmod_advice_and_no_content() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let p = write(dir.path(), "s", CONTENT, mode);
            let e = read_secret_file(&p).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(text.contains("chmod 600"), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(!text.contains(CONTENT), "secret leaked: {text}");
        }
    }

    #[test]
    fn empty_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s", "\n", 0o600);
        assert!(matches!(
            read_secret_file(&p).unwrap_err().problem,
            Problem::EmptySecret { .. }
        ));
    }

    #[test]
    fn secret_with_nul_bad_utf8_or_two_lines_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        for (name, content, needle) in [
            ("nul", b"abc\0def".to_vec(), "NUL"),
            ("latin1", b"caf\xe9-secret".to_vec(), "UTF-8"),
            ("two", b"first-secret\nsecond-secret\n".to_vec(), "more than one"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, &content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = read_secret_file(&p).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(name), "{e}");
            assert!(
                !e.contains("secret\n") && !e.contains("def") && !e.contains("first"),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_secret_is_a_file_missing_problem() {
        let e = read_secret_file(Path::new("/nonexistent/doorsync/secret")).unwrap_err();
        assert!(matches!(e.problem, Problem::FileMissing { .. }), "{e:?}");
    }

    #[test]
    fn secret_debug_never_shows_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "s", CONTENT, 0o600);
        let s = read_secret_file(&p).unwrap();
        assert!(!format!("{s:?}").contains(CONTENT));
    }

    #[test]
    fn scbk_must_be_32_hex_characters() {
        let dir = tempfile::tempdir().unwrap();
        let good = "000102030405060708090a0b0c0d0e0F";
        let p = write(dir.path(), "k", &format!("{good}\n"), 0o600);
        let key = read_scbk_file(&p).unwrap();
        assert_eq!(key.expose(), hex::decode(good).unwrap().as_slice());

        let short = "000102030405060708090a0b0c0d0e";
        let p = write(dir.path(), "short", short, 0o600);
        let e = read_scbk_file(&p).unwrap_err().to_string();
        assert!(e.contains("32 hex characters") && e.contains("30 characters"), "{e}");
        assert!(!e.contains(short));

        let nonhex = "zz0102030405060708090a0b0c0d0e0f";
        let p = write(dir.path(), "nonhex", nonhex, 0o600);
        let e = read_scbk_file(&p).unwrap_err().to_string();
        assert!(e.contains("non-hex") && !e.contains(nonhex), "{e}");
    }

    #[test]
    fn ca_file_must_hold_a_pem_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n",
            0o644,
        );
        assert!(read_ca_file(&p).is_ok());
        let p = write(dir.path(), "bad.pem", "hello", 0o644);
        assert!(
            read_ca_file(&p)
                .unwrap_err()
                .to_string()
                .contains("no -----BEGIN CERTIFICATE-----")
        );
    }

    #[test]
    fn port_may_be_a_symlink_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("ttyDOOR");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert!(check_port(&link).is_ok());
        assert!(check_port(&dir.path().join("nope")).is_err());
        assert!(
            check_port(dir.path())
                .unwrap_err()
                .to_string()
                .contains("is a directory")
        );
    }
}
