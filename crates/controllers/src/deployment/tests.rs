//! The deployment sync run against an in-memory cluster: ReplicaSets whose pods start,
//! become ready a step later and go when scaled down, as the ReplicaSet controller and
//! the node agent would make them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::util::*;
use super::*;

#[derive(Clone, Debug)]
struct SimPod {
    /// Steps until ready; 0 is ready.
    warming: u32,
}

#[derive(Default)]
struct Cluster {
    deployment: Deployment,
    replicasets: Vec<ReplicaSet>,
    pods: BTreeMap<String, Vec<SimPod>>,
    events: Vec<String>,
    version: u64,
    clock: i64,
    /// Refresh each ReplicaSet's status only every third step, like a slow controller.
    lagging_status: bool,
    /// Pods started so far; staggers how long each takes to become ready.
    started: u32,
}

fn conflict() -> Error {
    Error::Api {
        action: "update".into(),
        source: kube::Error::Api(
            kube::core::Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        ),
    }
}

#[async_trait]
impl Ops for Cluster {
    async fn create_replicaset(&mut self, rs: &ReplicaSet) -> Result<Option<ReplicaSet>, Error> {
        if self
            .replicasets
            .iter()
            .any(|r| r.metadata.name == rs.metadata.name)
        {
            return Ok(None);
        }
        let mut created = rs.clone();
        self.version += 1;
        self.clock += 1;
        created.metadata.uid = rs.metadata.name.clone();
        created.metadata.resource_version = Some(self.version.to_string());
        created.metadata.generation = Some(1);
        created.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(self.clock).unwrap()));
        self.replicasets.push(created.clone());
        Ok(Some(created))
    }

    async fn get_replicaset(
        &mut self,
        _namespace: &str,
        name: &str,
    ) -> Result<Option<ReplicaSet>, Error> {
        Ok(self
            .replicasets
            .iter()
            .find(|r| r.name_any() == name)
            .cloned())
    }

    async fn update_replicaset(&mut self, rs: &ReplicaSet) -> Result<ReplicaSet, Error> {
        self.version += 1;
        let version = self.version;
        let current = self
            .replicasets
            .iter_mut()
            .find(|r| r.metadata.name == rs.metadata.name)
            .ok_or_else(conflict)?;
        if current.metadata.resource_version != rs.metadata.resource_version {
            return Err(conflict());
        }
        if current.spec != rs.spec {
            *current.metadata.generation.get_or_insert(0) += 1;
        }
        current.spec = rs.spec.clone();
        current.metadata.annotations = rs.metadata.annotations.clone();
        current.metadata.resource_version = Some(version.to_string());
        Ok(current.clone())
    }

    async fn delete_replicaset(&mut self, rs: &ReplicaSet) -> Result<(), Error> {
        self.replicasets
            .retain(|r| r.metadata.name != rs.metadata.name);
        Ok(())
    }

    async fn set_deployment_revision(
        &mut self,
        _d: &Deployment,
        revision: &str,
    ) -> Result<(), Error> {
        self.deployment
            .annotations_mut()
            .insert(REVISION.into(), revision.into());
        Ok(())
    }

    async fn update_status(
        &mut self,
        _d: &Deployment,
        status: &DeploymentStatus,
    ) -> Result<(), Error> {
        self.deployment.status = Some(status.clone());
        Ok(())
    }

    fn event(&mut self, _d: &Deployment, _type: EventType, reason: &str, message: &str) {
        self.events.push(format!("{reason}: {message}"));
    }
}

fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap()
}

fn rolling(surge: i32, unavailable: i32) -> serde_json::Value {
    serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

impl Cluster {
    fn new(d: Deployment) -> Self {
        Cluster {
            deployment: d,
            ..Default::default()
        }
    }

    /// One deployment sync over a snapshot of the "cache".
    async fn sync(&mut self) {
        let snapshot: Vec<Arc<ReplicaSet>> =
            self.replicasets.iter().cloned().map(Arc::new).collect();
        let mut work = Work::new(self.deployment.clone());
        let pods: Vec<Arc<Pod>> = Vec::new();
        // A conflict is retried on the next step, as the controller's error policy would.
        match sync_deployment(&mut work, &snapshot, &pods, self).await {
            Ok(()) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => panic!("sync failed: {e}"),
        }
    }

    /// The ReplicaSet controller and the node agent: pods appear (not ready), warm up,
    /// and are removed not-ready-first when a ReplicaSet shrinks.
    fn run_pods(&mut self, step: u32) {
        let started = &mut self.started;
        for (index, rs) in self.replicasets.iter_mut().enumerate() {
            let pods = self.pods.entry(rs.name_any()).or_default();
            for p in pods.iter_mut() {
                p.warming = p.warming.saturating_sub(1);
            }
            let wanted = replicas_of(rs) as usize;
            while pods.len() < wanted {
                *started += 1;
                pods.push(SimPod {
                    warming: 1 + *started % 3,
                });
            }
            while pods.len() > wanted {
                let victim = pods
                    .iter()
                    .rposition(|p| p.warming > 0)
                    .unwrap_or(pods.len() - 1);
                pods.remove(victim);
            }
            // Out of phase per ReplicaSet, so one's status can be stale while another's is fresh.
            if !self.lagging_status || (step as usize + index).is_multiple_of(3) {
                let ready = pods.iter().filter(|p| p.warming == 0).count() as i32;
                rs.status = Some(ReplicaSetStatus {
                    replicas: pods.len() as i32,
                    ready_replicas: Some(ready),
                    available_replicas: Some(ready),
                    observed_generation: rs.metadata.generation,
                    ..Default::default()
                });
            }
        }
    }

    fn ready_pods(&self) -> usize {
        self.pods
            .values()
            .flatten()
            .filter(|p| p.warming == 0)
            .count()
    }

    fn total_pods(&self) -> usize {
        self.pods.values().map(Vec::len).sum()
    }

    fn rollout_done(&self) -> bool {
        let s = self.deployment.status.clone().unwrap_or_default();
        let desired = desired_of(&self.deployment);
        self.deployment.metadata.generation <= s.observed_generation
            && s.updated_replicas == Some(desired)
            && s.replicas == s.updated_replicas
            && s.available_replicas >= s.updated_replicas
    }

    /// Sync and run pods until `kubectl rollout status` would be done, checking
    /// `invariant` after every step.
    async fn settle(&mut self, mut invariant: impl FnMut(&Cluster)) -> u32 {
        for step in 0..200 {
            self.sync().await;
            self.run_pods(step);
            invariant(self);
            if self.rollout_done()
                && self
                    .replicasets
                    .iter()
                    .all(|r| r.status.as_ref().map(|s| s.replicas) == Some(replicas_of(r)))
            {
                return step;
            }
        }
        panic!(
            "rollout did not finish: {:?}",
            self.replicasets
                .iter()
                .map(|r| (r.name_any(), replicas_of(r)))
                .collect::<Vec<_>>()
        );
    }

    fn set_template(&mut self, image: &str) {
        let template = &mut self.deployment.spec.as_mut().unwrap().template;
        template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        *self.deployment.metadata.generation.get_or_insert(0) += 1;
    }

    fn by_revision(&self) -> Vec<(i64, i32, String)> {
        let mut v: Vec<(i64, i32, String)> = self
            .replicasets
            .iter()
            .map(|r| (revision_of(r), replicas_of(r), r.name_any()))
            .collect();
        v.sort();
        v
    }
}

#[tokio::test]
async fn first_rollout_creates_the_replicaset_with_hash_revision_and_events() {
    let mut c = Cluster::new(deployment(3, "app:1", rolling(1, 0)));
    c.settle(|_| {}).await;
    assert_eq!(c.replicasets.len(), 1);
    let rs = &c.replicasets[0];
    let hash = rs.labels().get(HASH_LABEL).cloned().unwrap();
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(
        rs.spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()
            .get(HASH_LABEL),
        Some(&hash)
    );
    assert_eq!(
        rs.annotations().get(REVISION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        rs.annotations().get(DESIRED_REPLICAS).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        rs.annotations().get(MAX_REPLICAS).map(String::as_str),
        Some("4")
    );
    assert_eq!(controller_of(rs).map(|o| o.uid.as_str()), Some("d-uid"));
    assert_eq!(
        c.deployment.annotations().get(REVISION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        c.events[0],
        format!("ScalingReplicaSet: Scaled up replica set web-{hash} from 0 to 3")
    );
    let status = c.deployment.status.clone().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), Some(0))
    );
    let available = progress::status_condition(Some(&status), "Available").unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    let progressing = progress::status_condition(Some(&status), "Progressing").unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        progressing.message.as_deref(),
        Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.").as_str())
    );
}

/// The promise zero-downtime updates rest on: maxSurge 3, maxUnavailable 0, 3 replicas
/// never has fewer than 3 ready pods, with prompt or lagging ReplicaSet status.
#[tokio::test]
async fn surge_three_unavailable_zero_never_drops_below_three_ready() {
    for lagging in [false, true] {
        let mut c = Cluster::new(deployment(3, "app:1", rolling(3, 0)));
        c.lagging_status = lagging;
        c.settle(|_| {}).await;
        c.set_template("app:2");
        c.settle(|c| {
            assert!(
                c.ready_pods() >= 3,
                "only {} ready (lagging {lagging})",
                c.ready_pods()
            );
            assert!(c.total_pods() <= 6);
        })
        .await;
        assert_eq!(
            c.by_revision()
                .iter()
                .map(|(rev, n, _)| (*rev, *n))
                .collect::<Vec<_>>(),
            vec![(1, 0), (2, 3)]
        );
        assert!(
            c.events.iter().any(
                |e| e.starts_with("ScalingReplicaSet: Scaled down replica set")
                    && e.ends_with(" to 0")
            ),
            "{:?}",
            c.events
        );
    }
}

/// Every surge/unavailable combination keeps both promises and finishes.
#[tokio::test]
async fn rolling_updates_respect_surge_and_unavailability() {
    for desired in 1..=5 {
        for surge in 0..=3 {
            for unavailable in 0..=2 {
                if surge == 0 && unavailable == 0 {
                    continue;
                }
                let mut c = Cluster::new(deployment(desired, "app:1", rolling(surge, unavailable)));
                c.settle(|_| {}).await;
                c.set_template("app:2");
                let min_ready = (desired - unavailable.min(desired)).max(0) as usize;
                let max_total = (desired + surge) as usize;
                c.settle(|c| {
                    assert!(
                        c.ready_pods() >= min_ready,
                        "{desired}/{surge}/{unavailable}: {} ready",
                        c.ready_pods()
                    );
                    assert!(
                        c.total_pods() <= max_total,
                        "{desired}/{surge}/{unavailable}: {} pods",
                        c.total_pods()
                    );
                })
                .await;
            }
        }
    }
}

#[tokio::test]
async fn undo_makes_the_old_replicaset_new_again_with_the_next_revision() {
    let mut c = Cluster::new(deployment(2, "app:1", rolling(1, 0)));
    c.settle(|_| {}).await;
    let first = c.replicasets[0].name_any();
    c.set_template("app:2");
    c.settle(|_| {}).await;
    // What `kubectl rollout undo` does: the old template goes back into the deployment.
    c.set_template("app:1");
    c.settle(|_| {}).await;
    assert_eq!(c.replicasets.len(), 2, "no third ReplicaSet");
    let revived = c
        .replicasets
        .iter()
        .find(|r| r.name_any() == first)
        .unwrap();
    assert_eq!(replicas_of(revived), 2);
    assert_eq!(
        revived.annotations().get(REVISION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        revived
            .annotations()
            .get(REVISION_HISTORY)
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        c.deployment.annotations().get(REVISION).map(String::as_str),
        Some("3")
    );
    assert!(c.rollout_done());
}

#[tokio::test]
async fn change_cause_is_copied_and_history_is_limited() {
    let mut d = deployment(1, "app:0", rolling(1, 0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(2);
    let mut c = Cluster::new(d);
    c.settle(|_| {}).await;
    for n in 1..=4 {
        c.deployment
            .annotations_mut()
            .insert(CHANGE_CAUSE.into(), format!("set image app:{n}"));
        c.set_template(&format!("app:{n}"));
        c.settle(|_| {}).await;
        // One more sync: cleanup runs once the rollout is complete.
        c.sync().await;
    }
    let revisions: Vec<i64> = c.by_revision().iter().map(|(r, _, _)| *r).collect();
    assert_eq!(revisions, vec![3, 4, 5]);
    let newest = c.replicasets.iter().find(|r| revision_of(r) == 5).unwrap();
    assert_eq!(
        newest.annotations().get(CHANGE_CAUSE).map(String::as_str),
        Some("set image app:4")
    );
}

#[tokio::test]
async fn recreate_scales_old_to_zero_before_creating_the_new_one() {
    let mut c = Cluster::new(deployment(
        3,
        "app:1",
        serde_json::json!({"type": "Recreate"}),
    ));
    c.settle(|_| {}).await;
    c.set_template("app:2");
    let mut saw_gap = false;
    c.settle(|c| {
        let old_pods = c
            .pods
            .iter()
            .filter(|(name, _)| {
                c.replicasets
                    .iter()
                    .any(|r| &r.name_any() == *name && revision_of(r) == 1)
            })
            .map(|(_, p)| p.len())
            .sum::<usize>();
        let new_pods = c.total_pods() - old_pods;
        assert!(old_pods == 0 || new_pods == 0, "old and new pods together");
        saw_gap |= c.total_pods() == 0;
    })
    .await;
    assert!(saw_gap);
    assert_eq!(
        c.by_revision()
            .iter()
            .map(|(r, n, _)| (*r, *n))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 3)]
    );
}

#[tokio::test]
async fn scaling_mid_rollout_is_proportional() {
    let mut c = Cluster::new(deployment(10, "app:1", rolling(1, 0)));
    c.settle(|_| {}).await;
    c.set_template("app:2");
    // A few steps into the rollout, then scale to 20.
    for step in 0..3 {
        c.sync().await;
        c.run_pods(step);
    }
    let before: Vec<i32> = c.by_revision().iter().map(|(_, n, _)| *n).collect();
    assert!(before.iter().all(|n| *n > 0), "{before:?}");
    c.deployment.spec.as_mut().unwrap().replicas = Some(20);
    c.sync().await;
    let after: Vec<i32> = c.by_revision().iter().map(|(_, n, _)| *n).collect();
    assert_eq!(after.iter().sum::<i32>(), 21, "{before:?} → {after:?}");
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "{before:?} → {after:?}"
    );
    c.settle(|_| {}).await;
    assert_eq!(
        c.by_revision()
            .iter()
            .map(|(_, n, _)| *n)
            .collect::<Vec<_>>(),
        vec![0, 20]
    );
}

#[test]
fn proportions_follow_upstream_arithmetic() {
    let mut d = deployment(20, "app:2", rolling(1, 0));
    d.status = Some(DeploymentStatus {
        replicas: Some(11),
        ..Default::default()
    });
    let rs = |name: &str, replicas: i32, created: i64| -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(serde_json::json!({"metadata": {"name": name, "uid": name, "annotations": {MAX_REPLICAS: "11", DESIRED_REPLICAS: "10"},
                "creationTimestamp": Time(jiff::Timestamp::from_second(created).unwrap())}, "spec": {"replicas": replicas, "selector": {}}}))
            .unwrap(),
        )
    };
    let new = rs("new", 6, 2);
    let plan = sync::scale_plan(&d, Some(&new), &[rs("old", 5, 1)]);
    let sizes: Vec<(String, i32, &str)> = plan
        .iter()
        .map(|(r, n, op)| (r.name_any(), *n, *op))
        .collect();
    assert_eq!(
        sizes,
        vec![("new".to_string(), 11, "up"), ("old".to_string(), 10, "up")]
    );
}

#[tokio::test]
async fn paused_deployments_do_not_roll_out() {
    let mut c = Cluster::new(deployment(2, "app:1", rolling(1, 0)));
    c.settle(|_| {}).await;
    c.deployment.spec.as_mut().unwrap().paused = Some(true);
    c.set_template("app:2");
    c.sync().await;
    assert_eq!(c.replicasets.len(), 1);
    let progressing = progress::condition(&c.deployment, "Progressing").unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_deref()),
        ("Unknown", Some("DeploymentPaused"))
    );
}

#[test]
fn stuck_rollouts_time_out() {
    let mut d = deployment(1, "app:1", rolling(1, 0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(30);
    let mut c = progress::new_condition(
        "Progressing",
        "True",
        progress::Reason::ReplicaSetUpdated,
        "x".into(),
    );
    c.last_update_time = Some(Time(jiff::Timestamp::from_second(1000).unwrap()));
    let status = DeploymentStatus {
        conditions: Some(vec![c]),
        ..Default::default()
    };
    assert!(!progress::deployment_timed_out(
        &d,
        &status,
        jiff::Timestamp::from_second(1020).unwrap()
    ));
    assert!(progress::deployment_timed_out(
        &d,
        &status,
        jiff::Timestamp::from_second(1031).unwrap()
    ));
    assert_eq!(
        progress::stuck_requeue(&d, &status, jiff::Timestamp::from_second(1020).unwrap()),
        Some(std::time::Duration::from_secs(11))
    );
}
