//! The disruption controller (upstream `pkg/controller/disruption/disruption.go`): keeps
//! every PodDisruptionBudget's status (expected, healthy and desired pod counts, how many
//! disruptions are allowed now, the DisruptionAllowed condition) current, which the
//! `pods/eviction` subresource consults before it deletes a pod.
//!
//! As upstream: an integer `minAvailable` counts the selected pods; a percentage, or any
//! `maxUnavailable`, counts the replicas their controllers want (a ReplicaSet's, or its
//! Deployment's; a StatefulSet's), and a pod whose controller has no scale makes the budget
//! fail safe (no disruption allowed). Pods an eviction recorded in `disruptedPods` count as
//! unhealthy until they are gone or two minutes have passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::error::{Context, Error};
use crate::informer::Informer;
use crate::retry::Backoff;

/// How long an eviction's entry in `disruptedPods` holds a pod out of the healthy count
/// while its deletion is under way (upstream's `DeletionTimeout`).
const DISRUPTED_FOR: std::time::Duration = std::time::Duration::from_secs(120);

pub struct Ctx {
    client: Client,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    backoff: Backoff,
}

/// Whether a budget selects a pod: policy/v1's empty selector selects every pod of the
/// namespace, a missing one none.
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pod.metadata.namespace != pdb.metadata.namespace {
        return false;
    }
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    empty
        || crate::labels::matches(
            selector,
            pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
        )
}

/// `GetScaledValueFromIntOrPercent(value, total, roundUp=true)`.
fn scaled(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok(((percent * i64::from(total)) as f64 / 100.0).ceil() as i32)
        }
    }
}

/// The replicas the controllers of `pods` want, summed once per controller.
pub fn expected_scale(
    pods: &[&Pod],
    replica_set: impl Fn(&str, &str) -> Option<Arc<ReplicaSet>>,
    deployment: impl Fn(&str, &str) -> Option<Arc<Deployment>>,
    stateful_set: impl Fn(&str, &str) -> Option<Arc<StatefulSet>>,
) -> Result<i32, String> {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for pod in pods {
        // Pods without a controller are left out of the count, as upstream (it warns).
        let Some(owner) = crate::podutil::controller_of(*pod) else {
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let (uid, replicas) = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = replica_set(namespace, &owner.name)
                    .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()));
                let Some(rs) = rs else {
                    return Err(format!("found no controllers for pod {:?}", pod.name_any()));
                };
                // A Deployment's ReplicaSet: the Deployment's scale counts.
                match crate::podutil::controller_of(&*rs)
                    .filter(|o| o.kind == "Deployment")
                    .and_then(|o| {
                        deployment(namespace, &o.name)
                            .filter(|d| d.metadata.uid.as_deref() == Some(o.uid.as_str()))
                    }) {
                    Some(d) => (
                        d.metadata.uid.clone().unwrap_or_default(),
                        d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                    None => (
                        owner.uid.clone(),
                        rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    ),
                }
            }
            "StatefulSet" => match stateful_set(namespace, &owner.name)
                .filter(|s| s.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            {
                Some(s) => (
                    owner.uid.clone(),
                    s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                ),
                None => return Err(format!("found no controllers for pod {:?}", pod.name_any())),
            },
            _ => return Err(format!("found no controllers for pod {:?}", pod.name_any())),
        };
        if seen.insert(uid) {
            total += replicas;
        }
    }
    Ok(total)
}

/// The budget's status for these pods now. `scale` is the controllers' wanted replicas,
/// asked for only when the budget needs it.
pub fn compute_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale: impl FnOnce() -> Result<i32, String>,
    now: jiff::Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    let counts: Result<(i32, i32), String> = (|| {
        if let Some(max) = &spec.max_unavailable {
            let expected = scale()?;
            let max = scaled(max, expected)?;
            Ok((expected, (expected - max).max(0)))
        } else {
            match &spec.min_available {
                Some(IntOrString::Int(n)) => Ok((pods.len() as i32, *n)),
                Some(min) => {
                    let expected = scale()?;
                    Ok((expected, scaled(min, expected)?))
                }
                None => Ok((pods.len() as i32, 0)),
            }
        }
    })();
    // Evicted pods still on their way out stay out of the healthy count for a while.
    let mut disrupted = BTreeMap::new();
    for pod in pods {
        let name = pod.name_any();
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(at) = old.disrupted_pods.as_ref().and_then(|d| d.get(&name)) {
            let expires = at.0 + jiff::SignedDuration::try_from(DISRUPTED_FOR).unwrap_or_default();
            if expires > now {
                disrupted.insert(name, at.clone());
            }
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .filter(|p| crate::podutil::is_ready(p))
        .count() as i32;
    let generation = pdb.metadata.generation;
    let (expected, desired, allowed, condition) = match counts {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            let condition = if allowed > 0 {
                ("True", "SufficientPods", String::new())
            } else {
                ("False", "InsufficientPods", String::new())
            };
            (expected, desired, allowed, condition)
        }
        // Fail safe: nothing may be disrupted while the counts are unknown.
        Err(message) => (
            old.expected_pods,
            old.desired_healthy,
            0,
            ("False", "SyncFailed", message),
        ),
    };
    let (status, reason, message) = condition;
    let previous = old
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "DisruptionAllowed"));
    let transition = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(now),
    };
    PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: transition,
        }]),
    }
}

fn lookup<K>(store: &Store<K>, namespace: &str, name: &str) -> Option<Arc<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

pub async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let namespace = pdb.namespace().unwrap_or_default();
    let state = ctx.pods.state();
    let pods: Vec<&Pod> = state
        .iter()
        .map(|p| &**p)
        .filter(|p| selects(&pdb, p))
        .collect();
    let status = compute_status(
        &pdb,
        &pods,
        || {
            expected_scale(
                &pods,
                |ns, n| lookup(&ctx.replicasets, ns, n),
                |ns, n| lookup(&ctx.deployments, ns, n),
                |ns, n| lookup(&ctx.statefulsets, ns, n),
            )
        },
        jiff::Timestamp::now(),
    );
    // A disrupted pod's entry expires: look again then.
    let recheck = status
        .disrupted_pods
        .as_ref()
        .map(|_| Action::requeue(std::time::Duration::from_secs(15)))
        .unwrap_or_else(Action::await_change);
    if pdb.status.as_ref() == Some(&status) {
        return Ok(recheck);
    }
    let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    // A PUT with the resourceVersion the counts were computed from: an eviction that
    // spent a disruption meanwhile makes this a conflict, and we recount.
    let mut updated = (*pdb).clone();
    updated.status = Some(status);
    api.replace_status(&pdb.name_any(), &PostParams::default(), &updated)
        .await
        .context(|| {
            format!(
                "update status of poddisruptionbudget {namespace}/{}",
                pdb.name_any()
            )
        })?;
    ctx.backoff.succeeded(&crate::podutil::key_of(&*pdb));
    Ok(recheck)
}

pub fn error_policy(pdb: Arc<PodDisruptionBudget>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.backoff.requeue(&crate::podutil::key_of(&*pdb), error)
}

pub async fn run(
    client: Client,
    budgets: &Informer<PodDisruptionBudget>,
    pods: &Informer<Pod>,
    replicasets: &Informer<ReplicaSet>,
    deployments: &Informer<Deployment>,
    statefulsets: &Informer<StatefulSet>,
) {
    let ctx = Arc::new(Ctx {
        client,
        pods: pods.store(),
        replicasets: replicasets.store(),
        deployments: deployments.store(),
        statefulsets: statefulsets.store(),
        backoff: Backoff::default(),
    });
    let budget_store = budgets.store();
    let for_pod = budget_store.clone();
    // A scale change of a controller changes `expectedPods` of the budgets over its pods.
    let budgets_in = |store: Store<PodDisruptionBudget>| {
        move |namespace: Option<String>| -> Vec<ObjectRef<PodDisruptionBudget>> {
            store
                .state()
                .iter()
                .filter(|b| b.metadata.namespace == namespace)
                .map(|b| ObjectRef::from_obj(&**b))
                .collect()
        }
    };
    let for_rs = budgets_in(budget_store.clone());
    let for_deploy = budgets_in(budget_store.clone());
    let for_sts = budgets_in(budget_store.clone());
    Controller::for_stream(budgets.triggers(), budget_store)
        .watches_stream(pods.triggers(), move |pod: Pod| {
            for_pod
                .state()
                .iter()
                .filter(|b| selects(b, &pod))
                .map(|b| ObjectRef::from_obj(&**b))
                .collect::<Vec<_>>()
        })
        .watches_stream(replicasets.triggers(), move |rs: ReplicaSet| {
            for_rs(rs.metadata.namespace)
        })
        .watches_stream(deployments.triggers(), move |d: Deployment| {
            for_deploy(d.metadata.namespace)
        })
        .watches_stream(statefulsets.triggers(), move |s: StatefulSet| {
            for_sts(s.metadata.namespace)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "disruption controller");
            }
            std::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "generation": 2}, "spec": spec}),
        )
        .unwrap()
    }

    fn pod(name: &str, ready: bool, owner: Option<(&str, &str, &str)>) -> Pod {
        let mut pod = json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        if let Some((kind, name, uid)) = owner {
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
        }
        serde_json::from_value(pod).unwrap()
    }

    fn no_scale() -> Result<i32, String> {
        panic!("the scale is not needed for an integer minAvailable")
    }

    #[test]
    fn integer_min_available_counts_the_selected_pods() {
        let budget = pdb(json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}));
        let pods = [
            pod("a", true, None),
            pod("b", true, None),
            pod("c", false, None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = compute_status(&budget, &refs, no_scale, jiff::Timestamp::now());
        assert_eq!(
            (
                status.expected_pods,
                status.current_healthy,
                status.desired_healthy,
                status.disruptions_allowed
            ),
            (3, 2, 2, 0)
        );
        assert_eq!(status.observed_generation, Some(2));
        let condition = &status.conditions.unwrap()[0];
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "InsufficientPods")
        );
    }

    #[test]
    fn max_unavailable_uses_the_controllers_scale_and_disrupted_pods_are_unhealthy() {
        let mut budget =
            pdb(json!({"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}));
        let now = jiff::Timestamp::now();
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                ("a".to_string(), Time(now)),
                ("gone".to_string(), Time(now)),
            ])),
            ..Default::default()
        });
        let owner = Some(("ReplicaSet", "rs", "u1"));
        let pods = [
            pod("a", true, owner),
            pod("b", true, owner),
            pod("c", true, owner),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs", "namespace": "ns", "uid": "u1"}, "spec": {"replicas": 3, "selector": {}}})).unwrap();
        let rs = Arc::new(rs);
        let status = compute_status(
            &budget,
            &refs,
            || expected_scale(&refs, |_, _| Some(rs.clone()), |_, _| None, |_, _| None),
            now,
        );
        // 34% of 3 rounds up to 2 unavailable: 1 must stay healthy; "a" is being evicted.
        assert_eq!(
            (
                status.expected_pods,
                status.current_healthy,
                status.desired_healthy,
                status.disruptions_allowed
            ),
            (3, 2, 1, 1)
        );
        let disrupted = status.disrupted_pods.unwrap();
        assert_eq!(
            disrupted.keys().collect::<Vec<_>>(),
            ["a"],
            "a gone pod's entry is dropped"
        );
    }

    #[test]
    fn a_pod_without_a_known_controller_fails_safe() {
        let budget =
            pdb(json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}));
        let pods = [pod("a", true, Some(("ReplicaSet", "missing", "u9")))];
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = compute_status(
            &budget,
            &refs,
            || expected_scale(&refs, |_, _| None, |_, _| None, |_, _| None),
            jiff::Timestamp::now(),
        );
        assert_eq!(status.disruptions_allowed, 0);
        let condition = &status.conditions.unwrap()[0];
        assert_eq!(condition.reason, "SyncFailed");
        assert!(
            condition.message.contains("found no controllers"),
            "{}",
            condition.message
        );
    }

    #[test]
    fn an_empty_selector_selects_the_whole_namespace() {
        let all = pdb(json!({"minAvailable": 1, "selector": {}}));
        let none = pdb(json!({"minAvailable": 1}));
        let p = pod("a", true, None);
        assert!(selects(&all, &p));
        assert!(!selects(&none, &p));
    }
}
