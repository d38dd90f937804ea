//! Clock trust in the running daemon (README "Clock trust"): real fake-cloud `Date` headers over
//! 127.0.0.1, sled in a temp dir, an in-memory door.

use std::sync::Arc;

use doorsync::agent::clock::TokioClock;
use doorsync::agent::control::Request;
use doorsync::clock::trust::TimeSource;
use doorsync::sync::status::StatusReport;
use jiff::{SignedDuration, Timestamp};

use crate::harness::{self, Options, memory_door, name_of, names_on, sim};

#[tokio::test]
async fn a_wall_clock_two_days_ahead_of_the_cloud_expires_nobody_early_and_raises_clock_skew() {
    let sim = sim(3).await;
    let real_now = Timestamp::now();
    sim.set_expire("u-0002", Some(real_now + SignedDuration::from_hours(24)));
    let staying = name_of(&sim, "u-0002");
    let dir = tempfile::tempdir().unwrap();
    let door = memory_door();
    let options = Options {
        clock: Arc::new(TokioClock::new(real_now + SignedDuration::from_hours(48))),
        ..Default::default()
    };
    let mut d = harness::start(dir.path(), &sim.base_url(), door.clone(), options).await;
    d.settle().await;
    assert!(
        names_on(&door).contains(&staying),
        "expired by the wrong wall clock: {:?}",
        names_on(&door)
    );
    let status: StatusReport = serde_json::from_value(d.request(Request::Status).await.unwrap()).unwrap();
    assert!(status.clock.clock_skew, "{:?}", status.clock);
    assert_eq!(status.clock.source, TimeSource::Cloud);
    assert!(status.clock.skew_secs.unwrap() > 47 * 3600, "{:?}", status.clock);
    d.stop().await;
}
