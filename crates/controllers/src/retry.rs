//! Per-object exponential backoff for `error_policy`, reset by a successful reconcile
//! (upstream's rate-limited work queue: 5 ms doubling, capped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::controller::Action;

const FIRST_RETRY: Duration = Duration::from_millis(5);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

/// Consecutive failures per object key.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// The delay before retrying `key` after one more failure.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = FIRST_RETRY.saturating_mul(1u32 << (*n - 1).min(20));
        delay.min(LONGEST_RETRY)
    }

    /// `key` reconciled cleanly.
    pub fn succeeded(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }

    /// The error policy's answer for `key`.
    pub fn requeue(&self, key: &str, error: &crate::Error) -> Action {
        let delay = self.failed(key);
        tracing::warn!(object = key, error = %error, retry_in = ?delay, "reconcile failed");
        Action::requeue(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_and_resets() {
        let b = Backoff::default();
        assert_eq!(b.failed("k"), Duration::from_millis(5));
        assert_eq!(b.failed("k"), Duration::from_millis(10));
        assert_eq!(b.failed("k"), Duration::from_millis(20));
        for _ in 0..30 {
            b.failed("k");
        }
        assert_eq!(b.failed("k"), LONGEST_RETRY);
        b.succeeded("k");
        assert_eq!(b.failed("k"), Duration::from_millis(5));
        assert_eq!(b.failed("other"), Duration::from_millis(5));
    }
}
