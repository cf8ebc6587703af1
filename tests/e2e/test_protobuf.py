"""kubectl 1.32 and 1.33 send built-in objects from their typed clients as Kubernetes
protobuf (`application/vnd.kubernetes.protobuf`); older clients send JSON. Each minor,
called by full path, runs the typed-client verbs, and the results are read back as JSON
by the official Python client, so the two encodings must agree on every object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium_cluster import Cluster

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
# 1.32+ are the protobuf senders; 1.31 is the newest JSON sender, for comparison.
MINORS = ["1.31", "1.32", "1.33"]


def kubectl_of(minor: str) -> Path:
    path = KUBECTL_DIR / f"kubectl.{minor}"
    assert path.exists(), f"{path} is missing; this machine kind ships kubectl 1.27-1.33"
    return path


@pytest.mark.parametrize("minor", MINORS)
def test_typed_client_verbs(cluster: Cluster, minor: str):
    kubectl = kubectl_of(minor)

    def run(*args: str) -> str:
        return cluster.kubectl(*args, kubectl=kubectl).stdout

    assert "namespace/demo created" in run("create", "namespace", "demo")
    assert "configmap/settings created" in run(
        "create", "configmap", "settings", "-n", "demo", "--from-literal=color=blue", "--from-literal=size=10"
    )
    assert "secret/creds created" in run("create", "secret", "generic", "creds", "-n", "demo", "--from-literal=password=hunter2")
    assert "deployment.apps/web created" in run(
        "create", "deployment", "web", "-n", "demo", "--image=sample-app:v1", "--replicas=0", "--port=8080"
    )
    assert "service/web-svc created" in run("create", "service", "clusterip", "web-svc", "-n", "demo", "--tcp=80:8080")
    assert "job.batch/once created" in run("create", "job", "once", "-n", "demo", "--image=sample-app:v1")
    assert "pod/solo created" in run("run", "solo", "-n", "demo", "--image=sample-app:v1", "--labels=app=solo", "--port=8080")
    assert "service/web exposed" in run("expose", "deployment", "web", "-n", "demo", "--port=80", "--target-port=8080")
    assert "deployment.apps/web scaled" in run("scale", "deployment", "web", "-n", "demo", "--replicas=0")
    assert "labeled" in run("label", "configmap", "settings", "-n", "demo", "tier=backend")
    node = run("get", "nodes", "-o", "name").split()[0]
    assert "cordoned" in run("cordon", node)
    assert "uncordoned" in run("uncordon", node)

    # Read back as JSON with the Python client: what the protobuf decoder stored.
    from kubernetes import client

    api = cluster.api_client()
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    assert core.read_namespace("demo").status.phase == "Active"
    settings = core.read_namespaced_config_map("settings", "demo")
    assert settings.data == {"color": "blue", "size": "10"}
    assert settings.metadata.labels == {"tier": "backend"}
    secret = core.read_namespaced_secret("creds", "demo")
    assert secret.data == {"password": "aHVudGVyMg=="}
    assert secret.type == "Opaque"
    web = apps.read_namespaced_deployment("web", "demo")
    assert web.spec.replicas == 0  # a pointer field: zero is kept
    container = web.spec.template.spec.containers[0]
    assert (container.image, container.ports[0].container_port) == ("sample-app:v1", 8080)
    assert container.image_pull_policy == "IfNotPresent"  # "" on the wire was unset: defaulted
    assert container.termination_message_path == "/dev/termination-log"
    exposed = core.read_namespaced_service("web", "demo")
    assert exposed.spec.ports[0].port == 80
    assert exposed.spec.ports[0].target_port == 8080  # IntOrString as a number
    assert exposed.spec.cluster_ip
    svc = core.read_namespaced_service("web-svc", "demo")
    assert (svc.spec.ports[0].port, svc.spec.ports[0].target_port) == (80, 8080)
    pod = core.read_namespaced_pod("solo", "demo")
    assert pod.metadata.labels == {"app": "solo"}
    assert core.read_node(node.split("/")[1]).spec.unschedulable in (None, False)
    job = client.BatchV1Api(api).read_namespaced_job("once", "demo")
    assert job.spec.template.spec.restart_policy == "Never"
    assert job.spec.backoff_limit == 6  # defaulted after a protobuf create

    # kubectl's own reads (protobuf answers for 1.32+) and deletes.
    got = json.loads(run("get", "configmap", "settings", "-n", "demo", "-o", "json"))
    assert got["data"] == {"color": "blue", "size": "10"}
    assert "deleted" in run("delete", "configmap", "settings", "-n", "demo")
    assert "deleted" in run("delete", "namespace", "demo", "--wait=false")
