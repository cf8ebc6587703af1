"""Upstream's small contracts (issue 9 item 14), as the real kubectl and the official Python
client meet them: each sends what those clients send and checks kube-apiserver's
documented answer.
"""

from __future__ import annotations

import base64
import json

from podium_cluster import Cluster, SampleImages, http_get, wait_for

# A PEM block base64-wrapped at 64 columns, as the Kubernetes docs' TLS Secret example
# (and `base64` without -w0) writes it; Go's decoder skips the line breaks.
PEM = (
    b"-----BEGIN CERTIFICATE-----\n"
    b"MIIC6zCCAdOgAwIBAgIJALhKA6oJStjoMA0GCSqGSIb3DQEBCwUAMAAwHhcNMjQw\n"
    b"-----END CERTIFICATE-----\n"
)
WRAPPED = base64.b64encode(PEM).decode()
WRAPPED = "\n".join(WRAPPED[i : i + 64] for i in range(0, len(WRAPPED), 64))


def test_trailing_slash_roots_answer_as_without(cluster: Cluster):
    # Some client libraries ask for `/version/`; kube-apiserver's go-restful roots answer it.
    for path in ["/version", "/api", "/apis", "/api/v1", "/apis/apps/v1"]:
        plain_status, plain = http_get(cluster.server + path, opener=cluster.opener)
        slashed_status, slashed = http_get(cluster.server + path + "/", opener=cluster.opener)
        assert (plain_status, slashed_status) == (200, 200), (path, plain, slashed)
        assert json.loads(slashed) == json.loads(plain), path


def test_secret_string_data_and_go_base64(cluster: Cluster):
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    # The Python client sends string_data as `stringData`: stored in `data`, dropped itself.
    created = core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="py"),
            data={"kept": base64.b64encode(b"old").decode(), "both": base64.b64encode(b"old").decode()},
            string_data={"both": "new", "plain": "text"},
        ),
    )
    assert created.string_data is None
    assert created.data == {
        "kept": base64.b64encode(b"old").decode(),
        "both": base64.b64encode(b"new").decode(),
        "plain": base64.b64encode(b"text").decode(),
    }
    patched = core.patch_namespaced_secret("py", "default", {"stringData": {"added": "z"}})
    assert patched.data["added"] == base64.b64encode(b"z").decode()
    assert patched.string_data is None

    # The docs' TLS example: `data` with line breaks, applied by kubectl.
    manifest = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\ntype: kubernetes.io/tls\ndata:\n"
        "  tls.crt: |\n" + "".join(f"    {line}\n" for line in WRAPPED.splitlines()) + "  tls.key: |\n"
        "    " + base64.b64encode(b"key").decode() + "\n"
        "stringData:\n  ca.crt: plain text\n"
    )
    cluster.kubectl("apply", "-f", "-", input=manifest)
    stored = cluster.kubectl_json("get", "secret", "tls")
    assert "stringData" not in stored, stored
    assert base64.b64decode(stored["data"]["tls.crt"]) == PEM
    assert base64.b64decode(stored["data"]["ca.crt"]) == b"plain text"

    # Bad base64: refused, the field named, nothing stored.
    bad = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\ndata:\n  password: c2VjcmV0!\n"
    done = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert done.returncode != 0
    assert "data[password]: illegal base64 data at input byte 8" in done.stderr, done.stderr
    assert cluster.kubectl("get", "secret", "bad", check=False).returncode != 0


def test_delete_answers_with_the_object_where_upstream_does(cluster: Cluster):
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_service(
        "default",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="gone"),
            spec=client.V1ServiceSpec(selector={"app": "x"}, ports=[client.V1ServicePort(port=80)]),
        ),
    )
    # The client's model for this answer is V1Service: a Status would fail to parse.
    deleted = core.delete_namespaced_service("gone", "default")
    assert isinstance(deleted, client.V1Service), deleted
    assert deleted.metadata.name == "gone"
    assert deleted.spec.cluster_ip

    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    status = core.delete_namespaced_config_map("c", "default")
    assert status["kind"] == "Status" and status["status"] == "Success", status

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    namespace = core.delete_namespace("doomed")
    assert namespace["kind"] == "Namespace", namespace
    assert namespace["status"]["phase"] == "Terminating"


def test_kubernetes_service_and_health_checks(cluster: Cluster):
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    service = core.read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == "10.43.0.1"
    assert [(p.name, p.port, p.target_port) for p in service.spec.ports] == [("https", 443, cluster.port)]
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for a in endpoints.subsets[0].addresses] == ["127.0.0.1"]
    assert [p.port for p in endpoints.subsets[0].ports] == [cluster.port]
    table = cluster.kubectl("get", "service", "kubernetes").stdout
    assert "10.43.0.1" in table and "443/TCP" in table, table

    status, body = http_get(f"{cluster.server}/readyz?verbose", opener=cluster.opener)
    assert status == 200
    assert "[+]etcd ok\n" in body and body.endswith("readyz check passed\n"), body
    assert http_get(f"{cluster.server}/livez/etcd", opener=cluster.opener) == (200, "ok")
    status, body = http_get(f"{cluster.server}/healthz?verbose&exclude=etcd", opener=cluster.opener)
    assert status == 200 and "[+]etcd excluded: ok\n" in body, body


def test_kubectl_drain_evicts_pods(cluster: Cluster, sample_images: SampleImages):
    # `kubectl drain` cordons the node, then POSTs a policy/v1 Eviction per pod (protobuf
    # from kubectl 1.32 on) and waits until each pod is gone.
    cluster.import_image(sample_images.v1)
    cluster.kubectl("run", "drained", "--image=sample-app:v1", "--port=8080")

    def running() -> tuple[bool, str]:
        pod = cluster.kubectl_json("get", "pod", "drained")
        return pod["status"].get("phase") == "Running", pod["status"].get("phase", "")

    wait_for("pod drained to run", running, timeout=60, diagnostics=cluster.diagnostics)
    node = cluster.kubectl("get", "nodes", "-o", "name").stdout.strip().removeprefix("node/")
    done = cluster.kubectl(
        "drain", node, "--force", "--ignore-daemonsets", "--grace-period=5", "--timeout=90s", timeout=120
    )
    assert "evicting pod default/drained" in done.stdout + done.stderr, done.stdout + done.stderr
    assert f"node/{node} drained" in done.stdout, done.stdout
    assert cluster.kubectl("get", "pod", "drained", check=False).returncode != 0
    assert cluster.kubectl_json("get", "node", node)["spec"].get("unschedulable") is True
    cluster.kubectl("uncordon", node)


def test_evictions_honour_pod_disruption_budgets(cluster: Cluster, sample_images: SampleImages):
    """The disruption controller counts a budget's pods; `kubectl drain` is refused (429,
    retried) while the budget allows no disruption; the Python client's eviction spends
    the one allowed and the next gets 429."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    cluster.import_image(sample_images.v1)
    cluster.kubectl("create", "deployment", "web", "--image=sample-app:v1", "--replicas=2")
    cluster.kubectl("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=2")

    def budget_counts(want: tuple[int, int, int, int]):
        def probe() -> tuple[bool, object]:
            status = cluster.kubectl_json("get", "pdb", "web").get("status", {})
            seen = tuple(status.get(k) for k in ("expectedPods", "currentHealthy", "desiredHealthy", "disruptionsAllowed"))
            return seen == want, status

        return probe

    status = wait_for("the budget to count 2 healthy pods", budget_counts((2, 2, 2, 0)), timeout=60, diagnostics=cluster.diagnostics)
    condition = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientPods"), condition
    table = cluster.kubectl("get", "pdb", "web").stdout
    assert "ALLOWED DISRUPTIONS" in table and table.splitlines()[1].split()[3] == "0", table

    node = cluster.kubectl("get", "nodes", "-o", "name").stdout.strip().removeprefix("node/")
    drained = cluster.kubectl("drain", node, "--ignore-daemonsets", "--timeout=8s", check=False, timeout=60)
    assert drained.returncode != 0, drained.stdout + drained.stderr
    assert "Cannot evict pod as it would violate the pod's disruption budget." in drained.stderr, drained.stderr
    pods = cluster.pods("app=web")
    assert len(pods) == 2 and not any(p["metadata"].get("deletionTimestamp") for p in pods), pods

    # One disruption allowed: the first eviction spends it; the node stays cordoned, so no
    # replacement becomes healthy and the second is refused.
    cluster.kubectl("patch", "pdb", "web", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    wait_for("the budget to allow one disruption", budget_counts((2, 2, 1, 1)), timeout=30)
    core = client.CoreV1Api(cluster.api_client())
    first, second = (p["metadata"]["name"] for p in pods)

    def eviction(name: str):
        return client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="default"))

    core.create_namespaced_pod_eviction(first, "default", eviction(first))
    try:
        core.create_namespaced_pod_eviction(second, "default", eviction(second))
        raise AssertionError("the second eviction was allowed")
    except ApiException as refused:
        assert refused.status == 429, refused
        assert "disruption budget" in refused.body, refused.body
    status = cluster.kubectl_json("get", "pdb", "web")["status"]
    assert status["disruptionsAllowed"] == 0, status
    second_pod = cluster.kubectl_json("get", "pod", second)
    assert not second_pod["metadata"].get("deletionTimestamp"), second_pod
    cluster.kubectl("uncordon", node)
