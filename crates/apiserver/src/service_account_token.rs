//! ServiceAccount tokens as kube-apiserver issues and checks them: bound JWTs signed with
//! the cluster's service account key (ES256), asked for with a TokenRequest
//! (`POST serviceaccounts/<name>/token`, what `kubectl create token` and the kubelet's
//! projected tokens send), and accepted as bearer tokens while they are unexpired, meant
//! for this API server (audience) and issued by it.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use podium_api::resource::{self, ResourceInfo};
use podium_api::status::{ApiError, cause};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::User;
use crate::error::ApiResult;
use crate::handlers::Call;
use crate::registry::{meta_str, now_rfc3339};

/// The issuer and default audience upstream uses for a cluster named `cluster.local`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Upstream's bounds on `spec.expirationSeconds`: at least 10 minutes, at most 2^32 s.
const MIN_SECONDS: i64 = 600;
const MAX_SECONDS: i64 = 1 << 32;
const DEFAULT_SECONDS: i64 = 3600;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Reference {
    name: String,
    uid: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Reference,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pod: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    secret: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    node: Option<Reference>,
}

/// The claims of upstream's bound service account tokens.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    iss: String,
    jti: String,
    sub: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

/// Signs and checks ServiceAccount tokens with one key pair.
pub struct ServiceAccountTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    audiences: Vec<String>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokens {
    /// From the key's PKCS#8 and SPKI PEM (`podium_pki::service_account_key`).
    pub fn from_pem(private_pem: &str, public_pem: &str) -> Result<Self, String> {
        Ok(ServiceAccountTokens {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes())
                .map_err(|e| format!("the service account signing key: {e}"))?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes())
                .map_err(|e| format!("the service account public key: {e}"))?,
            audiences: vec![ISSUER.to_string()],
        })
    }

    /// A key for this process only (tests, in-process servers): its tokens do not
    /// outlive it.
    pub fn ephemeral() -> Self {
        let (private, public) =
            podium_pki::service_account_key_pair().expect("generating a P-256 key cannot fail");
        Self::from_pem(&private, &public).expect("a key just generated reads back")
    }

    fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing the token: {e}")))
    }

    /// The claims of a token that is ours, unexpired and meant for this API server.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&self.audiences);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()?
            .claims;
        let k = claims.kubernetes;
        Some(Verified {
            user: User {
                name: format!(
                    "system:serviceaccount:{}:{}",
                    k.namespace, k.serviceaccount.name
                ),
                uid: k.serviceaccount.uid.clone(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{}", k.namespace),
                    "system:authenticated".into(),
                ],
            },
            namespace: k.namespace,
            account: k.serviceaccount,
            bound: k
                .pod
                .map(|r| ("pods", true, r))
                .or(k.secret.map(|r| ("secrets", true, r)))
                .or(k.node.map(|r| ("nodes", false, r))),
        })
    }
}

/// A token whose signature, issuer, audience and expiry check out.
pub struct Verified {
    pub user: User,
    namespace: String,
    account: Reference,
    /// The object the token is bound to: (plural, namespaced, reference).
    bound: Option<(&'static str, bool, Reference)>,
}

impl Verified {
    /// Upstream's legacy-free validator: the ServiceAccount, and the object the token is
    /// bound to, still exist with the UIDs the token names (a deleted and re-created
    /// account does not inherit its predecessor's tokens).
    pub async fn still_valid(&self, registry: &crate::Registry) -> Result<(), String> {
        let check = |plural: &'static str, namespaced: bool, reference: &Reference| {
            let namespace = namespaced.then_some(self.namespace.as_str());
            let name = reference.name.clone();
            let uid = reference.uid.clone();
            async move {
                let info = resource::find("", "v1", plural).ok_or("unknown kind")?;
                let object = registry
                    .get(info, namespace, &name)
                    .await
                    .map_err(|_| format!("the token's {plural} {name} no longer exists"))?;
                if meta_str(&object, "uid") != Some(uid.as_str()) {
                    return Err(format!(
                        "the token's {plural} {name} was deleted and made again"
                    ));
                }
                Ok::<(), String>(())
            }
        };
        check("serviceaccounts", true, &self.account).await?;
        if let Some((plural, namespaced, reference)) = &self.bound {
            check(plural, *namespaced, reference).await?;
        }
        Ok(())
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        "",
        vec![cause("FieldValueInvalid", field, message)],
    )
}

/// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`.
pub async fn request(
    call: &Call,
    accounts: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Response> {
    let namespace = namespace.unwrap_or("default");
    let body = call.body_value()?;
    match (body["apiVersion"].as_str(), body["kind"].as_str()) {
        (None | Some("authentication.k8s.io/v1"), None | Some("TokenRequest")) => {}
        (v, k) => {
            return Err(ApiError::bad_request(format!(
                "the body of serviceaccounts/token must be an authentication.k8s.io/v1 TokenRequest, not {} {}",
                v.unwrap_or(""),
                k.unwrap_or("")
            ))
            .into());
        }
    }
    let account = call
        .server
        .registry
        .get(accounts, Some(namespace), name)
        .await?;
    let seconds = body
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_SECONDS);
    if seconds < MIN_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        )
        .into());
    }
    if seconds > MAX_SECONDS {
        return Err(invalid(
            "spec.expirationSeconds",
            format!(
                "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        )
        .into());
    }
    let audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);

    let mut kubernetes = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: Reference {
            name: name.to_string(),
            uid: meta_str(&account, "uid").unwrap_or("").to_string(),
        },
        pod: None,
        secret: None,
        node: None,
    };
    let bound = body
        .pointer("/spec/boundObjectRef")
        .filter(|b| b.is_object());
    if let Some(bound) = bound {
        let kind = bound["kind"].as_str().unwrap_or("");
        let object_name = bound["name"].as_str().unwrap_or("");
        let (plural, scoped) = match kind {
            "Pod" => ("pods", true),
            "Secret" => ("secrets", true),
            "Node" => ("nodes", false),
            other => {
                return Err(invalid(
                    "spec.boundObjectRef.kind",
                    format!("Invalid value: {other:?}: must be Pod, Secret or Node"),
                )
                .into());
            }
        };
        let info = resource::find("", "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
        let object = call
            .server
            .registry
            .get(info, scoped.then_some(namespace), object_name)
            .await?;
        let uid = meta_str(&object, "uid").unwrap_or("").to_string();
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty()) {
            if wanted != uid {
                return Err(ApiError::conflict(
                    "",
                    plural,
                    object_name,
                    &format!("the UID in the bound object reference ({wanted}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"),
                )
                .into());
            }
        }
        let reference = Some(Reference {
            name: object_name.to_string(),
            uid,
        });
        match kind {
            "Pod" => kubernetes.pod = reference,
            "Secret" => kubernetes.secret = reference,
            _ => kubernetes.node = reference,
        }
    }

    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        aud: audiences.clone(),
        exp: now + seconds,
        iat: now,
        nbf: now,
        iss: ISSUER.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        kubernetes,
    };
    let token = call.server.tokens.issue(&claims)?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut spec = json!({"audiences": audiences, "expirationSeconds": seconds});
    if let Some(bound) = bound {
        spec["boundObjectRef"] = bound.clone();
    }
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now_rfc3339()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(call.respond(StatusCode::CREATED, &answer, &[]))
}

/// For the authenticator: shared with the API server that issues the tokens.
pub type Shared = Arc<ServiceAccountTokens>;
