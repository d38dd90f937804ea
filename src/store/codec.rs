//! The byte forms of the store's sled keys and values: user keys (length-prefixed type, then id), door
//! ids (4 bytes, big-endian), JSON values, and the compact forms schema 3 writes beside the schema-2
//! forms it still reads.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Tree;

use super::{StoreError, StoredUser};
use crate::domain::{DoorUserId, UserKey};

pub(super) fn user_key_bytes(key: &UserKey) -> Vec<u8> {
    // The type is a short enum word; a length prefix keeps (type, id) pairs unambiguous.
    let t = key.user_type.as_bytes();
    let mut out = Vec::with_capacity(1 + t.len() + key.user_id.len());
    out.push(u8::try_from(t.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&t[..t.len().min(255)]);
    out.extend_from_slice(key.user_id.as_bytes());
    out
}

/// The user key a `users` or `ids/<door>` sled key holds ([`user_key_bytes`]).
pub(super) fn user_key_from_bytes(tree: &Tree, k: &[u8]) -> Result<UserKey, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        tree: String::from_utf8_lossy(&tree.name()).into_owned(),
        key: String::from_utf8_lossy(k).into_owned(),
        reason: reason.into(),
    };
    let (&type_len, rest) = k.split_first().ok_or_else(|| corrupt("empty key"))?;
    if rest.len() < usize::from(type_len) {
        return Err(corrupt("key shorter than its user type length"));
    }
    let (user_type, user_id) = rest.split_at(usize::from(type_len));
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt("user key is not UTF-8"));
    Ok(UserKey {
        user_type: text(user_type)?,
        user_id: text(user_id)?,
    })
}

/// Whether [`user_key_bytes`] keeps the whole key, so a record stored under it need not repeat it
/// (a user type longer than 255 bytes is cut in the sled key).
pub(super) fn key_is_in_tree_key(key: &UserKey) -> bool {
    key.user_type.len() <= usize::from(u8::MAX)
}

/// A `users` record: the key is taken from the sled key when the value leaves it out.
pub(super) fn decode_user(tree: &Tree, k: &[u8], v: &[u8]) -> Result<StoredUser, StoreError> {
    let mut user: StoredUser = decode(tree, k, v)?;
    if user.key == UserKey::default() {
        user.key = user_key_from_bytes(tree, k)?;
    }
    Ok(user)
}

/// An `ids/<door>` value: the bare id (schema 3) or `[key, id]` (schema 2, whose key repeats the sled
/// key).
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(super) enum StoredDoorId {
    Id(u32),
    WithKey(UserKey, u32),
}

impl StoredDoorId {
    pub(super) fn id(&self) -> u32 {
        match self {
            Self::Id(id) | Self::WithKey(_, id) => *id,
        }
    }
}

pub(super) fn id_bytes(id: DoorUserId) -> [u8; 4] {
    id.0.to_be_bytes()
}

/// Every entry of a tree keyed by door-local id (4 bytes, big-endian).
pub(super) fn by_door_id<T: DeserializeOwned>(tree: &Tree) -> Result<BTreeMap<DoorUserId, T>, StoreError> {
    let mut out = BTreeMap::new();
    each_by_door_id(tree, |id, v| {
        out.insert(id, v);
        Ok(())
    })?;
    Ok(out)
}

/// [`by_door_id`] one entry at a time, in id order; the first error (a corrupt entry, or `visit`'s)
/// ends the walk.
pub(super) fn each_by_door_id<T: DeserializeOwned>(
    tree: &Tree,
    mut visit: impl FnMut(DoorUserId, T) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for item in tree.iter() {
        let (k, v) = item?;
        let id = <[u8; 4]>::try_from(k.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                tree: String::from_utf8_lossy(&tree.name()).into_owned(),
                key: hex::encode(&k),
                reason: "key is not a 4-byte id".into(),
            })?;
        visit(DoorUserId(id), decode(tree, &k, &v)?)?;
    }
    Ok(())
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        tree: "-".into(),
        key: "-".into(),
        reason: format!("cannot encode: {e}"),
    })
}

pub(super) fn decode<T: DeserializeOwned>(tree: &Tree, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree: String::from_utf8_lossy(&tree.name()).into_owned(),
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}
