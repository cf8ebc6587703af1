//! Test helper binary for this crate's integration tests.
//!
//! * `shim <dir>`: the shim, as the podium binary runs it (`podium shim <dir>`).
//! * `agent <state-dir> <log-dir> <bridge> <cidr> <cgroup-parent> <layer-dir> <pod-uid>`:
//!   a stand-in agent that starts `sleep 1000` in a pod, prints the container's pid and
//!   then blocks, so a test can `kill -9` a real agent process and check that the
//!   container survives.

use std::path::PathBuf;
use std::sync::Arc;

use podium_image::{Image, ImageConfig, ImageError, ImageSource};
use podium_runtime::{ContainerSpec, ContainerState, Resources, Runtime, SandboxSpec};
use podium_runtime_embedded::{EmbeddedConfig, EmbeddedRuntime, shim_main};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.split_first() {
        Some((verb, rest)) if verb == "shim" => shim_main(rest),
        Some((verb, rest)) if verb == "agent" => match run_agent(rest) {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("test agent: {error}");
                1
            }
        },
        _ => {
            eprintln!("usage: podium-test-shim shim <container-state-dir> | agent <args...>");
            2
        }
    };
    std::process::exit(code);
}

/// One busybox layer under a fixed reference.
struct OneLayer(PathBuf);

impl ImageSource for OneLayer {
    fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        Ok(Image {
            id: format!("sha256:{reference}"),
            layers: vec![self.0.clone()],
            config: ImageConfig {
                env: vec!["PATH=/bin".into()],
                ..ImageConfig::default()
            },
        })
    }
}

fn run_agent(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [state_dir, log_dir, bridge, cidr, cgroup_parent, layer, uid] = args else {
        return Err("agent needs 7 arguments".into());
    };
    let config = EmbeddedConfig {
        state_dir: state_dir.into(),
        log_dir: log_dir.into(),
        bridge: bridge.clone(),
        pod_cidr: cidr.clone(),
        cgroup_parent: cgroup_parent.clone(),
        shim_exe: std::env::current_exe()?,
        dns_servers: vec![],
    };
    let runtime = EmbeddedRuntime::new(config, Arc::new(OneLayer(layer.into())))?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let sandbox = SandboxSpec {
            pod_uid: uid.clone(),
            namespace: "default".into(),
            name: "agent-test".into(),
            hostname: "agent-test".into(),
            resources: Resources::default(),
        };
        runtime.create_sandbox(&sandbox).await?;
        let spec = ContainerSpec {
            pod_uid: uid.clone(),
            name: "sleeper".into(),
            attempt: 0,
            image: "busybox".into(),
            command: vec!["sleep".into(), "1000".into()],
            args: vec![],
            env: Default::default(),
            working_dir: None,
            resources: Resources::default(),
        };
        let info = runtime.start(&spec).await?;
        let ContainerState::Running { pid, .. } = info.state else {
            return Err(format!("container not running: {:?}", info.state).into());
        };
        println!("{pid}");
        // Wait to be killed.
        std::future::pending::<()>().await;
        Ok(())
    })
}
