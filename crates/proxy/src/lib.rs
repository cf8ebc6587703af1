//! The service proxy (kube-proxy's userspace mode, plus k3s servicelb's LoadBalancer on
//! the node IP). Userspace because it can retry a refused connection on the next endpoint,
//! which keeps rolling updates free of failed requests, and this kernel has no IPVS.
//!
//! * [`table`]: listeners reconciled to a desired set of rules; round robin with retry.
//! * [`rules`]: Services + Endpoints → rules (pure).
//! * [`vip`]: ClusterIPs as /32 addresses on a dummy interface, so pods and the host reach them.

pub mod rules;
pub mod table;
pub mod vip;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

/// How the proxy runs on this node.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// LoadBalancer and NodePort services listen here.
    pub node_ip: IpAddr,
    /// The dummy interface that holds every ClusterIP.
    pub cluster_ip_interface: String,
}

fn reflect<K>(api: Api<K>, kick: tokio::sync::mpsc::UnboundedSender<()>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "proxy watch failed; retrying");
            }
            let _ = kick.send(());
        }
    });
    reader
}

/// A Warning event on a Service, as `kubectl describe service` shows it.
async fn warn_event(client: &Client, svc: &Arc<Service>, reason: &str, message: &str) {
    tracing::warn!(service = %svc.name_any(), reason, message);
    let ns = svc.namespace().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff_now());
    let event = k8s_openapi::api::core::v1::Event {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta { generate_name: Some(format!("{}.", svc.name_any())), namespace: Some(ns.clone()), ..Default::default() },
        involved_object: k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(svc.name_any()),
            namespace: Some(ns.clone()),
            uid: svc.uid(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some("Warning".into()),
        source: Some(k8s_openapi::api::core::v1::EventSource { component: Some("service-proxy".into()), host: None }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some("service-proxy".into()),
        ..Default::default()
    };
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&Default::default(), &event).await {
        tracing::debug!(error = %e, "could not record event");
    }
}

fn jiff_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Keep listeners matching Services and Endpoints until the watches end.
pub async fn run(client: Client, config: ProxyConfig) -> anyhow::Result<()> {
    let (kick, mut kicks) = tokio::sync::mpsc::unbounded_channel();
    let services = reflect(Api::<Service>::all(client.clone()), kick.clone());
    let endpoints = reflect(Api::<Endpoints>::all(client.clone()), kick);
    let table = table::ProxyTable::default();
    let vips = vip::VirtualIps::new(&config.cluster_ip_interface);
    let mut reported_busy: BTreeSet<String> = BTreeSet::new();
    while kicks.recv().await.is_some() {
        while kicks.try_recv().is_ok() {}
        let all_services: Vec<Arc<Service>> = services.state();
        let all_endpoints: Vec<Arc<Endpoints>> = endpoints.state();
        let desired = rules::build(&all_services, &all_endpoints, config.node_ip);
        let ips: BTreeSet<IpAddr> = desired.iter().filter(|r| r.cluster_ip).map(|r| r.listen.ip()).collect();
        if let Err(e) = vips.reconcile(&ips).await {
            tracing::warn!(error = %e, "could not set up ClusterIP addresses; ClusterIPs will not answer");
        }
        let failures = table.apply(desired.clone()).await;
        // LoadBalancer status: the node IP once its listener is up.
        for svc in all_services.iter().filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")) {
            let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
            let lb_rules: Vec<&rules::Rule> = desired.iter().filter(|r| r.service == key && r.load_balancer).collect();
            let busy: Vec<&rules::Rule> = lb_rules.iter().copied().filter(|r| failures.contains_key(&r.listen)).collect();
            if !busy.is_empty() {
                if reported_busy.insert(key.clone()) {
                    let ports: Vec<String> = busy.iter().map(|r| r.listen.to_string()).collect();
                    let message = format!("cannot listen on {}: {}", ports.join(", "), failures[&busy[0].listen]);
                    warn_event(&client, svc, "LoadBalancerPortInUse", &message).await;
                }
                continue;
            }
            reported_busy.remove(&key);
            if lb_rules.is_empty() {
                continue;
            }
            let current = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
            let has = current.is_some_and(|i| i.len() == 1 && i[0].ip.as_deref() == Some(config.node_ip.to_string().as_str()));
            if !has {
                let api: Api<Service> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
                let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": config.node_ip.to_string(), "ipMode": "VIP"}]}}});
                if let Err(e) = api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                    tracing::warn!(service = %key, error = %e, "could not publish the load balancer address");
                }
            }
        }
        // Coalesce bursts of changes (a rollout touches endpoints many times a second).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
