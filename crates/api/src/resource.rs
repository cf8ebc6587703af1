//! The table of every resource the API server serves: names, scope, verbs and
//! subresources, and each kind's [`Kind`] (its module under [`crate::kinds`]). Discovery,
//! routing, OpenAPI and storage keys are all read from here, so adding a kind is one
//! module and one row.
//!
//! The built-in rows are a static table; [`register`] adds rows at run time (custom
//! resources), which every lookup here sees from then on.

use std::sync::RwLock;

use crate::kinds::{self, Kind};

/// A subresource served under `<resource>/<name>/<sub>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: writes change only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` Scale view of `.spec.replicas`.
    Scale,
    /// `pods/binding`: the scheduler's POST that sets `spec.nodeName`.
    Binding,
    /// `pods/log`: the container log, proxied from the node agent.
    Log,
    /// `pods/eviction`: a `policy/v1` Eviction, the delete `kubectl drain` asks for.
    Eviction,
    /// `serviceaccounts/token`: an `authentication.k8s.io/v1` TokenRequest, answered with
    /// a signed token for the ServiceAccount (`kubectl create token`).
    Token,
    /// `pods|services|nodes/<name>/proxy/<path>`: HTTP forwarded to the pod, a ready
    /// endpoint of the service, or the node's agent.
    Proxy,
}

impl Subresource {
    pub fn path(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Eviction => "eviction",
            Subresource::Token => "token",
            Subresource::Proxy => "proxy",
        }
    }
}

/// One served resource.
#[derive(Clone, Copy)]
pub struct ResourceInfo {
    /// API group; `""` for the core (legacy) group served under `/api/v1`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment, e.g. `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Everything special about the kind: decoding, defaults, validation, columns, schema.
    pub behaviour: &'static dyn Kind,
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceInfo")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("plural", &self.plural)
            .field("namespaced", &self.namespaced)
            .finish_non_exhaustive()
    }
}

/// One row per group, version and plural: two values naming the same resource are the
/// same resource.
impl PartialEq for ResourceInfo {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
    }
}

impl Eq for ResourceInfo {}

impl ResourceInfo {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: how Kubernetes names the resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The URL prefix of the group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

use Subresource::*;

const ALL: &[&str] = &["all"];

pub static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::core::namespace::Namespace,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[Status, Proxy],
        behaviour: &kinds::core::node::Node,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: ALL,
        subresources: &[Status, Binding, Log, Eviction, Proxy],
        behaviour: &kinds::core::pod::Pod,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: ALL,
        subresources: &[Status, Proxy],
        behaviour: &kinds::core::service::Service,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::core::endpoints::Endpoints,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::core::event::Event,
    },
    ResourceInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::events::event::Event,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::core::config_map::ConfigMap,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::core::secret::Secret,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[Token],
        behaviour: &kinds::core::service_account::ServiceAccount,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "PersistentVolume",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        namespaced: false,
        short_names: &["pv"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::core::persistent_volume::PersistentVolume,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::core::persistent_volume_claim::PersistentVolumeClaim,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ReplicationController",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        namespaced: true,
        short_names: &["rc"],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::core::replication_controller::ReplicationController,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "ResourceQuota",
        plural: "resourcequotas",
        singular: "resourcequota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::core::resource_quota::ResourceQuota,
    },
    ResourceInfo {
        group: "",
        version: "v1",
        kind: "LimitRange",
        plural: "limitranges",
        singular: "limitrange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::core::limit_range::LimitRange,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: ALL,
        subresources: &[Status, Scale],
        behaviour: &kinds::apps::deployment::Deployment,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: ALL,
        subresources: &[Status, Scale],
        behaviour: &kinds::apps::replica_set::ReplicaSet,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::apps::daemon_set::DaemonSet,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        short_names: &["sts"],
        categories: ALL,
        subresources: &[Status, Scale],
        behaviour: &kinds::apps::stateful_set::StatefulSet,
    },
    ResourceInfo {
        group: "apps",
        version: "v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::apps::controller_revision::ControllerRevision,
    },
    ResourceInfo {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::discovery::endpoint_slice::EndpointSlice,
    },
    ResourceInfo {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::coordination::lease::Lease,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        short_names: &[],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::batch::job::Job,
    },
    ResourceInfo {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        namespaced: true,
        short_names: &["cj"],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::batch::cron_job::CronJob,
    },
    ResourceInfo {
        group: "storage.k8s.io",
        version: "v1",
        kind: "StorageClass",
        plural: "storageclasses",
        singular: "storageclass",
        namespaced: false,
        short_names: &["sc"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::storage::storage_class::StorageClass,
    },
    ResourceInfo {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::autoscaling::horizontal_pod_autoscaler::HorizontalPodAutoscaler,
    },
    ResourceInfo {
        group: "autoscaling",
        version: "v1",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: ALL,
        subresources: &[Status],
        behaviour: &kinds::autoscaling::horizontal_pod_autoscaler_v1::HorizontalPodAutoscaler,
    },
    ResourceInfo {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::policy::pod_disruption_budget::PodDisruptionBudget,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        kind: "Ingress",
        plural: "ingresses",
        singular: "ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::networking::ingress::Ingress,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        singular: "ingressclass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::networking::ingress_class::IngressClass,
    },
    ResourceInfo {
        group: "networking.k8s.io",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        singular: "networkpolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::networking::network_policy::NetworkPolicy,
    },
    ResourceInfo {
        group: "scheduling.k8s.io",
        version: "v1",
        kind: "PriorityClass",
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        short_names: &["pc"],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::scheduling::priority_class::PriorityClass,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::rbac::role::Role,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::rbac::cluster_role::ClusterRole,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::rbac::role_binding::RoleBinding,
    },
    ResourceInfo {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        behaviour: &kinds::rbac::cluster_role_binding::ClusterRoleBinding,
    },
    ResourceInfo {
        group: "certificates.k8s.io",
        version: "v1",
        kind: "CertificateSigningRequest",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        subresources: &[Status],
        behaviour: &kinds::certificates::certificate_signing_request::CertificateSigningRequest,
    },
    ResourceInfo {
        group: "apiextensions.k8s.io",
        version: "v1",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        subresources: &[Status],
        behaviour: &kinds::apiextensions::custom_resource_definition::CustomResourceDefinition,
    },
];

/// Rows added at run time (custom resources). Each row is leaked: requests in flight may
/// still hold a row that a CRD change replaced or removed, so a row lives as long as the
/// process; one is made per distinct served CRD version, not per request.
static REGISTERED: RwLock<Vec<&'static ResourceInfo>> = RwLock::new(Vec::new());

/// Counts changes to the run-time rows, so that what is derived from the table (OpenAPI
/// documents) knows when to build again.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Serve a resource from now on, in place of a registered row of the same group, version
/// and plural; the row lives as long as the process.
pub fn register(info: ResourceInfo) -> &'static ResourceInfo {
    let info: &'static ResourceInfo = Box::leak(Box::new(info));
    let mut rows = REGISTERED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match rows.iter().position(|r| *r == info) {
        Some(i) => rows[i] = info,
        None => rows.push(info),
    }
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    info
}

/// Stop serving a registered resource (a deleted CRD, or a version no longer served).
pub fn unregister(group: &str, version: &str, plural: &str) {
    let mut rows = REGISTERED
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = rows.len();
    rows.retain(|r| !(r.group == group && r.version == version && r.plural == plural));
    if rows.len() != before {
        GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The registered rows (custom resources), in registration order.
pub fn registered() -> Vec<&'static ResourceInfo> {
    REGISTERED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// How many times the run-time rows have changed.
pub fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// Every served resource: the built-in table, then the rows registered at run time.
pub fn all() -> Vec<&'static ResourceInfo> {
    let registered = REGISTERED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    RESOURCES.iter().chain(registered.iter().copied()).collect()
}

/// The first served resource that `matches`.
fn find_by(matches: impl Fn(&ResourceInfo) -> bool) -> Option<&'static ResourceInfo> {
    if let Some(builtin) = RESOURCES.iter().find(|r| matches(r)) {
        return Some(builtin);
    }
    let registered = REGISTERED
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registered.iter().copied().find(|r| matches(r))
}

/// The resource served at `group/version/plural`, if any.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    find_by(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of a kind, if served.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    find_by(|r| r.group == group && r.kind == kind)
}

/// Every group-version served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in all() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
