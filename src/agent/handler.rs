//! The daemon's answers to control-socket requests (`doorsync status|sync|revoke|user modify`).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use super::control::{self, ControlHandler, Request};
use super::events::{DaemonEvent, Events};
use crate::sync::engine::{Engine, PassOptions, Progress, RemovalCause};
use crate::sync::status;

pub(super) struct Handler {
    pub engine: Arc<Engine>,
    pub outbox_wake: Arc<Notify>,
    pub events: Events,
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| format!("cannot encode the answer: {e}"))
}

#[async_trait::async_trait]
impl ControlHandler for Handler {
    async fn handle(
        &self,
        request: Request,
        progress: mpsc::Sender<control::Progress>,
    ) -> Result<serde_json::Value, String> {
        let engine = &self.engine;
        match request {
            Request::Status => {
                let mut report =
                    status::collect(engine.store(), &engine.door_names(), true).map_err(|e| e.to_string())?;
                for (name, link) in engine.link_snapshots() {
                    if let Some(d) = report.doors.iter_mut().find(|d| d.name == name) {
                        d.link = link;
                    }
                }
                to_json(&report)
            }
            Request::Sync {
                force_refresh,
                door,
                confirm_removals,
            } => {
                let options = PassOptions {
                    force_refresh,
                    verify: force_refresh,
                    door,
                    confirm_removals,
                };
                let forward = |p: Progress| {
                    // A slow CLI must not stall the pass: progress lines are dropped, never waited for.
                    let _ = progress.try_send(control::Progress {
                        message: p.message,
                        done: p.done,
                        total: p.total,
                    });
                };
                let report = engine.pass(&options, &forward).await.map_err(|e| e.to_string())?;
                if report.pull_error.is_none() {
                    self.outbox_wake.notify_one();
                }
                for d in &report.doors {
                    self.events.emit(DaemonEvent::DoorSynced { report: d.clone() });
                }
                to_json(&report)
            }
            Request::Explain { key, door } => {
                let mut doors = engine.door_profiles();
                doors.retain(|(name, _)| door.as_deref().is_none_or(|d| d == *name));
                let report = crate::sync::explain::explain(engine.store(), &key, &doors, engine.now(), true)
                    .map_err(|e| e.to_string())?;
                to_json(&report)
            }
            Request::Revoke { key } => {
                let report = engine
                    .revoke(&key, "doorsync revoke")
                    .await
                    .map_err(|e| e.to_string())?;
                self.events.removals(RemovalCause::Revoked, &report.doors);
                self.outbox_wake.notify_one();
                to_json(&report)
            }
            Request::ModifyUser {
                identity_id,
                name,
                ext_info,
            } => {
                let report = engine
                    .modify_user(&identity_id, name.as_deref(), ext_info.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                if report.queued {
                    self.outbox_wake.notify_one();
                }
                to_json(&report)
            }
        }
    }
}
