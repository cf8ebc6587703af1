//! The EndpointSlice controller (upstream `pkg/controller/endpointslice`): for each
//! Service with a selector, `discovery.k8s.io/v1` EndpointSlices listing its pods — ready,
//! serving and terminating ones alike, each with its conditions — one slice per set of
//! resolved ports, as upstream groups them. `kubectl describe service` reads its
//! `Endpoints:` line from these, not from core/v1 Endpoints.
//!
//! Slices are named `<service>-<hash of their ports>` rather than by `generateName`, so a
//! create that raced another is found by name on the retry instead of doubling the slice.
//! Each is owned by its Service, so deleting the Service deletes them (garbage collector).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};

use crate::endpoints::{find_port, pod_reference, selected_pods, service_labels, services_for_pod};
use crate::error::{Context, Error, status_code};
use crate::informer::Informer;
use crate::podutil::{is_finished, is_ready, key_of};
use crate::retry::Backoff;

/// The label that ties a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label that says which controller manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Upstream's value for it: slices that other tools manage are left alone.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Upstream `podToEndpoint`: `serving` is readiness, `ready` is readiness unless the pod is
/// terminating (or the Service publishes not-ready addresses).
fn endpoint_of(service: &Service, pod: &Pod) -> Option<Endpoint> {
    let ip = pod
        .status
        .as_ref()?
        .pod_ip
        .clone()
        .filter(|ip| !ip.is_empty())?;
    let spec = pod.spec.as_ref();
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let hostname = spec.and_then(|s| s.hostname.clone()).filter(|h| {
        !h.is_empty()
            && spec.and_then(|s| s.subdomain.as_deref()) == service.metadata.name.as_deref()
    });
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish_not_ready || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_reference(pod)),
        ..Default::default()
    })
}

/// Upstream `getEndpointPorts`: every service port that resolves on this pod. The name is
/// always set, `""` for an unnamed port (kubectl dereferences it).
fn ports_of(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|port| {
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(find_port(pod, port)?),
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// `<service>-<hash>`: stable for a set of ports, within the 253 characters of a name.
fn slice_name(service: &str, ports: &[EndpointPort]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for port in ports {
        (&port.name, port.port, &port.protocol, &port.app_protocol).hash(&mut hasher);
    }
    let prefix: String = service.chars().take(240).collect();
    format!("{prefix}-{:08x}", hasher.finish() as u32)
}

/// The slices a Service with a selector should have, or `None` for a selector-less one
/// (its endpoints are the user's). With no pods there is one empty placeholder, as
/// upstream keeps.
pub fn desired_slices(service: &Service, pods: &[Arc<Pod>]) -> Option<Vec<EndpointSlice>> {
    let selected = selected_pods(service, pods)?;
    let name = service.name_any();
    let service_has_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .is_some_and(|p| !p.is_empty());
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in selected.filter(|p| !is_finished(p)) {
        let Some(endpoint) = endpoint_of(service, pod) else {
            continue;
        };
        let ports = ports_of(service, pod);
        if ports.is_empty() && service_has_ports {
            continue; // none of its ports resolve on this pod
        }
        groups
            .entry(slice_name(&name, &ports))
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    if groups.is_empty() {
        groups.insert(slice_name(&name, &[]), (Vec::new(), Vec::new()));
    }
    let mut labels = service_labels(service);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let owner = OwnerReference {
        api_version: Service::api_version(&()).into_owned(),
        kind: Service::kind(&()).into_owned(),
        name: name.clone(),
        uid: service.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let slices = groups
        .into_iter()
        .map(|(slice, (ports, mut endpoints))| {
            endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
            EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(slice),
                    namespace: service.namespace(),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints,
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    Some(slices)
}

/// Whether `current` already says what `desired` says.
pub fn up_to_date(current: &EndpointSlice, desired: &EndpointSlice) -> bool {
    current.endpoints == desired.endpoints
        && current.ports == desired.ports
        && current.address_type == desired.address_type
        && current.metadata.labels == desired.metadata.labels
        && current.metadata.owner_references == desired.metadata.owner_references
}

/// The slices this controller manages for the Service `name` in `namespace`.
fn managed_slices(
    store: &Store<EndpointSlice>,
    namespace: &str,
    name: &str,
) -> Vec<Arc<EndpointSlice>> {
    store
        .state()
        .into_iter()
        .filter(|s| {
            let labels = s.labels();
            s.namespace().as_deref() == Some(namespace)
                && labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
        })
        .collect()
}

/// The EndpointSlice controller's caches and client.
pub struct Ctx {
    client: Client,
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    backoff: Backoff,
}

pub async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = key_of(service.as_ref());
    let (name, ns) = (service.name_any(), service.namespace().unwrap_or_default());
    let Some(desired) = desired_slices(&service, &ctx.pods.state()) else {
        return Ok(Action::await_change());
    };
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let current: BTreeMap<String, Arc<EndpointSlice>> = managed_slices(&ctx.slices, &ns, &name)
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    for slice in &desired {
        let slice_name = slice.name_any();
        match current.get(&slice_name) {
            Some(existing) if up_to_date(existing, slice) => {}
            Some(existing) => {
                let mut updated = slice.clone();
                updated.metadata.resource_version = existing.resource_version();
                updated.metadata.annotations = existing.metadata.annotations.clone();
                api.replace(&slice_name, &PostParams::default(), &updated)
                    .await
                    .context(|| format!("updating endpointslice {ns}/{slice_name}"))?;
            }
            // On 409 (created meanwhile) the retry finds it in the cache and compares again.
            None => {
                api.create(&PostParams::default(), slice)
                    .await
                    .context(|| format!("creating endpointslice {ns}/{slice_name}"))?;
            }
        }
    }
    for stale in current
        .keys()
        .filter(|n| !desired.iter().any(|d| d.metadata.name.as_ref() == Some(n)))
    {
        match api.delete(stale, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                Err::<(), _>(e).context(|| format!("deleting endpointslice {ns}/{stale}"))?;
            }
        }
    }
    ctx.backoff.succeeded(&key);
    Ok(Action::await_change())
}

pub fn error_policy(service: Arc<Service>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&key_of(service.as_ref()), error)
}

/// Run the EndpointSlice controller over the shared informers until they stop.
pub async fn run(
    client: Client,
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    slices: &Informer<EndpointSlice>,
) {
    let ctx = Arc::new(Ctx {
        client,
        pods: pods.store(),
        slices: slices.store(),
        backoff: Backoff::default(),
    });
    let services_store = services.store();
    Controller::for_stream(services.triggers(), services.store())
        .watches_stream(pods.triggers(), move |pod: Pod| {
            services_for_pod(&services_store, &pod)
        })
        .watches_stream(slices.triggers(), |slice: EndpointSlice| {
            let service = slice.labels().get(SERVICE_NAME_LABEL)?.clone();
            Some(ObjectRef::new(&service).within(&slice.namespace().unwrap_or_default()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "endpointslice controller");
            }
            std::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}}, "spec": spec})).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    fn conditions(slice: &EndpointSlice) -> Vec<(String, bool, bool, bool)> {
        slice
            .endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (
                    e.addresses[0].clone(),
                    c.ready.unwrap(),
                    c.serving.unwrap(),
                    c.terminating.unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn ready_not_ready_and_terminating_pods_with_their_conditions() {
        let svc = service(
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        let terminating = {
            let mut p = (*pod("c", "10.0.0.3", true)).clone();
            p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
            Arc::new(p)
        };
        let finished = {
            let mut p = (*pod("d", "10.0.0.4", false)).clone();
            p.status.as_mut().unwrap().phase = Some("Succeeded".into());
            Arc::new(p)
        };
        let pods = [
            pod("a", "10.0.0.1", true),
            pod("b", "10.0.0.2", false),
            terminating,
            finished,
            pod("e", "", true),
        ];
        let slices = desired_slices(&svc, &pods).unwrap();
        assert_eq!(slices.len(), 1);
        let slice = &slices[0];
        assert_eq!(
            conditions(slice),
            [
                ("10.0.0.1".to_string(), true, true, false),
                ("10.0.0.2".to_string(), false, false, false),
                ("10.0.0.3".to_string(), false, true, true),
            ]
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some(""), Some(8080), Some("TCP"))
        );
        assert_eq!(slice.address_type, "IPv4");
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels["team"], "a");
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
        assert!(slice.name_any().starts_with("web-"));
        assert!(up_to_date(slice, &desired_slices(&svc, &pods).unwrap()[0]));
    }

    #[test]
    fn pods_resolving_different_ports_get_different_slices_and_none_gets_a_placeholder() {
        let svc = service(
            json!({"selector": {"app": "web"}, "ports": [{"name": "h", "port": 80, "targetPort": "http"}]}),
        );
        let mut other_port = (*pod("b", "10.0.0.2", true)).clone();
        other_port.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 9090;
        let slices =
            desired_slices(&svc, &[pod("a", "10.0.0.1", true), Arc::new(other_port)]).unwrap();
        assert_eq!(slices.len(), 2);
        assert_ne!(slices[0].name_any(), slices[1].name_any());

        let empty = desired_slices(&svc, &[]).unwrap();
        assert_eq!(empty.len(), 1);
        assert!(empty[0].endpoints.is_empty() && empty[0].ports.is_none());

        let no_selector = service(json!({"ports": [{"port": 80}]}));
        assert!(desired_slices(&no_selector, &[pod("a", "10.0.0.1", true)]).is_none());
    }
}
