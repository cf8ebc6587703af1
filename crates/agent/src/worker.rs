//! One worker per pod, so a pod is never synced twice at once. Each wake-up (a pod change,
//! a container exit, a probe verdict, a back-off ending, or the periodic resync) refreshes
//! what the runtime has, asks [`crate::plan::plan`] what to do, does it, and writes the
//! status if it changed.
//!
//! ```text
//!  new ──► sandbox ──► start containers in order ──► running ◄────┐
//!                        (image missing: ErrImagePull,           │ exit: restartPolicy +
//!                         then ImagePullBackOff)                 │ back-off (CrashLoopBackOff)
//!                                   └────────────────────────────┘
//!  deletionTimestamp ──► not ready ──► drain delay ──► stop (TERM, KILL after grace)
//!                    ──► remove sandbox ──► DELETE (grace 0, UID precondition)
//! ```

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodCondition};
use kube::ResourceExt;
use podium_runtime::{
    ContainerId, ContainerInfo, ContainerState, ExitStatus, Runtime, RuntimeError,
};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::logs::{LogRegistry, PodKey};
use crate::plan::{Action, Backoff, ContainerPhase, ContainerRecord, KillReason, Terminated, plan};
use crate::pod_api::PodApi;
use crate::probe::{self, ProbeSpec, Tracker};
use crate::spec::{Downward, container_spec, sandbox_spec};
use crate::status::{StatusInputs, compute};
use podium_client::events::EventType;

/// The safety-net resync: exits and probe verdicts arrive as signals, this only catches
/// what a signal missed.
const RESYNC: Duration = Duration::from_secs(10);
/// Retry after a failed status write or sandbox creation.
const RETRY: Duration = Duration::from_secs(1);
/// Tries at the final DELETE before leaving it to the next watch event of the pod.
const FINISH_DELETE_TRIES: u32 = 5;
/// Grace period when the pod names none (the API server defaults it to 30 s).
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What every worker shares.
pub struct WorkerContext {
    pub runtime: Arc<dyn Runtime>,
    pub api: Arc<dyn PodApi>,
    pub node_ip: IpAddr,
    pub drain_delay: Duration,
    pub logs: Arc<LogRegistry>,
}

/// The agent's handle on a worker.
pub struct Handle {
    latest: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
}

impl Handle {
    /// A newer version of the pod.
    pub fn update(&self, pod: Arc<Pod>) {
        let _ = self.latest.send(Some(pod));
    }

    /// The pod left the API (or this node): stop and remove everything, without the drain.
    pub fn gone(&self) {
        let _ = self.latest.send(None);
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Start the worker of a pod, adopting the containers the runtime kept for it.
pub fn spawn(ctx: Arc<WorkerContext>, pod: Arc<Pod>, recovered: Vec<ContainerInfo>) -> Handle {
    let (latest, receiver) = watch::channel(Some(pod.clone()));
    let task = tokio::spawn(run(ctx, pod, recovered, receiver));
    Handle { latest, task }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ProbeKind {
    Readiness,
    Liveness,
}

impl ProbeKind {
    fn label(self) -> &'static str {
        match self {
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        }
    }
}

/// What the worker's helper tasks report.
enum Signal {
    Exited {
        name: String,
        attempt: u32,
        result: Result<ExitStatus, String>,
    },
    Probe {
        name: String,
        attempt: u32,
        kind: ProbeKind,
        result: Result<(), String>,
        verdict: Option<bool>,
    },
}

async fn run(
    ctx: Arc<WorkerContext>,
    pod: Arc<Pod>,
    recovered: Vec<ContainerInfo>,
    mut receiver: watch::Receiver<Option<Arc<Pod>>>,
) {
    let (signals, mut inbox) = mpsc::unbounded_channel();
    let mut worker = Worker::new(ctx, pod, signals);
    worker.adopt(recovered).await;
    loop {
        let current = receiver.borrow_and_update().clone();
        let Some(pod) = current else {
            worker.terminate(false).await;
            return;
        };
        worker.pod = pod;
        if worker.pod.metadata.deletion_timestamp.is_some() {
            worker.terminate(true).await;
            return;
        }
        let deadline = tokio::time::Instant::now() + worker.sync().await.min(RESYNC);
        loop {
            tokio::select! {
                changed = receiver.changed() => {
                    if changed.is_err() {
                        // The agent is shutting down: containers outlive it and are re-adopted.
                        worker.abandon();
                        return;
                    }
                    break;
                }
                Some(signal) = inbox.recv() => if worker.handle(signal).await { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

/// The last terminated state the pod's status shows for a container, kept across agent restarts.
fn last_state_from_status(status: &ContainerStatus) -> Option<Terminated> {
    let t = status.last_state.as_ref()?.terminated.as_ref()?;
    let attempt = t
        .container_id
        .as_deref()
        .and_then(|id| id.rsplit('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    Some(Terminated {
        started_at: t.started_at.as_ref()?.0,
        exit: ExitStatus {
            code: t.exit_code,
            signal: t.signal,
            oom_killed: t.reason.as_deref() == Some("OOMKilled"),
            finished_at: t.finished_at.as_ref()?.0,
        },
        attempt,
    })
}

struct Worker {
    ctx: Arc<WorkerContext>,
    pod: Arc<Pod>,
    uid: String,
    namespace: String,
    name: String,
    records: HashMap<String, ContainerRecord>,
    sandbox_ip: Option<String>,
    sandbox_retry_at: Option<tokio::time::Instant>,
    start_time: jiff::Timestamp,
    signals: mpsc::UnboundedSender<Signal>,
    probe_tasks: HashMap<String, Vec<JoinHandle<()>>>,
    exit_tasks: HashMap<String, JoinHandle<()>>,
    /// Containers being stopped by the worker (liveness, spec change), not to be killed twice.
    killing: HashSet<String>,
    last_written: Option<Value>,
}

impl Worker {
    fn new(ctx: Arc<WorkerContext>, pod: Arc<Pod>, signals: mpsc::UnboundedSender<Signal>) -> Self {
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        let records = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| {
                let mut record =
                    ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default());
                if let Some(status) = statuses.iter().find(|s| s.name == c.name) {
                    // Kept from the API so an agent restart does not reset what users see.
                    record.restart_count = status.restart_count;
                    record.last = last_state_from_status(status);
                }
                (c.name.clone(), record)
            })
            .collect();
        let (uid, namespace, name) = (
            pod.uid().unwrap_or_default(),
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
        );
        let names: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| c.name.clone())
            .collect();
        ctx.logs
            .register(&PodKey::new(&namespace, &name, &uid), &names);
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        Worker {
            ctx,
            pod,
            uid,
            namespace,
            name,
            records,
            sandbox_ip: None,
            sandbox_retry_at: None,
            start_time,
            signals,
            probe_tasks: HashMap::new(),
            exit_tasks: HashMap::new(),
            killing: HashSet::new(),
            last_written: None,
        }
    }

    fn container(&self, name: &str) -> Option<Container> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name).cloned())
    }

    fn key(&self) -> PodKey {
        PodKey::new(&self.namespace, &self.name, &self.uid)
    }

    fn id(&self, name: &str, attempt: u32) -> ContainerId {
        ContainerId {
            pod_uid: self.uid.clone(),
            name: name.to_string(),
            attempt,
        }
    }

    fn ordered_records(&self) -> Vec<ContainerRecord> {
        self.pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| self.records.get(&c.name).cloned())
            .collect()
    }

    fn grace(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        Duration::from_secs(seconds.max(0) as u64)
    }

    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        self.ctx.api.event(&self.pod, kind, reason, message).await;
    }

    /// Take over what the runtime kept from before an agent restart: the latest attempt of
    /// each container is adopted (running ones are not restarted); older attempts and
    /// containers the spec no longer has are removed, so there are never two copies.
    async fn adopt(&mut self, recovered: Vec<ContainerInfo>) {
        let mut latest: HashMap<String, ContainerInfo> = HashMap::new();
        let mut stale = Vec::new();
        for info in recovered {
            self.ctx.logs.attempt(
                &self.key(),
                &info.id.name,
                info.id.attempt,
                info.log_path.clone(),
                false,
            );
            if !self.records.contains_key(&info.id.name) {
                stale.push(info);
                continue;
            }
            match latest.remove(&info.id.name) {
                Some(existing) if existing.id.attempt > info.id.attempt => {
                    stale.push(info);
                    latest.insert(existing.id.name.clone(), existing);
                }
                Some(existing) => {
                    stale.push(existing);
                    latest.insert(info.id.name.clone(), info);
                }
                None => {
                    latest.insert(info.id.name.clone(), info);
                }
            }
        }
        for info in stale {
            if matches!(info.state, ContainerState::Running { .. }) {
                let _ = self.ctx.runtime.stop(&info.id, Duration::ZERO).await;
            }
            if let Err(e) = self.ctx.runtime.remove(&info.id).await {
                tracing::warn!(container = %info.id, error = %e, "could not remove a stale container");
            }
        }
        let was_ready: HashSet<String> = self
            .pod
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
            .filter(|s| s.ready)
            .map(|s| s.name.clone())
            .collect();
        for (name, info) in latest {
            let attempt = info.id.attempt;
            let Some(record) = self.records.get_mut(&name) else {
                continue;
            };
            record.attempt = Some(attempt);
            record.image = info.image.clone();
            record.image_id = info.image_id.clone();
            if record.restart_count == 0 && record.last.is_none() {
                record.restart_count = attempt as i32;
            }
            match &info.state {
                ContainerState::Running { started_at, .. } => {
                    record.phase = ContainerPhase::Running {
                        started_at: *started_at,
                    };
                    record.crash_backoff =
                        Backoff::after_restarts(record.restart_count, *started_at);
                    // A container that was ready stays ready until its probe says otherwise,
                    // so an agent restart does not pull it out of its Service.
                    record.ready = was_ready.contains(&name);
                    self.ctx
                        .logs
                        .attempt(&self.key(), &name, attempt, info.log_path.clone(), true);
                    self.watch_exit(&name, attempt);
                }
                ContainerState::Exited { started_at, exit } => {
                    record.crash_backoff =
                        Backoff::after_restarts(record.restart_count, *started_at);
                    record.phase = ContainerPhase::Terminated(Terminated {
                        started_at: *started_at,
                        exit: exit.clone(),
                        attempt,
                    });
                }
            }
            tracing::info!(pod = %self.name, container = %name, attempt, "re-adopted container");
        }
    }

    fn watch_exit(&mut self, name: &str, attempt: u32) {
        let (runtime, signals, id) = (
            self.ctx.runtime.clone(),
            self.signals.clone(),
            self.id(name, attempt),
        );
        let task = tokio::spawn(async move {
            let result = runtime.wait(&id).await.map_err(|e| e.to_string());
            let _ = signals.send(Signal::Exited {
                name: id.name,
                attempt,
                result,
            });
        });
        if let Some(old) = self.exit_tasks.insert(name.to_string(), task) {
            old.abort();
        }
    }

    fn stop_probes(&mut self, name: &str) {
        for task in self.probe_tasks.remove(name).into_iter().flatten() {
            task.abort();
        }
    }

    /// Whether the container has a readiness probe the agent can run.
    fn readiness_probe(container: &Container) -> Option<ProbeSpec> {
        container
            .readiness_probe
            .as_ref()
            .and_then(|p| probe::parse(p, container).ok())
    }

    async fn start_probes(&mut self, container: &Container, attempt: u32) {
        self.stop_probes(&container.name);
        let Some(ip) = self
            .sandbox_ip
            .as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
        else {
            return;
        };
        let ready = self.records.get(&container.name).is_some_and(|r| r.ready);
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (ProbeKind::Readiness, &container.readiness_probe),
            (ProbeKind::Liveness, &container.liveness_probe),
        ] {
            let Some(probe) = probe else { continue };
            let spec = match probe::parse(probe, container) {
                Ok(spec) => spec,
                Err(e) => {
                    // Not probed at all: failing it would keep a healthy pod out of service.
                    self.event(
                        EventType::Warning,
                        "Unhealthy",
                        &format!("{} probe not run: {e}", kind.label()),
                    )
                    .await;
                    continue;
                }
            };
            let initial = match kind {
                ProbeKind::Readiness => ready,
                ProbeKind::Liveness => true,
            };
            let (signals, name) = (self.signals.clone(), container.name.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(spec.initial_delay).await;
                let mut tracker = Tracker::new(&spec, initial);
                loop {
                    let result = probe::run_once(&spec, ip).await;
                    let verdict = tracker.observe(result.is_ok());
                    if (result.is_err() || verdict.is_some())
                        && signals
                            .send(Signal::Probe {
                                name: name.clone(),
                                attempt,
                                kind,
                                result,
                                verdict,
                            })
                            .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(spec.period).await;
                }
            }));
        }
        self.probe_tasks.insert(container.name.clone(), tasks);
    }

    /// Record an exit of the running attempt.
    fn exited(&mut self, name: &str, attempt: u32, exit: ExitStatus) -> bool {
        let Some(record) = self.records.get_mut(name) else {
            return false;
        };
        let ContainerPhase::Running { started_at } = record.phase else {
            return false;
        };
        if record.attempt != Some(attempt) {
            return false;
        }
        record.phase = ContainerPhase::Terminated(Terminated {
            started_at,
            exit,
            attempt,
        });
        record.ready = false;
        record.liveness_failed = false;
        self.killing.remove(name);
        self.stop_probes(name);
        self.ctx.logs.ended(&self.key(), name, attempt);
        true
    }

    /// Act on a helper's report; whether a sync should follow.
    async fn handle(&mut self, signal: Signal) -> bool {
        match signal {
            Signal::Exited {
                name,
                attempt,
                result,
            } => {
                let exit = match result {
                    Ok(exit) => exit,
                    Err(_) => match self.ctx.runtime.inspect(&self.id(&name, attempt)).await {
                        Ok(ContainerInfo {
                            state: ContainerState::Exited { exit, .. },
                            ..
                        }) => exit,
                        // Still running after all, or unknown: the resync looks again.
                        _ => return false,
                    },
                };
                self.exited(&name, attempt, exit)
            }
            Signal::Probe {
                name,
                attempt,
                kind,
                result,
                verdict,
            } => {
                if !self
                    .records
                    .get(&name)
                    .is_some_and(|r| r.attempt == Some(attempt) && r.is_running())
                {
                    return false;
                }
                if let Err(message) = &result {
                    self.event(
                        EventType::Warning,
                        "Unhealthy",
                        &format!("{} probe failed: {message}", kind.label()),
                    )
                    .await;
                }
                let Some(record) = self.records.get_mut(&name) else {
                    return false;
                };
                match (kind, verdict) {
                    (ProbeKind::Readiness, Some(ready)) => {
                        record.ready = ready;
                        true
                    }
                    (ProbeKind::Liveness, Some(false)) => {
                        record.liveness_failed = true;
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// Refresh running containers from the runtime (a safety net behind the exit watchers).
    async fn observe(&mut self) {
        let running: Vec<(String, u32)> = self
            .records
            .values()
            .filter(|r| r.is_running())
            .filter_map(|r| Some((r.name.clone(), r.attempt?)))
            .collect();
        for (name, attempt) in running {
            match self.ctx.runtime.inspect(&self.id(&name, attempt)).await {
                Ok(ContainerInfo {
                    state: ContainerState::Exited { exit, .. },
                    ..
                }) => {
                    self.exited(&name, attempt, exit);
                }
                Ok(_) => {}
                Err(RuntimeError::NotFound(what)) => {
                    tracing::warn!(pod = %self.name, container = %name, "runtime lost {what}; counting it as killed");
                    let exit = ExitStatus {
                        code: 137,
                        signal: Some(9),
                        oom_killed: false,
                        finished_at: jiff::Timestamp::now(),
                    };
                    self.exited(&name, attempt, exit);
                }
                Err(e) => {
                    tracing::warn!(pod = %self.name, container = %name, error = %e, "could not inspect container")
                }
            }
        }
    }

    /// Close the gap between spec and runtime once; returns when to look again.
    async fn sync(&mut self) -> Duration {
        self.observe().await;
        let mut wake = RESYNC;
        let spec = self.pod.spec.clone().unwrap_or_default();
        for _round in 0..2 {
            let decided = plan(
                &spec,
                &self.ordered_records(),
                self.sandbox_ip.is_some(),
                &self.name,
                jiff::Timestamp::now(),
            );
            let mut created_sandbox = false;
            for action in decided.actions {
                match action {
                    Action::CreateSandbox => match self.create_sandbox().await {
                        true => created_sandbox = true,
                        false => wake = wake.min(RETRY),
                    },
                    Action::Start { name } => self.start(&name).await,
                    Action::Kill { name, reason } => self.kill(&name, reason).await,
                    Action::Wait {
                        name,
                        reason,
                        message,
                    } => self.wait(&name, reason, message).await,
                }
            }
            if !created_sandbox {
                break;
            }
        }
        // When the next back-off ends, as things stand after this round.
        let after = plan(
            &spec,
            &self.ordered_records(),
            self.sandbox_ip.is_some(),
            &self.name,
            jiff::Timestamp::now(),
        );
        if let Some(w) = after.wake_after {
            wake = wake.min(w);
        }
        if !self.write_status().await {
            wake = wake.min(RETRY);
        }
        wake
    }

    async fn create_sandbox(&mut self) -> bool {
        if self
            .sandbox_retry_at
            .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return false;
        }
        match self
            .ctx
            .runtime
            .create_sandbox(&sandbox_spec(&self.pod))
            .await
        {
            Ok(sandbox) => {
                self.sandbox_ip = Some(sandbox.ip);
                self.sandbox_retry_at = None;
                // Containers adopted before the sandbox IP was known get their probes now.
                let adopted: Vec<(Container, u32)> = self
                    .records
                    .values()
                    .filter(|r| r.is_running())
                    .filter_map(|r| Some((self.container(&r.name)?, r.attempt?)))
                    .collect();
                for (container, attempt) in adopted {
                    if Self::readiness_probe(&container).is_none()
                        && let Some(r) = self.records.get_mut(&container.name)
                    {
                        r.ready = true;
                    }
                    self.start_probes(&container, attempt).await;
                }
                true
            }
            Err(e) => {
                self.sandbox_retry_at = Some(tokio::time::Instant::now() + RETRY);
                self.event(
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    &format!("Failed to create pod sandbox: {e}"),
                )
                .await;
                false
            }
        }
    }

    fn image_failed(&mut self, name: &str, reason: &str, message: String) {
        let now = jiff::Timestamp::now();
        if let Some(record) = self.records.get_mut(name) {
            record.pull_backoff = Some(Backoff::next(record.pull_backoff.as_ref(), now));
            record.phase = ContainerPhase::Waiting {
                reason: reason.into(),
                message,
            };
        }
    }

    async fn start(&mut self, name: &str) {
        let (Some(container), Some(record)) =
            (self.container(name), self.records.get(name).cloned())
        else {
            return;
        };
        let image = container.image.clone().unwrap_or_default();
        match self.ctx.runtime.image_id(&image).await {
            Err(RuntimeError::ImageNotFound(_)) => {
                let message = format!(
                    "Failed to pull image \"{image}\": image not found in the node's image store and registry pulls are not supported"
                );
                self.event(EventType::Warning, "Failed", &message).await;
                self.event(EventType::Warning, "Failed", "Error: ErrImagePull")
                    .await;
                self.image_failed(name, "ErrImagePull", message);
                return;
            }
            Err(RuntimeError::Invalid(why)) => {
                let message = format!("Failed to apply default image tag \"{image}\": {why}");
                self.event(EventType::Warning, "InspectFailed", &message)
                    .await;
                self.event(EventType::Warning, "Failed", "Error: InvalidImageName")
                    .await;
                self.image_failed(name, "InvalidImageName", message);
                return;
            }
            Err(e) => {
                tracing::warn!(pod = %self.name, container = %name, error = %e, "could not look up the image; starting anyway")
            }
            Ok(_) => {
                if let Some(r) = self.records.get_mut(name) {
                    r.pull_backoff = None;
                }
                self.event(
                    EventType::Normal,
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                )
                .await;
            }
        }
        if let Some(previous) = record.attempt.filter(|_| !record.is_running()) {
            match self.ctx.runtime.remove(&self.id(name, previous)).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(pod = %self.name, container = %name, error = %e, "could not remove the previous attempt")
                }
            }
        }
        let attempt = record.next_attempt();
        let downward = Downward {
            pod_ip: self.sandbox_ip.clone(),
            host_ip: self.ctx.node_ip.to_string(),
        };
        let spec = container_spec(&self.pod, &container, attempt, &downward);
        let now = jiff::Timestamp::now();
        match self.ctx.runtime.start(&spec).await {
            Ok(info) => {
                self.event(
                    EventType::Normal,
                    "Created",
                    &format!("Created container: {name}"),
                )
                .await;
                self.event(
                    EventType::Normal,
                    "Started",
                    &format!("Started container {name}"),
                )
                .await;
                let started_at = match &info.state {
                    ContainerState::Running { started_at, .. }
                    | ContainerState::Exited { started_at, .. } => *started_at,
                };
                let Some(r) = self.records.get_mut(name) else {
                    return;
                };
                if r.attempt.is_some() || r.start_failed_at.is_some() {
                    r.crash_backoff = Some(Backoff::next(r.crash_backoff.as_ref(), now));
                }
                if let ContainerPhase::Terminated(t) = &r.phase {
                    r.last = Some(t.clone());
                }
                r.restart_count = r.next_restart_count();
                r.attempt = Some(attempt);
                r.image = image;
                r.image_id = info.image_id.clone();
                r.phase = ContainerPhase::Running { started_at };
                r.ready = Self::readiness_probe(&container).is_none();
                r.liveness_failed = false;
                r.start_failed_at = None;
                self.ctx
                    .logs
                    .attempt(&self.key(), name, attempt, info.log_path.clone(), true);
                self.watch_exit(name, attempt);
                self.start_probes(&container, attempt).await;
            }
            Err(RuntimeError::ImageNotFound(what)) => {
                let message = format!(
                    "Failed to pull image \"{image}\": image {what:?} not found in the node's image store"
                );
                self.event(EventType::Warning, "Failed", &message).await;
                self.image_failed(name, "ErrImagePull", message);
            }
            Err(e) => {
                let reason = if matches!(e, RuntimeError::Invalid(_)) {
                    "CreateContainerError"
                } else {
                    "RunContainerError"
                };
                self.event(EventType::Warning, "Failed", &format!("Error: {e}"))
                    .await;
                if let Some(r) = self.records.get_mut(name) {
                    r.start_failed_at = Some(now);
                    r.crash_backoff = Some(Backoff::next(r.crash_backoff.as_ref(), now));
                    r.phase = ContainerPhase::Waiting {
                        reason: reason.into(),
                        message: e.to_string(),
                    };
                }
            }
        }
    }

    async fn kill(&mut self, name: &str, reason: KillReason) {
        let Some(attempt) = self.records.get(name).and_then(|r| r.attempt) else {
            return;
        };
        if !self.killing.insert(name.to_string()) {
            return;
        }
        let message = match reason {
            KillReason::LivenessFailed => {
                format!("Container {name} failed liveness probe, will be restarted")
            }
            KillReason::SpecChanged => {
                format!("Container {name} definition changed, will be restarted")
            }
        };
        self.event(EventType::Normal, "Killing", &message).await;
        let grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        let (runtime, id) = (self.ctx.runtime.clone(), self.id(name, attempt));
        // Stopping takes up to the grace period; the exit watcher reports the end.
        tokio::spawn(async move {
            if let Err(e) = runtime
                .stop(&id, Duration::from_secs(grace.max(0) as u64))
                .await
            {
                tracing::warn!(container = %id, error = %e, "could not stop container");
            }
        });
    }

    async fn wait(&mut self, name: &str, reason: &'static str, message: String) {
        let Some(record) = self.records.get_mut(name) else {
            return;
        };
        let event = match &record.phase {
            ContainerPhase::Waiting {
                reason: current, ..
            } if current == reason => None,
            ContainerPhase::Terminated(t) => {
                record.last = Some(t.clone());
                Some((
                    EventType::Warning,
                    "BackOff".to_string(),
                    format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        self.name, self.namespace, self.uid
                    ),
                ))
            }
            _ if reason == "ImagePullBackOff" => {
                Some((EventType::Normal, "BackOff".to_string(), message.clone()))
            }
            _ => Some((
                EventType::Warning,
                "BackOff".to_string(),
                format!(
                    "Back-off restarting failed container {name} in pod {}_{}({})",
                    self.name, self.namespace, self.uid
                ),
            )),
        };
        record.phase = ContainerPhase::Waiting {
            reason: reason.into(),
            message,
        };
        if let Some((kind, event_reason, event_message)) = event {
            self.event(kind, &event_reason, &event_message).await;
            if reason == "ImagePullBackOff" {
                // As the kubelet: `kubectl describe` shows "Error: ImagePullBackOff" too.
                self.event(EventType::Warning, "Failed", &format!("Error: {reason}"))
                    .await;
            }
        }
    }

    /// Write the status if it differs from what was last written; false when the write failed.
    async fn write_status(&mut self) -> bool {
        let records = self.ordered_records();
        let previous: Vec<PodCondition> = self
            .last_written
            .as_ref()
            .and_then(|s| serde_json::from_value(s["conditions"].clone()).ok())
            .or_else(|| self.pod.status.as_ref().and_then(|s| s.conditions.clone()))
            .unwrap_or_default();
        let host_ip = self.ctx.node_ip.to_string();
        let inputs = StatusInputs {
            records: &records,
            pod_ip: self.sandbox_ip.as_deref(),
            host_ip: &host_ip,
            start_time: self.start_time,
            sandbox_ready: self.sandbox_ip.is_some(),
            previous_conditions: &previous,
            now: jiff::Timestamp::now(),
        };
        let status = compute(&self.pod, &inputs);
        if self.last_written.as_ref() == Some(&status) {
            return true;
        }
        match self.ctx.api.write_status(&self.pod, &status).await {
            Ok(()) => {
                self.last_written = Some(status);
                true
            }
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "could not write pod status");
                false
            }
        }
    }

    /// The agent is going away: leave containers running, stop watching them.
    fn abandon(&mut self) {
        for task in self
            .probe_tasks
            .drain()
            .flat_map(|(_, t)| t)
            .chain(self.exit_tasks.drain().map(|(_, t)| t))
        {
            task.abort();
        }
    }

    /// Stop the pod: when it is being deleted, mark it not ready and let traffic drain
    /// first; stop its containers, remove the sandbox, then finish the deletion.
    async fn terminate(&mut self, deleting: bool) {
        let names: Vec<String> = self.probe_tasks.keys().cloned().collect();
        for name in names {
            self.stop_probes(&name);
        }
        let grace = self.grace();
        let mut drained = Duration::ZERO;
        if deleting {
            let served = self.records.values().any(|r| r.ready && r.is_running());
            for record in self.records.values_mut() {
                record.ready = false;
            }
            self.write_status().await;
            if served {
                drained = self.ctx.drain_delay.min(grace);
                tokio::time::sleep(drained).await;
            }
        }
        let grace = grace.saturating_sub(drained);
        let running: Vec<ContainerId> = self
            .records
            .values()
            .filter(|r| r.is_running())
            .filter_map(|r| Some(self.id(&r.name, r.attempt?)))
            .collect();
        let mut stops = Vec::new();
        for id in running {
            self.event(
                EventType::Normal,
                "Killing",
                &format!("Stopping container {}", id.name),
            )
            .await;
            let runtime = self.ctx.runtime.clone();
            stops.push(tokio::spawn(
                async move { (runtime.stop(&id, grace).await, id) },
            ));
        }
        for stop in stops {
            if let Ok((Err(e), id)) = stop.await {
                tracing::warn!(container = %id, error = %e, "could not stop container");
            }
        }
        self.abandon();
        if let Err(e) = self.ctx.runtime.remove_sandbox(&self.uid).await {
            tracing::warn!(pod = %self.name, error = %e, "could not remove the sandbox");
        }
        self.ctx.logs.remove(&self.key());
        if deleting {
            for attempt in 1..=FINISH_DELETE_TRIES {
                match self.ctx.api.finish_delete(&self.pod).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(pod = %self.name, attempt, error = %e, "could not finish deleting the pod");
                        tokio::time::sleep(RETRY * attempt).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
