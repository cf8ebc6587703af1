//! A mock runtime with failure knobs, in the style of Nomad's mock driver: images present
//! or missing, start errors, containers that exit after N ms with code X. Tests only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use podium_runtime::{
    ContainerId, ContainerInfo, ContainerSpec, ContainerState, ExitStatus, Recovered, Result,
    Runtime, RuntimeError, SandboxSpec, SandboxStatus, Stats,
};
use tokio::sync::watch;

/// How the containers of one name behave.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Exit this long after starting, with `exit_code`.
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    /// Fail this many starts before succeeding.
    pub failing_starts: u32,
}

struct Container {
    info: ContainerInfo,
    exit: watch::Sender<Option<ExitStatus>>,
    spec: Option<ContainerSpec>,
}

#[derive(Default)]
struct State {
    images: HashMap<String, String>,
    behaviours: HashMap<String, Behaviour>,
    sandboxes: BTreeMap<String, SandboxStatus>,
    containers: BTreeMap<ContainerId, Container>,
    calls: Vec<(tokio::time::Instant, String)>,
    removed: HashSet<ContainerId>,
}

pub struct MockRuntime {
    state: Mutex<State>,
    log_dir: tempfile::TempDir,
    /// The IP every sandbox gets: loopback, so probes in tests reach local listeners.
    pub ip: String,
}

impl MockRuntime {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(MockRuntime {
            state: Mutex::default(),
            log_dir: tempfile::tempdir().unwrap(),
            ip: "127.0.0.1".into(),
        })
    }

    pub fn add_image(&self, reference: &str) {
        self.state
            .lock()
            .unwrap()
            .images
            .insert(reference.into(), format!("sha256:{:0>64}", reference.len()));
    }

    pub fn behave(&self, container: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviours
            .insert(container.into(), behaviour);
    }

    /// Calls as `"<method> <argument>"`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// When the first call starting with `prefix` happened.
    pub fn call_time(&self, prefix: &str) -> Option<tokio::time::Instant> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .find(|(_, c)| c.starts_with(prefix))
            .map(|(t, _)| *t)
    }

    pub fn running(&self) -> Vec<ContainerId> {
        let state = self.state.lock().unwrap();
        state
            .containers
            .values()
            .filter(|c| {
                matches!(c.info.state, ContainerState::Running { .. }) && c.exit.borrow().is_none()
            })
            .map(|c| c.info.id.clone())
            .collect()
    }

    pub fn spec_of(&self, id: &ContainerId) -> Option<ContainerSpec> {
        self.state
            .lock()
            .unwrap()
            .containers
            .get(id)
            .and_then(|c| c.spec.clone())
    }

    /// Put a container in place as if a previous agent had started it.
    pub fn seed(&self, pod_uid: &str, name: &str, attempt: u32, image: &str, running: bool) {
        let id = ContainerId {
            pod_uid: pod_uid.into(),
            name: name.into(),
            attempt,
        };
        let started_at = jiff::Timestamp::now();
        let state = if running {
            ContainerState::Running {
                pid: 4242,
                started_at,
            }
        } else {
            ContainerState::Exited {
                started_at,
                exit: ExitStatus {
                    code: 1,
                    signal: None,
                    oom_killed: false,
                    finished_at: started_at,
                },
            }
        };
        let exit = match &state {
            ContainerState::Exited { exit, .. } => Some(exit.clone()),
            _ => None,
        };
        let info = ContainerInfo {
            id: id.clone(),
            image: image.into(),
            image_id: "sha256:seeded".into(),
            state,
            log_path: self
                .log_dir
                .path()
                .join(format!("{id}.log").replace('/', "_")),
        };
        let mut s = self.state.lock().unwrap();
        s.sandboxes.insert(
            pod_uid.into(),
            SandboxStatus {
                pod_uid: pod_uid.into(),
                ip: self.ip.clone(),
            },
        );
        s.containers.insert(
            id,
            Container {
                info,
                exit: watch::channel(exit).0,
                spec: None,
            },
        );
    }

    fn call(&self, call: String) {
        self.state
            .lock()
            .unwrap()
            .calls
            .push((tokio::time::Instant::now(), call));
    }

    fn finish(&self, id: &ContainerId, code: i32, signal: Option<i32>) {
        let mut state = self.state.lock().unwrap();
        if let Some(c) = state.containers.get_mut(id)
            && let ContainerState::Running { started_at, .. } = c.info.state
        {
            let exit = ExitStatus {
                code,
                signal,
                oom_killed: false,
                finished_at: jiff::Timestamp::now(),
            };
            c.info.state = ContainerState::Exited {
                started_at,
                exit: exit.clone(),
            };
            let _ = c.exit.send(Some(exit));
        }
    }
}

#[async_trait::async_trait]
impl Runtime for MockRuntime {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus> {
        self.call(format!("create_sandbox {}", spec.pod_uid));
        let mut state = self.state.lock().unwrap();
        let status = SandboxStatus {
            pod_uid: spec.pod_uid.clone(),
            ip: self.ip.clone(),
        };
        Ok(state
            .sandboxes
            .entry(spec.pod_uid.clone())
            .or_insert(status)
            .clone())
    }

    async fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        self.call(format!("remove_sandbox {pod_uid}"));
        let ids: Vec<ContainerId> = self
            .state
            .lock()
            .unwrap()
            .containers
            .keys()
            .filter(|id| id.pod_uid == pod_uid)
            .cloned()
            .collect();
        for id in ids {
            self.finish(&id, 137, Some(9));
            let mut state = self.state.lock().unwrap();
            state.containers.remove(&id);
            state.removed.insert(id);
        }
        self.state.lock().unwrap().sandboxes.remove(pod_uid);
        Ok(())
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        let id = ContainerId {
            pod_uid: spec.pod_uid.clone(),
            name: spec.name.clone(),
            attempt: spec.attempt,
        };
        self.call(format!("start {id}"));
        let info = {
            let mut state = self.state.lock().unwrap();
            if !state.sandboxes.contains_key(&spec.pod_uid) {
                return Err(RuntimeError::NotFound(format!("sandbox {}", spec.pod_uid)));
            }
            let Some(image_id) = state.images.get(&spec.image).cloned() else {
                return Err(RuntimeError::ImageNotFound(spec.image.clone()));
            };
            if state.containers.contains_key(&id) {
                return Err(RuntimeError::Invalid(format!(
                    "container {id} already exists"
                )));
            }
            let behaviour = state.behaviours.entry(spec.name.clone()).or_default();
            if behaviour.failing_starts > 0 {
                behaviour.failing_starts -= 1;
                return Err(RuntimeError::host(
                    "exec",
                    std::io::Error::other("mock start failure"),
                ));
            }
            let log_path: PathBuf = self.log_dir.path().join(format!(
                "{}_{}_{}.log",
                spec.pod_uid, spec.name, spec.attempt
            ));
            std::fs::write(&log_path, format!("attempt {}\n", spec.attempt)).unwrap();
            let info = ContainerInfo {
                id: id.clone(),
                image: spec.image.clone(),
                image_id,
                state: ContainerState::Running {
                    pid: 1000 + spec.attempt,
                    started_at: jiff::Timestamp::now(),
                },
                log_path,
            };
            state.containers.insert(
                id.clone(),
                Container {
                    info: info.clone(),
                    exit: watch::channel(None).0,
                    spec: Some(spec.clone()),
                },
            );
            info
        };
        let behaviour = self
            .state
            .lock()
            .unwrap()
            .behaviours
            .get(&spec.name)
            .cloned()
            .unwrap_or_default();
        if let Some(after) = behaviour.exit_after {
            let exit = self
                .state
                .lock()
                .unwrap()
                .containers
                .get(&id)
                .map(|c| c.exit.clone());
            if let Some(exit) = exit {
                // The exit is delivered through the channel the container was created with.
                let code = behaviour.exit_code;
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    exit.send_modify(|slot| {
                        if slot.is_none() {
                            *slot = Some(ExitStatus {
                                code,
                                signal: None,
                                oom_killed: false,
                                finished_at: jiff::Timestamp::now(),
                            });
                        }
                    });
                });
            }
        }
        Ok(info)
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        let mut receiver = {
            let state = self.state.lock().unwrap();
            state
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?
                .exit
                .subscribe()
        };
        let exit = receiver
            .wait_for(|e| e.is_some())
            .await
            .map_err(|_| RuntimeError::NotFound(id.to_string()))?
            .clone();
        exit.ok_or_else(|| RuntimeError::NotFound(id.to_string()))
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        self.call(format!("stop {id} {}", grace.as_secs()));
        self.finish(id, 143, Some(15));
        Ok(())
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let mut state = self.state.lock().unwrap();
        let c = state
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        // An exit signalled by a timed behaviour shows in the state once looked at.
        if let (ContainerState::Running { started_at, .. }, Some(exit)) =
            (&c.info.state, c.exit.borrow().clone())
        {
            c.info.state = ContainerState::Exited {
                started_at: *started_at,
                exit,
            };
        }
        Ok(c.info.clone())
    }

    async fn remove(&self, id: &ContainerId) -> Result<()> {
        self.call(format!("remove {id}"));
        let mut state = self.state.lock().unwrap();
        if let Some(c) = state.containers.get(id)
            && matches!(c.info.state, ContainerState::Running { .. })
            && c.exit.borrow().is_none()
        {
            return Err(RuntimeError::Invalid(format!("{id} is running")));
        }
        state.containers.remove(id);
        state.removed.insert(id.clone());
        Ok(())
    }

    async fn stats(&self, _id: &ContainerId) -> Result<Stats> {
        Ok(Stats::default())
    }

    async fn recover(&self) -> Result<Recovered> {
        let state = self.state.lock().unwrap();
        Ok(Recovered {
            sandboxes: state.sandboxes.values().cloned().collect(),
            containers: state.containers.values().map(|c| c.info.clone()).collect(),
        })
    }

    async fn image_id(&self, image: &str) -> Result<String> {
        self.state
            .lock()
            .unwrap()
            .images
            .get(image)
            .cloned()
            .ok_or_else(|| RuntimeError::ImageNotFound(image.into()))
    }
}

/// One request the fake API server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: serde_json::Value,
}

/// A `kube::Client` whose server answers from `respond(method, path, body)` with a status
/// code and a JSON body, and records every request.
pub fn fake_client(
    respond: impl Fn(&str, &str, &serde_json::Value) -> (u16, serde_json::Value) + Send + Sync + 'static,
) -> (kube::Client, std::sync::Arc<Mutex<Vec<Request>>>) {
    use http_body_util::BodyExt;
    let seen: std::sync::Arc<Mutex<Vec<Request>>> = std::sync::Arc::default();
    let (log, respond) = (seen.clone(), std::sync::Arc::new(respond));
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (log, respond) = (log.clone(), respond.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body: serde_json::Value =
                serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let (code, reply) = respond(parts.method.as_str(), &path, &body);
            log.lock().unwrap().push(Request {
                method: parts.method.to_string(),
                path,
                content_type,
                body,
            });
            let response = http::Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    reply.to_string(),
                )))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), seen)
}

/// The API's NotFound status.
pub fn not_found(what: &str) -> (u16, serde_json::Value) {
    (
        404,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}
