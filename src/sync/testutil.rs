//! Fixtures shared by the sync layer's unit tests.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::domain::{FaceRef, ImageLimits, OsdpLimits, Policy, Profile, UserKey};
use crate::door::db::DoorDbLimits;
use crate::door::memory::MemoryDoor;
use crate::store::{Store, StoredUser};

pub(crate) fn profile() -> Profile {
    Profile {
        name: "generic-face-v1".into(),
        description: String::new(),
        image: ImageLimits {
            max_width_px: 480,
            max_height_px: 640,
            max_bytes: 40_960,
            jpeg_quality: 85,
        },
        osdp: OsdpLimits {
            max_packet_bytes: 1024,
            max_mfg_data_bytes: 64,
            max_ft_delay_ms: crate::domain::DEFAULT_MAX_FT_DELAY_MS,
        },
        capacity_users: 100,
        vendor_code: [0x02, 0x44, 0x53],
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

pub(crate) fn memory_door() -> MemoryDoor {
    MemoryDoor::new(DoorDbLimits {
        capacity_users: 100,
        max_record_file_bytes: 64 * 1024,
        max_face_jpeg_bytes: 64 * 1024,
    })
}

/// Stores a permitted user `id` with a face (fake JPEG bytes: the door only checks the hash).
/// Records IDENTITY `id` as acknowledged on `door` under `door_id` with a permission record and
/// `face`, and maps the id, as an apply would.
pub(crate) fn record_on_door(store: &Store, door: &str, id: &str, door_id: u32, face: FaceRef) {
    let key = UserKey::new("IDENTITY", id);
    let record = crate::domain::DoorRecord {
        id: crate::domain::DoorUserId(door_id),
        policy: Policy::Permission,
        expire_at: None,
        face,
        display_name: id.into(),
    };
    store
        .record_applied(
            door,
            crate::domain::DoorUserId(door_id),
            &crate::domain::AppliedEntry {
                key: key.clone(),
                record: Some(record),
                face: Some(face),
            },
        )
        .unwrap();
    store
        .save_ids(door, &[(key, crate::domain::DoorUserId(door_id))], door_id + 1)
        .unwrap();
}

pub(crate) fn add_user(store: &Store, id: &str) -> FaceRef {
    add_user_with_face(store, id, format!("jpeg of {id}").as_bytes())
}

/// A permitted user of the test profile whose face is `jpeg`.
pub(crate) fn add_user_with_face(store: &Store, id: &str, jpeg: &[u8]) -> FaceRef {
    let face = store.put_face(jpeg).unwrap();
    let mut faces = BTreeMap::new();
    faces.insert("generic-face-v1".to_string(), face);
    store
        .put_user(&StoredUser {
            key: UserKey::new("IDENTITY", id),
            display_name: id.into(),
            policy: Policy::Permission,
            expire_at: None,
            cloud_face_id: None,
            image_fingerprint: None,
            faces,
            failure: None,
            roster_revoked: false,
            updated_at: now(),
        })
        .unwrap();
    face
}

/// A scripted cloud for engine unit tests: users with real (generated) JPEG faces, switchable outage,
/// per-user "gone", and a log of the calls the outbox made. Integration tests use the real fake
/// cloud server instead.
#[derive(Default)]
pub(crate) struct FakeCloud {
    pub state: std::sync::Mutex<FakeCloudState>,
    /// Wakes detail calls waiting on [`FakeCloudState::blocked`].
    released: tokio::sync::Notify,
}

#[derive(Default)]
pub(crate) struct FakeCloudState {
    pub users: Vec<crate::cloud::CloudFace>,
    pub down: bool,
    /// Users answered with 2405 (user gone).
    pub gone: std::collections::BTreeSet<UserKey>,
    /// Outbox calls received, in order: `delete:<key>` / `modify:<id>`.
    pub calls: Vec<String>,
    /// Identity ids whose modify is refused as a bad request.
    pub refuse_modify: Vec<String>,
    /// Users whose detail call (`get_face`) waits until [`FakeCloud::release`].
    pub blocked: std::collections::BTreeSet<UserKey>,
    /// Users whose detail call was answered, in order.
    pub answered: Vec<UserKey>,
}

impl FakeCloud {
    pub(crate) fn with_users(n: usize) -> Self {
        let cloud = Self::default();
        for i in 1..=n {
            cloud.add(&format!("u{i}"), None);
        }
        cloud
    }

    pub(crate) fn add(&self, id: &str, expire_at: Option<Timestamp>) {
        let mut s = self.state.lock().unwrap();
        s.users.push(crate::cloud::CloudFace {
            key: UserKey::new("IDENTITY", id),
            face_id: Some(format!("face-{id}")),
            name: Some(format!("User {id}")),
            expire_at,
            policy: Policy::Permission,
            image: crate::cloud::ImageSource::Inline(crate::cloud::sim::face_jpeg(id)),
        });
    }

    pub(crate) fn remove(&self, id: &str) {
        self.state.lock().unwrap().users.retain(|u| u.key.user_id != id);
    }

    /// Holds the detail call of every user now in the cloud until [`FakeCloud::release`].
    pub(crate) fn block_details(&self) {
        let mut s = self.state.lock().unwrap();
        s.blocked = s.users.iter().map(|u| u.key.clone()).collect();
    }

    /// Lets the held detail call of `id` (or of everyone, `None`) answer.
    pub(crate) fn release(&self, id: Option<&str>) {
        self.state
            .lock()
            .unwrap()
            .blocked
            .retain(|k| id.is_some_and(|id| k.user_id != id));
        self.released.notify_waiters();
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn check_up(&self, path: &str) -> Result<(), crate::cloud::CloudError> {
        if self.state.lock().unwrap().down {
            return Err(crate::cloud::CloudError::Network {
                path: path.into(),
                detail: "connection refused".into(),
            });
        }
        Ok(())
    }
}

fn gone(path: &str) -> crate::cloud::CloudError {
    crate::cloud::CloudError::Business {
        path: path.into(),
        code: 2405,
        message: "identity is not existed".into(),
        request_id: None,
        class: crate::cloud::ErrorClass::UserGone,
    }
}

#[async_trait::async_trait]
impl crate::cloud::FaceCloud for FakeCloud {
    async fn roster(&self) -> Result<Vec<crate::cloud::RosterEntry>, crate::cloud::CloudError> {
        self.check_up("/roster")?;
        Ok(self
            .state
            .lock()
            .unwrap()
            .users
            .iter()
            .map(|u| crate::cloud::RosterEntry {
                key: u.key.clone(),
                name: u.name.clone(),
                status: Some("transferred".into()),
                revoked: false,
            })
            .collect())
    }

    async fn get_face(&self, key: &UserKey) -> Result<crate::cloud::CloudFace, crate::cloud::CloudError> {
        self.check_up("/face/paas/image/get")?;
        loop {
            // Registered before the check, so a release in between is not missed.
            let released = self.released.notified();
            if !self.state.lock().unwrap().blocked.contains(key) {
                break;
            }
            released.await;
        }
        let mut s = self.state.lock().unwrap();
        s.answered.push(key.clone());
        if s.gone.contains(key) {
            return Err(gone("/face/paas/image/get"));
        }
        s.users
            .iter()
            .find(|u| &u.key == key)
            .cloned()
            .ok_or_else(|| gone("/face/paas/image/get"))
    }

    async fn fetch_image(&self, src: &crate::cloud::ImageSource) -> Result<Vec<u8>, crate::cloud::CloudError> {
        self.check_up("/images")?;
        match src {
            crate::cloud::ImageSource::Inline(b) => Ok(b.clone()),
            crate::cloud::ImageSource::Url(u) => Err(crate::cloud::CloudError::Config(format!("no URLs here: {u}"))),
        }
    }

    async fn delete_face(&self, key: &UserKey) -> Result<(), crate::cloud::CloudError> {
        self.check_up("/face/paas/image/delete")?;
        self.state.lock().unwrap().calls.push(format!("delete:{key}"));
        Ok(())
    }

    async fn modify_user(
        &self,
        identity_id: &str,
        _name: Option<&str>,
        _ext_info: Option<&str>,
    ) -> Result<(), crate::cloud::CloudError> {
        self.check_up("/entrance/paas/user/modify")?;
        let mut s = self.state.lock().unwrap();
        if s.refuse_modify.iter().any(|r| r == identity_id) {
            return Err(crate::cloud::CloudError::Business {
                path: "/entrance/paas/user/modify".into(),
                code: 460,
                message: "request parameter error".into(),
                request_id: None,
                class: crate::cloud::ErrorClass::BadRequest,
            });
        }
        s.calls.push(format!("modify:{identity_id}"));
        Ok(())
    }
}

/// One `EngineDoor` per door, named `door0`, `door1`, … in order, all with [`profile`].
pub(crate) fn engine_doors<D: crate::door::Door + 'static>(
    doors: &[std::sync::Arc<D>],
) -> Vec<crate::sync::engine::EngineDoor> {
    doors
        .iter()
        .enumerate()
        .map(|(i, d)| crate::sync::engine::EngineDoor {
            name: format!("door{i}"),
            profile: profile(),
            door: d.clone(),
        })
        .collect()
}

/// An engine over `store` and `cloud` with one in-memory door, `lobby`, on a manual clock at
/// [`now`]: the store tests' schema recipes run their passes through it.
pub(crate) fn lobby_engine(
    store: Store,
    cloud: std::sync::Arc<dyn crate::cloud::FaceCloud>,
) -> crate::sync::engine::Engine {
    crate::sync::engine::Engine::new(
        store,
        cloud,
        std::sync::Arc::new(crate::clock::ManualClock::new(now())),
        vec![crate::sync::engine::EngineDoor {
            name: "lobby".into(),
            profile: profile(),
            door: std::sync::Arc::new(memory_door()),
        }],
        crate::sync::engine::EngineSettings::default(),
    )
}
