"""The sample-app walkthrough end to end: deploy, roll out, self-heal, survive a crash, report errors."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from podium_cluster import (
    KUBECTL_NEWEST,
    SAMPLE_APP_MANIFEST,
    V1_MESSAGE,
    V2_MESSAGE,
    Cluster,
    ReadyPodWatcher,
    RequestLoop,
    SampleImages,
    http_get,
    parse_table,
    wait_for,
)

SERVICE_URL = "http://127.0.0.1:80/"
SELECTOR = "app=sample-app-pods"
DEPLOYMENT = "deployment/sample-app-deployment"
REPLICAS = 3


# ---- manifests ------------------------------------------------------------------------


def v2_manifest() -> str:
    """examples/sample-app.yaml with image sample-app:v2 and a surge-only rolling update."""
    documents = list(yaml.safe_load_all(SAMPLE_APP_MANIFEST.read_text()))
    deployments = [d for d in documents if d and d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise AssertionError(f"{SAMPLE_APP_MANIFEST} should hold one Deployment, found {len(deployments)}")
    spec = deployments[0]["spec"]
    spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}
    spec["template"]["spec"]["containers"][0]["image"] = "sample-app:v2"
    return yaml.safe_dump_all(documents, sort_keys=False)


# ---- observations ---------------------------------------------------------------------


def pod_rows(cluster: Cluster) -> list[dict[str, str]]:
    """`kubectl get pods` as users read it (the Table the server renders)."""
    return parse_table(cluster.kubectl("get", "pods", "-l", SELECTOR, timeout=20).stdout)


def running_ready(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row.get("STATUS") == "Running" and row.get("READY") == "1/1"]


def deployment_ready_column(cluster: Cluster) -> str:
    rows = parse_table(cluster.kubectl("get", "deployments", timeout=20).stdout)
    return next((row["READY"] for row in rows if row.get("NAME") == "sample-app-deployment"), "(no row)")


def wait_for_sample_app(cluster: Cluster, timeout: float, exclude: set[str] = frozenset()) -> list[str]:
    """Wait until exactly 3 sample-app pods show Running and 1/1, and the Deployment 3/3.

    Pods named in `exclude` (deleted ones still terminating) are ignored. Returns the names.
    """

    def probe() -> tuple[bool, str]:
        rows = [row for row in pod_rows(cluster) if row.get("NAME") not in exclude]
        ready = running_ready(rows)
        column = deployment_ready_column(cluster)
        done = len(rows) == REPLICAS and len(ready) == REPLICAS and column == f"{REPLICAS}/{REPLICAS}"
        return done, (sorted(row["NAME"] for row in rows) if done else f"pods: {rows}\ndeployment READY: {column}")

    wait_for(
        f"{REPLICAS} Running 1/1 pods and deployment {REPLICAS}/{REPLICAS}", probe, timeout, 0.5, cluster.diagnostics
    )
    return sorted(row["NAME"] for row in pod_rows(cluster) if row.get("NAME") not in exclude)


def wait_for_answer(cluster: Cluster, message: str, timeout: float = 30) -> None:
    """Wait until the LoadBalancer answers `message` (endpoints and proxy rules may lag readiness)."""

    def probe() -> tuple[bool, str]:
        status, body = http_get(SERVICE_URL)
        return status == 200 and body == message, f"HTTP {status}: {body[:200]!r}"

    wait_for(f"{SERVICE_URL} to answer {message!r}", probe, timeout, 0.25, cluster.diagnostics)


def deploy_sample_app(cluster: Cluster, images: SampleImages, with_v2: bool = False) -> list[str]:
    cluster.import_image(images.v1)
    if with_v2:
        cluster.import_image(images.v2)
    cluster.kubectl("apply", "-f", str(SAMPLE_APP_MANIFEST))
    names = wait_for_sample_app(cluster, timeout=30)
    wait_for_answer(cluster, V1_MESSAGE)
    return names


def rollout_revisions(cluster: Cluster) -> list[int]:
    output = cluster.kubectl("rollout", "history", DEPLOYMENT).stdout
    lines = output.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("REVISION")), None)
    if header is None:
        raise AssertionError(f"kubectl rollout history printed no REVISION table:\n{output}")
    return sorted(int(row["REVISION"]) for row in parse_table("\n".join(lines[header:])))


def observe_rollout(cluster: Cluster, start_rollout, old_message: str, new_message: str) -> None:
    """Run `start_rollout` under a 20 ms request loop and a 100 ms ready-pod watcher.

    Checks: no request fails, answers go from old to new and end all new, rollout
    status succeeds, and never fewer than 3 ready (non-terminating) pods.
    """
    with (
        RequestLoop(SERVICE_URL, interval=0.02, max_seconds=300) as loop,
        ReadyPodWatcher(cluster, SELECTOR, interval=0.1, max_seconds=300) as watcher,
    ):
        wait_for(
            "the request loop and the watcher to get going",
            lambda: (
                len(loop.snapshot()) >= 10 and len(watcher.samples) >= 5,
                (len(loop.snapshot()), len(watcher.samples)),
            ),
            timeout=15,
            interval=0.1,
        )
        started = time.monotonic()
        start_rollout()
        cluster.kubectl("rollout", "status", DEPLOYMENT, "--timeout=180s", timeout=200)
        # Answers already in flight may still come from old pods for a moment after the
        # Deployment reports done; 25 consecutive new answers (0.5 s) mean the switch is over.
        checked_from = len(loop.snapshot())

        def all_new() -> tuple[bool, str]:
            recent = [body for _, body, _ in loop.snapshot()[checked_from:]][-25:]
            return len(recent) == 25 and all(body == new_message for body in recent), recent

        wait_for(
            f"every answer to be {new_message!r}", all_new, timeout=60, interval=0.2, diagnostics=cluster.diagnostics
        )

    results = loop.snapshot()
    failures = loop.failures()
    timeline = ", ".join(f"{t - started:+.2f}s {error}" for t, _, error in failures[:10])
    assert not failures, f"{len(failures)} of {len(results)} requests failed during the rollout: {timeline}"
    bodies = loop.bodies()
    assert set(bodies) <= {old_message, new_message}, f"unexpected answers: {set(bodies) - {old_message, new_message}}"
    assert bodies[0] == old_message, f"the first answer was {bodies[0]!r}, expected {old_message!r}"
    assert bodies[-1] == new_message
    assert old_message in bodies and new_message in bodies

    assert not watcher.errors, f"the API server failed the watcher's polls: {watcher.errors[:5]}"
    dips = watcher.dips(REPLICAS)
    assert not dips, "fewer than 3 ready pods during the rollout: " + "; ".join(
        f"{t - started:+.2f}s {count} ready {names}" for t, count, names in dips[:10]
    )
    # The watcher must have seen the surge itself, or it proved nothing.
    assert len(watcher.pod_names) >= 2 * REPLICAS, f"the watcher saw only pods {sorted(watcher.pod_names)}"


def pod_by_name(cluster: Cluster, name: str) -> dict:
    return cluster.kubectl_json("get", "pod", name)


# ---- tests ----------------------------------------------------------------------------


def test_deploy_v1_and_service(cluster: Cluster, sample_images: SampleImages):
    names = deploy_sample_app(cluster, sample_images)
    assert deployment_ready_column(cluster) == "3/3"

    answers = []
    for _ in range(300):
        status, body = http_get(SERVICE_URL)
        answers.append((status, body))
    wrong = [answer for answer in answers if answer != (200, V1_MESSAGE)]
    assert not wrong, f"{len(wrong)} of 300 requests did not answer {V1_MESSAGE!r}: {wrong[:5]}"

    def requests_logged() -> tuple[bool, dict[str, int]]:
        # busybox httpd -v logs one `<peer>: response:200` line per request.
        counts = {name: cluster.kubectl("logs", name).stdout.count("response:") for name in names}
        return all(counts.values()) and sum(counts.values()) >= 300, counts

    counts = wait_for("every pod's log to show requests", requests_logged, 20, 1, cluster.diagnostics)
    assert len(counts) == 3

    # `kubectl describe service` reads its Endpoints line from discovery.k8s.io EndpointSlices.
    pod_ips = sorted(pod_by_name(cluster, name)["status"]["podIP"] for name in names)
    described = cluster.kubectl("describe", "service", "sample-app-loadbalancer").stdout
    endpoints_line = next((line for line in described.splitlines() if line.startswith("Endpoints:")), "")
    assert sorted(endpoints_line.split(":", 1)[1].strip().split(",")) == [f"{ip}:8080" for ip in pod_ips], described
    # (The control plane's own `kubernetes` slice sits beside it.)
    slices = parse_table(
        cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=sample-app-loadbalancer").stdout
    )
    assert [(row["ADDRESSTYPE"], row["PORTS"]) for row in slices] == [("IPv4", "8080")], slices
    assert sorted(slices[0]["ENDPOINTS"].split(",")) == pod_ips, slices

    # Through the API server's proxy subresources, as `kubectl get --raw` reaches them.
    for raw in [
        "/api/v1/namespaces/default/services/sample-app-loadbalancer/proxy/",
        "/api/v1/namespaces/default/services/sample-app-loadbalancer:80/proxy/",
        f"/api/v1/namespaces/default/pods/{names[0]}:8080/proxy/",
    ]:
        answer = cluster.kubectl("get", "--raw", raw).stdout
        assert answer == V1_MESSAGE, (raw, answer)

    # The newest kubectl shipped beside the dispatcher reads the same cluster.
    assert KUBECTL_NEWEST.exists(), f"{KUBECTL_NEWEST} is missing; this machine kind ships kubectl 1.27-1.33"
    rows = parse_table(cluster.kubectl("get", "deployments", kubectl=KUBECTL_NEWEST).stdout)
    assert [row["READY"] for row in rows if row["NAME"] == "sample-app-deployment"] == ["3/3"]


def test_rolling_update_and_undo(cluster: Cluster, sample_images: SampleImages, tmp_path: Path):
    deploy_sample_app(cluster, sample_images, with_v2=True)
    v2_file = tmp_path / "sample-app-v2.yaml"
    v2_file.write_text(v2_manifest())

    observe_rollout(cluster, lambda: cluster.kubectl("apply", "-f", str(v2_file)), V1_MESSAGE, V2_MESSAGE)
    image = cluster.kubectl("get", DEPLOYMENT, "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "sample-app:v2"
    assert rollout_revisions(cluster) == [1, 2]

    observe_rollout(cluster, lambda: cluster.kubectl("rollout", "undo", DEPLOYMENT), V2_MESSAGE, V1_MESSAGE)
    image = cluster.kubectl("get", DEPLOYMENT, "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "sample-app:v1"
    # Undo re-uses revision 1's ReplicaSet under the next revision number, as upstream does.
    assert rollout_revisions(cluster) == [2, 3]
    wait_for_sample_app(cluster, timeout=60)


def test_deleted_pod_is_replaced(cluster: Cluster, sample_images: SampleImages):
    names = deploy_sample_app(cluster, sample_images)
    victim = names[0]
    # --wait=false: the replacement must appear while the old pod may still be terminating.
    cluster.kubectl("delete", "pod", victim, "--wait=false")
    replaced = wait_for_sample_app(cluster, timeout=10, exclude={victim})
    assert victim not in replaced
    assert len(set(replaced) - set(names)) == 1, f"expected one new pod, before {names}, after {replaced}"

    def gone() -> tuple[bool, str]:
        done = cluster.kubectl("get", "pod", victim, check=False, timeout=20)
        return done.returncode != 0 and "NotFound" in done.stderr, done.stdout + done.stderr

    wait_for(f"deleted pod {victim} to disappear", gone, 60, 1, cluster.diagnostics)
    assert sorted(row["NAME"] for row in pod_rows(cluster)) == replaced
    wait_for_answer(cluster, V1_MESSAGE)


def test_killed_container_is_restarted(cluster: Cluster, sample_images: SampleImages):
    names = deploy_sample_app(cluster, sample_images)
    pod = pod_by_name(cluster, names[0])
    pid = cluster.container_pid(pod, "sample-app")
    os.kill(pid, signal.SIGKILL)

    def restarted() -> tuple[bool, str]:
        count = cluster.kubectl(
            "get", "pod", names[0], "-o", "jsonpath={.status.containerStatuses[0].restartCount}", timeout=20
        ).stdout
        return count.strip().isdigit() and int(count) >= 1, f"restartCount {count!r}"

    wait_for(f"the restartCount of {names[0]} to rise", restarted, 60, 0.5, cluster.diagnostics)
    # The same pod restarts its container in place: no replacement pod.
    assert wait_for_sample_app(cluster, timeout=60) == names
    status = pod_by_name(cluster, names[0])["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL, status
    new_pid = cluster.container_pid(pod, "sample-app")
    assert new_pid != pid
    wait_for_answer(cluster, V1_MESSAGE)


def test_server_crash_and_restart(cluster: Cluster, sample_images: SampleImages):
    names = deploy_sample_app(cluster, sample_images)
    deployment_uid = cluster.kubectl_json("get", DEPLOYMENT)["metadata"]["uid"]
    service_uid = cluster.kubectl_json("get", "service", "sample-app-loadbalancer")["metadata"]["uid"]
    pods = {name: pod_by_name(cluster, name) for name in names}
    pids = {name: cluster.container_pid(pod, "sample-app") for name, pod in pods.items()}

    cluster.kill9()
    # Containers outlive `podium up` by design.
    for name, pid in pids.items():
        assert os.path.exists(f"/proc/{pid}"), f"the container of {name} died with podium up"

    cluster.restart()
    most_pods_seen = 0

    def recovered() -> tuple[bool, str]:
        nonlocal most_pods_seen
        items = cluster.kubectl_json("get", "pods", "-l", SELECTOR, timeout=20)["items"]
        most_pods_seen = max(most_pods_seen, len(items))
        rows = running_ready(pod_rows(cluster))
        return len(items) == REPLICAS and len(rows) == REPLICAS and deployment_ready_column(cluster) == "3/3", (
            f"{len(items)} pods, ready rows {rows}"
        )

    wait_for("the sample app to come back after the restart", recovered, 60, 0.5, cluster.diagnostics)
    # Stay a while: a controller that lost track would create extra pods now.
    stable_until = time.monotonic() + 5
    while time.monotonic() < stable_until:
        recovered()
        time.sleep(0.5)
    assert most_pods_seen == REPLICAS, f"saw {most_pods_seen} pods after the restart (duplicates)"
    assert sorted(row["NAME"] for row in pod_rows(cluster)) == names

    assert cluster.kubectl_json("get", DEPLOYMENT)["metadata"]["uid"] == deployment_uid
    assert cluster.kubectl_json("get", "service", "sample-app-loadbalancer")["metadata"]["uid"] == service_uid
    for name, pod in pods.items():
        # Exactly one container process per pod (find_container_init checks), the same one.
        assert cluster.container_pid(pod, "sample-app") == pids[name], f"the container of {name} was restarted"

    wait_for_answer(cluster, V1_MESSAGE)
    for _ in range(30):
        assert http_get(SERVICE_URL) == (200, V1_MESSAGE)


MISSING_IMAGE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: missing-image-app
spec:
  replicas: 1
  selector:
    matchLabels:
      app: missing-image-app
  template:
    metadata:
      labels:
        app: missing-image-app
    spec:
      containers:
        - name: app
          image: sample-app:does-not-exist
"""

MALFORMED_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: malformed
data:
  key: [unclosed
"""

UNKNOWN_KIND = """\
apiVersion: podium.example/v1
kind: Gadget
metadata:
  name: gadget
"""


def assert_still_serving(cluster: Cluster) -> None:
    done = cluster.kubectl("get", "pods", check=False, timeout=20)
    assert done.returncode == 0, f"kubectl get pods failed after bad input:\n{done.stderr}\n{cluster.log_tail()}"


def test_errors_are_reported(cluster: Cluster, tmp_path: Path):
    cluster.kubectl("apply", "-f", "-", input=MISSING_IMAGE_DEPLOYMENT)
    pull_reasons = {"ErrImagePull", "ImagePullBackOff"}

    def pull_failure() -> tuple[bool, object]:
        items = cluster.kubectl_json("get", "pods", "-l", "app=missing-image-app", timeout=20)["items"]
        if len(items) != 1:
            return False, f"{len(items)} pods"
        statuses = items[0].get("status", {}).get("containerStatuses") or []
        waiting = (statuses[0].get("state", {}).get("waiting") or {}) if statuses else {}
        return waiting.get("reason") in pull_reasons, items[0]

    pod = wait_for("the pod to report an image pull failure", pull_failure, 60, 1, cluster.diagnostics)
    name = pod["metadata"]["name"]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is False
    ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "False", pod["status"]

    description = cluster.kubectl("describe", "pod", name).stdout
    assert any(reason in description for reason in pull_reasons), description

    def warning_event() -> tuple[bool, object]:
        events = cluster.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
        warnings = [
            e
            for e in events
            if e.get("type") == "Warning"
            and (e.get("reason") in pull_reasons | {"Failed", "BackOff"} or "image" in e.get("message", "").lower())
        ]
        return bool(warnings), events

    wait_for(f"a Warning event about pulling the image of {name}", warning_event, 30, 1, cluster.diagnostics)
    assert_still_serving(cluster)

    malformed = tmp_path / "malformed.yaml"
    malformed.write_text(MALFORMED_YAML)
    done = cluster.kubectl("apply", "-f", str(malformed), check=False)
    assert done.returncode != 0, done.stdout
    assert "yaml" in done.stderr.lower(), done.stderr
    assert "NotFound" in cluster.kubectl("get", "configmap", "malformed", check=False).stderr
    assert_still_serving(cluster)

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(UNKNOWN_KIND)
    done = cluster.kubectl("apply", "-f", str(unknown), check=False)
    assert done.returncode != 0, done.stdout
    assert 'no matches for kind "Gadget"' in done.stderr, done.stderr
    assert_still_serving(cluster)


def test_python_client(cluster: Cluster, sample_images: SampleImages):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    names = deploy_sample_app(cluster, sample_images)
    core = client.CoreV1Api(cluster.api_client())
    apps = client.AppsV1Api(cluster.api_client())

    pods = core.list_namespaced_pod("default", label_selector=SELECTOR).items
    assert sorted(p.metadata.name for p in pods) == names
    assert all(p.status.phase == "Running" for p in pods)

    deployment = apps.read_namespaced_deployment("sample-app-deployment", "default")
    assert deployment.spec.replicas == 3
    assert deployment.status.ready_replicas == 3
    assert deployment.spec.template.spec.containers[0].image == "sample-app:v1"
    assert deployment.spec.template.spec.containers[0].env[0].value == "production"

    created = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="e2e-settings"), data={"greeting": "hello"})
    )
    assert created.metadata.uid
    assert core.read_namespaced_config_map("e2e-settings", "default").data == {"greeting": "hello"}
    listed = core.list_namespaced_config_map("default").items
    assert "e2e-settings" in [c.metadata.name for c in listed]
    core.delete_namespaced_config_map("e2e-settings", "default")

    def deleted() -> tuple[bool, str]:
        try:
            core.read_namespaced_config_map("e2e-settings", "default")
            return False, "still there"
        except ApiException as error:
            return error.status == 404, f"HTTP {error.status}"

    wait_for("the ConfigMap to be gone", deleted, 10, 0.5, cluster.diagnostics)


@pytest.mark.parametrize("kubectl_path", [None, KUBECTL_NEWEST], ids=["dispatcher", "kubectl-1.33"])
def test_kubectl_clients_read_the_cluster(cluster: Cluster, kubectl_path):
    """The dispatcher's pick (by /version) and the newest client both talk to Podium."""
    version = cluster.kubectl("version", "-o", "json", kubectl=kubectl_path)
    assert '"serverVersion"' in version.stdout, version.stdout + version.stderr
    namespaces = parse_table(cluster.kubectl("get", "namespaces", kubectl=kubectl_path).stdout)
    assert "default" in [row["NAME"] for row in namespaces]
