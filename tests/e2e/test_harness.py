"""Checks of the suite's own machinery (no server needed): tables, manifests, images, leak checks."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from podium_cluster import (
    SAMPLE_APP_MANIFEST,
    V1_MESSAGE,
    V2_MESSAGE,
    Cluster,
    RequestLoop,
    SampleImages,
    find_container_init,
    make_work_dir,
    mount_points,
    parse_table,
    port_holder,
    wait_for,
)
from test_sample_app import v2_manifest

# The textbook's manifest, byte for byte: users paste it unchanged, so it must not drift.
TEXTBOOK_MANIFEST_SHA256 = "9c93ceb1cbda192498242c1efdef1b79e996593c968cc370981c8867b9eb1197"


def test_parse_table_cuts_at_header_offsets():
    # As kubectl's tabwriter pads: each column as wide as its widest cell plus 3 spaces.
    text = (
        "NAME                                    READY   STATUS    RESTARTS      AGE\n"
        "sample-app-deployment-5d8f7c9b4-2xkqz   1/1     Running   1 (12s ago)   3m\n"
        "sample-app-deployment-5d8f7c9b4-9wlmn   0/1     Pending   0             3s\n"
    )
    rows = parse_table(text)
    assert rows == [
        {
            "NAME": "sample-app-deployment-5d8f7c9b4-2xkqz",
            "READY": "1/1",
            "STATUS": "Running",
            "RESTARTS": "1 (12s ago)",
            "AGE": "3m",
        },
        {
            "NAME": "sample-app-deployment-5d8f7c9b4-9wlmn",
            "READY": "0/1",
            "STATUS": "Pending",
            "RESTARTS": "0",
            "AGE": "3s",
        },
    ]
    assert parse_table("") == []


def test_sample_manifest_is_the_textbooks():
    documents = list(yaml.safe_load_all(SAMPLE_APP_MANIFEST.read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    deployment, service = documents
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "sample-app:v1"
    assert service["spec"] == {
        "type": "LoadBalancer",
        "selector": {"app": "sample-app-pods"},
        "ports": [{"protocol": "TCP", "port": 80, "targetPort": 8080}],
    }
    digest = hashlib.sha256(SAMPLE_APP_MANIFEST.read_bytes()).hexdigest()
    assert digest == TEXTBOOK_MANIFEST_SHA256, f"{SAMPLE_APP_MANIFEST} changed (sha256 {digest})"


def test_v2_manifest_changes_only_image_and_strategy():
    original = list(yaml.safe_load_all(SAMPLE_APP_MANIFEST.read_text()))
    changed = list(yaml.safe_load_all(v2_manifest()))
    assert changed[1] == original[1]
    spec = changed[0]["spec"]
    assert spec.pop("strategy") == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 0}}
    assert spec["template"]["spec"]["containers"][0].pop("image") == "sample-app:v2"
    original[0]["spec"]["template"]["spec"]["containers"][0].pop("image")
    assert changed[0] == original[0]


@pytest.mark.parametrize("version,message", [("v1", V1_MESSAGE), ("v2", V2_MESSAGE)], ids=["v1", "v2"])
def test_sample_images_are_built(sample_images: SampleImages, version: str, message: str):
    archive = getattr(sample_images, version)
    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        annotations = index["manifests"][0]["annotations"]
        assert annotations["io.containerd.image.name"] == f"docker.io/library/sample-app:{version}"
        manifest = json.load(outer.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'].split(':')[1]}"))
        config = json.load(outer.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"))
        assert config["config"]["Entrypoint"] == ["/bin/busybox", "httpd"]
        layer = outer.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}")
        with tarfile.open(fileobj=layer) as rootfs:
            assert rootfs.extractfile("www/index.html").read().decode() == message


def test_port_holder_reports_a_listener():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_holder(port) is not None and f"127.0.0.1:{port}" in port_holder(port)
    assert port_holder(port) is None


def test_wait_for_reports_what_it_saw():
    with pytest.raises(AssertionError, match="last seen:\nstill 42"):
        wait_for("something", lambda: (False, "still 42"), timeout=0.3, interval=0.1, diagnostics=lambda: "diag")
    assert wait_for("quick", lambda: (True, 7), timeout=1) == 7


def test_request_loop_only_talks_to_loopback():
    with pytest.raises(ValueError):
        RequestLoop("http://10.0.0.1/")
    with RequestLoop("http://127.0.0.1:1/", interval=0.01, max_seconds=0.3, max_requests=5) as loop:
        time.sleep(0.5)
    assert 1 <= len(loop.snapshot()) <= 5
    assert len(loop.failures()) == len(loop.snapshot())


def test_leak_check_finds_processes_and_mounts(as_root):
    work_dir = make_work_dir()
    data_dir = work_dir / "data"
    (data_dir / "mnt").mkdir(parents=True)
    leaker = Cluster(Path("/bin/false"), Path("/bin/false"), data_dir, work_dir)
    sleeper = subprocess.Popen(["sleep", "60"], cwd=data_dir)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(data_dir / "mnt")], check=True)
    try:
        leaks = leaker.find_leaks()
        assert any(f"pid {sleeper.pid} " in line for line in leaks.processes), leaks.describe()
        assert str(data_dir / "mnt") in leaks.mounts
        leaker.clean_up_leaks(leaks)
        sleeper.wait(timeout=10)
        assert str(data_dir / "mnt") not in mount_points()
        assert not leaker.find_leaks(), leaker.find_leaks().describe()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        if str(data_dir / "mnt") in mount_points():
            subprocess.run(["umount", "-l", str(data_dir / "mnt")], check=False)
        subprocess.run(["rm", "-rf", "--one-file-system", str(work_dir)], check=False)
    assert not os.path.exists(work_dir)


def cgroup_root_for_test() -> Path:
    """A hierarchy to make a scratch cgroup in: the v2 root, else a v1 controller's."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return base
    for controller in ("pids", "memory", "cpu,cpuacct", "cpu"):
        if (base / controller / "cgroup.procs").exists():
            return base / controller
    raise AssertionError("no writable cgroup hierarchy found under /sys/fs/cgroup")


def test_container_init_lookup_by_cgroup(as_root, sample_images: SampleImages, tmp_path: Path):
    # Run the sample image's own busybox httpd in a scratch cgroup named like a pod UID,
    # as a runtime would, and check the lookup finds it (and not its per-request children).
    with tarfile.open(sample_images.v1) as outer:
        index = json.load(outer.extractfile("index.json"))
        manifest = json.load(outer.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'].split(':')[1]}"))
        layer = outer.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'].split(':')[1]}")
        with tarfile.open(fileobj=layer) as rootfs:
            rootfs.extract("bin/busybox", tmp_path, filter="data")
    busybox = tmp_path / "bin" / "busybox"
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("lookup")
    pod_uid = f"e2e-lookup-{os.getpid()}-{time.monotonic_ns()}"
    cgroup = cgroup_root_for_test() / pod_uid
    cgroup.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    httpd = subprocess.Popen(
        [str(busybox), "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(tmp_path / "www")],
        stderr=subprocess.DEVNULL,
    )
    try:
        (cgroup / "cgroup.procs").write_text(str(httpd.pid))
        assert find_container_init(pod_uid) == httpd.pid
        with pytest.raises(AssertionError, match="found \\[\\]"):
            find_container_init(pod_uid + "-absent")
    finally:
        httpd.kill()
        httpd.wait(timeout=10)
        wait_for("the scratch cgroup to empty", lambda: (not (cgroup / "cgroup.procs").read_text().strip(), ""), 5, 0.1)
        cgroup.rmdir()
