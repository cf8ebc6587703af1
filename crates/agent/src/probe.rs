//! Readiness and liveness probes: the pod spec's probe parsed with kubelet's defaults, the
//! success/failure threshold counting (pure), and one httpGet or tcpSocket check run from
//! the node against the pod IP.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use crate::error::AgentError;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `GET http://<host or pod IP>:<port><path>`; 200–399 passes.
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// A TCP connection that opens passes.
    Tcp { host: Option<String>, port: u16 },
}

/// A probe with kubelet's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub check: Check,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, AgentError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| AgentError::InvalidProbe(format!("port {n} out of range"))),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    AgentError::InvalidProbe(format!("no container port named {name:?}"))
                })
        }
    }
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
}

/// Parse a probe. Exec and gRPC probes, and HTTPS, are rejected with `InvalidProbe`: the
/// runtime has no exec yet and the agent carries no TLS client.
pub fn parse(probe: &Probe, container: &Container) -> Result<ProbeSpec, AgentError> {
    let ports = container.ports.as_deref().unwrap_or_default();
    let check = if let Some(http) = &probe.http_get {
        if http
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
        {
            return Err(AgentError::InvalidProbe(
                "HTTPS probes are not supported yet".into(),
            ));
        }
        let path = http.path.clone().unwrap_or_default();
        Check::Http {
            host: http.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(&http.port, ports)?,
            path: if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            },
            headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        }
    } else if let Some(tcp) = &probe.tcp_socket {
        Check::Tcp {
            host: tcp.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(&tcp.port, ports)?,
        }
    } else if probe.exec.is_some() {
        return Err(AgentError::InvalidProbe(
            "exec probes are not supported yet".into(),
        ));
    } else if probe.grpc.is_some() {
        return Err(AgentError::InvalidProbe(
            "gRPC probes are not supported yet".into(),
        ));
    } else {
        return Err(AgentError::InvalidProbe("the probe has no handler".into()));
    };
    Ok(ProbeSpec {
        check,
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
    })
}

/// Counts consecutive results and flips the verdict when a threshold is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    verdict: bool,
}

impl Tracker {
    /// `initial` is the verdict before any result: readiness starts failed, liveness passed.
    pub fn new(spec: &ProbeSpec, initial: bool) -> Self {
        Tracker {
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
            successes: 0,
            failures: 0,
            verdict: initial,
        }
    }

    /// Count one result; the new verdict when it changed.
    pub fn observe(&mut self, passed: bool) -> Option<bool> {
        if passed {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let verdict = if self.successes >= self.success_threshold {
            true
        } else if self.failures >= self.failure_threshold {
            false
        } else {
            self.verdict
        };
        (verdict != self.verdict).then(|| {
            self.verdict = verdict;
            verdict
        })
    }
}

async fn target(host: &Option<String>, pod_ip: IpAddr, port: u16) -> Result<TcpStream, String> {
    match host {
        Some(host) => TcpStream::connect((host.as_str(), port)).await,
        None => TcpStream::connect((pod_ip, port)).await,
    }
    .map_err(|e| {
        format!(
            "dial tcp {}:{port}: {e}",
            host.clone().unwrap_or_else(|| pod_ip.to_string())
        )
    })
}

async fn http_get(
    host: &Option<String>,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    pod_ip: IpAddr,
) -> Result<(), String> {
    let stream = target(host, pod_ip, port).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let authority = format!(
        "{}:{port}",
        host.clone().unwrap_or_else(|| pod_ip.to_string())
    );
    let mut request = http::Request::get(path)
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .header(http::header::ACCEPT, "*/*");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header(http::header::HOST, authority);
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    driver.abort();
    let status = result?.status();
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!(
            "HTTP probe failed with statuscode: {}",
            status.as_u16()
        ))
    }
}

/// Run a check once within the probe's timeout: `Ok` passes, `Err` says why not.
pub async fn run_once(spec: &ProbeSpec, pod_ip: IpAddr) -> Result<(), String> {
    let attempt = async {
        match &spec.check {
            Check::Tcp { host, port } => target(host, pod_ip, *port).await.map(drop),
            Check::Http {
                host,
                port,
                path,
                headers,
            } => http_get(host, *port, path, headers, pod_ip).await,
        }
    };
    match tokio::time::timeout(spec.timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", spec.timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn container(ports: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "ports": ports})).unwrap()
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parse_applies_kubelet_defaults_and_named_ports() {
        let c = container(json!([{"name": "http", "containerPort": 8080}]));
        let spec = parse(&probe(json!({"httpGet": {"path": "healthz", "port": "http", "httpHeaders": [{"name": "X-A", "value": "1"}]}})), &c).unwrap();
        assert_eq!(
            spec.check,
            Check::Http {
                host: None,
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-A".into(), "1".into())]
            }
        );
        assert_eq!(
            (spec.initial_delay, spec.period, spec.timeout),
            (
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(1)
            )
        );
        assert_eq!((spec.success_threshold, spec.failure_threshold), (1, 3));
        let spec = parse(
            &probe(json!({"tcpSocket": {"port": 53}, "initialDelaySeconds": 2, "periodSeconds": 1, "timeoutSeconds": 3, "successThreshold": 2, "failureThreshold": 5})),
            &c,
        )
        .unwrap();
        assert_eq!(
            spec.check,
            Check::Tcp {
                host: None,
                port: 53
            }
        );
        assert_eq!(
            (
                spec.initial_delay.as_secs(),
                spec.period.as_secs(),
                spec.timeout.as_secs()
            ),
            (2, 1, 3)
        );
        assert_eq!((spec.success_threshold, spec.failure_threshold), (2, 5));
        assert!(matches!(
            parse(&probe(json!({"tcpSocket": {"port": "nope"}})), &c),
            Err(AgentError::InvalidProbe(_))
        ));
        assert!(matches!(
            parse(&probe(json!({"tcpSocket": {"port": 70000}})), &c),
            Err(AgentError::InvalidProbe(_))
        ));
        assert!(matches!(
            parse(&probe(json!({"exec": {"command": ["true"]}})), &c),
            Err(AgentError::InvalidProbe(_))
        ));
        assert!(matches!(
            parse(&probe(json!({})), &c),
            Err(AgentError::InvalidProbe(_))
        ));
    }

    #[test]
    fn thresholds_flip_the_verdict() {
        let spec = ProbeSpec {
            check: Check::Tcp {
                host: None,
                port: 1,
            },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 3,
        };
        let mut readiness = Tracker::new(&spec, false);
        assert_eq!(readiness.observe(true), None);
        assert_eq!(readiness.observe(true), Some(true));
        assert_eq!(readiness.observe(true), None);
        assert_eq!(readiness.observe(false), None);
        assert_eq!(readiness.observe(false), None);
        assert_eq!(readiness.observe(true), None);
        assert_eq!(readiness.observe(false), None);
        assert_eq!(readiness.observe(false), None);
        assert_eq!(readiness.observe(false), Some(false));
    }

    #[tokio::test]
    async fn tcp_and_http_checks_against_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let reply = if request.starts_with("GET /healthy") && request.contains("kube-probe")
                {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                } else if request.starts_with("GET /moved") {
                    "HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let c = container(json!([{"name": "http", "containerPort": port}]));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let http = |path: &str| {
            parse(
                &probe(json!({"httpGet": {"path": path, "port": "http"}})),
                &c,
            )
            .unwrap()
        };
        assert_eq!(run_once(&http("/healthy"), ip).await, Ok(()));
        assert_eq!(run_once(&http("/moved"), ip).await, Ok(()));
        assert_eq!(
            run_once(&http("/sick"), ip).await,
            Err("HTTP probe failed with statuscode: 500".into())
        );
        server.await.unwrap();
        let tcp = parse(&probe(json!({"tcpSocket": {"port": port}})), &c).unwrap();
        // The listener is gone now: connection refused.
        assert!(run_once(&tcp, ip).await.is_err());
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = parse(
            &probe(json!({"tcpSocket": {"port": open.local_addr().unwrap().port()}})),
            &c,
        )
        .unwrap();
        assert_eq!(run_once(&tcp, ip).await, Ok(()));
    }

    #[tokio::test]
    async fn a_hanging_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = tokio::spawn(async move {
            let (_s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let c = container(json!([]));
        let spec = parse(
            &probe(json!({"httpGet": {"path": "/", "port": port}, "timeoutSeconds": 1})),
            &c,
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert!(
            run_once(&spec, "127.0.0.1".parse().unwrap())
                .await
                .unwrap_err()
                .contains("timed out")
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
