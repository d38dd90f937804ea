//! The capacity a plan may fill on one door: the profile's, lowered to what the door itself declares in
//! INFO (PROTOCOL.md §6) — but never below what the door already holds, so a door that under-reports
//! its capacity can stop new users from being added, never make the agent remove anyone.

use crate::door::Door;

/// `profile_capacity` lowered to the door's INFO capacity, floored at `held` (users the door holds now).
/// A door that cannot answer INFO keeps the profile's capacity (its pushes fail on their own).
pub(crate) async fn door_capacity(door: &dyn Door, profile_capacity: u32, held: usize) -> u32 {
    match door.info().await {
        Ok(info) => effective(profile_capacity, info.capacity_users, held),
        Err(e) => {
            tracing::debug!(error = %e, "door INFO unavailable; planning with the profile's capacity");
            profile_capacity
        }
    }
}

fn effective(profile_capacity: u32, declared: u32, held: usize) -> u32 {
    let held = u32::try_from(held).unwrap_or(u32::MAX);
    declared.max(held).min(profile_capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_door_can_lower_capacity_but_never_below_what_it_holds() {
        assert_eq!(effective(100, 10, 0), 10);
        assert_eq!(effective(100, 0, 0), 0);
        assert_eq!(effective(100, 0, 7), 7, "an under-reporting door removes nobody");
        assert_eq!(effective(100, 500, 0), 100, "the profile stays the upper bound");
    }
}
