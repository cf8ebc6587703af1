//! The watch side: reflectors over Services and Endpoints, and a loop that applies the
//! desired rules to the interface and the [`ProxyTable`], then publishes what came of it
//! (LoadBalancer status, Warning events for ports it could not take).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::time::Instant;

use crate::error::{ProxyError, Result};
use crate::interface;
use crate::rules::{desired_cluster_ips, desired_rules, ingress_update};
use crate::table::{Frontend, ProxyTable, RuleKey, TableConfig};
use podium_client::events::{EventType, Recorder, Reporter};

/// The component name on events.
const COMPONENT: &str = "podium-proxy";
/// How long after a change the rules are recomputed, so a burst of changes is one pass.
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How often the rules are applied without a change: retries busy ports and a missing
/// interface, and repairs addresses removed by hand.
const RESYNC: Duration = Duration::from_secs(10);

/// Where the proxy listens.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// LoadBalancer and NodePort services listen here.
    pub node_ip: IpAddr,
    /// A dummy interface (e.g. "podium-svc") that holds every ClusterIP as a /32, so pods
    /// (routed via the node bridge) and the host reach the listeners on `clusterIP:port`.
    pub cluster_ip_interface: String,
}

/// Watch Services and Endpoints and serve them until the watches end (they retry with
/// backoff, so in practice until the task is dropped, which closes every listener).
pub async fn run(client: Client, config: ProxyConfig) -> anyhow::Result<()> {
    let (services, service_changes) = reflect(Api::<Service>::all(client.clone()));
    let (endpoints, endpoint_changes) = reflect(Api::<Endpoints>::all(client.clone()));
    let mut changes = std::pin::pin!(futures::stream::select(
        service_changes.map(|c| (Watched::Services, c)),
        endpoint_changes.map(|c| (Watched::Endpoints, c)),
    ));
    let recorder = Recorder::new(client.clone(), Reporter::component(COMPONENT));
    let mut proxy = Proxy::new(config, TableConfig::default());
    let mut reported: HashMap<RuleKey, String> = HashMap::new();
    let (mut services_listed, mut endpoints_listed) = (false, false);
    let mut next_pass: Option<Instant> = None;
    loop {
        let deadline = next_pass.unwrap_or_else(|| Instant::now() + RESYNC);
        tokio::select! {
            change = changes.next() => match change {
                None => anyhow::bail!("the Service and Endpoints watches ended"),
                Some((watched, Ok(listed))) => {
                    match watched {
                        Watched::Services => services_listed |= listed,
                        Watched::Endpoints => endpoints_listed |= listed,
                    }
                    if services_listed && endpoints_listed {
                        let soon = Instant::now() + DEBOUNCE;
                        next_pass = Some(next_pass.map_or(soon, |at| at.min(soon)));
                    }
                }
                Some((watched, Err(error))) => tracing::warn!(?watched, %error, "watch failed; retrying"),
            },
            () = tokio::time::sleep_until(deadline), if next_pass.is_some() => {
                let (services, endpoints) = (services.state(), endpoints.state());
                let outcomes = proxy.apply(&services, &endpoints).await;
                publish(&client, &recorder, proxy.config.node_ip, &services, &outcomes, &mut reported).await;
                next_pass = Some(Instant::now() + RESYNC);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Watched {
    Services,
    Endpoints,
}

/// A reflector whose stream yields, per event, whether the first list has completed.
/// Annotations and managed fields are dropped before caching: the proxy reads neither,
/// and `last-applied-configuration` alone can double an object's size.
fn reflect<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<bool, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|object: &mut K| {
            object.meta_mut().annotations = None;
            object.meta_mut().managed_fields = None;
        })
        .reflect(writer)
        .map(|event| {
            event.map(|e| {
                matches!(
                    e,
                    watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)
                )
            })
        });
    (reader, stream)
}

/// The host-facing state: the interface and the listeners.
struct Proxy {
    config: ProxyConfig,
    table: ProxyTable,
    /// Whether the interface was seen up; until then every pass tries to create it.
    interface_ready: bool,
}

impl Proxy {
    fn new(config: ProxyConfig, table: TableConfig) -> Self {
        Proxy {
            config,
            table: ProxyTable::new(table),
            interface_ready: false,
        }
    }

    /// Bring the interface and the listeners to what `services` and `endpoints` ask for.
    /// ClusterIPs are added before listeners bind to them and removed after their
    /// listeners are closed. Interface failures are logged, not returned: node ports work
    /// without it, and the next pass tries again.
    async fn apply(
        &mut self,
        services: &[Arc<Service>],
        endpoints: &[Arc<Endpoints>],
    ) -> Vec<(RuleKey, Result<SocketAddr>)> {
        let rules = desired_rules(services, endpoints, self.config.node_ip);
        let addresses = Arc::new(desired_cluster_ips(services));
        let name = self.config.cluster_ip_interface.clone();
        let create = !self.interface_ready;
        let added = self
            .on_interface(
                move |name, addresses| {
                    if create {
                        interface::ensure(name)?;
                    }
                    interface::add_missing(name, addresses)
                },
                &name,
                &addresses,
            )
            .await;
        self.interface_ready = added.is_ok();
        let outcomes = self.table.reconcile(&rules);
        if self.interface_ready {
            self.interface_ready = self
                .on_interface(interface::remove_stale, &name, &addresses)
                .await
                .is_ok();
        }
        outcomes
    }

    async fn on_interface(
        &self,
        operation: impl FnOnce(&str, &BTreeSet<IpAddr>) -> Result<()> + Send + 'static,
        name: &str,
        addresses: &Arc<BTreeSet<IpAddr>>,
    ) -> Result<()> {
        let (name, addresses) = (name.to_string(), addresses.clone());
        let result = tokio::task::spawn_blocking(move || operation(&name, &addresses))
            .await
            .map_err(ProxyError::from)
            .and_then(|r| r);
        if let Err(error) = &result {
            let interface = &self.config.cluster_ip_interface;
            tracing::error!(%interface, %error, "cannot configure the ClusterIP interface");
        }
        result
    }
}

/// The Warning event for a listener that could not bind: reason and message.
fn listen_failure(key: &RuleKey, error: &ProxyError) -> (&'static str, String) {
    let what = match error {
        ProxyError::Listen { address, .. } if error.is_address_in_use() => format!(
            "port {}/TCP on {} is in use by another process or service",
            address.port(),
            address.ip()
        ),
        other => other.to_string(),
    };
    match key.frontend {
        Frontend::LoadBalancer => (
            "SyncLoadBalancerFailed",
            format!("Error syncing load balancer: {what}"),
        ),
        Frontend::NodePort => (
            "ListenFailed",
            format!("Cannot serve node port for port {}: {what}", key.port),
        ),
        Frontend::ClusterIp => (
            "ListenFailed",
            format!("Cannot serve cluster IP for port {}: {what}", key.port),
        ),
    }
}

/// Tell the API what the pass did: LoadBalancer ingress for services whose listeners are
/// all bound (or back to pending), and one Warning per new listen failure. `reported`
/// holds the failures already told and is replaced by the current ones, so a failure
/// that clears and comes back is told again.
async fn publish(
    client: &Client,
    recorder: &Recorder,
    node_ip: IpAddr,
    services: &[Arc<Service>],
    outcomes: &[(RuleKey, Result<SocketAddr>)],
    reported: &mut HashMap<RuleKey, String>,
) {
    let by_name: HashMap<(String, String), &Service> = services
        .iter()
        .map(|s| {
            (
                (s.namespace().unwrap_or_default(), s.name_any()),
                s.as_ref(),
            )
        })
        .collect();
    let mut failures = HashMap::new();
    for (key, outcome) in outcomes {
        let Err(error) = outcome else { continue };
        let (reason, message) = listen_failure(key, error);
        if reported.get(key) != Some(&message)
            && let Some(service) = by_name.get(&(key.namespace.clone(), key.service.clone()))
        {
            tracing::warn!(service = %key.service, namespace = %key.namespace, %message, "listener not bound");
            recorder.record(*service, EventType::Warning, reason, &message);
        }
        failures.insert(key.clone(), message);
    }
    *reported = failures;

    let mut load_balancers: HashMap<(&str, &str), bool> = HashMap::new();
    for (key, outcome) in outcomes
        .iter()
        .filter(|(k, _)| k.frontend == Frontend::LoadBalancer)
    {
        let all_bound = load_balancers
            .entry((key.namespace.as_str(), key.service.as_str()))
            .or_insert(true);
        *all_bound &= outcome.is_ok();
    }
    for service in services {
        let (namespace, name) = (service.namespace().unwrap_or_default(), service.name_any());
        let all_bound = load_balancers
            .get(&(namespace.as_str(), name.as_str()))
            .copied()
            .unwrap_or(false);
        let Some(ingress) = ingress_update(service, all_bound, node_ip) else {
            continue;
        };
        // `null` removes the field, which is how upstream shows a pending load balancer.
        let ingress_value = (!ingress.is_empty()).then_some(&ingress);
        let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress_value}}});
        let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) if !ingress.is_empty() => recorder.record(
                service.as_ref(),
                EventType::Normal,
                "EnsuredLoadBalancer",
                "Ensured load balancer",
            ),
            Ok(_) => {}
            // The cached status stays stale, so the next pass tries again.
            Err(error) => {
                tracing::warn!(%namespace, %name, %error, "cannot update load balancer status")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    fn lb_key() -> RuleKey {
        RuleKey {
            namespace: "default".into(),
            service: "web".into(),
            port: "http".into(),
            frontend: Frontend::LoadBalancer,
        }
    }

    #[test]
    fn busy_load_balancer_ports_are_named_in_the_warning() {
        let error = ProxyError::Listen {
            address: "192.168.5.10:80".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let (reason, message) = listen_failure(&lb_key(), &error);
        assert_eq!(reason, "SyncLoadBalancerFailed");
        assert_eq!(
            message,
            "Error syncing load balancer: port 80/TCP on 192.168.5.10 is in use by another process or service"
        );

        let not_local = ProxyError::Listen {
            address: "10.43.0.9:80".parse().unwrap(),
            source: std::io::Error::from(std::io::ErrorKind::AddrNotAvailable),
        };
        let key = RuleKey {
            frontend: Frontend::ClusterIp,
            ..lb_key()
        };
        let (reason, message) = listen_failure(&key, &not_local);
        assert_eq!(reason, "ListenFailed");
        assert!(
            message.starts_with(
                "Cannot serve cluster IP for port http: cannot listen on 10.43.0.9:80"
            ),
            "{message}"
        );
    }

    fn service(name: &str, cluster_ip: &str, port: u16, node_port: Option<u16>) -> Arc<Service> {
        let mut port_spec = serde_json::json!({"name": "http", "port": port});
        let mut kind = "ClusterIP";
        if let Some(node_port) = node_port {
            port_spec["nodePort"] = node_port.into();
            kind = "NodePort";
        }
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": kind, "clusterIP": cluster_ip, "ports": [port_spec]}
            }))
            .unwrap(),
        )
    }

    fn endpoints(name: &str, backend: SocketAddr) -> Arc<Endpoints> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "subsets": [{"addresses": [{"ip": backend.ip().to_string()}], "ports": [{"name": "http", "port": backend.port()}]}]
            }))
            .unwrap(),
        )
    }

    /// Connect with a bounded wait; `None` if refused or unreachable.
    async fn greeting(address: SocketAddr) -> Option<String> {
        let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(address))
            .await
            .ok()?
            .ok()?;
        let mut reply = String::new();
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut reply))
            .await
            .ok()?
            .ok()?;
        Some(reply)
    }

    fn ip(args: &[&str]) -> String {
        podium_linux::net::ip(args).unwrap()
    }

    /// The whole host side in a network namespace of its own: the interface is created,
    /// a leftover address from an earlier run is removed, ClusterIPs are added and served,
    /// and a deleted service takes its ClusterIP and listeners with it.
    #[test]
    fn cluster_ips_are_added_served_and_removed_in_a_private_network_namespace() {
        let test = std::thread::spawn(|| {
            // Only this thread (and the threads and processes it starts) enter the namespace.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare a network namespace (needs root)");
            ip(&["link", "set", "lo", "up"]);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let interface_name = "podium-svc-t";
                interface::ensure(interface_name).unwrap();
                interface::add_address(interface_name, "10.43.9.9".parse().unwrap()).unwrap();

                let backend = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
                let backend_address = backend.local_addr().unwrap();
                tokio::spawn(async move {
                    loop {
                        let Ok((mut stream, _)) = backend.accept().await else {
                            return;
                        };
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"web").await;
                    }
                });

                let node_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                let config = ProxyConfig {
                    node_ip,
                    cluster_ip_interface: interface_name.into(),
                };
                let mut proxy = Proxy::new(config, TableConfig::default());
                let web = service("web", "10.43.0.20", 80, Some(30080));
                let outcomes = proxy
                    .apply(
                        std::slice::from_ref(&web),
                        &[endpoints("web", backend_address)],
                    )
                    .await;
                assert_eq!(outcomes.len(), 2);
                assert!(outcomes.iter().all(|(_, o)| o.is_ok()), "{outcomes:?}");
                let held: Vec<IpAddr> = interface::addresses(interface_name)
                    .unwrap()
                    .into_iter()
                    .collect();
                assert_eq!(
                    held,
                    ["10.43.0.20".parse::<IpAddr>().unwrap()],
                    "leftover removed, ClusterIP added"
                );
                assert_eq!(
                    greeting("10.43.0.20:80".parse().unwrap()).await.as_deref(),
                    Some("web")
                );
                assert_eq!(
                    greeting("127.0.0.1:30080".parse().unwrap())
                        .await
                        .as_deref(),
                    Some("web")
                );

                // A second pass over the same state changes nothing and keeps serving.
                let again = proxy
                    .apply(&[web], &[endpoints("web", backend_address)])
                    .await;
                assert_eq!(
                    again
                        .iter()
                        .map(|(_, o)| *o.as_ref().unwrap())
                        .collect::<Vec<_>>(),
                    outcomes
                        .iter()
                        .map(|(_, o)| *o.as_ref().unwrap())
                        .collect::<Vec<_>>()
                );

                let outcomes = proxy.apply(&[], &[]).await;
                assert!(outcomes.is_empty());
                assert!(interface::addresses(interface_name).unwrap().is_empty());
                assert_eq!(greeting("127.0.0.1:30080".parse().unwrap()).await, None);
                assert_eq!(greeting("10.43.0.20:80".parse().unwrap()).await, None);

                interface::remove(interface_name).unwrap();
                assert!(interface::addresses(interface_name).is_err());
            });
        });
        test.join().unwrap();
    }

    /// Just enough of the API server for [`run`]: lists of Services and Endpoints, watches
    /// that stay open without events, and a record of status patches and events.
    mod mock_api {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};

        use axum::body::Body;
        use axum::extract::{Path, Query, State};
        use axum::response::{IntoResponse, Response};
        use axum::routing::{get, patch, post};
        use axum::{Json, Router};
        use serde_json::{Value, json};

        #[derive(Default)]
        pub struct Recorded {
            pub services: Vec<Value>,
            pub endpoints: Vec<Value>,
            /// (service name, patch body)
            pub status_patches: Vec<(String, Value)>,
            pub events: Vec<Value>,
        }

        pub type Shared = Arc<Mutex<Recorded>>;

        fn list(kind: &str, items: Vec<Value>, query: &HashMap<String, String>) -> Response {
            if query.get("watch").map(String::as_str) == Some("true") {
                // Open and silent, like a watch on objects that do not change.
                return Body::from_stream(
                    futures::stream::pending::<Result<String, std::io::Error>>(),
                )
                .into_response();
            }
            Json(json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})).into_response()
        }

        async fn services(
            State(state): State<Shared>,
            Query(query): Query<HashMap<String, String>>,
        ) -> Response {
            let items = state.lock().unwrap().services.clone();
            list("ServiceList", items, &query)
        }

        async fn endpoints(
            State(state): State<Shared>,
            Query(query): Query<HashMap<String, String>>,
        ) -> Response {
            let items = state.lock().unwrap().endpoints.clone();
            list("EndpointsList", items, &query)
        }

        async fn status(
            State(state): State<Shared>,
            Path((_, name)): Path<(String, String)>,
            Json(body): Json<Value>,
        ) -> Json<Value> {
            let mut state = state.lock().unwrap();
            state.status_patches.push((name.clone(), body));
            let service = state
                .services
                .iter()
                .find(|s| s["metadata"]["name"] == name.as_str())
                .cloned();
            Json(service.unwrap_or(Value::Null))
        }

        async fn event(State(state): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
            state.lock().unwrap().events.push(body.clone());
            Json(body)
        }

        pub fn router(state: Shared) -> Router {
            Router::new()
                .route("/api/v1/services", get(services))
                .route("/api/v1/endpoints", get(endpoints))
                .route(
                    "/api/v1/namespaces/{namespace}/services/{name}/status",
                    patch(status),
                )
                .route("/api/v1/namespaces/{namespace}/events", post(event))
                .with_state(state)
        }
    }

    /// [`run`] end to end against the mock API server, in a private network namespace: a
    /// LoadBalancer whose port is free is served and gets the node IP as ingress; one
    /// whose port is taken stays pending and gets a Warning naming the busy port.
    #[test]
    fn run_serves_load_balancers_and_reports_busy_ports() {
        let test = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare a network namespace (needs root)");
            ip(&["link", "set", "lo", "up"]);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let backend = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
                let backend_address = backend.local_addr().unwrap();
                tokio::spawn(async move {
                    loop {
                        let Ok((mut stream, _)) = backend.accept().await else { return };
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"web").await;
                    }
                });
                // Fixed ports are safe: nothing else lives in this namespace.
                let _squatter = std::net::TcpListener::bind("127.0.0.1:8081").unwrap();
                let lb = |name: &str, ip: &str, port: u16| {
                    serde_json::json!({
                        "apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
                        "spec": {"type": "LoadBalancer", "clusterIP": ip, "ports": [{"name": "http", "port": port, "nodePort": port + 22000}]}
                    })
                };
                let state = mock_api::Shared::default();
                {
                    let mut recorded = state.lock().unwrap();
                    recorded.services = vec![lb("web", "10.43.0.20", 8080), lb("busy", "10.43.0.21", 8081)];
                    recorded.endpoints = vec![serde_json::json!({
                        "apiVersion": "v1", "kind": "Endpoints",
                        "metadata": {"name": "web", "namespace": "default"},
                        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": backend_address.port()}]}]
                    })];
                }
                let api = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
                let api_address = api.local_addr().unwrap();
                let router = mock_api::router(state.clone());
                tokio::spawn(async move { axum::serve(api, router).await });

                let client_config = kube::Config::new(format!("http://{api_address}").parse().unwrap());
                let client = Client::try_from(client_config).unwrap();
                let config = ProxyConfig { node_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), cluster_ip_interface: "podium-svc-t".into() };
                let proxy = tokio::spawn(run(client, config));

                let mut published = false;
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let recorded = state.lock().unwrap();
                    let warned = recorded.events.iter().any(|e| e["reason"] == "SyncLoadBalancerFailed");
                    if !recorded.status_patches.is_empty() && warned {
                        published = true;
                        break;
                    }
                }
                assert!(published, "no status patch or warning within 5 s");
                assert_eq!(greeting("10.43.0.20:8080".parse().unwrap()).await.as_deref(), Some("web"));
                assert_eq!(greeting("127.0.0.1:8080".parse().unwrap()).await.as_deref(), Some("web"));
                assert_eq!(greeting("127.0.0.1:30080".parse().unwrap()).await.as_deref(), Some("web"));

                let recorded = state.lock().unwrap();
                assert_eq!(
                    recorded.status_patches,
                    [("web".to_string(), serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}}}))]
                );
                let warning = recorded.events.iter().find(|e| e["reason"] == "SyncLoadBalancerFailed").unwrap();
                assert_eq!(warning["type"], "Warning");
                assert_eq!(warning["involvedObject"]["name"], "busy");
                assert_eq!(warning["involvedObject"]["uid"], "uid-busy");
                assert_eq!(warning["message"], "Error syncing load balancer: port 8081/TCP on 127.0.0.1 is in use by another process or service");
                let ensured = recorded.events.iter().find(|e| e["reason"] == "EnsuredLoadBalancer").unwrap();
                assert_eq!(ensured["involvedObject"]["name"], "web");
                drop(recorded);
                proxy.abort();
            });
        });
        test.join().unwrap();
    }
}
