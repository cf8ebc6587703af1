"""Every core kind Podium serves (issue 9 item 2), as the real kubectl and the official
Python client use them: one multi-document `kubectl apply -f`, `kubectl get` with the
columns a real cluster prints, the `Warning:` for what Podium does not act on yet, each
object read back and listed through the Python client's typed API (its models must accept
every answer), then `kubectl delete -f`.
"""

from __future__ import annotations

import re

from podium_cluster import Cluster, wait_for

CSR_PEM_B64 = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQgotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
)

MANIFEST = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: builder}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: e2e-pv}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: /tmp/e2e-pv}}
  storageClassName: manual
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  storageClassName: manual
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: manual}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: agent, image: "busybox:1.36"}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: "postgres:16"}}]
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {{name: db-1}}
revision: 1
data: {{spec: {{}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: pi}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: pi, image: "perl:5.34", command: [perl, -e, print 1]}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: hello}}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{{name: hello, image: "busybox:1.36"}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: 1
  maxReplicas: 5
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: e2e-nginx}}
spec: {{controller: k8s.io/ingress-nginx}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  ingressClassName: e2e-nginx
  rules:
    - host: web.example
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress: [{{ports: [{{port: 5432}}]}}]
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: e2e-high}}
value: 1000
---
apiVersion: v1
kind: ResourceQuota
metadata: {{name: quota}}
spec: {{hard: {{pods: "10"}}}}
---
apiVersion: v1
kind: LimitRange
metadata: {{name: limits}}
spec:
  limits: [{{type: Container, default: {{cpu: 500m}}}}]
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: legacy}}
spec:
  replicas: 1
  template:
    metadata: {{labels: {{app: legacy}}}}
    spec:
      containers: [{{name: legacy, image: "busybox:1.36"}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: reader}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: read-pods}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}}
subjects: [{{kind: ServiceAccount, name: builder, namespace: default}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: e2e-node-reader}}
rules: [{{apiGroups: [""], resources: [nodes], verbs: [get]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: e2e-read-nodes}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-node-reader}}
subjects: [{{kind: User, name: jane}}]
---
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: e2e-jane}}
spec:
  request: {CSR_PEM_B64}
  signerName: kubernetes.io/kube-apiserver-client
  usages: [client auth]
"""

# `kubectl get <resource>` headers, as a real 1.33 cluster prints them.
HEADERS = {
    "serviceaccounts": "NAME SECRETS AGE",
    "persistentvolumes": "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE",
    "persistentvolumeclaims": "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE",
    "storageclasses": "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE",
    "daemonsets": "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
    "statefulsets": "NAME READY AGE",
    "controllerrevisions": "NAME CONTROLLER REVISION AGE",
    "jobs": "NAME STATUS COMPLETIONS DURATION AGE",
    "cronjobs": "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE",
    "horizontalpodautoscalers": "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE",
    "poddisruptionbudgets": "NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE",
    "ingressclasses": "NAME CONTROLLER PARAMETERS AGE",
    "ingresses": "NAME CLASS HOSTS ADDRESS PORTS AGE",
    "networkpolicies": "NAME POD-SELECTOR AGE",
    "priorityclasses": "NAME VALUE GLOBAL-DEFAULT AGE",
    "resourcequotas": "NAME REQUEST LIMIT AGE",
    "limitranges": "NAME CREATED AT",
    "replicationcontrollers": "NAME DESIRED CURRENT READY AGE",
    "roles": "NAME CREATED AT",
    "rolebindings": "NAME ROLE AGE",
    "clusterroles": "NAME CREATED AT",
    "clusterrolebindings": "NAME ROLE AGE",
    "certificatesigningrequests": "NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION",
}

# What each write of a kind Podium does not act on yet must say.
WARNINGS = [
    "Podium does not run Jobs yet: the Job is stored but no pods are created",
    "Podium does not run CronJobs yet",
    "Podium does not run StatefulSets yet",
    "Podium does not run DaemonSets yet",
    "Podium does not run ReplicationControllers yet",
    "Podium does not bind or provision volumes yet",
    "Podium does not bind or mount PersistentVolumes yet",
    "Podium does not provision volumes yet",
    "Podium does not authorize requests by RBAC yet",
    "Podium has no ingress controller yet",
    "Podium does not enforce NetworkPolicies yet",
    "Podium does not autoscale yet",
    "Podium does not schedule or preempt by priority yet",
    "Podium does not enforce ResourceQuotas yet",
    "Podium does not apply LimitRanges yet",
    "Podium does not approve or sign CertificateSigningRequests yet",
]


def header(table: str) -> str:
    return " ".join(table.splitlines()[0].split())


def test_every_new_kind_round_trips_through_kubectl_and_the_python_client(cluster: Cluster):
    from kubernetes import client

    manifest = cluster.work_dir / "kinds.yaml"
    manifest.write_text(MANIFEST)
    applied = cluster.kubectl("apply", "-f", str(manifest))
    assert applied.stdout.count("created") == MANIFEST.count("\nkind: "), applied.stdout
    for warning in WARNINGS:
        assert f"Warning: {warning}" in applied.stderr, (warning, applied.stderr)
    # Kinds that are acted on (ServiceAccounts, ControllerRevisions) warn of nothing.
    assert "ServiceAccount" not in applied.stderr

    for resource, want in HEADERS.items():
        table = cluster.kubectl("get", resource).stdout
        assert header(table) == want, (resource, table)
    jobs = cluster.kubectl("get", "jobs").stdout
    assert re.search(r"^pi\s+Running\s+0/1\s+\S+", jobs, re.M), jobs
    assert "Role/reader" in cluster.kubectl("get", "rolebindings").stdout
    assert "default/data" not in cluster.kubectl("get", "pv").stdout  # not bound: no controller
    wide = cluster.kubectl("get", "rolebindings", "-o", "wide").stdout
    assert header(wide) == "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS", wide
    assert "default/builder" in wide

    # Defaults as upstream sets them, read back as JSON.
    job = cluster.kubectl_json("get", "job", "pi")
    assert job["spec"]["backoffLimit"] == 6 and job["spec"]["completions"] == 1
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "pi"
    assert cluster.kubectl_json("get", "cronjob", "hello")["spec"]["concurrencyPolicy"] == "Allow"
    assert cluster.kubectl_json("get", "sc", "manual")["reclaimPolicy"] == "Delete"

    api = cluster.api_client()
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    networking, rbac = client.NetworkingV1Api(api), client.RbacAuthorizationV1Api(api)
    reads = [
        (core.read_namespaced_service_account, core.list_namespaced_service_account, "builder"),
        (core.read_namespaced_persistent_volume_claim, core.list_namespaced_persistent_volume_claim, "data"),
        (core.read_namespaced_resource_quota, core.list_namespaced_resource_quota, "quota"),
        (core.read_namespaced_limit_range, core.list_namespaced_limit_range, "limits"),
        (core.read_namespaced_replication_controller, core.list_namespaced_replication_controller, "legacy"),
        (apps.read_namespaced_daemon_set, apps.list_namespaced_daemon_set, "agent"),
        (apps.read_namespaced_stateful_set, apps.list_namespaced_stateful_set, "db"),
        (apps.read_namespaced_controller_revision, apps.list_namespaced_controller_revision, "db-1"),
        (batch.read_namespaced_job, batch.list_namespaced_job, "pi"),
        (batch.read_namespaced_cron_job, batch.list_namespaced_cron_job, "hello"),
        (
            client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler,
            client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler,
            "web",
        ),
        (
            client.PolicyV1Api(api).read_namespaced_pod_disruption_budget,
            client.PolicyV1Api(api).list_namespaced_pod_disruption_budget,
            "web",
        ),
        (networking.read_namespaced_ingress, networking.list_namespaced_ingress, "web"),
        (networking.read_namespaced_network_policy, networking.list_namespaced_network_policy, "db"),
        (rbac.read_namespaced_role, rbac.list_namespaced_role, "reader"),
        (rbac.read_namespaced_role_binding, rbac.list_namespaced_role_binding, "read-pods"),
    ]
    for read, list_, name in reads:
        assert read(name, "default").metadata.name == name, read.__name__
        assert name in [item.metadata.name for item in list_("default").items], list_.__name__

    # The same objects at their other versions, converted as upstream.
    hpa_v1 = client.AutoscalingV1Api(api).read_namespaced_horizontal_pod_autoscaler("web", "default")
    assert hpa_v1.spec.target_cpu_utilization_percentage == 80, hpa_v1.spec  # v2's default metric
    events = client.EventsV1Api(api)
    events.create_namespaced_event(
        "default",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e2e-event"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "HorizontalPodAutoscaler", "name": "web", "namespace": "default"},
            "reportingController": "podium.io/e2e",
            "reportingInstance": "e2e-1",
            "action": "Check",
            "reason": "Checked",
            "type": "Normal",
            "note": "written through events.k8s.io",
        },
    )
    # Every Event reads through events.k8s.io, those the controllers wrote as core Events too.
    listed = events.list_namespaced_event("default").items
    assert "e2e-event" in [e.metadata.name for e in listed], [e.metadata.name for e in listed]
    assert core.read_namespaced_event("e2e-event", "default").message == "written through events.k8s.io"
    assert "Checked" in cluster.kubectl("get", "events.v1.events.k8s.io").stdout
    cluster_reads = [
        (core.read_persistent_volume, core.list_persistent_volume, "e2e-pv"),
        (client.StorageV1Api(api).read_storage_class, client.StorageV1Api(api).list_storage_class, "manual"),
        (networking.read_ingress_class, networking.list_ingress_class, "e2e-nginx"),
        (
            client.SchedulingV1Api(api).read_priority_class,
            client.SchedulingV1Api(api).list_priority_class,
            "e2e-high",
        ),
        (rbac.read_cluster_role, rbac.list_cluster_role, "e2e-node-reader"),
        (rbac.read_cluster_role_binding, rbac.list_cluster_role_binding, "e2e-read-nodes"),
        (
            client.CertificatesV1Api(api).read_certificate_signing_request,
            client.CertificatesV1Api(api).list_certificate_signing_request,
            "e2e-jane",
        ),
    ]
    for read, list_, name in cluster_reads:
        assert read(name).metadata.name == name, read.__name__
        assert name in [item.metadata.name for item in list_().items], list_.__name__

    deleted = cluster.kubectl("delete", "-f", str(manifest), timeout=120)
    assert deleted.stdout.count("deleted") == MANIFEST.count("\nkind: "), deleted.stdout
    assert cluster.kubectl("get", "job", "pi", check=False).returncode != 0


def test_invalid_objects_are_refused_naming_the_field(cluster: Cluster):
    bad_job = """
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  template:
    spec:
      containers: [{name: c, image: busybox}]
"""
    done = cluster.kubectl("apply", "-f", "-", input=bad_job, check=False)
    assert done.returncode != 0
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' in (
        done.stderr
    ), done.stderr


def test_every_namespace_gets_a_default_service_account(cluster: Cluster):
    from kubernetes import client

    cluster.kubectl("create", "namespace", "team-a")
    core = client.CoreV1Api(cluster.api_client())

    def has_default() -> tuple[bool, str]:
        names = [sa.metadata.name for sa in core.list_namespaced_service_account("team-a").items]
        return "default" in names, str(names)

    wait_for("the default ServiceAccount in team-a", has_default, timeout=30)
    # Deleted, it comes back.
    cluster.kubectl("delete", "serviceaccount", "default", "-n", "team-a")
    wait_for("the default ServiceAccount made again", has_default, timeout=30)
