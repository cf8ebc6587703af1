//! The API server against the real kubectl (whichever version /usr/bin/kubectl picks for
//! the minor we report, and kubectl 1.33 by path): apply, re-apply (strategic merge patch),
//! get as a table, scale, validation errors, delete.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use podium_apiserver::{ApiConfig, ApiServer};

const KUBECTL: &str = "/usr/bin/kubectl";

struct Cluster {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn start() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = podium_store::RedbStore::open(dir.path().join("db"))
        .unwrap()
        .shared();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = ApiServer::new(
        Arc::new(store),
        ApiConfig {
            service_cidr: "10.43.0.0/16".into(),
            advertise_address: addr.to_string(),
        },
    );
    server.bootstrap().await.unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\ncurrent-context: t\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    Cluster { dir, kubeconfig }
}

impl Cluster {
    /// Run kubectl off the async runtime (the server runs on it).
    async fn kubectl(
        &self,
        binary: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (bool, String, String) {
        let mut cmd = Command::new(binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join(format!(
                "cache-{}",
                Path::new(binary).file_name().unwrap().to_string_lossy()
            )));
        cmd.args(args);
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            cmd.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = cmd
                .spawn()
                .expect("kubectl must be installed at /usr/bin/kubectl");
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            drop(child.stdin.take());
            let out = child.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }
}

const SAMPLE: &str = include_str!("../../../examples/sample-app.yaml");

async fn walkthrough(binary: &str) {
    let c = start().await;
    let (ok, out, err) = c.kubectl(binary, &["apply", "-f", "-"], Some(SAMPLE)).await;
    assert!(ok, "apply failed: {out}\n{err}");
    assert!(
        out.contains("deployment.apps/sample-app-deployment created"),
        "{out}"
    );
    assert!(
        out.contains("service/sample-app-loadbalancer created"),
        "{out}"
    );

    let v2 = SAMPLE.replace("image: sample-app:v1", "image: sample-app:v2").replace(
        "  replicas: 3\n",
        "  replicas: 3\n  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 3\n      maxUnavailable: 0\n",
    );
    let (ok, out, err) = c.kubectl(binary, &["apply", "-f", "-"], Some(&v2)).await;
    assert!(ok, "re-apply failed: {out}\n{err}");
    assert!(
        out.contains("deployment.apps/sample-app-deployment configured"),
        "{out}"
    );
    assert!(
        out.contains("service/sample-app-loadbalancer unchanged"),
        "{out}"
    );
    let (_, image, _) = c.kubectl(binary, &["get", "deploy", "sample-app-deployment", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.strategy.rollingUpdate.maxSurge} {.spec.template.spec.containers[0].env[0].value}"], None).await;
    assert_eq!(image, "sample-app:v2 3 production");

    let (ok, out, err) = c.kubectl(binary, &["get", "deployments"], None).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("NAME")
            && out.contains("READY")
            && out.contains("UP-TO-DATE")
            && out.contains("0/3"),
        "{out}"
    );
    let (ok, out, _) = c.kubectl(binary, &["get", "svc", "-o", "wide"], None).await;
    assert!(
        ok && out.contains("LoadBalancer")
            && out.contains("<pending>")
            && out.contains("80:3")
            && out.contains("app=sample-app-pods"),
        "{out}"
    );

    let (ok, out, err) = c
        .kubectl(
            binary,
            &["scale", "deployment/sample-app-deployment", "--replicas=5"],
            None,
        )
        .await;
    assert!(ok, "scale: {out}{err}");
    let (_, replicas, _) = c
        .kubectl(
            binary,
            &[
                "get",
                "deploy",
                "sample-app-deployment",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
        .await;
    assert_eq!(replicas, "5");

    let (ok, _, err) = c
        .kubectl(
            binary,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: Pod\nmetadata: {name: [oops\n"),
        )
        .await;
    assert!(!ok && err.contains("yaml"), "malformed YAML: {err}");
    let (ok, _, err) = c
        .kubectl(
            binary,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n"),
        )
        .await;
    assert!(
        !ok && err.contains("no matches for kind \"Widget\""),
        "unknown kind: {err}"
    );
    let (ok, _, err) = c
        .kubectl(
            binary,
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbogus: 1\n"),
        )
        .await;
    assert!(
        !ok && err.contains("unknown field \"bogus\""),
        "unknown field: {err}"
    );

    let (ok, out, err) = c
        .kubectl(binary, &["delete", "-f", "-"], Some(SAMPLE))
        .await;
    assert!(ok, "delete: {out}{err}");
    let (_, out, _) = c
        .kubectl(binary, &["get", "deploy,svc", "-o", "name"], None)
        .await;
    // Only the control plane's own Service is left.
    assert_eq!(out.trim(), "service/kubernetes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_app_manifest_with_the_dispatched_kubectl() {
    walkthrough(KUBECTL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_app_manifest_with_kubectl_1_33() {
    walkthrough("/usr/lib/google-cloud-sdk/bin/kubectl.1.33").await;
}
