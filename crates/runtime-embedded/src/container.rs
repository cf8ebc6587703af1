//! Containers: start one through its shim, observe it from the files the shim writes,
//! wait on the shim's pidfd, stop it through the init's pidfd, and recover all of it
//! after an agent restart.
//!
//! A container's state is read from disk every time, never cached, so a fresh runtime
//! (after the agent restarted) sees exactly what the old one did:
//!
//! ```text
//! container.json ──▶ + shim.json ──▶ + running.json ──▶ + exit.json
//!   (recorded)        (shim spawned)   (init running)     (exited, cleaned up)
//! ```
//! A shim that died without writing `exit.json` (killed, host rebooted) leaves a container
//! whose end is unknown: it is recorded as exit code 255, as containerd reports it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use podium_image::ImageConfig;
use podium_linux::process;
use podium_runtime::{
    ContainerId, ContainerInfo, ContainerSpec, ContainerState, ExitStatus, Recovered,
    SandboxStatus, Stats,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::{EmbeddedError, Result};
use crate::state::{
    CONTAINER_FILE, ContainerRecord, EXIT_FILE, Layout, RUNNING_FILE, RunningRecord, SHIM_LOG_FILE,
    list_dir, read_json, remove_dir_all, validate_component, write_json_atomic,
};
use crate::{DEFAULT_PATH, Inner, shim};

/// Written by the runtime right after spawning the shim, before the shim answers.
const SHIM_FILE: &str = "shim.json";
/// How long `start` waits for the shim to report the container running. Setting up a
/// root filesystem takes milliseconds; this only bounds a wedged host.
const SHIM_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The exit code reported when a container's end was not observed.
const UNKNOWN_EXIT_CODE: i32 = 255;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct ShimRecord {
    pid: u32,
    start_time: u64,
    spawned_at: jiff::Timestamp,
}

/// A container as its files show it.
#[derive(Debug)]
enum Observed {
    Missing,
    /// The shim is alive but the init is not running yet.
    Starting(ShimRecord),
    Running(RunningRecord),
    Exited {
        started_at: Option<jiff::Timestamp>,
        exit: ExitStatus,
    },
}

fn validate_id(id: &ContainerId) -> Result<()> {
    validate_component("pod UID", &id.pod_uid)?;
    validate_component("container name", &id.name)
}

/// Read a container's state. A dead shim without an exit record gets one (unknown exit),
/// so every later reader agrees.
fn observe(layout: &Layout, id: &ContainerId) -> Result<Observed> {
    validate_id(id)?;
    let dir = layout.container_dir(id);
    if !dir.join(CONTAINER_FILE).exists() {
        return Ok(Observed::Missing);
    }
    let running: Option<RunningRecord> = read_json(&dir.join(RUNNING_FILE))?;
    if let Some(exit) = read_json::<ExitStatus>(&dir.join(EXIT_FILE))? {
        return Ok(Observed::Exited {
            started_at: running.map(|r| r.started_at),
            exit,
        });
    }
    let shim_alive = match (&running, read_json::<ShimRecord>(&dir.join(SHIM_FILE))?) {
        (Some(r), _) => process::open_if_same(r.shim_pid, r.shim_start_time),
        (None, Some(s)) => process::open_if_same(s.pid, s.start_time),
        (None, None) => Ok(None),
    }
    .map_err(|e| EmbeddedError::host("check shim", e))?
    .is_some();
    if shim_alive {
        return Ok(
            match (running, read_json::<ShimRecord>(&dir.join(SHIM_FILE))?) {
                (Some(r), _) => Observed::Running(r),
                (None, Some(s)) => Observed::Starting(s),
                (None, None) => inconsistent_state(&dir)?,
            },
        );
    }
    // The shim may have written exit.json and exited since the first read.
    if let Some(exit) = read_json::<ExitStatus>(&dir.join(EXIT_FILE))? {
        return Ok(Observed::Exited {
            started_at: running.map(|r| r.started_at),
            exit,
        });
    }
    let exit = ExitStatus {
        code: UNKNOWN_EXIT_CODE,
        signal: None,
        oom_killed: false,
        finished_at: jiff::Timestamp::now(),
    };
    tracing::warn!(container = %id, "shim gone without an exit record; exit status unknown");
    write_json_atomic(&dir.join(EXIT_FILE), &exit)?;
    Ok(Observed::Exited {
        started_at: running.map(|r| r.started_at),
        exit,
    })
}

fn inconsistent_state(dir: &Path) -> Result<Observed> {
    Err(EmbeddedError::Invalid(format!(
        "inconsistent container state in {}",
        dir.display()
    )))
}

fn info_from(layout: &Layout, id: &ContainerId, observed: Observed) -> Result<ContainerInfo> {
    let record: ContainerRecord = read_json(&layout.container_dir(id).join(CONTAINER_FILE))?
        .ok_or_else(|| EmbeddedError::NotFound(format!("container {id}")))?;
    let state = match observed {
        Observed::Missing => return Err(EmbeddedError::NotFound(format!("container {id}"))),
        // The init is being set up; the shim's pid is the best handle until it runs.
        Observed::Starting(shim) => ContainerState::Running {
            pid: shim.pid,
            started_at: shim.spawned_at,
        },
        Observed::Running(r) => ContainerState::Running {
            pid: r.init_pid,
            started_at: r.started_at,
        },
        Observed::Exited { started_at, exit } => ContainerState::Exited {
            started_at: started_at.unwrap_or(exit.finished_at),
            exit,
        },
    };
    Ok(ContainerInfo {
        id: id.clone(),
        image: record.spec.image,
        image_id: record.image_id,
        state,
        log_path: record.log_path,
    })
}

pub(crate) fn inspect(inner: &Inner, id: &ContainerId) -> Result<ContainerInfo> {
    let observed = observe(&inner.layout, id)?;
    info_from(&inner.layout, id, observed)
}

/// The container's command line by Kubernetes' rules: `command` replaces the image's
/// entrypoint (and then the image's cmd is ignored), `args` replaces the image's cmd.
fn command_line(spec: &ContainerSpec, image: &ImageConfig) -> Result<Vec<String>> {
    let argv: Vec<String> = if !spec.command.is_empty() {
        spec.command.iter().chain(&spec.args).cloned().collect()
    } else {
        let cmd = if spec.args.is_empty() {
            &image.cmd
        } else {
            &spec.args
        };
        image.entrypoint.iter().chain(cmd).cloned().collect()
    };
    if argv.is_empty() {
        return Err(EmbeddedError::Invalid(format!(
            "container {:?}: neither the pod nor image {:?} gives a command",
            spec.name, spec.image
        )));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(EmbeddedError::Invalid("command contains a NUL byte".into()));
    }
    Ok(argv)
}

/// `KEY=value` list: HOSTNAME, the image's environment, then the spec's overriding it;
/// Docker's default PATH when neither sets one.
fn environment(spec: &ContainerSpec, image: &ImageConfig, hostname: &str) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = vec![("HOSTNAME".into(), hostname.into())];
    let mut set = |key: &str, value: &str| match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    };
    for entry in &image.env {
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        set(key, value);
    }
    let spec_env: &BTreeMap<String, String> = &spec.env;
    for (key, value) in spec_env {
        if key.is_empty() || key.contains('=') {
            return Err(EmbeddedError::Invalid(format!(
                "environment variable name {key:?}"
            )));
        }
        set(key, value);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if env.iter().any(|e| e.contains('\0')) {
        return Err(EmbeddedError::Invalid(
            "environment contains a NUL byte".into(),
        ));
    }
    Ok(env)
}

fn working_dir(spec: &ContainerSpec, image: &ImageConfig) -> Result<String> {
    let dir = spec
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err(EmbeddedError::Invalid(format!(
            "working directory {dir:?} must be an absolute path"
        )));
    }
    Ok(dir)
}

pub(crate) async fn start(inner: &Arc<Inner>, spec: &ContainerSpec) -> Result<ContainerInfo> {
    let id = ContainerId {
        pod_uid: spec.pod_uid.clone(),
        name: spec.name.clone(),
        attempt: spec.attempt,
    };
    validate_id(&id)?;
    let sandbox = inner
        .read_sandbox(&spec.pod_uid)?
        .ok_or_else(|| EmbeddedError::NotFound(format!("sandbox of pod {}", spec.pod_uid)))?;
    let dir = inner.layout.container_dir(&id);
    if dir.join(CONTAINER_FILE).exists() {
        return inspect(inner, &id);
    }
    let images = Arc::clone(&inner.images);
    let reference = spec.image.clone();
    let image = tokio::task::spawn_blocking(move || images.resolve(&reference))
        .await
        .map_err(|e| EmbeddedError::io("resolve image", std::io::Error::other(e.to_string())))??;

    let record = ContainerRecord {
        spec: spec.clone(),
        image_id: image.id.clone(),
        log_path: inner.layout.log_path(&sandbox.spec, &id),
        layers: image.layers.clone(),
        upper: dir.join("upper"),
        work: dir.join("work"),
        rootfs: dir.join("rootfs"),
        argv: command_line(spec, &image.config)?,
        env: environment(spec, &image.config, &sandbox.spec.hostname)?,
        working_dir: working_dir(spec, &image.config)?,
        user: image.config.user.clone(),
        netns: sandbox.netns.clone(),
        ipc_ns: sandbox.ipc_ns.clone(),
        uts_ns: sandbox.uts_ns.clone(),
        // One cgroup per attempt: removing an exited attempt must never touch its successor.
        cgroup: format!("{}/{}_{}", sandbox.cgroup, id.name, id.attempt),
        bind_files: inner.etc_bind_files(&id.pod_uid),
    };
    for path in [Some(dir.as_path()), record.log_path.parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(path).map_err(|e| EmbeddedError::io_at("create", path, e))?;
    }
    write_json_atomic(&dir.join(CONTAINER_FILE), &record)?;
    match spawn_shim(inner, &dir).await {
        Ok(()) => inspect(inner, &id),
        Err(error) => {
            // Forget the attempt so a retry starts afresh; its log keeps the reason.
            if let Err(cleanup) = remove_dir_all(&dir) {
                tracing::warn!(container = %id, %cleanup, "removing a failed start");
            }
            Err(error)
        }
    }
}

/// Spawn `<shim_exe> shim <dir>` detached and wait for its one-line answer.
async fn spawn_shim(inner: &Inner, dir: &Path) -> Result<()> {
    let shim_log_path = dir.join(SHIM_LOG_FILE);
    let shim_log = std::fs::File::create(&shim_log_path)
        .map_err(|e| EmbeddedError::io_at("create", &shim_log_path, e))?;
    let mut child = tokio::process::Command::new(&inner.config.shim_exe)
        .arg("shim")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(shim_log)
        // The shim must outlive the agent; tokio reaps it if it exits while we run.
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| {
            EmbeddedError::io(format!("spawn shim {}", inner.config.shim_exe.display()), e)
        })?;
    let pid = child
        .id()
        .ok_or_else(|| EmbeddedError::Shim("exited before it could be tracked".into()))?;
    // Our unreaped child cannot have vanished from /proc yet.
    let start_time = process::start_time(pid)
        .map_err(|e| EmbeddedError::host("read shim start time", e))?
        .ok_or_else(|| EmbeddedError::Shim(format!("no /proc entry for shim {pid}")))?;
    write_json_atomic(
        &dir.join(SHIM_FILE),
        &ShimRecord {
            pid,
            start_time,
            spawned_at: jiff::Timestamp::now(),
        },
    )?;

    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| EmbeddedError::Shim("no stdout pipe".into()))?;
    let mut answer = String::new();
    let read = tokio::time::timeout(
        SHIM_ANSWER_TIMEOUT,
        BufReader::new(stdout).read_line(&mut answer),
    )
    .await;
    let answer = answer.trim();
    match read {
        Ok(Ok(_)) if answer == shim::HANDSHAKE_OK => Ok(()),
        Ok(Ok(_)) if answer.starts_with(shim::HANDSHAKE_ERROR) => Err(EmbeddedError::Shim(
            answer.trim_start_matches(shim::HANDSHAKE_ERROR).to_string(),
        )),
        Ok(Ok(_)) => Err(EmbeddedError::Shim(format!(
            "exited without answering: {}",
            std::fs::read_to_string(&shim_log_path)
                .unwrap_or_default()
                .trim()
        ))),
        Ok(Err(e)) => Err(EmbeddedError::io("read shim answer", e)),
        Err(_) => {
            let _ = child.start_kill();
            Err(EmbeddedError::Shim(format!(
                "no answer within {SHIM_ANSWER_TIMEOUT:?}"
            )))
        }
    }
}

/// Resolve when the container has exited: wait for its shim to exit (it writes the exit
/// record first) on a pidfd, which works for shims this process did not spawn.
pub(crate) async fn wait(inner: &Inner, id: &ContainerId) -> Result<ExitStatus> {
    let (shim_pid, shim_start_time) = match observe(&inner.layout, id)? {
        Observed::Missing => return Err(EmbeddedError::NotFound(format!("container {id}"))),
        Observed::Exited { exit, .. } => return Ok(exit),
        Observed::Running(r) => (r.shim_pid, r.shim_start_time),
        Observed::Starting(s) => (s.pid, s.start_time),
    };
    if let Some(pidfd) = process::open_if_same(shim_pid, shim_start_time)
        .map_err(|e| EmbeddedError::host("open shim pidfd", e))?
    {
        process::exited(pidfd)
            .await
            .map_err(|e| EmbeddedError::host("wait for shim", e))?;
    }
    match observe(&inner.layout, id)? {
        Observed::Exited { exit, .. } => Ok(exit),
        Observed::Missing => Err(EmbeddedError::NotFound(format!("container {id}"))),
        other => Err(EmbeddedError::Shim(format!(
            "exited but container {id} is {other:?}"
        ))),
    }
}

/// SIGTERM the init, SIGKILL after `grace`, resolve once exited.
pub(crate) async fn stop(inner: &Inner, id: &ContainerId, grace: Duration) -> Result<()> {
    let running = match observe(&inner.layout, id)? {
        Observed::Missing => return Err(EmbeddedError::NotFound(format!("container {id}"))),
        Observed::Exited { .. } => return Ok(()),
        Observed::Running(r) => r,
        Observed::Starting(shim) => {
            // No init to signal yet: ending the shim ends the init (its parent-death signal).
            if let Some(pidfd) = process::open_if_same(shim.pid, shim.start_time)
                .map_err(|e| EmbeddedError::host("open shim pidfd", e))?
            {
                signal(&pidfd, Signal::SIGKILL)?;
            }
            wait(inner, id).await?;
            return Ok(());
        }
    };
    let Some(init) = process::open_if_same(running.init_pid, running.init_start_time)
        .map_err(|e| EmbeddedError::host("open init pidfd", e))?
    else {
        wait(inner, id).await?;
        return Ok(());
    };
    if !grace.is_zero() {
        signal(&init, Signal::SIGTERM)?;
        if tokio::time::timeout(grace, wait(inner, id)).await.is_ok() {
            return Ok(());
        }
    }
    signal(&init, Signal::SIGKILL)?;
    wait(inner, id).await?;
    Ok(())
}

fn signal(pidfd: &std::os::fd::OwnedFd, signal: Signal) -> Result<()> {
    match process::pidfd_send_signal(pidfd, signal) {
        Ok(()) => Ok(()),
        // Already exited: what the caller wanted.
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(EmbeddedError::host(format!("send {signal}"), e)),
    }
}

/// Forget a container: kill it if it still runs, remove its cgroup, root filesystem and
/// state. Its log stays for `logs --previous`. Missing is fine.
pub(crate) async fn remove(inner: &Arc<Inner>, id: &ContainerId) -> Result<()> {
    match observe(&inner.layout, id)? {
        Observed::Missing => return Ok(()),
        Observed::Exited { .. } => {}
        Observed::Running(_) | Observed::Starting(_) => stop(inner, id, Duration::ZERO).await?,
    }
    let id = id.clone();
    crate::blocking(inner, move |inner| {
        let dir = inner.layout.container_dir(&id);
        if let Some(record) = read_json::<ContainerRecord>(&dir.join(CONTAINER_FILE))? {
            // Normally the shim removed it; not if the shim was killed.
            inner
                .hierarchy
                .cgroup(&record.cgroup)
                .and_then(|cgroup| cgroup.remove())
                .map_err(|e| EmbeddedError::host("remove container cgroup", e))?;
        }
        podium_linux::mounts::unmount_under(&dir)
            .map_err(|e| EmbeddedError::host("unmount container leftovers", e))?;
        remove_dir_all(&dir)
    })
    .await
}

pub(crate) fn stats(inner: &Inner, id: &ContainerId) -> Result<Stats> {
    let Observed::Running(_) = observe(&inner.layout, id)? else {
        return Err(EmbeddedError::NotFound(format!("running container {id}")));
    };
    let record: ContainerRecord = read_json(&inner.layout.container_dir(id).join(CONTAINER_FILE))?
        .ok_or_else(|| EmbeddedError::NotFound(format!("container {id}")))?;
    let cgroup = inner
        .hierarchy
        .cgroup(&record.cgroup)
        .map_err(|e| EmbeddedError::host("container cgroup", e))?;
    Ok(Stats {
        cpu_usage_nanos: cgroup
            .cpu_usage_nanos()
            .map_err(|e| EmbeddedError::host("read cpu usage", e))?,
        memory_bytes: cgroup
            .memory_usage()
            .map_err(|e| EmbeddedError::host("read memory usage", e))?,
    })
}

/// Every container directory of a pod, as ids.
pub(crate) fn list_containers(layout: &Layout, pod_uid: &str) -> Result<Vec<ContainerId>> {
    let mut ids = Vec::new();
    let containers = layout.containers_dir(pod_uid);
    for name in list_dir(&containers)? {
        for attempt in list_dir(&containers.join(&name))? {
            let Ok(attempt) = attempt.parse::<u32>() else {
                continue;
            };
            ids.push(ContainerId {
                pod_uid: pod_uid.to_string(),
                name: name.clone(),
                attempt,
            });
        }
    }
    Ok(ids)
}

/// Everything on disk: sandboxes with a record, and every container of them.
pub(crate) fn recover(inner: &Inner) -> Result<Recovered> {
    let mut recovered = Recovered::default();
    for pod_uid in list_dir(&inner.layout.sandboxes_dir())? {
        if validate_component("pod UID", &pod_uid).is_err() {
            continue;
        }
        let Some(record) = inner.read_sandbox(&pod_uid)? else {
            tracing::warn!(%pod_uid, "sandbox without a record (crashed while being created); skipping");
            continue;
        };
        recovered.sandboxes.push(SandboxStatus {
            pod_uid: record.spec.pod_uid,
            ip: record.ip,
        });
        for id in list_containers(&inner.layout, &pod_uid)? {
            match inspect(inner, &id) {
                Ok(info) => recovered.containers.push(info),
                Err(EmbeddedError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str], args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            pod_uid: "uid".into(),
            name: "c".into(),
            attempt: 0,
            image: "img".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            working_dir: None,
            resources: Default::default(),
        }
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/image/bin".into(), "A=1".into()],
            working_dir: Some("/app".into()),
            user: None,
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let img = image();
        assert_eq!(
            command_line(&spec(&[], &[]), &img).unwrap(),
            ["/entry", "default"]
        );
        assert_eq!(
            command_line(&spec(&[], &["x"]), &img).unwrap(),
            ["/entry", "x"]
        );
        assert_eq!(
            command_line(&spec(&["/bin/sh"], &[]), &img).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            command_line(&spec(&["/bin/sh"], &["-c", "true"]), &img).unwrap(),
            ["/bin/sh", "-c", "true"]
        );
        assert!(command_line(&spec(&[], &[]), &ImageConfig::default()).is_err());
    }

    #[test]
    fn spec_environment_overrides_the_image() {
        let mut s = spec(&[], &[]);
        s.env.insert("A".into(), "2".into());
        s.env.insert("B".into(), "3".into());
        let env = environment(&s, &image(), "pod-0").unwrap();
        assert_eq!(env, ["HOSTNAME=pod-0", "PATH=/image/bin", "A=2", "B=3"]);
        let env = environment(&spec(&[], &[]), &ImageConfig::default(), "h").unwrap();
        assert_eq!(
            env,
            ["HOSTNAME=h".to_string(), format!("PATH={DEFAULT_PATH}")]
        );
        let mut bad = spec(&[], &[]);
        bad.env.insert("X=Y".into(), "z".into());
        assert!(environment(&bad, &image(), "h").is_err());
    }

    #[test]
    fn working_dir_prefers_spec_then_image() {
        let mut s = spec(&[], &[]);
        assert_eq!(working_dir(&s, &image()).unwrap(), "/app");
        assert_eq!(working_dir(&s, &ImageConfig::default()).unwrap(), "/");
        s.working_dir = Some("/work".into());
        assert_eq!(working_dir(&s, &image()).unwrap(), "/work");
        s.working_dir = Some("relative".into());
        assert!(working_dir(&s, &image()).is_err());
    }
}
