//! The Endpoints controller (upstream `pkg/controller/endpoint/endpoints_controller.go`):
//! for each Service with a selector, an Endpoints object of the same name listing its
//! pods' addresses — ready ones in `addresses`, the rest in `notReadyAddresses`,
//! terminating and finished pods left out — with target ports resolved per pod. It is
//! written only when it changes, and a pod change reaches it within one watch event:
//! zero-downtime rolling updates depend on that.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::error::{Context, Error, status_code};
use crate::informer::{Informer, Seen};
use crate::labels;
use crate::podutil::{is_finished, is_ready, key_of};
use crate::retry::Backoff;

/// Label upstream puts on the Endpoints of a headless service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Upstream `FindPort`: a number, or the pod's container port of that name and protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

/// Upstream `ShouldPodBeInEndpoints`.
fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let has_ip = pod
        .status
        .as_ref()
        .is_some_and(|s| s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()));
    !is_finished(pod)
        && has_ip
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

fn address_of(service: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.clone()).filter(|h| {
        !h.is_empty()
            && spec.and_then(|s| s.subdomain.as_deref()) == service.metadata.name.as_deref()
            && pod.namespace() == service.namespace()
    });
    Some(EndpointAddress {
        ip: pod.status.as_ref()?.pod_ip.clone()?,
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(pod_reference(pod)),
    })
}

/// How endpoints point back at their pod (`targetRef`).
pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..Default::default()
    }
}

type PortKey = (Option<String>, i32, String, Option<String>);

/// The subsets of `service` over the pods its selector matched, packed as upstream's
/// `RepackSubsets` does: addresses with the same resolved ports share a subset.
pub fn subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(address) = address_of(service, pod) else {
            continue;
        };
        let resolved: Vec<PortKey> = ports
            .iter()
            .filter_map(|p| {
                find_port(pod, p).map(|n| {
                    (
                        p.name.clone(),
                        n,
                        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        p.app_protocol.clone(),
                    )
                })
            })
            .collect();
        // A pod none of whose ports resolve is left out, unless the service has no ports
        // at all and is headless (then addresses alone are the point).
        if resolved.is_empty() && !(ports.is_empty() && headless) {
            continue;
        }
        let group = groups.entry(resolved).or_default();
        if publish_not_ready || is_ready(pod) {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    let order = |a: &EndpointAddress, b: &EndpointAddress| {
        a.ip.cmp(&b.ip).then_with(|| {
            a.target_ref
                .as_ref()
                .and_then(|r| r.uid.clone())
                .cmp(&b.target_ref.as_ref().and_then(|r| r.uid.clone()))
        })
    };
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(order);
            not_ready.sort_by(order);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol, app_protocol)| EndpointPort {
                            name,
                            port,
                            protocol: Some(protocol),
                            app_protocol,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// The pods of the Service's namespace that its selector matches; `None` for a Service
/// without a selector (its endpoints are the user's to write).
pub(crate) fn selected_pods<'a>(
    service: &'a Service,
    pods: &'a [Arc<Pod>],
) -> Option<impl Iterator<Item = &'a Arc<Pod>>> {
    let selector = service
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())?;
    Some(pods.iter().filter(move |p| {
        p.namespace() == service.namespace() && labels::map_matches(selector, p.labels())
    }))
}

/// The labels endpoints objects carry: the Service's own, plus the headless marker.
pub(crate) fn service_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The Endpoints a service with a selector should have, or `None` for a selector-less
/// service (its Endpoints are the user's).
pub fn desired_endpoints(service: &Service, pods: &[Arc<Pod>]) -> Option<Endpoints> {
    let matching: Vec<Arc<Pod>> = selected_pods(service, pods)?.cloned().collect();
    let subsets = subsets(service, &matching);
    let labels = service_labels(service);
    Some(Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.namespace(),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// Whether `current` already says what `desired` says.
pub fn up_to_date(current: &Endpoints, desired: &Endpoints) -> bool {
    current.subsets == desired.subsets && current.metadata.labels == desired.metadata.labels
}

/// The Endpoints controller's caches and client.
pub struct Ctx {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    backoff: Backoff,
}

pub async fn reconcile(service: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let key = key_of(service.as_ref());
    let ns = service.namespace().unwrap_or_default();
    let Some(desired) = desired_endpoints(&service, &ctx.pods.state()) else {
        return Ok(Action::await_change());
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let current = ctx
        .endpoints
        .get(&ObjectRef::new(&service.name_any()).within(&ns));
    match current {
        Some(current) if up_to_date(&current, &desired) => {}
        Some(current) => {
            let mut updated = desired;
            updated.metadata.resource_version = current.resource_version();
            updated.metadata.annotations = current.metadata.annotations.clone();
            api.replace(&service.name_any(), &PostParams::default(), &updated)
                .await
                .context(|| format!("updating endpoints {key}"))?;
        }
        // On 409 (created meanwhile) the retry finds it in the cache and compares again.
        None => {
            api.create(&PostParams::default(), &desired)
                .await
                .context(|| format!("creating endpoints {key}"))?;
        }
    }
    ctx.backoff.succeeded(&key);
    Ok(Action::await_change())
}

pub fn error_policy(service: Arc<Service>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&key_of(service.as_ref()), error)
}

/// Every service in a pod's namespace that has a selector: a pod whose labels changed
/// must leave the services it no longer matches, so matching alone is not enough.
pub(crate) fn services_for_pod(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| {
            s.namespace() == pod.namespace()
                && s.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|s| !s.is_empty())
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Endpoints whose service is gone (upstream deletes them on the service's delete event
/// and, at start, any left over).
pub fn orphaned(endpoints: &[Arc<Endpoints>], services: &Store<Service>) -> Vec<Arc<Endpoints>> {
    endpoints
        .iter()
        .filter(|e| {
            services
                .get(&ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default()))
                .is_none()
        })
        .cloned()
        .collect()
}

async fn delete_endpoints(client: &Client, endpoints: &Endpoints) {
    let api: Api<Endpoints> =
        Api::namespaced(client.clone(), &endpoints.namespace().unwrap_or_default());
    match api
        .delete(&endpoints.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(404) => {}
        Err(e) => {
            tracing::warn!(endpoints = %key_of(endpoints), error = %e, "could not delete endpoints of a deleted service")
        }
    }
}

/// Run the Endpoints controller over the shared informers until they stop.
pub async fn run(
    client: Client,
    services: &Informer<Service>,
    pods: &Informer<Pod>,
    endpoints: &Informer<Endpoints>,
) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pods.store(),
        endpoints: endpoints.store(),
        backoff: Backoff::default(),
    });

    // A deleted service never reaches reconcile (the controller drops keys not in the
    // cache), so its Endpoints are removed here.
    let (service_store, endpoints_store) = (services.store(), endpoints.store());
    for leftover in orphaned(&endpoints_store.state(), &service_store) {
        delete_endpoints(&client, &leftover).await;
    }
    let deletions = services.changes().for_each(move |seen| {
        let (client, endpoints_store, service_store) = (
            client.clone(),
            endpoints_store.clone(),
            service_store.clone(),
        );
        async move {
            if let Seen::Deleted(service) = seen {
                let (name, ns) = (service.name_any(), service.namespace().unwrap_or_default());
                let recreated = service_store
                    .get(&ObjectRef::new(&name).within(&ns))
                    .is_some();
                if !recreated
                    && let Some(e) = endpoints_store.get(&ObjectRef::new(&name).within(&ns))
                {
                    delete_endpoints(&client, &e).await;
                }
            }
        }
    });

    let services_store = services.store();
    let controller = Controller::for_stream(services.triggers(), services.store())
        .watches_stream(pods.triggers(), move |pod: Pod| {
            services_for_pod(&services_store, &pod)
        })
        .watches_stream(endpoints.triggers(), |e: Endpoints| {
            Some(ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "endpoints controller");
            }
            std::future::ready(())
        });
    futures::future::join(controller, deletions).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "web", "namespace": "ns", "labels": {"team": "a"}}, "spec": spec})).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_not_ready_terminating_and_finished_pods() {
        let svc = service(
            serde_json::json!({"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}),
        );
        let mut terminating = pod("c", "10.0.0.4", true);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        let mut finished = pod("d", "10.0.0.5", false);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut other = pod("e", "10.0.0.6", true);
        other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        let no_ip = pod("f", "", true);
        let pods: Vec<Arc<Pod>> = [
            pod("b", "10.0.0.3", true),
            pod("a", "10.0.0.2", true),
            pod("x", "10.0.0.9", false),
            terminating,
            finished,
            other,
            no_ip,
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let e = desired_endpoints(&svc, &pods).unwrap();
        let subsets = e.subsets.as_ref().unwrap();
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.2", "10.0.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.9"]);
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("web"), 8080, Some("TCP"))
        );
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.node_name.as_deref(), Some("node1"));
        let target = address.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                target.kind.as_deref(),
                target.name.as_deref(),
                target.uid.as_deref()
            ),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
        assert_eq!(
            e.metadata.labels.unwrap().get("team").map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn no_pods_means_no_subsets_and_no_selector_means_hands_off() {
        let svc = service(serde_json::json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        assert_eq!(desired_endpoints(&svc, &[]).unwrap().subsets, None);
        assert!(
            desired_endpoints(&service(serde_json::json!({"ports": [{"port": 80}]})), &[])
                .is_none()
        );
    }

    #[test]
    fn ports_resolve_per_pod_and_group_addresses() {
        let svc = service(
            serde_json::json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}),
        );
        let mut renamed = pod("b", "10.0.0.3", true);
        renamed.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 9090;
        let mut unnamed = pod("c", "10.0.0.4", true);
        unnamed.spec.as_mut().unwrap().containers[0].ports = None;
        let subsets = subsets(
            &svc,
            &[
                Arc::new(pod("a", "10.0.0.2", true)),
                Arc::new(renamed),
                Arc::new(unnamed),
            ],
        );
        let found: Vec<(i32, Vec<&str>)> = subsets
            .iter()
            .map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses)))
            .collect();
        assert_eq!(
            found,
            vec![(8080, vec!["10.0.0.2"]), (9090, vec!["10.0.0.3"])]
        );
        // A numeric target port needs no container port, and UDP does not match a TCP name.
        let numeric = ServicePort {
            port: 53,
            target_port: Some(IntOrString::Int(5353)),
            ..Default::default()
        };
        assert_eq!(find_port(&pod("a", "1.1.1.1", true), &numeric), Some(5353));
        let udp = ServicePort {
            port: 80,
            protocol: Some("UDP".into()),
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        };
        assert_eq!(find_port(&pod("a", "1.1.1.1", true), &udp), None);
    }

    #[test]
    fn publish_not_ready_and_headless() {
        let svc = service(
            serde_json::json!({"selector": {"app": "web"}, "clusterIP": "None", "publishNotReadyAddresses": true}),
        );
        let mut named = pod("a", "10.0.0.2", false);
        named.spec.as_mut().unwrap().hostname = Some("a".into());
        named.spec.as_mut().unwrap().subdomain = Some("web".into());
        let e = desired_endpoints(&svc, &[Arc::new(named)]).unwrap();
        let subset = &e.subsets.as_ref().unwrap()[0];
        assert_eq!(
            subset.addresses.as_ref().unwrap()[0].hostname.as_deref(),
            Some("a")
        );
        assert_eq!(subset.ports, None);
        assert!(e.metadata.labels.unwrap().contains_key(HEADLESS_LABEL));
    }

    #[test]
    fn unchanged_endpoints_are_not_rewritten() {
        let svc = service(serde_json::json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods = [Arc::new(pod("a", "10.0.0.2", true))];
        let mut current = desired_endpoints(&svc, &pods).unwrap();
        current.metadata.resource_version = Some("5".into());
        assert!(up_to_date(
            &current,
            &desired_endpoints(&svc, &pods).unwrap()
        ));
        let became_unready = [Arc::new(pod("a", "10.0.0.2", false))];
        assert!(!up_to_date(
            &current,
            &desired_endpoints(&svc, &became_unready).unwrap()
        ));
    }
}
