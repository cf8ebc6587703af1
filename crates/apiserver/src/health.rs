//! `/healthz`, `/livez` and `/readyz` as kube-apiserver serves them (apiserver
//! `pkg/server/healthz`): each runs named checks; `?verbose` lists them (`[+]etcd ok`)
//! and ends with `readyz check passed`; `?exclude=<name>` skips one; `/<endpoint>/<name>`
//! runs one alone. A failing check answers 500 with the whole list and the failing check
//! marked `[-]... failed: reason withheld` (the root endpoints are public, so the reason
//! goes to the log, not to the client).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, Uri, header};

use crate::ApiServer;
use crate::request::parse_query;

/// How long the store may take to answer the health read (upstream's etcd check: 2 s).
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The checks every endpoint runs, in upstream's order and with its names (`etcd` is the
/// store, whatever the backend, so `?exclude=etcd` works as operators expect).
const CHECKS: &[&str] = &["ping", "log", "etcd"];

/// Which endpoint: its name prints in `readyz check passed`.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }

    /// The checks of this endpoint: readiness adds `shutdown`, which a server that is
    /// still answering passes (upstream fails it once shutdown has begun).
    fn checks(self) -> Vec<&'static str> {
        let mut checks = CHECKS.to_vec();
        if let Endpoint::Readyz = self {
            checks.push("shutdown");
        }
        checks
    }
}

async fn run_check(server: &ApiServer, name: &str) -> Result<(), String> {
    match name {
        "ping" | "log" | "shutdown" => Ok(()),
        "etcd" => {
            let store = server.registry.store.clone();
            match tokio::time::timeout(STORE_TIMEOUT, store.get("/health")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("the store failed a read: {e}")),
                Err(_) => Err(format!(
                    "the store did not answer a read within {}s",
                    STORE_TIMEOUT.as_secs()
                )),
            }
        }
        other => Err(format!("no check named {other:?}")),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    let mut response = (code, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The checks `?exclude=` names: repeated parameters and comma-separated lists both count.
fn excluded(query: Option<&str>) -> BTreeSet<String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "exclude")
        .flat_map(|(_, value)| {
            parse_query(Some(&format!("v={value}")))
                .remove("v")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The answer of a root endpoint from its checks' results, in upstream's words.
pub fn render(
    endpoint: Endpoint,
    results: &[(&str, Result<(), String>)],
    mut excluded: BTreeSet<String>,
    verbose: bool,
) -> (StatusCode, String) {
    let mut listing = String::new();
    let mut failed = Vec::new();
    for (name, result) in results {
        if excluded.remove(*name) {
            listing.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match result {
            Ok(()) => listing.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                tracing::warn!(check = name, %reason, "{} check failed", endpoint.name());
                listing.push_str(&format!("[-]{name} failed: reason withheld\n"));
                failed.push(*name);
            }
        }
    }
    if !excluded.is_empty() {
        let names: Vec<String> = excluded.iter().map(|n| format!("{n:?}")).collect();
        listing.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            names.join(",")
        ));
    }
    if !failed.is_empty() {
        // Always verbose on failure, as upstream (`http.Error` adds the newline).
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{listing}{} check failed\n", endpoint.name()),
        );
    }
    if !verbose {
        return (StatusCode::OK, "ok".into());
    }
    (
        StatusCode::OK,
        format!("{listing}{} check passed\n", endpoint.name()),
    )
}

async fn root(server: &ApiServer, endpoint: Endpoint, uri: &Uri) -> Response {
    let skip = excluded(uri.query());
    let mut results = Vec::new();
    for name in endpoint.checks() {
        // An excluded check is not run at all.
        let result = if skip.contains(name) {
            Ok(())
        } else {
            run_check(server, name).await
        };
        results.push((name, result));
    }
    let verbose = parse_query(uri.query()).contains_key("verbose");
    let (code, body) = render(endpoint, &results, skip, verbose);
    text(code, body)
}

async fn single(server: &ApiServer, endpoint: Endpoint, check: &str) -> Response {
    if !endpoint.checks().contains(&check) {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    match run_check(server, check).await {
        Ok(()) => text(StatusCode::OK, "ok".into()),
        Err(reason) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}

pub async fn healthz(State(server): State<ApiServer>, uri: Uri) -> Response {
    root(&server, Endpoint::Healthz, &uri).await
}

pub async fn livez(State(server): State<ApiServer>, uri: Uri) -> Response {
    root(&server, Endpoint::Livez, &uri).await
}

pub async fn readyz(State(server): State<ApiServer>, uri: Uri) -> Response {
    root(&server, Endpoint::Readyz, &uri).await
}

pub async fn healthz_check(State(server): State<ApiServer>, Path(check): Path<String>) -> Response {
    single(&server, Endpoint::Healthz, &check).await
}

pub async fn livez_check(State(server): State<ApiServer>, Path(check): Path<String>) -> Response {
    single(&server, Endpoint::Livez, &check).await
}

pub async fn readyz_check(State(server): State<ApiServer>, Path(check): Path<String>) -> Response {
    single(&server, Endpoint::Readyz, &check).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_check_is_named_and_answers_500() {
        let results = [
            ("ping", Ok(())),
            ("log", Ok(())),
            ("etcd", Err("disk gone".to_string())),
            ("shutdown", Ok(())),
        ];
        let (code, body) = render(Endpoint::Readyz, &results, BTreeSet::new(), false);
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
        );
        // Excluding the failing check makes the endpoint pass again.
        let skip = BTreeSet::from(["etcd".to_string()]);
        let (code, body) = render(Endpoint::Readyz, &results, skip, true);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            "[+]ping ok\n[+]log ok\n[+]etcd excluded: ok\n[+]shutdown ok\nreadyz check passed\n"
        );
    }

    #[test]
    fn exclusions_from_repeated_and_comma_separated_parameters() {
        let names = excluded(Some("verbose&exclude=etcd&exclude=log%2Cping&x=1"));
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["etcd", "log", "ping"]
        );
        assert!(excluded(None).is_empty());
    }
}
