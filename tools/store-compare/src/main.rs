//! Measures what an embedded store holds for doorsync's records at gateway scale: the same
//! doorsync-shaped records (a user record, one door's applied entry and id per user) written with
//! doorsync's write pattern, then read back as the daemon does, in sled (the store doorsync uses)
//! and in redb (the replacement BENCHMARKS.md proposes). One backend per process, so the reported
//! peak RSS (VmHWM) is that backend's alone.
//!
//! `store-compare <sled|redb> <users> <dir>` prints one line: backend, users, peak RSS, bytes on disk.

use std::path::Path;

const USERS: &str = "users";
const APPLIED: &str = "applied/lobby";
const IDS: &str = "ids/lobby";

/// redb's page cache. sled's is set to doorsync's 32 MiB (src/store/mod.rs); its heap is not bounded
/// by it (BENCHMARKS.md), so the figures compare the stores as each would be configured.
const REDB_CACHE_BYTES: usize = 4 * 1024 * 1024;

fn key(i: u32) -> Vec<u8> {
    let t = b"IDENTITY";
    let mut k = vec![t.len() as u8];
    k.extend_from_slice(t);
    k.extend_from_slice(format!("user-{i:08}").as_bytes());
    k
}

fn sha(i: u32, salt: u32) -> String {
    format!("{:016x}", u64::from(i) * 0x9e37_79b9 + u64::from(salt)).repeat(4)
}

/// A user record in doorsync's JSON shape (store::records::StoredUser, sha256 as hex).
fn user(i: u32) -> Vec<u8> {
    format!(
        r#"{{"key":{{"user_type":"IDENTITY","user_id":"user-{i:08}"}},"display_name":"Person {i}","policy":"Permission","expire_at":null,"cloud_face_id":"face-{i:08}","image_fingerprint":"{}","faces":{{"generic-face-v1":{{"sha256":"{}","len_bytes":17100}}}},"failure":null,"roster_revoked":false,"updated_at":"2026-12-02T06:00:00Z"}}"#,
        sha(i, 1),
        sha(i, 2)
    )
    .into_bytes()
}

/// One door's applied entry (domain::AppliedEntry: the acknowledged record and face).
fn applied(i: u32) -> Vec<u8> {
    format!(
        r#"{{"key":{{"user_type":"IDENTITY","user_id":"user-{i:08}"}},"record":{{"id":{i},"policy":"Permission","expire_at":null,"face":{{"sha256":"{s}","len_bytes":17100}},"display_name":"Person {i}"}},"face":{{"sha256":"{s}","len_bytes":17100}}}}"#,
        s = sha(i, 2)
    )
    .into_bytes()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| disk_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// doorsync's pattern: user records written unflushed then flushed once (the pull), new ids saved in
/// batches of 64, then one durable write per acknowledged op (the apply), then the daemon's reads:
/// every user record and every applied entry, one at a time.
fn with_sled(n: u32, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(32 * 1024 * 1024)
        .open()?;
    let (users, applied_t, ids) = (db.open_tree(USERS)?, db.open_tree(APPLIED)?, db.open_tree(IDS)?);
    for i in 0..n {
        users.insert(key(i), user(i))?;
    }
    db.flush()?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let mut batch = sled::Batch::default();
        for &i in chunk {
            batch.insert(key(i), i.to_string().as_bytes());
        }
        ids.apply_batch(batch)?;
    }
    db.flush()?;
    for i in 0..n {
        applied_t.insert(i.to_be_bytes(), applied(i))?;
        db.flush()?;
    }
    let mut bytes = 0usize;
    for item in users.iter().chain(applied_t.iter()) {
        bytes += item?.1.len();
    }
    db.flush()?;
    drop((users, applied_t, ids));
    report("sled", n, bytes, dir);
    Ok(())
}

fn with_redb(n: u32, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const U: TableDefinition<&[u8], &[u8]> = TableDefinition::new(USERS);
    const A: TableDefinition<u32, &[u8]> = TableDefinition::new(APPLIED);
    const I: TableDefinition<&[u8], u32> = TableDefinition::new(IDS);
    std::fs::create_dir_all(dir)?;
    let db = redb::Builder::new()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(dir.join("records.redb"))?;
    let tx = db.begin_write()?;
    {
        tx.open_table(A)?;
        tx.open_table(I)?;
        let mut t = tx.open_table(U)?;
        for i in 0..n {
            t.insert(key(i).as_slice(), user(i).as_slice())?;
        }
    }
    tx.commit()?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let tx = db.begin_write()?;
        {
            let mut t = tx.open_table(I)?;
            for &i in chunk {
                t.insert(key(i).as_slice(), i)?;
            }
        }
        tx.commit()?;
    }
    for i in 0..n {
        let tx = db.begin_write()?;
        tx.open_table(A)?.insert(i, applied(i).as_slice())?;
        tx.commit()?;
    }
    let mut bytes = 0usize;
    let rx = db.begin_read()?;
    for item in rx.open_table(U)?.iter()? {
        bytes += item?.1.value().len();
    }
    for item in rx.open_table(A)?.iter()? {
        bytes += item?.1.value().len();
    }
    drop(rx);
    drop(db);
    report("redb", n, bytes, dir);
    Ok(())
}

fn report(backend: &str, n: u32, record_bytes: usize, dir: &Path) {
    println!(
        "{backend}: {n} users, {:.1} MB of records (users + applied), peak RSS {:.1} MiB, {:.1} MB on disk",
        record_bytes as f64 / 1e6,
        peak_rss_kib() as f64 / 1024.0,
        disk_bytes(dir) as f64 / 1e6
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: store-compare <sled|redb> <users> <empty dir>";
    let (Some(backend), Some(n), Some(dir)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err(usage.into());
    };
    let n: u32 = n.parse().map_err(|_| usage)?;
    match backend.as_str() {
        "sled" => with_sled(n, Path::new(dir)),
        "redb" => with_redb(n, Path::new(dir)),
        _ => Err(usage.into()),
    }
}
