//! The roster walk's consistency rule, sans-IO: pages go in, "next page", "complete" or "inconsistent"
//! comes out. A list that does not add up is incomplete, never the whole roster (README, "Roster
//! integrity").
//!
//! A walk is complete when it ends with the number of distinct users equal to the reported total (when
//! one is reported), no user listed twice, no page repeated and the total unchanged from page to page.
//! Anything else means the list changed or broke while it was walked.

use std::collections::HashSet;

use super::face::RosterEntry;
use super::wire::{self, RosterPage};
use crate::domain::UserKey;

/// What the walk does after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Ask for the next page.
    Next,
    /// The walk is complete and consistent.
    Complete,
    /// The walk broke; the reason names the inconsistency.
    Inconsistent(String),
    /// The walk passed its page bound without an end: walking again would only repeat that.
    Runaway(String),
}

/// One walk of the roster, fed page by page.
#[derive(Debug)]
pub(crate) struct RosterWalk {
    page_size: u32,
    max_pages: u32,
    default_user_type: String,
    pages: u32,
    total: Option<u64>,
    entries: Vec<RosterEntry>,
    keys: HashSet<UserKey>,
    page_ids: HashSet<String>,
}

impl RosterWalk {
    pub(crate) fn new(page_size: u32, max_pages: u32, default_user_type: impl Into<String>) -> Self {
        Self {
            page_size: page_size.max(1),
            max_pages,
            default_user_type: default_user_type.into(),
            pages: 0,
            total: None,
            entries: Vec::new(),
            keys: HashSet::new(),
            page_ids: HashSet::new(),
        }
    }

    /// The users listed so far, each once, in walk order.
    pub(crate) fn entries(&self) -> &[RosterEntry] {
        &self.entries
    }

    pub(crate) fn into_entries(self) -> Vec<RosterEntry> {
        self.entries
    }

    /// Takes the next page (numbered from 1 in the order asked for).
    pub(crate) fn page(&mut self, page: RosterPage) -> Step {
        self.pages += 1;
        let page_no = self.pages;
        let total = match page_total(&page) {
            Ok(t) => t,
            Err(reason) => return Step::Inconsistent(format!("page {page_no}: {reason}")),
        };
        match (self.total, total) {
            (Some(before), Some(now)) if before != now => {
                return Step::Inconsistent(format!(
                    "the total changed from {before} to {now} at page {page_no} (the roster changed while it \
                     was walked)"
                ));
            }
            (None, Some(now)) if self.pages > 1 => {
                return Step::Inconsistent(format!("page {page_no} reports a total ({now}) that page 1 did not"));
            }
            (Some(before), None) => {
                return Step::Inconsistent(format!("page {page_no} lost the total ({before}) page 1 reported"));
            }
            _ => self.total = total,
        }
        if let Some(t) = self.total {
            let most = u64::from(self.max_pages).saturating_mul(u64::from(self.page_size));
            if t > most {
                return Step::Inconsistent(format!(
                    "the reported total {t} is more than a walk of {} pages can hold ({most})",
                    self.max_pages
                ));
            }
        }
        let count = page.user_list.len();
        let mut items = Vec::with_capacity(count);
        for (i, item) in page.user_list.into_iter().enumerate() {
            let Some(user_id) = item.user_id.filter(|s| !s.trim().is_empty()) else {
                return Step::Inconsistent(format!("page {page_no} item {} has an empty or missing userId", i + 1));
            };
            let user_type = item
                .user_type
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| self.default_user_type.clone());
            items.push((UserKey::new(user_type, user_id), item.user_name, item.status));
        }
        let ids: Vec<String> = items.iter().map(|(k, _, _)| k.to_string()).collect();
        if count > 0 && !self.page_ids.insert(ids.join("\n")) {
            return Step::Inconsistent(format!("page {page_no} repeats an earlier page"));
        }
        for (key, name, status) in items {
            if !self.keys.insert(key.clone()) {
                return Step::Inconsistent(format!(
                    "user {key} is listed twice (page {page_no}); the list shifted while it was walked"
                ));
            }
            self.entries.push(RosterEntry {
                revoked: wire::roster_status_is_revoked(status.as_deref()),
                key,
                name,
                status,
            });
        }
        let listed = self.entries.len() as u64;
        match self.total {
            Some(t) if listed > t => {
                Step::Inconsistent(format!("{listed} distinct users listed but the total says {t}"))
            }
            Some(t) if listed == t => Step::Complete,
            Some(t) if count < self.page_size as usize => Step::Inconsistent(format!(
                "page {page_no} is short ({count} users) but only {listed} of the {t} users reported were listed"
            )),
            None if count < self.page_size as usize => Step::Complete,
            _ if self.pages >= self.max_pages => Step::Runaway(format!(
                "the walk passed {} pages without reaching its end",
                self.max_pages
            )),
            _ => Step::Next,
        }
    }
}

/// The page's total under either name the cloud uses; both present must agree.
fn page_total(page: &RosterPage) -> Result<Option<u64>, String> {
    let named = [("userListTotal", page.user_list_total), ("total", page.total)];
    let mut found: Option<(&str, i64)> = None;
    for (name, value) in named {
        let Some(v) = value else { continue };
        if v < 0 {
            return Err(format!("{name} is negative ({v})"));
        }
        match found {
            Some((other, w)) if w != v => return Err(format!("{other} ({w}) and {name} ({v}) disagree")),
            _ => found = Some((name, v)),
        }
    }
    Ok(found.map(|(_, v)| v.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::wire::RosterItem;

    fn page(total: Option<i64>, ids: &[&str]) -> RosterPage {
        RosterPage {
            user_list_total: total,
            user_list: ids
                .iter()
                .map(|id| RosterItem {
                    user_id: Some((*id).to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn walk() -> RosterWalk {
        RosterWalk::new(2, 10, "IDENTITY")
    }

    #[test]
    fn a_walk_that_adds_up_is_complete() {
        let mut w = walk();
        assert_eq!(w.page(page(Some(3), &["a", "b"])), Step::Next);
        assert_eq!(w.page(page(Some(3), &["c"])), Step::Complete);
        assert_eq!(w.entries().len(), 3);
        let mut w = walk();
        assert_eq!(w.page(page(Some(0), &[])), Step::Complete, "a really empty roster");
        let mut w = walk();
        assert_eq!(w.page(page(None, &["a", "b"])), Step::Next);
        assert_eq!(
            w.page(page(None, &[])),
            Step::Complete,
            "no total: a short page ends it"
        );
    }

    #[test]
    fn short_empty_duplicated_or_shifting_walks_are_inconsistent() {
        let cases: Vec<(Vec<RosterPage>, &str)> = vec![
            (vec![page(Some(15), &[])], "short"),
            (vec![page(Some(15), &["a"])], "short"),
            (vec![page(Some(3), &["a", "b"]), page(Some(3), &["b"])], "listed twice"),
            (
                vec![page(Some(4), &["a", "b"]), page(Some(5), &["c", "d"])],
                "total changed",
            ),
            (vec![page(Some(1), &["a", "b"])], "distinct users listed"),
            (vec![page(Some(-1), &[])], "negative"),
            (vec![page(Some(i64::MAX), &["a", "b"])], "more than a walk"),
            (vec![page(None, &["a", ""])], "missing userId"),
            (
                vec![page(Some(4), &["a", "b"]), page(None, &["c", "d"])],
                "lost the total",
            ),
        ];
        for (pages, needle) in cases {
            let mut w = walk();
            let mut last = Step::Next;
            for p in pages {
                last = w.page(p);
                if last != Step::Next {
                    break;
                }
            }
            match last {
                Step::Inconsistent(reason) => assert!(reason.contains(needle), "{reason} lacks {needle}"),
                other => panic!("expected inconsistent ({needle}), got {other:?}"),
            }
        }
    }

    #[test]
    fn both_total_names_are_accepted_when_they_agree() {
        let mut p = page(Some(1), &["a"]);
        p.total = Some(1);
        assert_eq!(walk().page(p.clone()), Step::Complete);
        p.total = Some(2);
        assert!(matches!(walk().page(p), Step::Inconsistent(r) if r.contains("disagree")));
    }

    #[test]
    fn a_repeated_page_and_endless_pages_end_the_walk() {
        let mut w = RosterWalk::new(2, 3, "IDENTITY");
        assert_eq!(w.page(page(None, &["a", "b"])), Step::Next);
        assert!(matches!(w.page(page(None, &["a", "b"])), Step::Inconsistent(r) if r.contains("repeats")));
        let mut w = RosterWalk::new(1, 3, "IDENTITY");
        assert_eq!(w.page(page(None, &["a"])), Step::Next);
        assert_eq!(w.page(page(None, &["b"])), Step::Next);
        assert!(matches!(w.page(page(None, &["c"])), Step::Runaway(r) if r.contains("3 pages")));
    }
}
