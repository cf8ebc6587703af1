//! The Kubernetes REST API, served from the store.
//!
//! * [`request`]: URL and query parsing into one `ApiRequest`.
//! * [`registry`]: objects in the store: keys, metadata rules, create/update/delete.
//! * [`handlers`]: the verbs (get, list, create, update, patch, delete) and content negotiation.
//! * [`negotiate`]: JSON or Kubernetes protobuf, for bodies and answers.
//! * [`list`]: LIST options: continue tokens, resourceVersion and resourceVersionMatch.
//! * [`cache`]: the watch cache: decoded objects and recent events per resource.
//! * [`crd`]: serving what CustomResourceDefinitions define.
//! * [`watch`]: `?watch=true` streams.
//! * [`subresources`]: status, scale, binding, log.
//! * [`proxy`]: `pods|services|nodes/<name>/proxy/...`.
//! * [`health`]: `/healthz`, `/livez`, `/readyz` with upstream's named checks.
//! * [`discovery`]: `/version`, `/api`, `/apis`, `/openapi/v3`.
//! * [`auth`]: who a request comes from (client certificates, bearer tokens); 401 otherwise.
//! * [`service_account_token`]: ServiceAccount tokens (TokenRequest, signed JWTs).
//! * [`tls`]: HTTPS serving with client certificates.
//! * [`allocate`]: Service cluster IPs and node ports.
//! * [`kubernetes_service`]: the `kubernetes` Service in `default` and its endpoints.
//! * [`event_ttl`]: Events expire after `--event-ttl`.
//! * [`field_manager`]: managedFields and server-side apply.
//! * [`gc`]: cascading deletion of dependents and namespaces.

pub mod allocate;
pub mod auth;
pub mod cache;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod event_ttl;
pub mod field_manager;
pub mod gc;
pub mod handlers;
pub mod health;
pub mod kubernetes_service;
pub mod list;
pub mod negotiate;
pub mod proxy;
pub mod registry;
pub mod request;
pub mod service_account_token;
pub mod subresources;
pub mod tls;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use podium_store::Store;

pub use registry::Registry;

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The range Service cluster IPs come from, e.g. `10.43.0.0/16`.
    pub service_cidr: String,
    /// The address clients reach the API server on, for discovery's serverAddressByClientCIDRs.
    pub advertise_address: String,
}

/// Shared state of the API server.
#[derive(Clone)]
pub struct ApiServer {
    pub registry: Arc<Registry>,
    pub config: Arc<ApiConfig>,
    /// Signs and checks ServiceAccount tokens; the authenticator shares it.
    pub tokens: Arc<service_account_token::ServiceAccountTokens>,
    crds: crd::CrdController,
}

impl ApiServer {
    pub fn new(store: Arc<dyn Store>, config: ApiConfig) -> Self {
        ApiServer {
            registry: Arc::new(Registry::new(store, &config)),
            config: Arc::new(config),
            tokens: Arc::new(service_account_token::ServiceAccountTokens::ephemeral()),
            crds: crd::CrdController::default(),
        }
    }

    /// Sign ServiceAccount tokens with this key (the cluster's, kept in the data dir)
    /// rather than one made for this process.
    pub fn with_service_account_tokens(
        mut self,
        tokens: Arc<service_account_token::ServiceAccountTokens>,
    ) -> Self {
        self.tokens = tokens;
        self
    }

    /// Create the namespaces every cluster has, and the `kubernetes` Service, if missing;
    /// serve the stored CustomResourceDefinitions and follow their changes.
    pub async fn bootstrap(&self) -> Result<(), podium_api::status::ApiError> {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.registry.ensure_namespace(ns).await?;
        }
        kubernetes_service::reconcile(self).await?;
        self.crds.start(self).await
    }

    /// The router behind authentication: what `podium up` and `podium server` serve.
    /// Requests without valid credentials get 401 except the public health and version
    /// paths; handlers find the [`auth::User`] in the request's extensions.
    pub fn authenticated_router(&self, authenticator: Arc<auth::Authenticator>) -> Router {
        auth::review_routes()
            .merge(self.router())
            .layer(axum::middleware::from_fn_with_state(
                authenticator,
                auth::authenticate,
            ))
    }

    /// The HTTP router: health, discovery, OpenAPI and every resource path, without
    /// authentication (in-process tests; anything on a socket uses
    /// [`ApiServer::authenticated_router`]).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(health::healthz))
            .route("/healthz/{check}", get(health::healthz_check))
            .route("/livez", get(health::livez))
            .route("/livez/{check}", get(health::livez_check))
            .route("/readyz", get(health::readyz))
            .route("/readyz/{check}", get(health::readyz_check))
            // kube-apiserver's go-restful roots answer with a trailing slash too, and some
            // client libraries ask for `/version/`.
            .route("/version", get(discovery::version))
            .route("/version/", get(discovery::version))
            .route("/api", get(discovery::api_versions))
            .route("/api/", get(discovery::api_versions))
            .route("/apis", get(discovery::api_groups))
            .route("/apis/", get(discovery::api_groups))
            .route("/openapi/v2", get(discovery::openapi_v2))
            .route("/openapi/v3", get(discovery::openapi_root))
            .route("/openapi/v3/{*path}", get(discovery::openapi_document))
            .route("/api/{*path}", axum::routing::any(handlers::dispatch))
            .route("/apis/{*path}", axum::routing::any(handlers::dispatch))
            .fallback(handlers::not_found)
            .with_state(self.clone())
    }
}
