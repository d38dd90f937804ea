//! The sync engine's pull against the real fake cloud on 127.0.0.1 and a real sled store.

use std::time::Duration;

use doorsync::cloud::sim::{Fault, SimHandle};
use doorsync::cloud::{CloudClient, wire};
use doorsync::config::builtin_profile;
use doorsync::domain::{Profile, UserKey};
use doorsync::store::Store;
use doorsync::sync::pull::{PullError, PullOptions, pull};
use jiff::Timestamp;

use crate::harness::{local_cloud_settings, sim};

fn client(sim: &SimHandle) -> CloudClient {
    CloudClient::new(local_cloud_settings(&sim.base_url())).unwrap()
}

fn profiles() -> Vec<Profile> {
    vec![builtin_profile("generic-face-v1").unwrap()]
}

const OPTS: PullOptions = PullOptions {
    force_refresh: false,
    max_concurrency: 4,
    guard: doorsync::sync::guard::GuardSettings {
        max_implicit_removals: None,
        removal_hold: Duration::from_secs(600),
    },
    confirm_removals: false,
    roster_interval: None,
};

#[tokio::test]
async fn a_pull_stores_every_user_with_a_face_that_fits_and_the_next_downloads_nothing() {
    let sim = sim(12).await;
    let cloud = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    assert_eq!(
        (first.users_total, first.images_downloaded, first.users_failed),
        (12, 12, 0)
    );
    assert!(first.changed);
    let (users, _) = store.users().unwrap();
    assert_eq!(users.len(), 12);
    for u in &users {
        let face = u.faces["generic-face-v1"];
        let jpeg = store.get_face(&face).unwrap().unwrap();
        assert!(
            jpeg.len() <= 40_960 && jpeg.starts_with(&[0xFF, 0xD8]),
            "{}: {} bytes",
            u.key,
            jpeg.len()
        );
    }
    let served = sim.image_bytes_served();

    let second = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    assert_eq!((second.images_downloaded, second.images_skipped), (0, 12));
    assert!(!second.changed);
    assert_eq!(
        sim.image_bytes_served(),
        served,
        "unchanged faces are not downloaded again"
    );

    let forced = pull(
        &cloud,
        &store,
        &profiles(),
        Timestamp::now(),
        PullOptions {
            force_refresh: true,
            ..OPTS
        },
    )
    .await
    .unwrap();
    assert_eq!(forced.images_downloaded, 12);
    assert!(!forced.changed, "same images normalise to the same bytes");
}

#[tokio::test]
async fn a_corrupt_image_fails_only_that_user_and_keeps_their_previous_face() {
    let sim = sim(5).await;
    let cloud = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    let key = UserKey::new("IDENTITY", "u-0003");
    let before = store.get_user(&key).unwrap().unwrap();
    sim.set_image("u-0003", b"these bytes are not an image".to_vec());
    let report = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    assert_eq!((report.users_total, report.users_failed), (5, 1));
    let after = store.get_user(&key).unwrap().unwrap();
    assert!(
        after.failure.as_deref().is_some_and(|f| f.contains("face image")),
        "{:?}",
        after.failure
    );
    assert_eq!(after.faces, before.faces);
    assert_eq!(
        store.users().unwrap().0.iter().filter(|u| u.failure.is_none()).count(),
        4
    );
}

#[tokio::test]
async fn an_unreachable_cloud_leaves_the_cached_users_in_force() {
    let sim = sim(6).await;
    let cloud = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    sim.set_roster_page_fault(1, Some(Fault::ServerError));
    let err = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS)
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Cloud(_)), "{err}");
    assert_eq!(store.users().unwrap().0.len(), 6);
    let last = store.last_pass().unwrap().unwrap();
    assert!(last.error.is_some());
    sim.shutdown().await;
    assert!(pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.is_err());
    assert_eq!(
        store.users().unwrap().0.len(),
        6,
        "a cloud that is gone changes nothing"
    );
}

#[tokio::test]
async fn users_dropped_from_the_roster_or_gone_leave_the_store() {
    let sim = sim(6).await;
    let cloud = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    sim.remove_from_roster("u-0002");
    let mut gone = sim.users().into_iter().find(|u| u.key.user_id == "u-0005").unwrap();
    gone.has_face = false; // image/get now answers 2405 for this one user
    sim.upsert_user(gone);
    let report = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    assert_eq!(report.users_gone, 1);
    let ids: Vec<String> = store.users().unwrap().0.into_iter().map(|u| u.key.user_id).collect();
    assert_eq!(ids, ["u-0001", "u-0003", "u-0004", "u-0006"]);
}

#[tokio::test]
async fn most_users_coming_back_gone_is_refused_instead_of_wiping_the_doors() {
    let sim = sim(6).await;
    let cloud = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS).await.unwrap();
    for mut u in sim.users().into_iter().take(4) {
        u.has_face = false;
        sim.upsert_user(u);
    }
    let err = pull(&cloud, &store, &profiles(), Timestamp::now(), OPTS)
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::MassUserGone { gone: 4, total: 6 }), "{err}");
    assert_eq!(store.users().unwrap().0.len(), 6);
    assert_eq!(sim.request_count(wire::PATH_IMAGE_DELETE), 0);
}
