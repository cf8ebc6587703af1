//! The embedded runtime against the real kernel: namespaces, cgroups, overlayfs, a bridge
//! and veths, with busybox as the image. Needs root and Debian's busybox-static
//! (`apt-get install busybox-static`); without them the tests fail and say why.
//!
//! Each test uses its own bridge, pod CIDR (10.99.<n>.0/24) and cgroup parent so they can
//! run in parallel; traffic goes only to pod addresses inside namespaces the test made.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podium_image::{Image, ImageConfig, ImageError, ImageSource};
use podium_linux::cgroup::Hierarchy;
use podium_runtime::{
    ContainerId, ContainerSpec, ContainerState, Resources, Runtime, RuntimeError, SandboxSpec,
};
use podium_runtime_embedded::{EmbeddedConfig, EmbeddedRuntime};

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "sleep", "httpd", "nc", "cat", "hostname", "echo", "tr", "ls", "true", "false", "env",
    "id", "ps", "dd",
];
const PAGE: &str = "hello from podium";

/// An image source over one busybox layer the test builds.
struct BusyboxImages {
    layer: PathBuf,
}

impl ImageSource for BusyboxImages {
    fn resolve(&self, reference: &str) -> Result<Image, ImageError> {
        if reference != "busybox:test" {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        Ok(Image {
            id: "sha256:busybox-test".into(),
            layers: vec![self.layer.clone()],
            config: ImageConfig {
                entrypoint: vec![],
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into(), "FROM_IMAGE=yes".into()],
                working_dir: None,
                user: None,
            },
        })
    }
}

fn build_busybox_layer(dir: &Path) -> PathBuf {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests create namespaces, cgroups and links: run them as root"
    );
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing: install Debian's busybox-static (apt-get install busybox-static)"
    );
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("bin")).unwrap();
    std::fs::create_dir_all(layer.join("www")).unwrap();
    std::fs::copy(BUSYBOX, layer.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", layer.join("bin").join(applet)).unwrap();
    }
    std::fs::write(layer.join("www/index.html"), PAGE).unwrap();
    layer
}

/// One test's private runtime world.
struct Fixture {
    _temp: tempfile::TempDir,
    config: EmbeddedConfig,
    images: Arc<BusyboxImages>,
    runtime: EmbeddedRuntime,
}

impl Fixture {
    fn new(n: u8) -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let images = Arc::new(BusyboxImages {
            layer: build_busybox_layer(temp.path()),
        });
        let config = EmbeddedConfig {
            state_dir: temp.path().join("runtime"),
            log_dir: temp.path().join("logs"),
            bridge: format!("pdtest{n}"),
            pod_cidr: format!("10.99.{n}.0/24"),
            cgroup_parent: format!("podium-test-{n}"),
            shim_exe: PathBuf::from(env!("CARGO_BIN_EXE_podium-test-shim")),
            dns_servers: vec!["10.99.0.10".into()],
        };
        let runtime = EmbeddedRuntime::new(config.clone(), images.clone()).expect("runtime");
        Fixture {
            _temp: temp,
            config,
            images,
            runtime,
        }
    }

    /// A second runtime over the same state, as after an agent restart.
    fn restarted(&self) -> EmbeddedRuntime {
        EmbeddedRuntime::new(self.config.clone(), self.images.clone()).expect("restarted runtime")
    }

    fn sandbox(&self, uid: &str, hostname: &str) -> SandboxSpec {
        SandboxSpec {
            pod_uid: uid.into(),
            namespace: "default".into(),
            name: hostname.into(),
            hostname: hostname.into(),
            resources: Resources {
                cpu_millis: Some(1000),
                memory_bytes: Some(256 << 20),
            },
        }
    }

    fn pod_cgroup_dirs(&self, uid: &str) -> Vec<PathBuf> {
        let hierarchy = Hierarchy::detect().unwrap();
        hierarchy
            .cgroup(format!("{}/{uid}", self.config.cgroup_parent))
            .unwrap()
            .directories()
    }
}

/// After a failed test, take down what remove_sandbox would have: processes (through the
/// cgroup parent), pinned namespaces, veths, the bridge.
impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(hierarchy) = Hierarchy::detect()
            && let Ok(cgroup) = hierarchy.cgroup(&self.config.cgroup_parent)
        {
            let _ = cgroup.remove();
        }
        let sandboxes = self.config.state_dir.join("sandboxes");
        for entry in std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
        {
            let uid = entry.file_name().to_string_lossy().into_owned();
            let _ = podium_linux::net::delete_link(&podium_linux::net::host_veth_name(&uid));
            let _ = podium_linux::namespace::remove_persistent(
                &Path::new("/run/netns").join(format!("podium-{uid}")),
            );
            for kind in ["ipc", "uts"] {
                let _ =
                    podium_linux::namespace::remove_persistent(&entry.path().join("ns").join(kind));
            }
        }
        let _ = podium_linux::net::delete_link(&self.config.bridge);
    }
}

fn container(uid: &str, name: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        pod_uid: uid.into(),
        name: name.into(),
        attempt: 0,
        image: "busybox:test".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        env: BTreeMap::new(),
        working_dir: None,
        resources: Resources::default(),
    }
}

fn id_of(spec: &ContainerSpec) -> ContainerId {
    ContainerId {
        pod_uid: spec.pod_uid.clone(),
        name: spec.name.clone(),
        attempt: spec.attempt,
    }
}

fn running_pid(state: &ContainerState) -> u32 {
    match state {
        ContainerState::Running { pid, .. } => *pid,
        other => panic!("expected a running container, got {other:?}"),
    }
}

async fn wait_bounded(runtime: &EmbeddedRuntime, id: &ContainerId) -> podium_runtime::ExitStatus {
    tokio::time::timeout(Duration::from_secs(30), runtime.wait(id))
        .await
        .expect("container did not exit within 30s")
        .expect("wait")
}

/// GET / from the pod, retrying while httpd starts (bounded).
fn http_get(ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let address = SocketAddr::from((ip, port));
    let mut last_error = None;
    for _ in 0..50 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut response = String::new();
                stream.read_to_string(&mut response)?;
                return Ok(response);
            }
            Err(e) => {
                last_error = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no attempt made")))
}

fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_serves_on_its_ip_and_is_isolated_and_removed_without_trace() {
    let fx = Fixture::new(11);
    let uid = "pod-serve-0001";
    let sandbox = fx
        .runtime
        .create_sandbox(&fx.sandbox(uid, "web-0"))
        .await
        .expect("create sandbox");
    let ip: Ipv4Addr = sandbox.ip.parse().unwrap();
    assert_eq!(ip, Ipv4Addr::new(10, 99, 11, 2));
    // The bridge keeps its own MAC as ports come and go (pods cache it as their gateway's).
    let bridge_mac = || {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", fx.config.bridge))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(bridge_mac(), "0a:58:0a:63:0b:01");
    // Idempotent: the same sandbox and address come back.
    assert_eq!(
        fx.runtime
            .create_sandbox(&fx.sandbox(uid, "web-0"))
            .await
            .unwrap(),
        sandbox
    );

    let mut web = container(uid, "web", &["httpd", "-f", "-p", "8080", "-h", "/www"]);
    web.resources.memory_bytes = Some(64 << 20);
    let info = fx.runtime.start(&web).await.expect("start httpd");
    assert_eq!(info.image_id, "sha256:busybox-test");
    running_pid(&info.state);

    let response = tokio::task::spawn_blocking(move || http_get(ip, 8080))
        .await
        .unwrap()
        .expect("connect to the pod");
    assert!(response.contains(PAGE), "unexpected response: {response}");

    // The memory limit is in the container's cgroup.
    let hierarchy = Hierarchy::detect().unwrap();
    let cgroup = hierarchy
        .cgroup(format!("{}/{uid}/web_0", fx.config.cgroup_parent))
        .unwrap();
    let limit_file = match hierarchy {
        Hierarchy::V1 { .. } => "memory.limit_in_bytes",
        Hierarchy::V2 { .. } => "memory.max",
    };
    let memory_dir = cgroup.directories().into_iter().next().unwrap();
    let limit =
        std::fs::read_to_string(memory_dir.join(limit_file)).expect("container memory cgroup");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let stats = fx.runtime.stats(&id_of(&web)).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");

    // A second container shares the pod's network and hostname but has its own pid 1.
    let probe = container(
        uid,
        "probe",
        &[
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; nc -z 127.0.0.1 8080 && echo port-shared; env",
        ],
    );
    fx.runtime.start(&probe).await.expect("start probe");
    let exit = wait_bounded(&fx.runtime, &id_of(&probe)).await;
    let log = std::fs::read_to_string(fx.runtime.inspect(&id_of(&probe)).await.unwrap().log_path)
        .unwrap();
    assert_eq!(exit.code, 0, "probe failed; log:\n{log}");
    let mut lines = log.lines();
    assert_eq!(
        lines.next().map(str::trim),
        Some(
            "sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; nc -z 127.0.0.1 8080 && echo port-shared; env"
        )
    );
    assert_eq!(lines.next(), Some("web-0"));
    assert!(log.contains("port-shared"), "{log}");
    assert!(
        log.contains("FROM_IMAGE=yes") && log.contains("HOSTNAME=web-0"),
        "{log}"
    );
    let expected_log = fx
        .config
        .log_dir
        .join(format!("default_web-0_{uid}/probe/0.log"));
    assert!(expected_log.is_file());

    let veth = podium_linux::net::host_veth_name(uid);
    assert!(Path::new("/sys/class/net").join(&veth).exists());
    assert!(
        !fx.pod_cgroup_dirs(uid).is_empty() && fx.pod_cgroup_dirs(uid).iter().all(|d| d.is_dir())
    );

    fx.runtime
        .remove_sandbox(uid)
        .await
        .expect("remove sandbox");
    fx.runtime
        .remove_sandbox(uid)
        .await
        .expect("remove sandbox again");
    assert!(
        !Path::new("/sys/class/net").join(&veth).exists(),
        "veth left behind"
    );
    assert!(
        fx.pod_cgroup_dirs(uid).iter().all(|d| !d.exists()),
        "pod cgroup left behind"
    );
    assert_eq!(
        mounts_mentioning(uid),
        Vec::<String>::new(),
        "mounts left behind"
    );
    assert!(
        !Path::new("/run/netns")
            .join(format!("podium-{uid}"))
            .exists(),
        "netns file left behind"
    );
    assert_eq!(
        std::fs::read_dir(fx.config.state_dir.join("ipam"))
            .unwrap()
            .count(),
        0,
        "IP allocation left behind"
    );
    assert!(!fx.config.state_dir.join("sandboxes").join(uid).exists());
    let refused = tokio::task::spawn_blocking(move || {
        TcpStream::connect_timeout(&SocketAddr::from((ip, 8080)), Duration::from_millis(300))
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "the pod still answers after removal");
    assert!(matches!(
        fx.runtime.inspect(&id_of(&web)).await,
        Err(RuntimeError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_honours_grace_and_kill_is_reported() {
    let fx = Fixture::new(12);
    let uid = "pod-stop-0001";
    fx.runtime
        .create_sandbox(&fx.sandbox(uid, "stopper"))
        .await
        .expect("create sandbox");

    // Handles SIGTERM: exits within the grace period with its own code.
    let polite = container(
        uid,
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; while true; do sleep 0.1; done",
        ],
    );
    fx.runtime.start(&polite).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    fx.runtime
        .stop(&id_of(&polite), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "stop waited for the whole grace period"
    );
    let exit = fx.runtime.wait(&id_of(&polite)).await.unwrap();
    assert_eq!((exit.code, exit.signal), (3, None));

    // As pid 1 without a handler, sleep ignores SIGTERM: SIGKILL after the grace period.
    let stubborn = container(uid, "stubborn", &["sleep", "1000"]);
    fx.runtime.start(&stubborn).await.unwrap();
    let began = Instant::now();
    fx.runtime
        .stop(&id_of(&stubborn), Duration::from_millis(500))
        .await
        .unwrap();
    assert!(began.elapsed() >= Duration::from_millis(500));
    let exit = fx.runtime.wait(&id_of(&stubborn)).await.unwrap();
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), false)
    );

    // kill -9 from outside is seen by a waiter that started before it.
    let victim = container(uid, "victim", &["sleep", "1000"]);
    let pid = running_pid(&fx.runtime.start(&victim).await.unwrap().state);
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with("sleep\0"),
        "pid {pid} is not the container init: {cmdline:?}"
    );
    let runtime = Arc::new(fx.restarted());
    let waiter = {
        let runtime = runtime.clone();
        let id = id_of(&victim);
        tokio::spawn(async move { runtime.wait(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    let info = fx.runtime.inspect(&id_of(&victim)).await.unwrap();
    assert!(matches!(info.state, ContainerState::Exited { .. }));

    // The exited attempt's cgroup is gone, and remove forgets the container.
    fx.runtime.remove(&id_of(&victim)).await.unwrap();
    fx.runtime.remove(&id_of(&victim)).await.unwrap();
    assert!(matches!(
        fx.runtime.inspect(&id_of(&victim)).await,
        Err(RuntimeError::NotFound(_))
    ));
    fx.runtime.remove_sandbox(uid).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_exec_is_an_exit_with_the_reason_in_the_log() {
    let fx = Fixture::new(13);
    let uid = "pod-fail-0001";
    fx.runtime
        .create_sandbox(&fx.sandbox(uid, "failer"))
        .await
        .unwrap();

    let missing = container(uid, "missing", &["no-such-command", "--flag"]);
    fx.runtime
        .start(&missing)
        .await
        .expect("start reports the container, not an error");
    let exit = wait_bounded(&fx.runtime, &id_of(&missing)).await;
    assert_eq!(exit.code, 127);
    let log = std::fs::read_to_string(fx.runtime.inspect(&id_of(&missing)).await.unwrap().log_path)
        .unwrap();
    assert!(
        log.contains("no-such-command") && log.contains("not found"),
        "log: {log}"
    );

    let absolute = container(uid, "absolute", &["/bin/nothing-here"]);
    fx.runtime.start(&absolute).await.unwrap();
    assert_eq!(wait_bounded(&fx.runtime, &id_of(&absolute)).await.code, 127);

    let not_executable = container(uid, "noexec", &["/www/index.html"]);
    fx.runtime.start(&not_executable).await.unwrap();
    assert_eq!(
        wait_bounded(&fx.runtime, &id_of(&not_executable))
            .await
            .code,
        126
    );

    let exits = container(uid, "exits", &["sh", "-c", "exit 7"]);
    fx.runtime.start(&exits).await.unwrap();
    let exit = wait_bounded(&fx.runtime, &id_of(&exits)).await;
    assert_eq!((exit.code, exit.signal), (7, None));

    let mut no_image = container(uid, "noimage", &["true"]);
    no_image.image = "absent:latest".into();
    assert!(matches!(
        fx.runtime.start(&no_image).await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    let no_sandbox = container("pod-that-does-not-exist", "c", &["true"]);
    assert!(matches!(
        fx.runtime.start(&no_sandbox).await,
        Err(RuntimeError::NotFound(_))
    ));
    let bad_name = container(uid, "../escape", &["true"]);
    assert!(matches!(
        fx.runtime.start(&bad_name).await,
        Err(RuntimeError::Invalid(_))
    ));
    fx.runtime.remove_sandbox(uid).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_runtime_recovers_and_waits_on_running_containers() {
    let fx = Fixture::new(14);
    let uid = "pod-recover-0001";
    let sandbox = fx
        .runtime
        .create_sandbox(&fx.sandbox(uid, "survivor"))
        .await
        .unwrap();
    let long = container(uid, "long", &["sleep", "1000"]);
    let pid = running_pid(&fx.runtime.start(&long).await.unwrap().state);
    let short = container(uid, "short", &["sh", "-c", "exit 4"]);
    fx.runtime.start(&short).await.unwrap();
    wait_bounded(&fx.runtime, &id_of(&short)).await;

    // The shim left the agent's session: a signal to the agent's group does not reach it.
    let session_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_string()
    };
    let shim_pid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let shim_pid: u32 = shim_pid
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(session_of(shim_pid), session_of(std::process::id()));

    let restarted = fx.restarted();
    let recovered = restarted.recover().await.expect("recover");
    assert_eq!(recovered.sandboxes, vec![sandbox.clone()]);
    let find = |name: &str| {
        recovered
            .containers
            .iter()
            .find(|c| c.id.name == name)
            .unwrap()
            .clone()
    };
    assert_eq!(running_pid(&find("long").state), pid);
    match find("short").state {
        ContainerState::Exited { exit, .. } => assert_eq!(exit.code, 4),
        other => panic!("short: {other:?}"),
    }
    assert_eq!(
        restarted
            .create_sandbox(&fx.sandbox(uid, "survivor"))
            .await
            .unwrap(),
        sandbox
    );

    let waiter = {
        let restarted = Arc::new(restarted);
        let for_wait = restarted.clone();
        let id = id_of(&long);
        (
            restarted,
            tokio::spawn(async move { for_wait.wait(&id).await }),
        )
    };
    let (restarted, waiter) = waiter;
    restarted.stop(&id_of(&long), Duration::ZERO).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit.signal, Some(9));
    restarted.remove_sandbox(uid).await.unwrap();
    assert!(restarted.recover().await.unwrap().sandboxes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_kill_9_of_the_agent() {
    let fx = Fixture::new(15);
    let uid = "pod-agent-0001";
    let mut agent = std::process::Command::new(env!("CARGO_BIN_EXE_podium-test-shim"))
        .arg("agent")
        .args([&fx.config.state_dir, &fx.config.log_dir])
        .args([
            &fx.config.bridge,
            &fx.config.pod_cidr,
            &fx.config.cgroup_parent,
        ])
        .arg(&fx.images.layer)
        .arg(uid)
        // Its own process group, so the kill below takes the agent's whole group.
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn test agent");
    let agent_pid = agent.id() as i32;
    let stdout = agent.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let pid: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("agent printed {line:?}"));
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(agent_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    agent.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .expect("container died with the agent");
    assert!(cmdline.starts_with("sleep\0"), "{cmdline:?}");

    let recovered = fx.runtime.recover().await.unwrap();
    let sleeper = recovered
        .containers
        .iter()
        .find(|c| c.id.name == "sleeper")
        .expect("recovered sleeper");
    assert_eq!(running_pid(&sleeper.state), pid);
    fx.runtime.stop(&sleeper.id, Duration::ZERO).await.unwrap();
    assert_eq!(wait_bounded(&fx.runtime, &sleeper.id).await.signal, Some(9));
    fx.runtime.remove_sandbox(uid).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_overrun_is_reported_as_oom_killed() {
    let fx = Fixture::new(16);
    let uid = "pod-oom-0001";
    fx.runtime
        .create_sandbox(&fx.sandbox(uid, "hog"))
        .await
        .unwrap();
    // dd allocates its 128 MiB block and fills it: far over the 16 MiB limit.
    let mut hog = container(
        uid,
        "hog",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
    );
    hog.resources.memory_bytes = Some(16 << 20);
    fx.runtime.start(&hog).await.unwrap();
    let exit = wait_bounded(&fx.runtime, &id_of(&hog)).await;
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), true),
        "{exit:?}"
    );

    let mut fits = container(
        uid,
        "fits",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=1M", "count=1"],
    );
    fits.resources.memory_bytes = Some(16 << 20);
    fx.runtime.start(&fits).await.unwrap();
    let exit = wait_bounded(&fx.runtime, &id_of(&fits)).await;
    assert_eq!((exit.code, exit.oom_killed), (0, false), "{exit:?}");
    // `podium down`: everything goes, the bridge included.
    fx.runtime.release_node().await.unwrap();
    assert!(!Path::new("/sys/class/net").join(&fx.config.bridge).exists());
    assert!(fx.runtime.recover().await.unwrap().sandboxes.is_empty());
}
