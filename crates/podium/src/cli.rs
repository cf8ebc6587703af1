//! Command-line surface: `up`, `server`, `down`, `image import|ls`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "podium",
    version,
    about = "Kubernetes rebuilt small: a whole cluster in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node cluster (API server, store, scheduler, controllers, node agent, service proxy).
    Up(UpArgs),
    /// Run the control plane alone (API server, store, scheduler, controllers): no node
    /// agent and no service proxy on this machine.
    Server(ServerArgs),
    /// Stop every container of a data dir and remove its sandboxes, mounts, cgroups and network.
    Down {
        #[arg(long, env = "PODIUM_DATA_DIR", default_value = "/var/lib/podium")]
        data_dir: PathBuf,
    },
    /// Manage the node's local images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import a `docker save` tar or an OCI image-layout archive.
    Import {
        #[arg(long, env = "PODIUM_DATA_DIR", default_value = "/var/lib/podium")]
        data_dir: PathBuf,
        /// The archive(s) to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images in the local store.
    #[command(alias = "list")]
    Ls {
        #[arg(long, env = "PODIUM_DATA_DIR", default_value = "/var/lib/podium")]
        data_dir: PathBuf,
    },
}

/// What `podium server` and `podium up` share: the control plane's settings.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Where the cluster keeps its state: store, images, containers, logs, kubeconfig.
    #[arg(long, env = "PODIUM_DATA_DIR", default_value = "/var/lib/podium")]
    pub data_dir: PathBuf,
    /// Where the API server listens (HTTPS only; `0.0.0.0:6443` for every address).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// The address other machines and in-cluster clients reach the API server on, as
    /// kube-apiserver's flag: in the serving certificate and the `kubernetes` endpoints
    /// (default: the listen address, or the node's address when listening on all).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Static bearer tokens, as kube-apiserver's: CSV lines `token,user,uid[,"group1,group2"]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// The range Service cluster IPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Keep the cluster's state on this etcd cluster (`http://127.0.0.1:2379`, several
    /// comma-separated) instead of the embedded store in the data dir. One cluster per
    /// etcd: Podium's keys live under `/registry/`, as kube-apiserver's.
    #[arg(long, env = "PODIUM_DATASTORE_ENDPOINT")]
    pub datastore_endpoint: Option<String>,
    /// How long an Event is kept after it was last seen, as kube-apiserver's flag.
    #[arg(long, default_value = "1h", value_parser = podium_apiserver::event_ttl::parse_duration)]
    pub event_ttl: std::time::Duration,
}

#[derive(Args, Clone, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The address the node reports; LoadBalancer and NodePort services listen on it.
    #[arg(long, default_value = "127.0.0.1")]
    pub node_ip: IpAddr,
    /// The node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The pod network of this node: the bridge takes the first address.
    #[arg(long, default_value = "10.42.0.0/24")]
    pub pod_cidr: String,
    /// The node bridge's name.
    #[arg(long, default_value = "podium0")]
    pub bridge: String,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => {
            podium_linux::memory::use_single_malloc_arena();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(crate::up::up(args))
        }
        Command::Server(args) => {
            podium_linux::memory::use_single_malloc_arena();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(crate::up::server(args))
        }
        Command::Down { data_dir } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::up::down(data_dir))
        }
        Command::Image {
            command: ImageCommand::Import { data_dir, files },
        } => {
            let store = podium_image::ImageStore::open(data_dir.join("images"))
                .context("opening the image store")?;
            for file in files {
                eprintln!("Importing {} ...", file.display());
                let imported = store
                    .import(&file)
                    .with_context(|| format!("importing {}", file.display()))?;
                for image in imported {
                    println!("Imported {}:{} ({})", image.repository, image.tag, image.id);
                }
            }
            Ok(())
        }
        Command::Image {
            command: ImageCommand::Ls { data_dir },
        } => {
            let store = podium_image::ImageStore::open(data_dir.join("images"))
                .context("opening the image store")?;
            print!("{}", podium_image::ImageStore::render_table(&store.list()?));
            Ok(())
        }
    }
}
