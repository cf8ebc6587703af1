"""`podium server`: the control plane alone, and one process per data dir."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from podium_cluster import Cluster, child_environment, make_work_dir, wait_for


@pytest.fixture
def server(as_root, podium_bin: Path, kubectl_bin: Path):
    work_dir = make_work_dir()
    running = Cluster(podium_bin, kubectl_bin, work_dir / "data", work_dir, command="server")
    try:
        running.start()
        yield running
    finally:
        failure = running.teardown()
        if failure is None:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            pytest.fail(f"teardown of the server in {work_dir}:\n{failure}", pytrace=False)


def test_server_runs_the_control_plane_without_a_node(server: Cluster):
    server.kubectl("create", "namespace", "team-a")
    server.kubectl("-n", "team-a", "create", "deployment", "web", "--image=sample-app:v1", "--replicas=2")

    # The controllers run: the Deployment gets its ReplicaSet and pods ...
    def pods_made() -> tuple[bool, object]:
        pods = server.kubectl_json("-n", "team-a", "get", "pods")["items"]
        return len(pods) == 2, [p["metadata"]["name"] for p in pods]

    wait_for("the Deployment's two pods", pods_made, timeout=30)
    # ... which stay Pending, unscheduled: there is no node, none registers.
    time.sleep(3)
    pods = server.kubectl_json("-n", "team-a", "get", "pods")["items"]
    assert [p["status"].get("phase") for p in pods] == ["Pending", "Pending"], pods
    assert all(not p["spec"].get("nodeName") for p in pods), pods
    assert server.kubectl_json("get", "nodes")["items"] == []
    # The default ServiceAccount and the kubernetes Service: cluster-wide loops run.
    wait_for(
        "the default ServiceAccount of team-a",
        lambda: (server.kubectl("-n", "team-a", "get", "serviceaccount", "default", check=False).returncode == 0, ""),
        timeout=15,
    )
    service = server.kubectl_json("get", "service", "kubernetes")
    assert service["spec"]["clusterIP"] == "10.43.0.1"


@pytest.mark.parametrize("second", ["server", "up"])
def test_a_second_process_on_the_same_data_dir_is_refused(server: Cluster, second: str):
    other_port = str(server.port + 1 if server.port < 65535 else server.port - 1)
    command = [str(server.podium), second, "--data-dir", str(server.data_dir), "--listen", f"127.0.0.1:{other_port}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=child_environment(), check=False)
    assert done.returncode != 0, f"a second podium {second} started on a locked data dir:\n{done.stderr}"
    pid = server.process.pid
    assert f"another podium (pid {pid}) is running on the data dir {server.data_dir}" in done.stderr, done.stderr
    assert "--data-dir" in done.stderr, "the message says what to do"
    # The first one is untouched.
    assert server.kubectl("get", "namespaces").returncode == 0


def test_the_data_dir_is_free_again_after_kill_9(server: Cluster):
    server.kubectl("create", "configmap", "kept", "--from-literal=k=v")
    server.kill9()
    server.start()
    assert server.kubectl_json("get", "configmap", "kept")["data"] == {"k": "v"}
