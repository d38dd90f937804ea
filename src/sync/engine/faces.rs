//! Face files around a pull: before it, users whose face file is lost or corrupt are marked for
//! re-fetching; after it and after each pass, faces that no user and no door's applied state needs
//! are deleted, so the store's disk use stays bounded by the live faces.
//!
//! Both run under the pull lock: a pull stores new faces before its roster records them, and a
//! collection in between would take them for garbage.

use super::Engine;
use crate::store::FaceGcReport;

impl Engine {
    /// Marks users with a missing face file for re-fetching. Call with the pull lock held.
    pub(super) async fn mark_missing_faces(&self) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.refetch_missing_faces()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(users = n, "faces missing from the store will be fetched again"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot check the face files"),
            Err(e) => tracing::error!(error = %e, "face check worker failed"),
        }
    }

    /// Deletes unneeded face files. Call with the pull lock held.
    pub(super) async fn collect_faces_locked(&self) -> Option<FaceGcReport> {
        let store = self.store.clone();
        let doors: Vec<String> = self.doors.iter().map(|d| d.name.clone()).collect();
        let collected = tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = doors.iter().map(String::as_str).collect();
            store.collect_faces(&names)
        })
        .await;
        match collected {
            Ok(Ok(report)) => {
                if report.removed_files + report.removed_temp_files > 0 {
                    tracing::info!(
                        removed = report.removed_files,
                        removed_bytes = report.removed_bytes,
                        temp_files = report.removed_temp_files,
                        kept = report.kept.files,
                        kept_bytes = report.kept.bytes,
                        "unneeded faces deleted"
                    );
                }
                Some(report)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "face collection failed");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "face collection worker failed");
                None
            }
        }
    }

    /// Deletes face files that no user and no door's applied state needs (after a pass).
    pub(crate) async fn collect_faces(&self) -> Option<FaceGcReport> {
        let _no_pull_meanwhile = self.pull_lock.lock().await;
        self.collect_faces_locked().await
    }
}
