//! The three things a pod worker asks of the API server, behind a trait so the worker is
//! tested without one: write the pod's status, record an event, finish the deletion.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::error::AgentError;
use podium_client::events::{EventType, Recorder, Reporter};

/// The API calls of a pod worker.
#[async_trait::async_trait]
pub trait PodApi: Send + Sync + 'static {
    /// Write `status` through `pods/<name>/status`.
    async fn write_status(&self, pod: &Pod, status: &Value) -> Result<(), AgentError>;
    /// Record an event about the pod; failures are logged, not returned.
    async fn event(&self, pod: &Pod, kind: EventType, reason: &str, message: &str);
    /// Remove the pod object now that its containers are gone: `DELETE` with grace 0 and a
    /// UID precondition, so a new pod of the same name is never deleted by mistake.
    async fn finish_delete(&self, pod: &Pod) -> Result<(), AgentError>;
}

/// [`PodApi`] over a `kube::Client`.
pub struct KubePodApi {
    client: Client,
    recorder: Recorder,
}

impl KubePodApi {
    pub fn new(client: Client, node_name: &str) -> Self {
        KubePodApi {
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    component: "kubelet".into(),
                    host: Some(node_name.to_string()),
                },
            ),
            client,
        }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            &pod.namespace().unwrap_or_else(|| "default".into()),
        )
    }
}

#[async_trait::async_trait]
impl PodApi for KubePodApi {
    async fn write_status(&self, pod: &Pod, status: &Value) -> Result<(), AgentError> {
        // A merge patch replaces lists whole (conditions, containerStatuses), which is what
        // a full status wants, and needs no resourceVersion, so it cannot conflict.
        let patch = serde_json::json!({ "status": status });
        self.api(pod)
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn event(&self, pod: &Pod, kind: EventType, reason: &str, message: &str) {
        self.recorder.record(pod, kind, reason, message);
    }

    async fn finish_delete(&self, pod: &Pod) -> Result<(), AgentError> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api(pod).delete(&pod.name_any(), &params).await {
            Ok(_) => Ok(()),
            // Already gone, or a new pod took the name: nothing left to finish.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{fake_client, not_found};
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "resourceVersion": "4"}})).unwrap()
    }

    #[tokio::test]
    async fn status_events_and_the_final_delete_hit_the_right_endpoints() {
        let (client, seen) = fake_client(|method, path, body| match (method, path) {
            ("PATCH", p) if p.starts_with("/api/v1/namespaces/prod/pods/web/status") => (
                200,
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}}),
            ),
            ("POST", p) if p.starts_with("/api/v1/namespaces/prod/events") => (201, body.clone()),
            ("PATCH", p) if p.starts_with("/api/v1/namespaces/prod/events/") => (
                200,
                json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"}, "involvedObject": {}}),
            ),
            ("DELETE", "/api/v1/namespaces/prod/pods/web?")
            | ("DELETE", "/api/v1/namespaces/prod/pods/web") => not_found("pods \"web\""),
            _ => (500, json!({})),
        });
        let api = KubePodApi::new(client, "node-a");
        api.write_status(&pod(), &json!({"phase": "Running"}))
            .await
            .unwrap();
        api.event(&pod(), EventType::Normal, "Started", "Started container a")
            .await;
        api.event(&pod(), EventType::Normal, "Started", "Started container a")
            .await;
        api.recorder.flush().await;
        // Already gone (404) counts as done.
        api.finish_delete(&pod()).await.unwrap();

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0].content_type, "application/merge-patch+json");
        assert_eq!(seen[0].body, json!({"status": {"phase": "Running"}}));
        assert_eq!(
            (seen[1].method.as_str(), seen[1].body["reason"].as_str()),
            ("POST", Some("Started"))
        );
        assert_eq!(seen[1].body["involvedObject"]["uid"], "u1");
        assert_eq!(seen[1].body["source"]["host"], "node-a");
        // The repeat bumps the count of the first event instead of creating another.
        let name = seen[1].body["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with("web."));
        assert_eq!(seen[2].method, "PATCH");
        assert!(seen[2].path.contains(&name));
        assert_eq!(seen[2].body["count"], 2);
        assert_eq!(seen[3].method, "DELETE");
        assert_eq!(seen[3].body["gracePeriodSeconds"], 0);
        assert_eq!(seen[3].body["preconditions"]["uid"], "u1");
    }

    #[tokio::test]
    async fn a_failed_delete_is_an_error() {
        let (client, _) = fake_client(|_, _, _| {
            (
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "boom", "reason": "InternalError", "code": 500}),
            )
        });
        assert!(
            KubePodApi::new(client, "n")
                .finish_delete(&pod())
                .await
                .is_err()
        );
    }
}
