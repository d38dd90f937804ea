//! What each sled tree holds per user after real passes (`Engine::pass` over a `MemoryDoor` and the
//! fake cloud): the measure behind BENCHMARKS.md's record sizes (`cargo test --lib
//! records_per_user_by_tree -- --nocapture`), and a bound that keeps them small.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::sync::engine::PassOptions;
use crate::sync::testutil::{FakeCloud, lobby_engine};

/// Keys and values per tree, in bytes, and the entry count.
fn bytes_by_tree(db: &sled::Db) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        let (mut entries, mut bytes) = (0, 0);
        for item in tree.iter() {
            let (k, v) = item.unwrap();
            entries += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        out.insert(String::from_utf8_lossy(&name).into_owned(), (entries, bytes));
    }
    out
}

/// Runs the schema fixtures' recipe in `dir`: a pass with `users` users, u1's face changed, a second
/// pass, then a local revoke of the last user.
async fn two_passes_and_a_revoke(dir: &Path, users: usize) {
    let cloud = Arc::new(FakeCloud::with_users(users));
    let engine = lobby_engine(Store::open(dir).unwrap(), cloud.clone());
    let pass = engine.pass(&PassOptions::default(), &|_| {}).await.unwrap();
    assert!(pass.converged, "{pass:?}");
    {
        let mut s = cloud.state.lock().unwrap();
        s.users[0].face_id = Some("face-u1-v2".into());
        s.users[0].image = crate::cloud::ImageSource::Inline(crate::cloud::sim::face_jpeg("u1-v2"));
    }
    let pass = engine.pass(&PassOptions::default(), &|_| {}).await.unwrap();
    assert!(pass.converged, "{pass:?}");
    engine
        .revoke(&crate::domain::UserKey::new("IDENTITY", format!("u{users}")), "fixture")
        .await
        .unwrap();
    engine.store().flush().unwrap();
}

#[tokio::test]
#[ignore = "writes a fixture: DOORSYNC_FIXTURE_OUT=<dir>"]
async fn write_store_fixture() {
    let out = std::env::var("DOORSYNC_FIXTURE_OUT").unwrap();
    two_passes_and_a_revoke(Path::new(&out), 6).await;
}

/// Prints what each tree of the store at `DOORSYNC_STORE` holds per user (`DOORSYNC_USERS`), e.g. a
/// copy of the store `scripts/bench-rss` ran on.
#[test]
#[ignore = "reads a store: DOORSYNC_STORE=<dir> DOORSYNC_USERS=<n>"]
fn records_per_user_of_a_store() {
    let dir = std::env::var("DOORSYNC_STORE").unwrap();
    let users: u64 = std::env::var("DOORSYNC_USERS").unwrap().parse().unwrap();
    let db = sled::Config::new().path(Path::new(&dir).join("db")).open().unwrap();
    for (name, (entries, bytes)) in bytes_by_tree(&db) {
        println!(
            "{name:<20} {entries:>6} entries {bytes:>9} B {:>6} B/user",
            bytes / users
        );
    }
}

#[tokio::test]
async fn records_per_user_by_tree() {
    const USERS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    two_passes_and_a_revoke(dir.path(), USERS).await;
    let db = sled::Config::new().path(dir.path().join("db")).open().unwrap();
    let trees = bytes_by_tree(&db);
    let mut total = 0;
    for (name, (entries, bytes)) in &trees {
        total += bytes;
        println!(
            "{name:<20} {entries:>5} entries {bytes:>8} B {:>6} B/user",
            bytes / USERS as u64
        );
    }
    println!(
        "{:<20} {:>5}         {total:>8} B {:>6} B/user",
        "all",
        "",
        total / USERS as u64
    );
    // Schema 2 held 485 / 435 / 56 B per user here (BENCHMARKS.md, gateway scale): keep them small.
    let per_user = |tree: &str| trees[tree].1 / USERS as u64;
    assert!(per_user("users") <= 350, "{trees:?}");
    assert!(per_user("applied/lobby") <= 260, "{trees:?}");
    assert!(per_user("ids/lobby") <= 16, "{trees:?}");
}
