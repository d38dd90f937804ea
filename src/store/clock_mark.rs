//! The persisted clock high-water mark and alarms (meta key `clock`), so a restart after a power cut
//! that lost the RTC still knows the latest trustworthy time (README "Clock trust").

use super::{Store, StoreError};
use crate::clock::trust::ClockStatus;

const META_CLOCK: &str = "clock";

impl Store {
    /// The last persisted clock status; the default (no mark, no alarm) on a new store.
    pub(crate) fn clock_status(&self) -> Result<ClockStatus, StoreError> {
        Ok(self.get_meta(META_CLOCK)?.unwrap_or_default())
    }

    pub(crate) fn put_clock_status(&self, status: &ClockStatus) -> Result<(), StoreError> {
        self.put_meta(META_CLOCK, status)
    }
}
