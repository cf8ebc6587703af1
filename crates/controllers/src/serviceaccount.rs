//! The ServiceAccounts controller (upstream `pkg/controller/serviceaccount/serviceaccounts_controller.go`):
//! every active namespace has a ServiceAccount named `default`, made when the namespace
//! appears and made again if it is deleted. Pods name it implicitly, and tools (Helm
//! charts, operators) expect it to exist.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::error::{Context, Error, status_code};
use crate::informer::Informer;
use crate::retry::Backoff;

/// The ServiceAccount every namespace gets.
pub const DEFAULT: &str = "default";

pub struct Ctx {
    client: Client,
    accounts: Store<ServiceAccount>,
    backoff: Backoff,
}

/// Whether a namespace should have its default ServiceAccount made: it exists and is not
/// being deleted (a terminating namespace refuses creates).
pub fn wants_default(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_none()
        && namespace.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = namespace.name_any();
    if !wants_default(&namespace)
        || ctx
            .accounts
            .get(&ObjectRef::new(DEFAULT).within(&ns))
            .is_some()
    {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(ns.clone()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(Action::await_change()),
        // Made by someone else, or the namespace is going away: nothing to do.
        Err(e) if matches!(status_code(&e), Some(409) | Some(403) | Some(404)) => {
            Ok(Action::await_change())
        }
        Err(e) => Err(e).context(|| format!("create serviceaccount {ns}/{DEFAULT}")),
    }
}

pub fn error_policy(namespace: Arc<Namespace>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&namespace.name_any(), error)
}

pub async fn run(
    client: Client,
    namespaces: &Informer<Namespace>,
    accounts: &Informer<ServiceAccount>,
) {
    let ctx = Arc::new(Ctx {
        client,
        accounts: accounts.store(),
        backoff: Backoff::default(),
    });
    Controller::for_stream(namespaces.triggers(), namespaces.store())
        // A deleted `default` account brings its namespace back to reconcile.
        .watches_stream(accounts.triggers(), |account: ServiceAccount| {
            (account.name_any() == DEFAULT)
                .then(|| ObjectRef::new(&account.namespace().unwrap_or_default()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "serviceaccounts controller");
            }
            std::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_namespaces_get_no_account() {
        let active: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}}),
        )
        .unwrap();
        assert!(wants_default(&active));
        let going: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Terminating"}}))
        .unwrap();
        assert!(!wants_default(&going));
    }
}
