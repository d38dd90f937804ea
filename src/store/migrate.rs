//! The schema check on open and the migrations between on-disk layouts.
//!
//! Schema 1 kept faces in sled's `faces` tree; schema 2 keeps them as files (`store::faces`). The
//! migration copies each face to its file (durably, idempotently), then records the current schema,
//! then drops the tree, flushing after each step: a kill at any point leaves either schema 1 (the next
//! open copies again, skipping files already there) or the current schema with a tree still to drop
//! (the next open drops it). Left-over temporary files are removed by the next face collection.
//!
//! Schema 3 writes smaller records (sha256 as hex, no repeated keys or faces, absent fields left
//! out) and reads the schema-2 forms too, so 2 → 3 rewrites nothing: records take the new form as
//! they are next written. Recording 3 (one flushed key) is the whole migration; what it buys is that
//! a schema-2 doorsync refuses the store as newer instead of calling the new records corrupt.

use sha2::{Digest, Sha256};
use sled::Db;

use super::faces::FaceFiles;
use super::{META_SCHEMA, SCHEMA_VERSION, Store, StoreError};

/// The schema-1 tree that held faces by sha256.
const V1_FACES_TREE: &str = "faces";

/// Checks the store's schema and migrates it to [`SCHEMA_VERSION`].
pub(super) fn upgrade(store: &Store) -> Result<(), StoreError> {
    match store.get_meta::<u32>(META_SCHEMA)? {
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        Some(1) => {
            let copied = copy_v1_faces(&store.db, &store.faces, usize::MAX)?;
            store.put_meta(META_SCHEMA, &SCHEMA_VERSION)?;
            store.flush()?;
            tracing::info!(
                faces = copied,
                "store migrated to schema {SCHEMA_VERSION}: faces moved out of the database into files"
            );
            drop_v1_faces(&store.db)
        }
        Some(2) => {
            store.put_meta(META_SCHEMA, &SCHEMA_VERSION)?;
            store.flush()?;
            tracing::info!(
                "store migrated to schema {SCHEMA_VERSION}: records take the smaller form as they are written"
            );
            drop_v1_faces(&store.db)
        }
        Some(_) => drop_v1_faces(&store.db),
        None => {
            store.put_meta(META_SCHEMA, &SCHEMA_VERSION)?;
            store.flush()
        }
    }
}

/// Copies up to `limit` faces of the schema-1 tree to files (the limit lets tests stop the migration
/// part-way, as a kill would). A face whose bytes do not match its key is not copied: its users are
/// re-fetched (`Store::refetch_missing_faces`). Returns how many were copied.
pub(super) fn copy_v1_faces(db: &Db, files: &FaceFiles, limit: usize) -> Result<usize, StoreError> {
    if !db.tree_names().iter().any(|n| n.as_ref() == V1_FACES_TREE.as_bytes()) {
        return Ok(0);
    }
    let tree = db.open_tree(V1_FACES_TREE)?;
    let mut copied = 0;
    for item in tree.iter() {
        if copied == limit {
            break;
        }
        let (key, bytes) = item?;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        if sha256.as_slice() != key.as_ref() {
            tracing::warn!(
                key = hex::encode(&key),
                "a schema-1 face does not match its hash; not migrated (its users are fetched again)"
            );
            continue;
        }
        files.put(&bytes)?;
        copied += 1;
    }
    Ok(copied)
}

fn drop_v1_faces(db: &Db) -> Result<(), StoreError> {
    if db.tree_names().iter().any(|n| n.as_ref() == V1_FACES_TREE.as_bytes()) {
        db.drop_tree(V1_FACES_TREE)?;
        db.flush()?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "migrate_v2_tests.rs"]
mod v2_tests;
