//! Upstream's `ControllerExpectations` (UID-tracking variant), so a reconcile never
//! acts twice on a cache that has not yet seen its last writes.
//!
//! Before creating `n` pods a controller *expects* `n` creations; each pod it later sees
//! added lowers the count. Before deleting pods it expects their keys to go; each pod seen
//! deleted (or given a deletionTimestamp) is crossed off. Until the expectations are met
//! (or have expired, in case an event was lost) the controller only updates status.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upstream's `ExpectationsTimeout`.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Expectation {
    creations: i64,
    deletions: HashSet<String>,
    set_at: Instant,
}

/// Per controller key, the creations and deletions not yet seen in the cache.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Expectation>) -> R) -> R {
        // A poisoned lock only means another reconcile panicked mid-update; the counts
        // are still usable and expire anyway.
        let mut guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// About to create `count` pods for `key`.
    pub fn expect_creations(&self, key: &str, count: usize, now: Instant) {
        self.with(|p| {
            p.insert(
                key.to_string(),
                Expectation {
                    creations: count as i64,
                    deletions: HashSet::new(),
                    set_at: now,
                },
            );
        });
    }

    /// About to delete the pods with these keys for `key`.
    pub fn expect_deletions(
        &self,
        key: &str,
        pods: impl IntoIterator<Item = String>,
        now: Instant,
    ) {
        self.with(|p| {
            p.insert(
                key.to_string(),
                Expectation {
                    creations: 0,
                    deletions: pods.into_iter().collect(),
                    set_at: now,
                },
            );
        });
    }

    /// A pod of `key` appeared (or a planned creation will never happen).
    pub fn creation_observed(&self, key: &str) {
        self.with(|p| {
            if let Some(e) = p.get_mut(key) {
                e.creations -= 1;
            }
        });
    }

    /// The pod `pod` of `key` is gone or going (or its planned deletion failed).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        self.with(|p| {
            if let Some(e) = p.get_mut(key) {
                e.deletions.remove(pod);
            }
        });
    }

    /// Whether `key` may act: nothing pending, all seen, or waited too long.
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        self.with(|p| match p.get(key) {
            None => true,
            Some(e) => {
                (e.creations <= 0 && e.deletions.is_empty())
                    || now.duration_since(e.set_at) > EXPECTATIONS_TTL
            }
        })
    }

    /// The controller's object is gone.
    pub fn forget(&self, key: &str) {
        self.with(|p| {
            p.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_block_until_seen() {
        let e = Expectations::default();
        let t0 = Instant::now();
        assert!(e.satisfied("ns/rs", t0));
        e.expect_creations("ns/rs", 2, t0);
        assert!(!e.satisfied("ns/rs", t0));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs", t0));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs", t0));
    }

    #[test]
    fn deletions_are_tracked_by_pod() {
        let e = Expectations::default();
        let t0 = Instant::now();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()], t0);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs", t0));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs", t0));
    }

    #[test]
    fn expectations_expire() {
        let e = Expectations::default();
        let t0 = Instant::now();
        e.expect_creations("k", 1, t0);
        assert!(!e.satisfied("k", t0 + EXPECTATIONS_TTL));
        assert!(e.satisfied("k", t0 + EXPECTATIONS_TTL + Duration::from_secs(1)));
        e.forget("k");
        assert!(e.satisfied("k", t0));
    }
}
