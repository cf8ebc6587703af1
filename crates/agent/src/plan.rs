//! The pod worker's decisions as a pure function: from the pod spec and what the worker
//! knows of each container (its record), decide what to do now and when to look again.
//! The worker applies the actions; nothing here does I/O or reads the clock.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodSpec;
use podium_runtime::ExitStatus;

/// Kubelet's back-off bounds (`pkg/kubelet/kubelet.go`: `backOffPeriod`, `MaxContainerBackOff`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One back-off entry as client-go's `flowcontrol.Backoff` keeps it: the current delay and
/// when it was last raised. Used for crash restarts and for image pulls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub delay: Duration,
    pub last_update: jiff::Timestamp,
}

fn elapsed(from: jiff::Timestamp, to: jiff::Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    if nanos <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(nanos.min(u64::MAX as i128) as u64)
    }
}

impl Backoff {
    /// An entry is forgotten when the event came more than twice the maximum after the
    /// last raise: a container that ran ten minutes starts over at no delay.
    fn expired(&self, event: jiff::Timestamp) -> bool {
        elapsed(self.last_update, event) > MAX_BACKOFF * 2
    }

    /// How much longer to wait after `event` (e.g. the container's exit), or `None` when
    /// not backing off (`IsInBackOffSince`).
    pub fn remaining(
        entry: Option<&Backoff>,
        event: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Option<Duration> {
        let entry = entry?;
        if entry.expired(event) {
            return None;
        }
        entry
            .delay
            .checked_sub(elapsed(event, now))
            .filter(|d| !d.is_zero())
    }

    /// Raise the delay when acting at `now` (`Next`): 10 s, doubling, at most 5 min.
    pub fn next(entry: Option<&Backoff>, now: jiff::Timestamp) -> Backoff {
        let delay = match entry {
            Some(e) if !e.expired(now) => (e.delay * 2).min(MAX_BACKOFF),
            _ => INITIAL_BACKOFF,
        };
        Backoff {
            delay,
            last_update: now,
        }
    }

    /// The entry a container that has restarted `restarts` times would have: how the
    /// agent resumes back-off for a container it re-adopts after a restart.
    pub fn after_restarts(restarts: i32, last_update: jiff::Timestamp) -> Option<Backoff> {
        (restarts > 0).then(|| {
            let exp = (restarts - 1).clamp(0, 16) as u32;
            Backoff {
                delay: (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF),
                last_update,
            }
        })
    }
}

/// How an attempt of a container ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub started_at: jiff::Timestamp,
    pub exit: ExitStatus,
    /// The attempt that ended, for its container ID.
    pub attempt: u32,
}

/// What one container is doing, as the worker tracks it.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerPhase {
    /// No process: not started yet, image missing, start failed, or backing off.
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    Terminated(Terminated),
}

/// The worker's record of one container of the pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    /// The latest attempt actually started; `None` before the first start.
    pub attempt: Option<u32>,
    pub restart_count: i32,
    pub phase: ContainerPhase,
    /// How the previous attempt ended (`lastState`).
    pub last: Option<Terminated>,
    /// The readiness verdict: true once started without a readiness probe.
    pub ready: bool,
    /// The liveness probe has failed past its threshold for the running attempt.
    pub liveness_failed: bool,
    /// When the last start failed (a start error backs off like a crash).
    pub start_failed_at: Option<jiff::Timestamp>,
    pub crash_backoff: Option<Backoff>,
    pub pull_backoff: Option<Backoff>,
}

impl ContainerRecord {
    /// A container never started: waiting in `ContainerCreating`, as `kubectl get` shows it.
    pub fn new(name: &str, image: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            attempt: None,
            restart_count: 0,
            phase: ContainerPhase::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last: None,
            ready: false,
            liveness_failed: false,
            start_failed_at: None,
            crash_backoff: None,
            pull_backoff: None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.phase, ContainerPhase::Running { .. })
    }

    /// The attempt number the next start uses.
    pub fn next_attempt(&self) -> u32 {
        self.attempt.map_or(0, |a| a + 1)
    }

    /// The restart count the next start reports: the first start is not a restart.
    pub fn next_restart_count(&self) -> i32 {
        if self.attempt.is_some() {
            self.restart_count + 1
        } else {
            self.restart_count
        }
    }
}

/// Why the worker kills a running container.
#[derive(Debug, Clone, PartialEq)]
pub enum KillReason {
    LivenessFailed,
    /// The container's image in the pod spec changed (pods allow `kubectl set image`).
    SpecChanged,
}

/// One step for the worker to take.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create (or look up) the pod's sandbox; containers wait for it.
    CreateSandbox,
    /// Start the next attempt of a container (after removing the previous attempt).
    Start { name: String },
    /// Stop a running container; its exit is then handled like any other.
    Kill { name: String, reason: KillReason },
    /// Leave the container waiting with this reason until the back-off ends.
    Wait {
        name: String,
        reason: &'static str,
        message: String,
    },
}

/// The decisions of one sync.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The earliest moment something changes without an outside event (a back-off ends).
    pub wake_after: Option<Duration>,
}

impl Plan {
    fn wake(&mut self, after: Duration) {
        self.wake_after = Some(self.wake_after.map_or(after, |w| w.min(after)));
    }
}

/// Whether a container that exited with `code` is restarted under `policy`.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// The restart policy, defaulted as the API server does.
pub fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// Decide what to do for the pod now. `records` holds one entry per spec container the
/// worker has seen (missing entries count as never started); `sandbox_ready` says whether
/// the sandbox exists. A pod in a terminal phase is left alone.
pub fn plan(
    spec: &PodSpec,
    records: &[ContainerRecord],
    sandbox_ready: bool,
    pod_name: &str,
    now: jiff::Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    if !sandbox_ready {
        plan.actions.push(Action::CreateSandbox);
        return plan;
    }
    let policy = restart_policy(spec);
    let ordered: Vec<ContainerRecord> = spec
        .containers
        .iter()
        .map(|c| {
            records
                .iter()
                .find(|r| r.name == c.name)
                .cloned()
                .unwrap_or_else(|| {
                    ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default())
                })
        })
        .collect();
    if matches!(
        crate::status::phase(policy, &ordered),
        "Succeeded" | "Failed"
    ) {
        return plan;
    }
    for (container, record) in spec.containers.iter().zip(&ordered) {
        let name = container.name.clone();
        let image = container.image.as_deref().unwrap_or_default();
        match &record.phase {
            ContainerPhase::Running { .. } => {
                if record.liveness_failed {
                    plan.actions.push(Action::Kill {
                        name,
                        reason: KillReason::LivenessFailed,
                    });
                } else if record.image != image {
                    plan.actions.push(Action::Kill {
                        name,
                        reason: KillReason::SpecChanged,
                    });
                }
            }
            ContainerPhase::Terminated(t) if !should_restart(policy, t.exit.code) => {}
            phase => {
                // The event a crash back-off counts from: the last exit, or a failed start.
                let crash_event = match phase {
                    ContainerPhase::Terminated(t) => Some(t.exit.finished_at),
                    _ => record.start_failed_at.or_else(|| {
                        record
                            .last
                            .as_ref()
                            .filter(|_| record.attempt.is_some())
                            .map(|t| t.exit.finished_at)
                    }),
                };
                let pull_wait = record
                    .pull_backoff
                    .as_ref()
                    .and_then(|b| Backoff::remaining(Some(b), b.last_update, now));
                let crash_wait = crash_event.and_then(|event| {
                    Backoff::remaining(record.crash_backoff.as_ref(), event, now)
                });
                if let Some(wait) = pull_wait {
                    plan.wake(wait);
                    plan.actions.push(Action::Wait {
                        name,
                        reason: "ImagePullBackOff",
                        message: format!("Back-off pulling image \"{image}\""),
                    });
                } else if let Some(wait) = crash_wait {
                    plan.wake(wait);
                    let delay = record.crash_backoff.map(|b| b.delay).unwrap_or_default();
                    plan.actions.push(Action::Wait {
                        name: name.clone(),
                        reason: "CrashLoopBackOff",
                        message: format!(
                            "back-off {} restarting failed container={name} pod={pod_name}",
                            human(delay)
                        ),
                    });
                } else {
                    plan.actions.push(Action::Start { name });
                }
            }
        }
    }
    plan
}

/// Go's `time.Duration.String()` for whole seconds, as kubelet messages show back-offs.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn spec(policy: &str, names: &[&str]) -> PodSpec {
        let containers: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "image": "app:v1"}))
            .collect();
        serde_json::from_value(json!({"restartPolicy": policy, "containers": containers})).unwrap()
    }

    fn exited(name: &str, code: i32, started: i64, finished: i64, attempt: u32) -> ContainerRecord {
        let mut r = ContainerRecord::new(name, "app:v1");
        r.attempt = Some(attempt);
        r.phase = ContainerPhase::Terminated(Terminated {
            started_at: t(started),
            exit: ExitStatus {
                code,
                signal: None,
                oom_killed: false,
                finished_at: t(finished),
            },
            attempt,
        });
        r
    }

    fn running(name: &str) -> ContainerRecord {
        let mut r = ContainerRecord::new(name, "app:v1");
        r.attempt = Some(0);
        r.phase = ContainerPhase::Running { started_at: t(0) };
        r
    }

    #[test]
    fn backoff_follows_client_go() {
        // First restart at once, then 10 s doubling to 5 min.
        assert_eq!(Backoff::remaining(None, t(0), t(0)), None);
        let mut entry = Backoff::next(None, t(0));
        assert_eq!(entry.delay, Duration::from_secs(10));
        assert_eq!(
            Backoff::remaining(Some(&entry), t(1), t(5)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(Backoff::remaining(Some(&entry), t(1), t(11)), None);
        for expected in [20, 40, 80, 160, 300, 300] {
            entry = Backoff::next(Some(&entry), entry.last_update);
            assert_eq!(entry.delay.as_secs(), expected);
        }
        // An exit more than 10 minutes after the last restart forgets the back-off.
        let raised = Backoff {
            delay: MAX_BACKOFF,
            last_update: t(0),
        };
        assert_eq!(Backoff::remaining(Some(&raised), t(601), t(601)), None);
        assert_eq!(Backoff::next(Some(&raised), t(601)).delay, INITIAL_BACKOFF);
        assert_eq!(Backoff::after_restarts(0, t(0)), None);
        assert_eq!(
            Backoff::after_restarts(3, t(0)).unwrap().delay.as_secs(),
            40
        );
        assert_eq!(
            Backoff::after_restarts(30, t(0)).unwrap().delay,
            MAX_BACKOFF
        );
    }

    #[test]
    fn sandbox_comes_first_then_every_container_in_order() {
        let s = spec("Always", &["a", "b"]);
        assert_eq!(
            plan(&s, &[], false, "p", t(0)).actions,
            vec![Action::CreateSandbox]
        );
        assert_eq!(
            plan(&s, &[], true, "p", t(0)).actions,
            vec![
                Action::Start { name: "a".into() },
                Action::Start { name: "b".into() }
            ]
        );
        assert_eq!(
            plan(&s, &[running("a"), running("b")], true, "p", t(0)),
            Plan::default()
        );
    }

    #[test]
    fn restart_policies_decide_restarts() {
        assert!(should_restart("Always", 0));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 2));
        // Never: the failed container stays down; the other keeps running.
        let s = spec("Never", &["a", "b"]);
        assert_eq!(
            plan(
                &s,
                &[exited("a", 1, 0, 1, 0), running("b")],
                true,
                "p",
                t(2)
            )
            .actions,
            vec![]
        );
        // OnFailure: a failure restarts, a success does not.
        let s = spec("OnFailure", &["a"]);
        assert_eq!(
            plan(&s, &[exited("a", 1, 0, 1, 0)], true, "p", t(2)).actions,
            vec![Action::Start { name: "a".into() }]
        );
        assert_eq!(
            plan(&s, &[exited("a", 0, 0, 1, 0)], true, "p", t(2)).actions,
            vec![]
        );
        // Always restarts even a success.
        let s = spec("Always", &["a"]);
        assert_eq!(
            plan(&s, &[exited("a", 0, 0, 1, 0)], true, "p", t(2)).actions,
            vec![Action::Start { name: "a".into() }]
        );
    }

    #[test]
    fn crash_loops_back_off() {
        let s = spec("Always", &["a"]);
        let mut r = exited("a", 1, 0, 20, 1);
        r.restart_count = 1;
        r.crash_backoff = Some(Backoff {
            delay: Duration::from_secs(10),
            last_update: t(15),
        });
        let p = plan(&s, std::slice::from_ref(&r), true, "p", t(23));
        assert_eq!(
            p.actions,
            vec![Action::Wait {
                name: "a".into(),
                reason: "CrashLoopBackOff",
                message: "back-off 10s restarting failed container=a pod=p".into()
            }]
        );
        assert_eq!(p.wake_after, Some(Duration::from_secs(7)));
        // Still backing off while already waiting (the phase is then Waiting with lastState).
        r.last = match r.phase.clone() {
            ContainerPhase::Terminated(t) => Some(t),
            _ => None,
        };
        r.phase = ContainerPhase::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: String::new(),
        };
        assert_eq!(
            plan(&s, std::slice::from_ref(&r), true, "p", t(29)).wake_after,
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            plan(&s, std::slice::from_ref(&r), true, "p", t(30)).actions,
            vec![Action::Start { name: "a".into() }]
        );
    }

    #[test]
    fn missing_images_back_off_then_retry() {
        let s = spec("Always", &["a"]);
        let mut r = ContainerRecord::new("a", "app:v1");
        r.phase = ContainerPhase::Waiting {
            reason: "ErrImagePull".into(),
            message: "not found".into(),
        };
        r.pull_backoff = Some(Backoff::next(None, t(0)));
        let p = plan(&s, std::slice::from_ref(&r), true, "p", t(4));
        assert_eq!(
            p.actions,
            vec![Action::Wait {
                name: "a".into(),
                reason: "ImagePullBackOff",
                message: "Back-off pulling image \"app:v1\"".into()
            }]
        );
        assert_eq!(p.wake_after, Some(Duration::from_secs(6)));
        assert_eq!(
            plan(&s, &[r], true, "p", t(10)).actions,
            vec![Action::Start { name: "a".into() }]
        );
    }

    #[test]
    fn start_failures_back_off_like_crashes() {
        let s = spec("Always", &["a"]);
        let mut r = ContainerRecord::new("a", "app:v1");
        r.phase = ContainerPhase::Waiting {
            reason: "RunContainerError".into(),
            message: "bad".into(),
        };
        r.start_failed_at = Some(t(0));
        r.crash_backoff = Some(Backoff::next(None, t(0)));
        assert!(matches!(
            plan(&s, std::slice::from_ref(&r), true, "p", t(3)).actions[0],
            Action::Wait {
                reason: "CrashLoopBackOff",
                ..
            }
        ));
        assert_eq!(
            plan(&s, &[r], true, "p", t(10)).actions,
            vec![Action::Start { name: "a".into() }]
        );
    }

    #[test]
    fn liveness_failures_and_image_changes_kill() {
        let s = spec("Always", &["a"]);
        let mut r = running("a");
        r.liveness_failed = true;
        assert_eq!(
            plan(&s, &[r], true, "p", t(0)).actions,
            vec![Action::Kill {
                name: "a".into(),
                reason: KillReason::LivenessFailed
            }]
        );
        let mut r = running("a");
        r.image = "app:v0".into();
        assert_eq!(
            plan(&s, &[r], true, "p", t(0)).actions,
            vec![Action::Kill {
                name: "a".into(),
                reason: KillReason::SpecChanged
            }]
        );
    }

    #[test]
    fn terminal_pods_are_left_alone() {
        let s = spec("OnFailure", &["a", "b"]);
        assert_eq!(
            plan(
                &s,
                &[exited("a", 0, 0, 1, 0), exited("b", 0, 0, 1, 0)],
                true,
                "p",
                t(5)
            ),
            Plan::default()
        );
        let s = spec("Never", &["a"]);
        assert_eq!(
            plan(&s, &[exited("a", 3, 0, 1, 0)], true, "p", t(5)),
            Plan::default()
        );
    }

    #[test]
    fn attempts_and_restart_counts() {
        let fresh = ContainerRecord::new("a", "i");
        assert_eq!((fresh.next_attempt(), fresh.next_restart_count()), (0, 0));
        let mut r = exited("a", 1, 0, 1, 4);
        r.restart_count = 4;
        assert_eq!((r.next_attempt(), r.next_restart_count()), (5, 5));
        assert_eq!(human(Duration::from_secs(300)), "5m0s");
    }
}
