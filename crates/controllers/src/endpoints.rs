//! The Endpoints controller: for each Service with a selector, an Endpoints object of the
//! same name listing its pods' addresses (ready ones in `addresses`, others in
//! `notReadyAddresses`; terminating pods left out) and the resolved target ports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::labels;
use crate::replicaset::is_ready;
use crate::runner::{Caches, Change, key_of, run_controller, split_key};

/// Resolve a service port's target against a pod: a number, or a named container port.
fn target_port(pod: &Pod, target: Option<&IntOrString>, port: i32) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The subsets of a service over `pods`, grouped by resolved port set as upstream does.
pub fn subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut groups: BTreeMap<Vec<(Option<String>, i32, String)>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()) else { continue };
        if matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
            continue;
        }
        let mut resolved = Vec::new();
        for p in &ports {
            if let Some(port) = target_port(pod, p.target_port.as_ref(), p.port) {
                resolved.push((p.name.clone(), port, p.protocol.clone().unwrap_or_else(|| "TCP".into())));
            }
        }
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..Default::default()
            }),
            hostname: None,
        };
        let entry = groups.entry(resolved).or_default();
        if is_ready(pod) { entry.0.push(address) } else { entry.1.push(address) }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(ports.into_iter().map(|(name, port, protocol)| EndpointPort { name, port, protocol: Some(protocol), app_protocol: None }).collect()),
            }
        })
        .collect()
}

struct Ctx {
    client: Client,
    caches: Arc<Caches>,
}

async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Option<Duration>> {
    let (ns, name) = split_key(&key);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), ns);
    let existing = ctx.caches.endpoints.state().into_iter().find(|e| e.namespace().as_deref() == Some(ns) && e.name_any() == name);
    let service = ctx.caches.services.state().into_iter().find(|s| s.namespace().as_deref() == Some(ns) && s.name_any() == name);
    let Some(service) = service else {
        // The service is gone: so are its endpoints (they have no owner reference upstream either).
        if existing.is_some() {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(None);
    };
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.clone()).filter(|s| !s.is_empty()) else {
        return Ok(None); // Endpoints of selector-less services are the user's.
    };
    let pods: Vec<Arc<Pod>> =
        ctx.caches.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(ns) && labels::map_matches(&selector, p.labels())).collect();
    let subsets = subsets(&service, &pods);
    let desired = Endpoints {
        metadata: ObjectMeta { name: Some(name.to_string()), namespace: Some(ns.to_string()), labels: service.metadata.labels.clone(), ..Default::default() },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match existing {
        Some(current) if current.subsets == desired.subsets && current.metadata.labels == desired.metadata.labels => {}
        Some(current) => {
            let mut updated = desired;
            updated.metadata.resource_version = current.resource_version();
            api.replace(name, &PostParams::default(), &updated).await?;
        }
        None => match api.create(&PostParams::default(), &desired).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Some(Duration::from_millis(50))),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(None)
}

pub async fn run(client: Client, caches: Arc<Caches>) -> anyhow::Result<()> {
    let ctx = Arc::new(Ctx { client, caches: caches.clone() });
    run_controller(
        "endpoints",
        caches,
        |c: &Caches| {
            let mut keys: Vec<String> = c.services.state().iter().map(|s| key_of(s.as_ref())).collect();
            keys.extend(c.endpoints.state().iter().map(|e| key_of(e.as_ref())));
            keys
        },
        |c: &Caches, change: &Change| match change {
            Change::Service(s) => vec![key_of(s.as_ref())],
            // Any pod change may move it in or out of a service in its namespace.
            Change::Pod(p) => c.services.state().iter().filter(|s| s.namespace() == p.namespace()).map(|s| key_of(s.as_ref())).collect(),
            _ => Vec::new(),
        },
        move |key| reconcile(ctx.clone(), key),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_not_ready_and_terminating_pods() {
        let service: Service = serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}})).unwrap();
        let pod = |name: &str, ip: &str, ready: bool, deleting: bool| {
            let mut p: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": {"app": "x"}}, "spec": {"containers": []},
                "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})).unwrap();
            if deleting {
                p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()));
            }
            Arc::new(p)
        };
        let s = subsets(&service, &[pod("a", "10.0.0.2", true, false), pod("b", "10.0.0.3", false, false), pod("c", "10.0.0.4", true, true)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].addresses.as_ref().unwrap().iter().map(|a| a.ip.as_str()).collect::<Vec<_>>(), vec!["10.0.0.2"]);
        assert_eq!(s[0].not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.3");
        assert_eq!(s[0].ports.as_ref().unwrap()[0].port, 8080);
    }
}
