//! Authentication, as kube-apiserver's union of authenticators: a client certificate
//! signed by the cluster CA (CN = user, O = groups) or a bearer token from the static
//! token file. Requests with neither, or with credentials that do not check out, get 401,
//! except the public health and version paths. Every authenticated identity may do
//! everything until authorization (RBAC) exists; the identity is logged.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use podium_api::status::{ApiError, Reason};

use crate::error::Failure;

/// Who made a request (`user.Info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// What the TLS layer learnt of the connection's client certificate.
#[derive(Debug, Clone)]
pub enum PeerCertificate {
    /// No certificate was presented.
    None,
    /// Signed by the cluster CA: its subject.
    Verified(podium_pki::Subject),
    /// Presented but not valid (another CA, expired): why. Such requests are refused, as
    /// upstream's x509 authenticator does, unless a valid token accompanies them.
    Rejected(String),
}

/// The ways a request can prove who it is.
#[derive(Default)]
pub struct Authenticator {
    /// Bearer token → user, from `--token-auth-file`.
    tokens: HashMap<String, User>,
    /// ServiceAccount tokens (signed JWTs) this cluster issued, and the registry that says
    /// whether their ServiceAccount still exists.
    service_accounts: Option<(
        Arc<crate::service_account_token::ServiceAccountTokens>,
        Arc<crate::Registry>,
    )>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("static_tokens", &self.tokens.len())
            .field("service_accounts", &self.service_accounts.is_some())
            .finish()
    }
}

/// Paths anyone may read, as upstream's `system:public-info-viewer` role allows.
fn is_public(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || ["/healthz/", "/livez/", "/readyz/"]
            .iter()
            .any(|p| path.starts_with(p))
}

impl Authenticator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a static token file: CSV lines `token,user,uid[,"group1,group2"]`, as
    /// kube-apiserver's `--token-auth-file`.
    pub fn with_token_file(mut self, path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[..3].iter().any(String::is_empty) {
                return Err(format!(
                    "{} line {}: expected token,user,uid[,\"group1,group2\"]",
                    path.display(),
                    number + 1
                ));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            self.tokens.insert(
                fields[0].clone(),
                User {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(self)
    }

    /// Accept the ServiceAccount tokens `server` issues, while their ServiceAccount (and
    /// the object they are bound to) exists.
    pub fn with_service_accounts(mut self, server: &crate::ApiServer) -> Self {
        self.service_accounts = Some((server.tokens.clone(), server.registry.clone()));
        self
    }

    /// Add one token (for components that authenticate by token).
    pub fn add_token(&mut self, token: String, user: User) {
        self.tokens.insert(token, user);
    }

    /// The user a request authenticates as; None for a request without any credentials
    /// (anonymous); an error for credentials that do not check out.
    pub async fn authenticate(
        &self,
        peer: &PeerCertificate,
        authorization: Option<&str>,
    ) -> Result<Option<User>, String> {
        if let PeerCertificate::Verified(subject) = peer {
            let mut groups = subject.groups.clone();
            groups.push("system:authenticated".into());
            return Ok(Some(User {
                name: subject.user.clone(),
                uid: String::new(),
                groups,
            }));
        }
        if let Some(header) = authorization {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or("the Authorization header is not a bearer token")?;
            let mut user = match self.tokens.get(token) {
                Some(user) => user.clone(),
                None => match &self.service_accounts {
                    Some((tokens, registry)) => {
                        let verified = tokens.verify(token).ok_or("invalid bearer token")?;
                        verified.still_valid(registry).await?;
                        verified.user
                    }
                    None => return Err("invalid bearer token".into()),
                },
            };
            if !user.groups.iter().any(|g| g == "system:authenticated") {
                user.groups.push("system:authenticated".into());
            }
            return Ok(Some(user));
        }
        match peer {
            PeerCertificate::Rejected(why) => Err(format!("client certificate rejected: {why}")),
            _ => Ok(None),
        }
    }
}

/// Split one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// The middleware: authenticate, then hand the user to the handlers as an extension.
pub async fn authenticate(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(authenticator.clone());
    let peer = request
        .extensions()
        .get::<PeerCertificate>()
        .cloned()
        .unwrap_or(PeerCertificate::None);
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refuse = |why: &str, request: &Request| {
        tracing::info!(reason = %why, method = %request.method(), path = %request.uri().path(), "unauthenticated request refused");
        Failure(ApiError::new(Reason::Unauthorized, "Unauthorized")).into_response()
    };
    match authenticator.authenticate(&peer, authorization).await {
        Ok(Some(user)) => {
            tracing::debug!(user = %user.name, method = %request.method(), path = %request.uri().path(), "request");
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        // Anonymous: only what upstream's system:public-info-viewer may read.
        Ok(None) if is_public(request.uri().path()) => next.run(request).await,
        Ok(None) => refuse(
            "no credentials: present a client certificate or a bearer token",
            &request,
        ),
        // Bad credentials fail everywhere, as upstream: a client learns its token is wrong.
        Err(why) => refuse(&why, &request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nsecret-1,alice,1001,\"dev,ops\"\nsecret-2,bob,1002\n",
        )
        .unwrap();
        let auth = Authenticator::new().with_token_file(&path).unwrap();
        let alice = auth
            .authenticate(&PeerCertificate::None, Some("Bearer secret-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, ["dev", "ops", "system:authenticated"]);
        assert!(
            auth.authenticate(&PeerCertificate::None, Some("Bearer wrong"))
                .await
                .is_err()
        );
        assert_eq!(
            auth.authenticate(&PeerCertificate::None, None).await,
            Ok(None)
        );
        std::fs::write(&path, "only-a-token\n").unwrap();
        assert!(
            Authenticator::new()
                .with_token_file(&path)
                .unwrap_err()
                .contains("line 1")
        );
    }

    #[tokio::test]
    async fn certificates_win_and_rejected_ones_fail() {
        let auth = Authenticator::new();
        let admin = podium_pki::Subject {
            user: "system:admin".into(),
            groups: vec!["system:masters".into()],
        };
        let user = auth
            .authenticate(&PeerCertificate::Verified(admin), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        let err = auth
            .authenticate(&PeerCertificate::Rejected("unknown issuer".into()), None)
            .await
            .unwrap_err();
        assert!(err.contains("unknown issuer"));
    }

    #[test]
    fn public_paths() {
        for p in [
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/etcd",
            "/version",
            "/version/",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/api",
            "/api/v1/pods",
            "/apis",
            "/openapi/v2",
            "/versionx",
            "/",
        ] {
            assert!(!is_public(p), "{p}");
        }
    }
}

/// The authentication.k8s.io reviews, which need the authenticator and the caller's
/// identity: `SelfSubjectReview` (`kubectl auth whoami`) and `TokenReview` (a component
/// asking whether a bearer token is good).
///
/// The authenticator reaches them as a request extension (the middleware adds it): a
/// router with its own state merged into the main one loses its routes to the
/// `/apis/{*path}` catch-all.
pub fn review_routes() -> axum::Router {
    axum::Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            axum::routing::post(self_subject_review),
        )
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            axum::routing::post(token_review),
        )
}

fn user_info(user: &User) -> serde_json::Value {
    let mut info = serde_json::json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = serde_json::json!(user.uid);
    }
    info
}

fn review_response(headers: &http::HeaderMap, review: serde_json::Value) -> Response {
    let api_version = review["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = review["kind"].as_str().map(str::to_string);
    match crate::negotiate::response_format(headers, &api_version, kind.as_deref()) {
        Ok(format) => crate::negotiate::respond(format, http::StatusCode::CREATED, &review, &[]),
        Err(e) => Failure(e).into_response(),
    }
}

async fn self_subject_review(
    user: Option<axum::Extension<User>>,
    headers: http::HeaderMap,
) -> Response {
    let Some(axum::Extension(user)) = user else {
        return Failure(ApiError::new(Reason::Unauthorized, "Unauthorized")).into_response();
    };
    review_response(
        &headers,
        serde_json::json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": crate::registry::now_rfc3339()},
            "status": {"userInfo": user_info(&user)}
        }),
    )
}

async fn token_review(
    axum::Extension(authenticator): axum::Extension<Arc<Authenticator>>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let review = if crate::negotiate::is_protobuf_body(&headers) {
        crate::negotiate::decode_body(&body)
    } else {
        serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("error decoding TokenReview: {e}")))
    };
    let review = match review {
        Ok(r) => r,
        Err(e) => return Failure(e).into_response(),
    };
    let Some(token) = review
        .pointer("/spec/token")
        .and_then(serde_json::Value::as_str)
    else {
        return Failure(ApiError::new(
            Reason::Invalid,
            "TokenReview.authentication.k8s.io is invalid: spec.token: Required value",
        ))
        .into_response();
    };
    let status = match authenticator
        .authenticate(&PeerCertificate::None, Some(&format!("Bearer {token}")))
        .await
    {
        Ok(Some(user)) => serde_json::json!({"authenticated": true, "user": user_info(&user)}),
        Ok(None) | Err(_) => serde_json::json!({"user": {}, "error": "invalid bearer token"}),
    };
    let mut answer = review.clone();
    answer["kind"] = serde_json::json!("TokenReview");
    answer["apiVersion"] = serde_json::json!("authentication.k8s.io/v1");
    answer["metadata"] = serde_json::json!({"creationTimestamp": null});
    answer["status"] = status;
    review_response(&headers, answer)
}
