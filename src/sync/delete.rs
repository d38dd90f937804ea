//! The one delete-then-record path: ids go to the door, and only after the door acknowledged them are
//! they recorded as gone and their write-ahead settled (invariant 3). Apply, urgent removal and verify
//! all delete through it. The door batches the ids into messages itself (its wire limit is its own
//! business, `Door::delete_users`).

use crate::domain::DoorUserId;
use crate::door::{Door, DoorError};
use crate::store::{Store, StoreError};

/// Why a delete did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteFailed {
    /// The door did not acknowledge the delete: nothing was recorded, the ids stay held (deletes are
    /// idempotent, the next pass sends them again).
    #[error(transparent)]
    Door(DoorError),
    /// The door acknowledged, the store could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Deletes `ids` from `door` (named `door_name` in the store) and records each one gone.
pub(crate) async fn delete_and_record(
    store: &Store,
    door_name: &str,
    door: &dyn Door,
    ids: &[DoorUserId],
) -> Result<(), DeleteFailed> {
    if ids.is_empty() {
        return Ok(());
    }
    door.delete_users(ids).await.map_err(DeleteFailed::Door)?;
    for id in ids {
        store.record_deleted(door_name, *id)?;
    }
    store.settle_write_ahead(door_name, ids)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::door::MockDoor;
    use crate::sync::testutil::{add_user, record_on_door};

    #[tokio::test]
    async fn acknowledged_ids_are_recorded_gone_and_refused_ones_stay_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = (DoorUserId(1), DoorUserId(2));
        for (id, user) in [(a, "a"), (b, "b")] {
            let face = add_user(&store, user);
            record_on_door(&store, "lobby", user, id.0, face);
        }

        let mut refusing = MockDoor::new();
        refusing
            .expect_delete_users()
            .times(1)
            .returning(|_| Err(DoorError::Timeout));
        let err = delete_and_record(&store, "lobby", &refusing, &[a, b]).await;
        assert!(matches!(err, Err(DeleteFailed::Door(DoorError::Timeout))));
        assert_eq!(
            store.may_hold("lobby").unwrap().len(),
            2,
            "nothing recorded without an ack"
        );

        let mut door = MockDoor::new();
        door.expect_delete_users()
            .withf(move |ids| ids == [a, b])
            .times(1)
            .returning(|_| Ok(()));
        delete_and_record(&store, "lobby", &door, &[a, b]).await.unwrap();
        assert!(store.may_hold("lobby").unwrap().is_empty());

        let mut idle = MockDoor::new();
        idle.expect_delete_users().never();
        delete_and_record(&store, "lobby", &idle, &[]).await.unwrap();
    }
}
