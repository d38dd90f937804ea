//! The engine without a daemon: what `doorsync sync`, `revoke` and `user modify` use when no daemon
//! holds the store. Opens the store, the cloud client and (optionally) the doors; spawns nothing.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::daemon::{AgentError, open_store};
use super::doors::{DoorFactory, open_all};
use crate::clock::SystemClock;
use crate::cloud::{CloudClient, CloudSettings};
use crate::config::Config;
use crate::sync::engine::{Engine, EngineDoor, EngineSettings};

/// An engine over the store, plus the door drivers the caller must run while using it
/// (see [`super::doors::with_drivers`]).
pub(crate) struct Standalone {
    pub engine: Engine,
    pub drivers: Vec<BoxFuture<'static, ()>>,
}

impl Standalone {
    /// `config` must have been loaded with `FileChecks::Required` (the app secret is needed).
    /// With `factory: None` the engine has no doors (for cloud-only commands).
    pub(crate) async fn open(config: &Config, factory: Option<&dyn DoorFactory>) -> Result<Self, AgentError> {
        let store = open_store(&config.store.path)?;
        let cloud = CloudClient::new(CloudSettings::from_config(&config.cloud)?)?;
        let mut doors = Vec::new();
        let mut drivers = Vec::new();
        if let Some(factory) = factory {
            let (opened, _failed) = open_all(factory, &config.doors, &config.lines).await;
            for d in opened {
                drivers.extend(d.driver);
                doors.push(EngineDoor {
                    name: d.name,
                    profile: d.profile,
                    door: d.door,
                });
            }
        }
        let settings = EngineSettings {
            max_concurrency: config.cloud.max_concurrency as usize,
            verify_interval: config.sync.verify_interval,
            urgent_delete_wait: super::daemon::urgent_delete_wait(&config.doors),
            guard: crate::sync::guard::GuardSettings::from_config(&config.sync),
            roster_interval: None,
        };
        let cloud: Arc<dyn crate::cloud::FaceCloud> = Arc::new(cloud);
        let clock = Arc::new(super::TrustedClock::new(
            Arc::new(SystemClock),
            store.clone(),
            cloud.clone(),
        ));
        let engine = Engine::new(store, cloud, clock, doors, settings);
        Ok(Self { engine, drivers })
    }
}
