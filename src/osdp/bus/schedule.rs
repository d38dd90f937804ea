//! Whose turn it is on a shared line: urgent work on any PD first, then due keep-alive polls, then bulk
//! work and discovery, round-robin within each class so every PD gets a fair share of the line.
//!
//! A turn is one exchange (a command and its reply, or its reply timeout), so a PD that is silent or
//! slow costs the others at most one reply timeout per turn. Keep-alives rank above bulk work so that
//! no PD waits longer than its poll interval plus one turn per other PD for a poll, far inside OSDP's
//! 8 s offline threshold (docs/osdp.md).

/// Why a PD wants the line, in the order the line serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Need {
    /// A delete or clear (a revocation, an expiry, a roster removal), or its resend.
    Urgent,
    /// An online PD's keep-alive osdp_POLL is due (it also fetches queued replies).
    KeepAlive,
    /// A bulk command (records, face fragments, queries), or discovery of a PD that is not online.
    Bulk,
}

/// The round-robin cursor of one line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Turns {
    /// The PD served last; the next turn in a class goes to the first wanting PD after it.
    last: Option<usize>,
}

impl Turns {
    /// Picks the PD to serve among `wants` (PD index, need); `None` when nobody wants the line.
    pub(crate) fn pick(&mut self, wants: &[(usize, Need)]) -> Option<usize> {
        let best = wants.iter().map(|&(_, need)| need).min()?;
        let after = self.last.map_or(0, |l| l.saturating_add(1));
        // Distance from the cursor in cyclic order: PDs at or after it first, then those before it.
        let chosen = wants
            .iter()
            .filter(|&&(_, need)| need == best)
            .map(|&(pd, _)| pd)
            .min_by_key(|&pd| (pd < after, pd))?;
        self.last = Some(chosen);
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_work_on_any_pd_goes_before_bulk_and_keep_alive() {
        let mut turns = Turns::default();
        let wants = [(0, Need::Bulk), (1, Need::KeepAlive), (2, Need::Urgent)];
        assert_eq!(turns.pick(&wants), Some(2));
        assert_eq!(turns.pick(&wants[..2]), Some(1));
        assert_eq!(turns.pick(&wants[..1]), Some(0));
        assert_eq!(turns.pick(&[]), None);
    }

    #[test]
    fn bulk_work_alternates_between_pds() {
        let mut turns = Turns::default();
        let wants = [(0, Need::Bulk), (1, Need::Bulk), (3, Need::Bulk)];
        let order: Vec<_> = (0..7).filter_map(|_| turns.pick(&wants)).collect();
        assert_eq!(order, [0, 1, 3, 0, 1, 3, 0]);
    }

    #[test]
    fn a_pd_joining_the_round_gets_the_next_turn_after_the_cursor() {
        let mut turns = Turns::default();
        assert_eq!(turns.pick(&[(0, Need::Bulk), (2, Need::Bulk)]), Some(0));
        assert_eq!(
            turns.pick(&[(0, Need::Bulk), (1, Need::Bulk), (2, Need::Bulk)]),
            Some(1)
        );
        assert_eq!(turns.pick(&[(0, Need::Bulk), (2, Need::Bulk)]), Some(2));
        assert_eq!(turns.pick(&[(0, Need::Bulk), (2, Need::Bulk)]), Some(0));
    }
}
