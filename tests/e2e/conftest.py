"""Fixtures for the end-to-end suite: the podium binary, sample images, a fresh cluster per test.

Run as root from the repository root: `pytest tests/e2e -v` (ci/test does). Environment:
PODIUM_BIN (default target/release/podium), PODIUM_E2E_KUBECTL (default /usr/bin/kubectl,
Google's version dispatcher), PODIUM_E2E_IMAGE_CACHE (default $TMPDIR/podium-e2e-images).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from podium_cluster import (
    REPO_ROOT,
    V1_MESSAGE,
    V2_MESSAGE,
    Cluster,
    SampleImages,
    child_environment,
    make_work_dir,
    port_holder,
)

BUILD_TEST_IMAGE = REPO_ROOT / "scripts" / "build-test-image"
DEFAULT_KUBECTL = Path("/usr/bin/kubectl")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so the cluster fixture knows, in teardown,
    # whether the test failed and its diagnostics are worth printing.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def podium_bin() -> Path:
    path = Path(os.environ.get("PODIUM_BIN", REPO_ROOT / "target" / "release" / "podium"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"podium binary not found at {path}: build it with `cargo build --release -p podium` "
            "or point PODIUM_BIN at it (ci/test does both)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def kubectl_bin() -> Path:
    path = Path(os.environ.get("PODIUM_E2E_KUBECTL", DEFAULT_KUBECTL))
    if not (path.exists() and os.access(path, os.X_OK)):
        pytest.fail(f"kubectl not found at {path} (set PODIUM_E2E_KUBECTL to another one)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests run containers and must run as root", pytrace=False)


def build_image(tag: str, message: str, cache_dir: Path) -> Path:
    """Build (or reuse) the archive for `tag`.

    The cache key covers the builder script itself, so editing it rebuilds; the script
    writes its output atomically, so a cached file is always whole.
    """
    key = hashlib.sha256(BUILD_TEST_IMAGE.read_bytes() + f"\0{tag}\0{message}".encode()).hexdigest()[:16]
    archive = cache_dir / f"{tag.replace(':', '_').replace('/', '_')}-{key}.tar"
    if archive.is_file():
        return archive
    done = subprocess.run(
        [str(BUILD_TEST_IMAGE), "--tag", tag, "--message", message, "--output", str(archive)],
        capture_output=True,
        text=True,
        timeout=600,
        env=child_environment(),
        check=False,
    )
    if done.returncode != 0 or not archive.is_file():
        pytest.fail(f"scripts/build-test-image --tag {tag} failed ({done.returncode}):\n{done.stderr}", pytrace=False)
    return archive


@pytest.fixture(scope="session")
def sample_images() -> SampleImages:
    """sample-app:v1 and :v2, built once and cached across runs under the temp dir."""
    cache_dir = Path(os.environ.get("PODIUM_E2E_IMAGE_CACHE", Path(tempfile.gettempdir()) / "podium-e2e-images"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    return SampleImages(
        v1=build_image("sample-app:v1", V1_MESSAGE, cache_dir),
        v2=build_image("sample-app:v2", V2_MESSAGE, cache_dir),
    )


@pytest.fixture
def cluster(request, as_root, podium_bin: Path, kubectl_bin: Path):
    """A fresh `podium up` on a new data dir; torn down with `podium down` and a leak check."""
    holder = port_holder(80)
    if holder is not None:
        pytest.fail(
            "the sample Service needs 127.0.0.1:80 (podium up --node-ip 127.0.0.1) but it is taken; "
            f"stop whatever holds it first.\n{holder}",
            pytrace=False,
        )
    work_dir = make_work_dir()
    running = Cluster(podium_bin, kubectl_bin, work_dir / "data", work_dir)
    try:
        running.start()
    except BaseException:
        failure = running.teardown()
        if failure:
            print(f"\nteardown after a failed start:\n{failure}")
        raise
    yield running

    call_report = getattr(request.node, "report_call", None)
    if call_report is not None and call_report.failed:
        print(f"\n===== cluster state after the failure of {request.node.name} =====\n{running.diagnostics()}")
    failure = running.teardown()
    if failure is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        pytest.fail(f"teardown of the cluster in {work_dir}:\n{failure}", pytrace=False)
