//! Events expire: kube-apiserver stores each Event with an etcd lease of `--event-ttl`
//! (default 1 h), renewed by every write. Here a sweeper deletes the Events last seen
//! (the latest of creation, `lastTimestamp`, `eventTime`, `series.lastObservedTime`)
//! longer ago than the TTL.

use std::time::Duration;

use podium_store::{Expect, KeyValue, Store};
use serde_json::Value;

/// Where core Events (and events.k8s.io Events, the same objects) are kept.
const EVENTS_PREFIX: &str = "/registry/events/";

/// When the Event in `kv` was last seen, as Unix seconds.
fn last_seen(kv: &KeyValue) -> Option<i64> {
    let event: Value = serde_json::from_slice(&kv.value).ok()?;
    [
        "/metadata/creationTimestamp",
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
    ]
    .iter()
    .filter_map(|p| event.pointer(p).and_then(Value::as_str))
    .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
    .map(|t| t.as_second())
    .max()
}

/// Delete every Event last seen before `now - ttl`; returns how many.
pub async fn expire_once(store: &dyn Store, ttl: Duration, now: jiff::Timestamp) -> usize {
    let cutoff = now.as_second() - ttl.as_secs() as i64;
    let Ok(range) = store.range(EVENTS_PREFIX, None, 0).await else {
        return 0;
    };
    let mut expired = 0;
    for kv in &range.kvs {
        if last_seen(kv).is_some_and(|seen| seen < cutoff)
            // A conflict means it was written again meanwhile: it lives on.
            && store
                .delete(&kv.key, Expect::Revision(kv.mod_revision))
                .await
                .is_ok()
        {
            expired += 1;
        }
    }
    expired
}

/// Sweep for expired Events forever, often enough that none outlives the TTL by more
/// than a tenth of it (at most a minute).
pub async fn run(store: std::sync::Arc<dyn Store>, ttl: Duration) {
    let period = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        let expired = expire_once(&*store, ttl, jiff::Timestamp::now()).await;
        if expired > 0 {
            tracing::info!(expired, "expired events");
        }
    }
}

/// Parse a Go-style duration as `--event-ttl` takes it: `1h`, `30m`, `90s`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("invalid duration {text:?}: unknown unit {c:?}")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: give a unit (h, m or s), e.g. 1h"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h0m0s"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1d").is_err());
    }

    #[tokio::test]
    async fn events_last_seen_before_the_ttl_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = podium_store::RedbStore::open(dir.path().join("db"))
            .unwrap()
            .shared();
        let event = |created: &str, last: &str| {
            serde_json::json!({"metadata": {"creationTimestamp": created}, "lastTimestamp": last})
                .to_string()
                .into_bytes()
        };
        let old = "/registry/events/default/old";
        let recurring = "/registry/events/default/recurring";
        store
            .put(
                old,
                event("2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z"),
                Expect::Absent,
            )
            .await
            .unwrap();
        store
            .put(
                recurring,
                event("2026-01-01T00:00:00Z", "2026-01-01T01:50:00Z"),
                Expect::Absent,
            )
            .await
            .unwrap();
        let now: jiff::Timestamp = "2026-01-01T02:00:00Z".parse().unwrap();
        assert_eq!(expire_once(&store, Duration::from_secs(3600), now).await, 1);
        assert!(store.get(old).await.unwrap().is_none());
        assert!(store.get(recurring).await.unwrap().is_some());
    }
}
