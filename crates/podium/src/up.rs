//! `podium up`: one process running the whole single-node cluster, each component
//! talking to the API server over HTTPS, with its own identity, exactly as it would from
//! another host. `podium server`: the same control plane without the node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use podium_runtime::Runtime;
use podium_runtime_embedded::{EmbeddedConfig, EmbeddedRuntime};

use crate::cli::{ServerArgs, UpArgs};
use crate::credentials::{self, ClusterCredentials};

/// The interface that holds every Service ClusterIP on this node.
const CLUSTER_IP_INTERFACE: &str = "podium-svc";

fn runtime_config(data_dir: &Path, pod_cidr: &str, bridge: &str) -> anyhow::Result<EmbeddedConfig> {
    Ok(EmbeddedConfig {
        state_dir: data_dir.join("runtime"),
        log_dir: data_dir.join("logs"),
        bridge: bridge.to_string(),
        pod_cidr: pod_cidr.to_string(),
        cgroup_parent: format!("podium-{}", data_dir_tag(data_dir)),
        shim_exe: std::env::current_exe().context("finding the podium binary to run shims")?,
        dns_servers: Vec::new(),
    })
}

/// A short stable tag per data dir, so two clusters on one host keep separate cgroups.
fn data_dir_tag(data_dir: &Path) -> String {
    let mut hash: u32 = 0x811c9dc5;
    for b in data_dir.to_string_lossy().bytes() {
        hash = (hash ^ b as u32).wrapping_mul(0x01000193);
    }
    format!("{hash:08x}")
}

/// The first address of a CIDR: the `kubernetes` Service's ClusterIP, which in-cluster
/// clients reach the API server by, so it is in the serving certificate.
fn first_address(cidr: &str) -> anyhow::Result<std::net::IpAddr> {
    let (ip, bits) = cidr
        .split_once('/')
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR such as 10.43.0.0/16"))?;
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .with_context(|| format!("--service-cidr {cidr:?}: {ip:?} is not an IPv4 address"))?;
    let bits: u32 = bits
        .parse()
        .ok()
        .filter(|b| (1..=30).contains(b))
        .with_context(|| format!("--service-cidr {cidr:?}: the prefix length must be 1-30"))?;
    let network = u32::from(ip) & (u32::MAX << (32 - bits));
    Ok(std::net::Ipv4Addr::from(network + 1).into())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "podium".into())
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The control plane of one data dir, running: what `podium server` is and what
/// `podium up` adds a node to.
struct ControlPlane {
    data_dir: PathBuf,
    credentials: ClusterCredentials,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    /// Held while the process runs: one process per data dir.
    _lock: podium_linux::lock::DirLock,
}

/// The cluster's ServiceAccount token key, made on first start in `<data-dir>/pki`.
fn service_account_tokens(
    data_dir: &std::path::Path,
) -> anyhow::Result<podium_apiserver::service_account_token::ServiceAccountTokens> {
    let (private, public) = podium_pki::service_account_key(&data_dir.join("pki"))
        .context("the service account token key")?;
    podium_apiserver::service_account_token::ServiceAccountTokens::from_pem(&private, &public)
        .map_err(|e| {
            anyhow::anyhow!(
                "{e} (remove {}/pki/sa.key to make a new one)",
                data_dir.display()
            )
        })
}

/// kube-apiserver's `--etcd-compaction-interval` default.
const ETCD_COMPACTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Lock the data dir, open the store, serve the API over HTTPS and start the
/// cluster-wide loops (controllers, scheduler, Event expiry, the `kubernetes` Service,
/// garbage collection). `default_advertise` is the address clients reach the server on
/// when it listens on every address and `--advertise-address` is not given;
/// `extra_sans` are more addresses the serving certificate must name.
async fn start_control_plane(
    args: &ServerArgs,
    default_advertise: std::net::IpAddr,
    extra_sans: &[std::net::IpAddr],
) -> anyhow::Result<ControlPlane> {
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let lock = podium_linux::lock::DirLock::try_lock(&data_dir, "podium.lock").map_err(|e| match e {
        podium_linux::lock::LockError::Held { holder, .. } => anyhow::anyhow!(
            "another podium{} is running on the data dir {}: stop it first, or give this one its own --data-dir",
            holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
            data_dir.display()
        ),
        other => anyhow::anyhow!("locking the data dir: {other}"),
    })?;

    let store: Arc<dyn podium_store::Store> = match &args.datastore_endpoint {
        Some(endpoints) => {
            let etcd = podium_store::EtcdStore::connect(endpoints)
                .await
                .with_context(|| {
                    format!("connecting to the datastore at {endpoints}: is etcd running there?")
                })?;
            // etcd keeps every revision until compacted: compact as kube-apiserver does.
            tokio::spawn(etcd.clone().compact_periodically(ETCD_COMPACTION_INTERVAL));
            tracing::info!(endpoints, "state kept on etcd");
            Arc::new(etcd)
        }
        None => Arc::new(
            podium_store::RedbStore::open(data_dir.join("state.redb"))
                .context("opening the store")?
                .shared(),
        ),
    };
    let advertise_ip = args
        .advertise_address
        .unwrap_or(if args.listen.ip().is_unspecified() {
            default_advertise
        } else {
            args.listen.ip()
        });
    // Clients reach the server through the advertised address.
    let reach = std::net::SocketAddr::new(advertise_ip, args.listen.port());
    let api = podium_apiserver::ApiServer::new(
        store,
        podium_apiserver::ApiConfig {
            service_cidr: args.service_cidr.clone(),
            advertise_address: reach.to_string(),
        },
    )
    .with_service_account_tokens(Arc::new(service_account_tokens(&data_dir)?));
    api.bootstrap().await.map_err(|e| {
        anyhow::anyhow!("bootstrapping the namespaces and the kubernetes Service: {e}")
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "binding the API server to {} (is the port in use?)",
                args.listen
            )
        })?;
    let url = format!("https://{reach}");
    let credentials = ClusterCredentials::open(&data_dir, url.clone())?;
    let first_service_ip = first_address(&args.service_cidr)?;
    let mut sans = vec![args.listen.ip(), advertise_ip, first_service_ip];
    sans.extend_from_slice(extra_sans);
    sans.retain(|ip| !ip.is_unspecified());
    sans.sort();
    sans.dedup();
    let serving = credentials.serving(&host_name(), &sans)?;
    let tls = podium_apiserver::tls::TlsServer::new(
        credentials.ca_pem(),
        &serving.cert_pem,
        &serving.key_pem,
    )
    .map_err(|e| anyhow::anyhow!("setting up TLS: {e}"))?;
    let mut authenticator =
        podium_apiserver::auth::Authenticator::new().with_service_accounts(&api);
    if let Some(path) = &args.token_auth_file {
        authenticator = authenticator
            .with_token_file(path)
            .map_err(|e| anyhow::anyhow!("--token-auth-file: {e}"))?;
    }
    let router = api.authenticated_router(Arc::new(authenticator));
    let server = tokio::spawn(tls.serve(listener, router));
    let kubeconfig = credentials.write_admin(&data_dir)?;
    tracing::info!(api = %url, kubeconfig = %kubeconfig.display(), "API server ready");

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { server.await?.context("API server") });
    // Each component under its own name, as upstream's: the server logs who did what.
    let controllers = credentials
        .client(credentials::component("system:kube-controller-manager"))
        .await?;
    let scheduler = credentials
        .client(credentials::component("system:kube-scheduler"))
        .await?;
    tasks.spawn(podium_controllers::run(controllers));
    tasks.spawn(podium_scheduler::run(scheduler));
    // The store compacts its own history; Events expire here.
    let events = api.registry.store.clone();
    let event_ttl = args.event_ttl;
    tasks.spawn(async move {
        podium_apiserver::event_ttl::run(events, event_ttl).await;
        Ok(())
    });
    let kubernetes_service = api.clone();
    tasks.spawn(async move {
        podium_apiserver::kubernetes_service::run(kubernetes_service, Duration::from_secs(10))
            .await;
        Ok(())
    });
    let gc = api.clone();
    tasks.spawn(async move {
        podium_apiserver::gc::run(gc, Duration::from_secs(30)).await;
        Ok(())
    });
    Ok(ControlPlane {
        data_dir,
        credentials,
        tasks,
        _lock: lock,
    })
}

/// Run until interrupted or until a component stops (an error).
async fn run_until_stopped(
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    on_stop: &str,
) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted{on_stop}"),
        _ = sigterm.recv() => tracing::info!("terminated{on_stop}"),
        Some(done) = tasks.join_next() => {
            let result = done.context("a component panicked")?;
            result.context("a component stopped")?;
            anyhow::bail!("a component stopped unexpectedly");
        }
    }
    Ok(())
}

/// Once every component has started (certificates made, clients connected, first lists
/// and watches done), drop the resident copy of the code that ran only for that: the
/// steady state maps back what it runs. See `podium_linux::memory::release_program_text`.
async fn release_start_up_text() -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let released = podium_linux::memory::release_program_text();
    tracing::debug!(released, "released start-up code pages");
    std::future::pending().await
}

/// `podium server`: the control plane alone.
pub async fn server(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let mut control_plane = start_control_plane(&args, loopback, &[]).await?;
    control_plane.tasks.spawn(release_start_up_text());
    run_until_stopped(control_plane.tasks, "").await
}

/// `podium up`: the control plane and a node (agent, runtime, service proxy) in one process.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    init_logging();
    let ControlPlane {
        data_dir,
        credentials,
        mut tasks,
        _lock,
    } = start_control_plane(&args.server, args.node_ip, &[args.node_ip]).await?;
    // `podium down` needs the same network settings to find what `up` made.
    let settings = serde_json::json!({"pod_cidr": args.pod_cidr, "bridge": args.bridge});
    std::fs::write(data_dir.join("node.json"), settings.to_string())
        .context("writing node.json")?;
    let node_name = args.node_name.clone().unwrap_or_else(host_name);

    let images = Arc::new(podium_image::ImageStore::open(data_dir.join("images"))?);
    let runtime: Arc<dyn Runtime> = Arc::new(
        EmbeddedRuntime::new(
            runtime_config(&data_dir, &args.pod_cidr, &args.bridge)?,
            images,
        )
        .context("starting the embedded runtime")?,
    );
    let agent_config = podium_agent::AgentConfig {
        node_name: node_name.clone(),
        node_ip: args.node_ip,
        pod_cidr: args.pod_cidr.clone(),
        agent_listen: std::net::SocketAddr::new(args.node_ip, 0),
        drain_delay: Duration::from_secs(1),
    };
    let proxy_config = podium_proxy::ProxyConfig {
        node_ip: args.node_ip,
        cluster_ip_interface: CLUSTER_IP_INTERFACE.into(),
    };
    let agent = credentials.client(credentials::node(&node_name)).await?;
    let proxy = credentials
        .client(credentials::component("system:kube-proxy"))
        .await?;
    tasks.spawn(podium_agent::run(agent, agent_config, runtime));
    tasks.spawn(podium_proxy::run(proxy, proxy_config));
    tasks.spawn(release_start_up_text());
    run_until_stopped(
        tasks,
        "; containers keep running (stop them with `podium down`)",
    )
    .await
}

/// Stop every container of the data dir and release what the runtime holds on the host.
pub async fn down(data_dir: PathBuf) -> anyhow::Result<()> {
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", data_dir.display()))?;
    // `podium up` writes node.json before its node starts anything; without it no node
    // ran on this data dir (`podium server`), and there is nothing to stop.
    let Ok(settings) = std::fs::read(data_dir.join("node.json")) else {
        eprintln!(
            "No node ran on {} (no node.json): nothing to stop.",
            data_dir.display()
        );
        return Ok(());
    };
    let settings: serde_json::Value = serde_json::from_slice(&settings).unwrap_or_default();
    let images = Arc::new(podium_image::ImageStore::open(data_dir.join("images"))?);
    let field = |name: &str, default: &str| settings[name].as_str().unwrap_or(default).to_string();
    let config = runtime_config(
        &data_dir,
        &field("pod_cidr", "10.42.0.0/24"),
        &field("bridge", "podium0"),
    )?;
    let runtime = EmbeddedRuntime::new(config, images).context("opening the embedded runtime")?;
    let recovered = runtime.recover().await?;
    for sandbox in &recovered.sandboxes {
        eprintln!("Stopping pod {} ...", sandbox.pod_uid);
        runtime.remove_sandbox(&sandbox.pod_uid).await?;
    }
    // Also what no sandbox lists any more: half-made sandboxes and the node bridge.
    runtime
        .release_node()
        .await
        .context("releasing the node's network")?;
    podium_proxy::interface::remove(CLUSTER_IP_INTERFACE)
        .context("removing the ClusterIP interface")?;
    eprintln!(
        "Stopped {} pods; removed the node bridge and the ClusterIP interface.",
        recovered.sandboxes.len()
    );
    Ok(())
}
