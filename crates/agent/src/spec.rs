//! Turning a pod spec into runtime requests: environment (with `fieldRef` and `$(VAR)`
//! expansion), resource limits, and the sandbox and container specs. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;
use podium_api::quantity::{cpu_millis, units};
use podium_runtime::{ContainerSpec, Resources, SandboxSpec};

/// What the pod's environment can refer to that the pod object may not hold yet (the pod
/// IP is known to the worker before the status carrying it is written).
#[derive(Debug, Clone, Default)]
pub struct Downward {
    pub pod_ip: Option<String>,
    pub host_ip: String,
}

/// Expand `$(VAR)` references as the kubelet does: `$$` is a literal `$`, a reference to an
/// unknown variable stays as written, and so does an unclosed `$(`. Hand-written because
/// this is upstream's `third_party/forked/golang/expansion` grammar, which no crate implements.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[at..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_value(pod: &Pod, path: &str, downward: &Downward) -> Option<String> {
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.uid().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => downward
            .pod_ip
            .clone()
            .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))
            .unwrap_or_default(),
        "status.hostIP" => downward.host_ip.clone(),
        _ => {
            // metadata.labels['key'] / metadata.annotations['key']
            let (map, key) = if let Some(key) = path.strip_prefix("metadata.labels['") {
                (pod.metadata.labels.as_ref(), key)
            } else if let Some(key) = path.strip_prefix("metadata.annotations['") {
                (pod.metadata.annotations.as_ref(), key)
            } else {
                return None;
            };
            let key = key.strip_suffix("']")?;
            map.and_then(|m| m.get(key).cloned()).unwrap_or_default()
        }
    })
}

/// The container's environment from its `env` list, in order, each value expanded
/// against the variables defined before it. Sources the agent cannot resolve yet
/// (secrets, config maps, resource fields) are left out with a log line.
pub fn environment(
    pod: &Pod,
    container: &Container,
    downward: &Downward,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            Some(expand(value, &|name| env.get(name).cloned()))
        } else if let Some(field) = var.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            field_value(pod, &field.field_path, downward)
        } else if var.value_from.is_none() {
            Some(String::new())
        } else {
            None
        };
        match value {
            Some(value) => {
                env.insert(var.name.clone(), value);
            }
            None => {
                tracing::warn!(pod = %pod.name_any(), variable = %var.name, "environment source not supported yet; variable left out")
            }
        }
    }
    env
}

/// A container's limits as runtime resources; quantities that do not parse are treated
/// as unset (the API server validates them, so this only guards against bad input).
pub fn limits(container: &Container) -> Resources {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    Resources {
        cpu_millis: limits
            .and_then(|l| l.get("cpu"))
            .and_then(|q| cpu_millis(&q.0))
            .map(|v| v.max(1) as u64),
        memory_bytes: limits
            .and_then(|l| l.get("memory"))
            .and_then(|q| units(&q.0))
            .map(|v| v.max(0) as u64),
    }
}

/// Pod-level limits: the sum of the containers', or unlimited as soon as one container
/// has no limit for that resource.
pub fn pod_limits(containers: &[Container]) -> Resources {
    let each: Vec<Resources> = containers.iter().map(limits).collect();
    let sum = |get: fn(&Resources) -> Option<u64>| -> Option<u64> {
        if each.is_empty() {
            return None;
        }
        each.iter()
            .map(get)
            .try_fold(0u64, |total, v| v.map(|v| total.saturating_add(v)))
    };
    Resources {
        cpu_millis: sum(|r| r.cpu_millis),
        memory_bytes: sum(|r| r.memory_bytes),
    }
}

/// What the runtime needs to create the pod's sandbox.
pub fn sandbox_spec(pod: &Pod) -> SandboxSpec {
    let spec = pod.spec.as_ref();
    let mut hostname = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.name_any());
    // A UTS hostname is at most 64 bytes; upstream truncates the pod name to 63.
    hostname = hostname.chars().take(63).collect();
    SandboxSpec {
        pod_uid: pod.uid().unwrap_or_default(),
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        hostname: hostname.trim_end_matches(['-', '.']).to_string(),
        resources: pod_limits(spec.map(|s| s.containers.as_slice()).unwrap_or_default()),
    }
}

/// What the runtime needs to start one attempt of a container.
pub fn container_spec(
    pod: &Pod,
    container: &Container,
    attempt: u32,
    downward: &Downward,
) -> ContainerSpec {
    let env = environment(pod, container, downward);
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter()
            .flatten()
            .map(|arg| expand(arg, &|name| env.get(name).cloned()))
            .collect()
    };
    ContainerSpec {
        pod_uid: pod.uid().unwrap_or_default(),
        name: container.name.clone(),
        attempt,
        image: container.image.clone().unwrap_or_default(),
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        working_dir: container.working_dir.clone(),
        resources: limits(container),
        env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": containers},
        }))
        .unwrap()
    }

    #[test]
    fn expansion_follows_the_kubelet_grammar() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(A)", &lookup), "x-x");
        assert_eq!(expand("$(B)", &lookup), "$(B)");
        assert_eq!(expand("$$(A)", &lookup), "$(A)");
        assert_eq!(expand("cost $5", &lookup), "cost $5");
        assert_eq!(expand("$(A", &lookup), "$(A");
        assert_eq!(expand("end$", &lookup), "end$");
    }

    #[test]
    fn environment_resolves_field_refs_and_earlier_variables() {
        let p = pod(json!([{"name": "c", "image": "i", "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "URL", "value": "http://$(IP):80/$(NAME)"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]}]));
        let container = &p.spec.as_ref().unwrap().containers[0];
        let env = environment(
            &p,
            container,
            &Downward {
                pod_ip: Some("10.42.0.5".into()),
                host_ip: "192.0.2.1".into(),
            },
        );
        assert_eq!(env["NAME"], "web-0");
        assert_eq!(env["NS"], "prod");
        assert_eq!(env["UID"], "u-1");
        assert_eq!(env["IP"], "10.42.0.5");
        assert_eq!(env["NODE"], "node-a");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["URL"], "http://10.42.0.5:80/web-0");
        assert!(!env.contains_key("SECRET"));
    }

    #[test]
    fn limits_parse_quantities() {
        let p = pod(json!([
            {"name": "a", "image": "i", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "c", "image": "i", "resources": {"limits": {"memory": "1e9"}}},
        ]));
        let containers = &p.spec.as_ref().unwrap().containers;
        assert_eq!(
            limits(&containers[0]),
            Resources {
                cpu_millis: Some(500),
                memory_bytes: Some(128 << 20)
            }
        );
        assert_eq!(
            limits(&containers[1]),
            Resources {
                cpu_millis: Some(1000),
                memory_bytes: Some(1 << 30)
            }
        );
        assert_eq!(
            limits(&containers[2]),
            Resources {
                cpu_millis: None,
                memory_bytes: Some(1_000_000_000)
            }
        );
        // One container without a CPU limit makes the pod's CPU unlimited.
        assert_eq!(
            pod_limits(containers),
            Resources {
                cpu_millis: None,
                memory_bytes: Some((128 << 20) + (1 << 30) + 1_000_000_000)
            }
        );
        assert_eq!(pod_limits(&containers[..2]).cpu_millis, Some(1500));
    }

    #[test]
    fn container_spec_expands_command_and_args() {
        let p = pod(
            json!([{"name": "c", "image": "busybox:1", "command": ["sh", "-c"], "args": ["echo $(MSG) $$(MSG)"], "env": [{"name": "MSG", "value": "hi"}]}]),
        );
        let spec = container_spec(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            2,
            &Downward::default(),
        );
        assert_eq!(spec.args, vec!["echo hi $(MSG)"]);
        assert_eq!(spec.command, vec!["sh", "-c"]);
        assert_eq!(spec.attempt, 2);
        assert_eq!(spec.pod_uid, "u-1");
        let sandbox = sandbox_spec(&p);
        assert_eq!(
            (sandbox.hostname.as_str(), sandbox.namespace.as_str()),
            ("web-0", "prod")
        );
    }
}
