//! LIST options as upstream reads them: `limit` and `continue` (consistent pagination),
//! `resourceVersion` and `resourceVersionMatch`.
//!
//! ```text
//!  continue=<token {rv, start}> ──► range at rv from start (rv -1: latest)
//!  rv=N&resourceVersionMatch=Exact ─► range at N
//!  rv=N&limit=L (no match) ─────────► range at N (legacy exact)
//!  rv=N NotOlderThan / no limit ────► latest, once the store has reached N
//!  rv unset or 0 ───────────────────► latest
//! ```
//! Every page of a paged list is read at its first page's revision, so the pages join up
//! to one snapshot (as etcd's range at a revision gives upstream). A token whose revision
//! has been compacted gets 410 Expired with a token that finishes the list at the latest
//! revision, as kube-apiserver answers.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use podium_api::resource::ResourceInfo;
use podium_api::selector::{FieldSelector, LabelSelector};
use podium_api::status::{ApiError, Cause, Reason, cause};
use podium_store::{Revision, Store, StoreError};
use serde_json::{Value, json};

use crate::error::store_failure;
use crate::registry::{Listed, decode, parse_revision};

/// Upstream's message for a continue token older than the compaction point
/// (apiserver `pkg/storage/etcd3/errors.go`).
pub const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";
/// Upstream's message for an exact list at a compacted revision.
pub const EXPIRED_LIST: &str = "The resourceVersion for the provided list is too old.";
/// How long a list waits for the store to reach a resourceVersion it names, as the watch
/// cache's 3 s, before answering 504.
const WAIT_FOR_REVISION: Duration = Duration::from_secs(3);

/// Where and when a list reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// 0: no limit.
    pub limit: usize,
    /// The full key to start at (inclusive), from a continue token.
    pub start: Option<String>,
    /// The revision to read at; 0: the latest.
    pub revision: Revision,
    /// For a read at the latest revision: the store must have reached this one.
    pub not_older_than: Option<Revision>,
    /// Read for a continue token (its compaction gets upstream's inconsistent-continue answer).
    pub continuing: bool,
}

/// The continue token's JSON, as apimachinery's `continueToken` (`v`, `rv`, `start`).
pub fn encode_continue(next_key: &str, prefix: &str, revision: i64) -> String {
    let start = next_key.strip_prefix(prefix).unwrap_or(next_key);
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

/// The full start key and revision of a continue token (rv -1: the latest).
pub fn decode_continue(token: &str, prefix: &str) -> Result<(String, i64), ApiError> {
    let invalid = |why: String| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {why}"
        ))
    };
    // Go's RawURLEncoding; tolerate padding as some clients re-encode it.
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(e.to_string()))?;
    let value: Value = serde_json::from_slice(&raw).map_err(|e| invalid(e.to_string()))?;
    match value.get("v").and_then(Value::as_str) {
        Some("meta.k8s.io/v1") => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid continue token: continue key is not valid: server does not recognize this encoded version {}",
                other.unwrap_or("")
            )));
        }
    }
    let revision = value.get("rv").and_then(Value::as_i64).unwrap_or(0);
    if revision == 0 {
        return Err(invalid(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into(),
        ));
    }
    let start = value.get("start").and_then(Value::as_str).unwrap_or("");
    if start.is_empty() {
        return Err(invalid(
            "encoded start key empty (version meta.k8s.io/v1)".into(),
        ));
    }
    // As upstream: the start key must be a clean path below the prefix, so a token cannot
    // range over another resource's keys.
    let rooted = if start.starts_with('/') {
        start.to_string()
    } else {
        format!("/{start}")
    };
    if !is_clean_path(&rooted) {
        return Err(invalid(start.to_string()));
    }
    Ok((format!("{prefix}{}", &rooted[1..]), revision))
}

/// Go's `path.Clean(p) == p` for a rooted path: no empty, `.` or `..` segments and no
/// trailing slash (a bare "/" is clean).
fn is_clean_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

fn list_options_invalid(causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("meta.k8s.io", "ListOptions", "", causes)
}

/// Read `limit`, `continue`, `resourceVersion` and `resourceVersionMatch` as upstream's
/// `ValidateListOptions` and etcd3 store do.
pub fn parse(
    param: impl Fn(&str) -> Option<String>,
    prefix: &str,
) -> Result<ListOptions, ApiError> {
    let limit = match param("limit") {
        Some(l) => l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "limit: Invalid value: {l:?}: must be a non-negative integer"
            ))
        })?,
        None => 0,
    };
    // Upstream treats a negative limit as none.
    let limit = usize::try_from(limit).unwrap_or(0);
    let rv = param("resourceVersion");
    let rv_match = param("resourceVersionMatch");
    let token = param("continue");

    let mut causes = Vec::new();
    if let Some(m) = rv_match.as_deref() {
        let forbidden = |message: &str| {
            cause(
                "FieldValueForbidden",
                "resourceVersionMatch",
                format!("Forbidden: {message}"),
            )
        };
        if rv.is_none() {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if token.is_some() {
            causes.push(forbidden(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if m != "Exact" && m != "NotOlderThan" {
            causes.push(cause(
                "FieldValueNotSupported",
                "resourceVersionMatch",
                format!(
                    "Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
                ),
            ));
        }
        if m == "Exact" && rv.as_deref() == Some("0") {
            causes.push(forbidden(
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(list_options_invalid(causes));
    }
    let requested = rv.as_deref().map(parse_revision).transpose()?;

    if let Some(token) = token {
        if requested.is_some_and(|rv| rv != 0) {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (start, revision) = decode_continue(&token, prefix)?;
        return Ok(ListOptions {
            limit,
            start: Some(start),
            revision: u64::try_from(revision).unwrap_or(0), // -1: the latest
            not_older_than: None,
            continuing: true,
        });
    }
    let (revision, not_older_than) = match (rv_match.as_deref(), requested) {
        (Some("Exact"), Some(rv)) => (rv, None),
        (None, Some(rv)) if limit > 0 && rv > 0 => (rv, None),
        (_, Some(rv)) if rv > 0 => (0, Some(rv)),
        _ => (0, None),
    };
    Ok(ListOptions {
        limit,
        start: None,
        revision,
        not_older_than,
        continuing: false,
    })
}

pub(crate) fn too_large(requested: Revision, current: Revision) -> ApiError {
    let mut e = ApiError::new(
        Reason::Timeout,
        format!("Timeout: Too large resource version: {requested}, current: {current}"),
    );
    e.retry_after = Some(1);
    e
}

/// Wait (briefly) for the store to reach `revision`.
async fn wait_for(store: &dyn Store, revision: Revision) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + WAIT_FOR_REVISION;
    loop {
        let current = store.revision().await.map_err(store_failure)?;
        if current >= revision {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(too_large(revision, current));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Whether the watch cache answers this LIST, as upstream's cacher decides
/// (`shouldDelegateList`): not for a continue token, an exact revision or a paged read
/// (those need the store's range at a revision), but `resourceVersion=0` ignores the
/// limit and is served whole. `Some(None)`: a consistent read (the store's current
/// revision); `Some(Some(n))`: any state at or after revision n.
pub fn from_cache(
    options: &ListOptions,
    resource_version: Option<&str>,
) -> Option<Option<Revision>> {
    if options.continuing || options.start.is_some() || options.revision > 0 {
        return None;
    }
    match resource_version.unwrap_or("") {
        "" if options.limit == 0 => Some(None),
        "" => None,
        "0" => Some(Some(0)),
        _ if options.limit == 0 => Some(Some(options.not_older_than.unwrap_or(0))),
        _ => None,
    }
}

/// A failed scan: the store's own answer, or an object that would not decode.
pub enum ScanError {
    Store(StoreError),
    Api(ApiError),
}

/// The objects under `prefix` matching the selectors, from `start` (inclusive), at most
/// `limit` of them (0: all), all read at one revision (`revision`, 0: the latest).
pub async fn scan(
    store: &dyn Store,
    resource: &ResourceInfo,
    prefix: &str,
    labels: &LabelSelector,
    fields: &FieldSelector,
    limit: usize,
    start: Option<&str>,
    mut revision: Revision,
) -> Result<Listed, ScanError> {
    let mut items = Vec::new();
    let mut start = start.map(str::to_string);
    // Filter while paging so `limit` counts matches, as the watch cache does.
    loop {
        let page_size = if limit == 0 {
            0
        } else {
            (limit - items.len()).max(64)
        };
        let range = store
            .range_at(prefix, start.as_deref(), page_size, revision)
            .await
            .map_err(ScanError::Store)?;
        // Later store pages of this list are read at the same revision.
        revision = range.revision;
        for (i, kv) in range.kvs.iter().enumerate() {
            let object = decode(resource, kv).map_err(ScanError::Api)?;
            if labels.matches_object(&object) && fields.matches(&object) {
                items.push(object);
                if limit > 0 && items.len() == limit {
                    let more = range.more || i + 1 < range.kvs.len();
                    return Ok(Listed {
                        items,
                        revision,
                        continue_after: more.then(|| kv.key.clone()),
                    });
                }
            }
        }
        match range.kvs.last() {
            Some(last) if range.more => start = Some(format!("{}\0", last.key)),
            _ => {
                return Ok(Listed {
                    items,
                    revision,
                    continue_after: None,
                });
            }
        }
    }
}

/// A LIST as `options` say, with upstream's answers for compacted and future revisions.
pub async fn read(
    store: &dyn Store,
    resource: &ResourceInfo,
    prefix: &str,
    labels: &LabelSelector,
    fields: &FieldSelector,
    options: &ListOptions,
) -> Result<Listed, ApiError> {
    if let Some(min) = options.not_older_than {
        wait_for(store, min).await?;
    }
    if options.revision > 0 {
        wait_for(store, options.revision).await?;
    }
    let scanned = scan(
        store,
        resource,
        prefix,
        labels,
        fields,
        options.limit,
        options.start.as_deref(),
        options.revision,
    )
    .await;
    match scanned {
        Ok(listed) => Ok(listed),
        Err(ScanError::Api(e)) => Err(e),
        Err(ScanError::Store(StoreError::Compacted { .. })) if options.continuing => {
            let mut e = ApiError::gone(INCONSISTENT_CONTINUE);
            let start = options.start.as_deref().unwrap_or(prefix);
            e.list_continue = Some(encode_continue(start, prefix, -1));
            Err(e)
        }
        Err(ScanError::Store(StoreError::Compacted { .. })) => Err(ApiError::gone(EXPIRED_LIST)),
        Err(ScanError::Store(StoreError::FutureRevision { requested, current })) => {
            Err(too_large(requested, current))
        }
        Err(ScanError::Store(e)) => Err(store_failure(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const PREFIX: &str = "/registry/pods/default/";

    #[test]
    fn continue_tokens_are_upstreams() {
        let token = encode_continue("/registry/pods/default/b\0", PREFIX, 42);
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":42,"start":"b\u0000"}"#
        );
        assert_eq!(
            decode_continue(&token, PREFIX).unwrap(),
            ("/registry/pods/default/b\0".to_string(), 42)
        );
        // A token made by kube-apiserver for the same position decodes the same.
        let go = URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":42,"start":"b\u0000"}"#);
        assert_eq!(decode_continue(&go, PREFIX).unwrap().1, 42);
    }

    #[test]
    fn bad_continue_tokens_are_400() {
        for token in [
            "not base64!",
            &URL_SAFE_NO_PAD.encode("{}"),
            &URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":5,"start":""}"#),
            &URL_SAFE_NO_PAD.encode(r#"{"v":"meta.k8s.io/v1","rv":5,"start":"../secrets/x"}"#),
        ] {
            let e = decode_continue(token, PREFIX).unwrap_err();
            assert_eq!(e.code(), 400, "{token}");
            assert!(
                e.message.starts_with("invalid continue token"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn resource_version_semantics_follow_upstream() {
        let parse = |pairs: &[(&str, &str)]| parse(params(pairs), PREFIX);
        assert_eq!(parse(&[]).unwrap().revision, 0);
        let exact = parse(&[("resourceVersion", "7"), ("resourceVersionMatch", "Exact")]).unwrap();
        assert_eq!((exact.revision, exact.not_older_than), (7, None));
        let legacy = parse(&[("resourceVersion", "7"), ("limit", "500")]).unwrap();
        assert_eq!((legacy.revision, legacy.limit), (7, 500));
        let not_older = parse(&[("resourceVersion", "7")]).unwrap();
        assert_eq!((not_older.revision, not_older.not_older_than), (0, Some(7)));
        let any = parse(&[("resourceVersion", "0"), ("limit", "500")]).unwrap();
        assert_eq!((any.revision, any.not_older_than), (0, None));

        assert_eq!(
            parse(&[("resourceVersion", "abc")]).unwrap_err().code(),
            400
        );
        let e = parse(&[("resourceVersionMatch", "Exact")]).unwrap_err();
        assert_eq!(e.code(), 422);
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        assert_eq!(
            parse(&[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")])
                .unwrap_err()
                .code(),
            422
        );
        assert_eq!(
            parse(&[("resourceVersion", "1"), ("resourceVersionMatch", "Newest")])
                .unwrap_err()
                .code(),
            422
        );
        let token = encode_continue("/registry/pods/default/b\0", PREFIX, 9);
        let cont = parse(&[("continue", &token), ("limit", "2")]).unwrap();
        assert_eq!(
            (cont.revision, cont.start.as_deref(), cont.continuing),
            (9, Some("/registry/pods/default/b\0"), true)
        );
        assert_eq!(
            parse(&[("continue", &token), ("resourceVersion", "3")])
                .unwrap_err()
                .code(),
            400
        );
        let latest = encode_continue("/registry/pods/default/b\0", PREFIX, -1);
        assert_eq!(parse(&[("continue", &latest)]).unwrap().revision, 0);
    }
}
