"""A `podium up` cluster under test: start, stop, kill, restart, kubectl, leak checks."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP_MANIFEST = REPO_ROOT / "examples" / "sample-app.yaml"
# The newest kubectl next to Google's dispatcher (compat notes §0): tests that need a
# fixed client call it by this path.
KUBECTL_NEWEST = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")

# kubectl, the Python client and urllib all honour proxy variables; the tests must only
# ever talk to loopback, so they are stripped from every child environment and urllib
# gets an opener without proxies.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

T = TypeVar("T")

V1_MESSAGE = "Hello, World!"
V2_MESSAGE = "Fundamentals of DevOps!"


@dataclass(frozen=True)
class SampleImages:
    """The archives of the two sample-app versions the walkthrough deploys."""

    v1: Path
    v2: Path


def child_environment() -> dict[str, str]:
    """The environment for kubectl and podium: no proxies, no stray KUBECONFIG."""
    environment = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES and k != "KUBECONFIG"}
    environment["NO_PROXY"] = environment["no_proxy"] = "127.0.0.1,localhost"
    return environment


def tls_opener(ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None):
    """A urllib opener without proxies that trusts only the cluster CA (and presents a
    client certificate when given one)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def http_get(url: str, timeout: float = 2.0, opener=None) -> tuple[int, str]:
    """GET without proxies; returns (status, body). Raises OSError on connection failure."""
    if url.startswith("https://") and opener is None:
        raise ValueError(f"{url}: the API server is HTTPS with its own CA; pass opener=cluster.opener")
    try:
        with (opener or _DIRECT_OPENER).open(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_holder(port: int = 80) -> str | None:
    """None when 127.0.0.1:`port` can be bound, else a description of who holds it.

    SO_REUSEADDR keeps TIME_WAIT leftovers from counting as taken; Linux still refuses
    the bind while any socket listens on the port (on 127.0.0.1 or a wildcard address).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return None
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"binding 127.0.0.1:{port} failed: {error}"
    listing = run_quietly(["ss", "-ltnp", f"sport = :{port}"])
    return f"127.0.0.1:{port} is already in use:\n{listing}"


def run_quietly(command: list[str], timeout: float = 15) -> str:
    """Output of a diagnostic command; never raises, so diagnostics cannot hide the real failure."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=child_environment(), check=False
        )
        return (done.stdout + done.stderr).strip() or f"(no output, exit {done.returncode})"
    except (OSError, subprocess.SubprocessError) as error:
        return f"({' '.join(command)} failed: {error})"


def wait_for(
    what: str,
    probe: Callable[[], tuple[bool, T]],
    timeout: float,
    interval: float = 0.5,
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it reports done or `timeout` seconds pass.

    `probe` returns (done, seen); on timeout the assertion says what it last saw, plus
    the diagnostics (pods, events, server log) when given. Exceptions from the probe
    count as "not yet" so that a briefly unavailable server does not end the wait.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    seen: object = "(nothing yet)"
    while True:
        try:
            done, seen = probe()
            if done:
                return seen  # type: ignore[return-value]
        except Exception as error:  # noqa: BLE001 - any failure is "not yet", reported below
            seen = f"probe raised {type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            report = f"timed out after {timeout:.0f}s waiting for {what}; last seen:\n{seen}"
            if diagnostics is not None:
                report += "\n\n" + diagnostics()
            raise AssertionError(report)
        time.sleep(interval)


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of kubectl's human-readable table, keyed by header.

    Columns are cut at the header's offsets rather than split on spaces, because cells
    such as RESTARTS (`1 (5s ago)`) contain spaces; kubectl's tabwriter aligns every
    row to the header.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts: list[int] = []
    names: list[str] = []
    position = 0
    for name in header.split():
        position = header.index(name, position)
        starts.append(position)
        names.append(name)
        position += len(name)
    rows = []
    for line in lines[1:]:
        cells = {}
        for index, name in enumerate(names):
            end = starts[index + 1] if index + 1 < len(starts) else len(line)
            cells[name] = line[starts[index] : end].strip()
        rows.append(cells)
    return rows


def read_link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def process_cmdline(pid: int) -> list[str]:
    raw = read_text(f"/proc/{pid}/cmdline")
    return [part for part in raw.split("\0") if part]


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def parent_pid(pid: int) -> int:
    # The command name in field 2 may hold spaces and parentheses; fields after the
    # last ')' are fixed.
    stat = read_text(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else 0


def process_start_time(pid: int) -> int:
    stat = read_text(f"/proc/{pid}/stat")
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else 0


def find_container_init(pod_uid: str, program: str = "httpd") -> int:
    """Host pid of the main process of a pod's container running `program`.

    Lookup: every runtime Podium has puts a pod's containers in cgroups whose path holds
    the pod UID (as kubelet does), and the host sees full cgroup paths in
    /proc/<pid>/cgroup. Among the processes in such a cgroup whose command line runs
    `program` (the sample app is `/bin/busybox httpd -f ...`, and httpd forks one child
    per request), the container's main process is the one whose parent is not one of
    them. When the embedded runtime's state file (`running.json` of the latest attempt)
    exists it must name the same pid: a mismatch means the lookup or the runtime is
    wrong, so it fails rather than guesses.
    """
    members = []
    for pid in all_pids():
        argv = process_cmdline(pid)
        if not any(os.path.basename(arg) == program for arg in argv[:2]):
            continue
        if pod_uid in read_text(f"/proc/{pid}/cgroup"):
            members.append(pid)
    roots = [pid for pid in members if parent_pid(pid) not in members]
    if len(roots) != 1:
        raise AssertionError(
            f"expected one {program} main process in the cgroups of pod {pod_uid}, found {roots} "
            f"(all members: {members})"
        )
    return roots[0]


def runtime_reported_pid(data_dir: Path, pod_uid: str, container: str) -> int | None:
    """The init pid the embedded runtime recorded for the latest running attempt, if any."""
    attempts_dir = data_dir / "runtime" / "sandboxes" / pod_uid / "containers" / container
    try:
        attempts = sorted((int(p.name), p) for p in attempts_dir.iterdir() if p.name.isdigit())
    except OSError:
        return None
    for _, attempt in reversed(attempts):
        if (attempt / "exit.json").exists():
            continue
        try:
            record = json.loads((attempt / "running.json").read_text())
        except (OSError, ValueError):
            continue
        pid = record.get("init_pid")
        if isinstance(pid, int) and process_start_time(pid) == record.get("init_start_time"):
            return pid
    return None


@dataclass
class Leaks:
    """What `podium down` left behind on the host."""

    processes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts or self.netns or self.cgroups)

    def describe(self) -> str:
        parts = []
        for title, items in (
            ("processes", self.processes),
            ("mounts", self.mounts),
            ("network namespaces", self.netns),
            ("cgroups", self.cgroups),
        ):
            if items:
                parts.append(f"{title}:\n  " + "\n  ".join(items))
        return "\n".join(parts)


def mount_points() -> list[str]:
    points = []
    for line in read_text("/proc/self/mountinfo").splitlines():
        fields = line.split()
        if len(fields) > 4:
            # mountinfo escapes spaces and other specials as octal (\040).
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def cgroup_dirs_named(names: set[str], root: str = "/sys/fs/cgroup", max_depth: int = 5) -> list[str]:
    """Cgroup directories (any hierarchy, v1 or v2) whose name is one of `names`."""
    found = []
    if not names:
        return found
    for top, directories, _ in os.walk(root):
        depth = top[len(root) :].count(os.sep)
        if depth >= max_depth:
            directories[:] = []
        for directory in directories:
            if directory in names:
                found.append(os.path.join(top, directory))
    return found


class EtcdServer:
    """A real etcd (Debian's etcd-server) for one cluster, on free loopback ports, its data
    in the test's work dir: the store of `podium up --datastore-endpoint`."""

    def __init__(self, work_dir: Path):
        self.data_dir = work_dir / "etcd"
        self.log_path = work_dir / "etcd.log"
        self.client_port = free_loopback_port()
        self.peer_port = free_loopback_port()
        self.endpoint = f"http://127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if shutil.which("etcd") is None:
            raise AssertionError("PODIUM_E2E_DATASTORE=etcd needs etcd: apt-get install etcd-server")
        peer = f"http://127.0.0.1:{self.peer_port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "etcd", "--name", "e2e", "--data-dir", str(self.data_dir),
                    "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"e2e={peer}",
                    "--heartbeat-interval", "10", "--election-timeout", "100",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )

        def healthy() -> tuple[bool, str]:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"etcd exited with {self.process.returncode}; see {self.log_path}")
            status, body = http_get(f"{self.endpoint}/health", timeout=2)
            return status == 200 and '"true"' in body, f"/health -> {status} {body.strip()!r}"

        wait_for("etcd to be healthy", healthy, timeout=30, interval=0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


class Cluster:
    """One `podium up` on its own data dir and API port, with the clients tests use.

    With PODIUM_E2E_DATASTORE=etcd, the cluster keeps its state on an etcd of its own
    (`--datastore-endpoint`), started with the first start and stopped at teardown."""

    def __init__(self, podium: Path, kubectl: Path, data_dir: Path, work_dir: Path, command: str = "up"):
        # `up` (control plane and node) or `server` (the control plane alone).
        self.command = command
        self.podium = podium
        self.default_kubectl = kubectl
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.port = free_loopback_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = data_dir / "kubeconfig"
        # The cluster CA and the admin's client certificate, written by `podium up`.
        self.ca_file = data_dir / "pki" / "ca.crt"
        self.admin_cert = data_dir / "pki" / "admin.crt"
        self.admin_key = data_dir / "pki" / "admin.key"
        self._opener = None
        self.log_path = work_dir / "podium-up.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # More `podium up` flags for the next start (e.g. --token-auth-file).
        self.extra_args: list[str] = []
        self._cache_dirs = 0
        self._api_client = None
        # Pod UIDs seen while the server ran: the leak check looks for their netns and cgroups.
        self.pod_uids: set[str] = set()
        datastore = os.environ.get("PODIUM_E2E_DATASTORE", "embedded")
        if datastore not in ("embedded", "etcd"):
            raise AssertionError(f"PODIUM_E2E_DATASTORE must be embedded or etcd, not {datastore!r}")
        self.etcd = EtcdServer(work_dir) if datastore == "etcd" else None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, ready_timeout: float = 90) -> None:
        if self.process is not None and self.process.poll() is None:
            raise AssertionError("podium up is already running")
        self.starts += 1
        if self.etcd is not None and self.etcd.process is None:
            self.etcd.start()
        datastore = ["--datastore-endpoint", self.etcd.endpoint] if self.etcd is not None else []
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            log.write(f"\n===== podium {self.command} (start {self.starts}) =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    str(self.podium),
                    self.command,
                    "--data-dir",
                    str(self.data_dir),
                    *(["--node-ip", "127.0.0.1"] if self.command == "up" else []),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    *datastore,
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=child_environment(),
                # Its own session, so a kill of the test run's terminal group does not
                # reach it and kill9() hits exactly this process.
                start_new_session=True,
            )
        finally:
            log.close()
        self._api_client = None
        self._opener = None

        def ready() -> tuple[bool, str]:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise AssertionError(f"podium up exited with {code} before it was ready:\n{self.log_tail()}")
            if not (self.ca_file.exists() and self.kubeconfig.exists() and self.admin_key.exists()):
                return False, "waiting for the CA, the admin credentials and the kubeconfig"
            # /readyz is public: anonymous, trusting only the cluster CA.
            status, body = http_get(f"{self.server}/readyz", timeout=2, opener=tls_opener(self.ca_file))
            done = status == 200 and body.strip() == "ok"
            return done, f"/readyz -> {status} {body.strip()!r}; kubeconfig exists: {self.kubeconfig.exists()}"

        try:
            wait_for("podium up to serve /readyz", ready, timeout=ready_timeout, interval=0.25)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n\n--- podium up log ---\n{self.log_tail(120)}") from None

    def stop(self, grace: float = 20) -> None:
        """SIGTERM `podium up` and wait; SIGKILL after `grace` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise AssertionError(f"podium up ignored SIGTERM for {grace}s and was killed:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            raise AssertionError("podium up is not running")
        process.kill()
        process.wait(timeout=30)

    def restart(self) -> None:
        """Start again on the same data dir and port (after stop() or kill9())."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def down(self, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.podium), "down", "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_environment(),
            check=False,
        )

    # ---- clients ---------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        kubectl: Path | str | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster with a fresh discovery cache.

        `kubectl` picks the binary: by default the dispatcher (or PODIUM_E2E_KUBECTL),
        which chooses the client matching the server's /version; a full path such as
        KUBECTL_NEWEST runs that client as is.
        """
        __tracebackhide__ = True
        self._cache_dirs += 1
        cache_dir = self.work_dir / f"kube-cache-{self._cache_dirs}"
        command = [
            str(kubectl or self.default_kubectl),
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(cache_dir),
            *args,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, input=input, env=child_environment()
            )
        except subprocess.TimeoutExpired as expired:
            raise AssertionError(
                f"kubectl {' '.join(args)} did not finish in {timeout}s\n"
                f"stdout: {expired.stdout}\nstderr: {expired.stderr}\n\n--- podium up log ---\n{self.log_tail()}"
            ) from None
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
                f"\n\n--- podium up log ---\n{self.log_tail()}"
            )
        return done

    def kubectl_json(self, *args: str, timeout: float = 60) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    @property
    def opener(self):
        """urllib opener authenticated as the admin (client certificate), trusting the CA."""
        if self._opener is None:
            self._opener = tls_opener(self.ca_file, self.admin_cert, self.admin_key)
        return self._opener

    def api_client(self):
        """The official Python client configured from the kubeconfig (reused until a restart)."""
        if self._api_client is None:
            from kubernetes import config

            self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def import_image(self, archive: Path, timeout: float = 180) -> str:
        done = subprocess.run(
            [str(self.podium), "image", "import", "--data-dir", str(self.data_dir), str(archive)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_environment(),
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"podium image import {archive} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout

    # ---- pods ------------------------------------------------------------------------

    def pods(self, selector: str) -> list[dict]:
        items = self.kubectl_json("get", "pods", "-l", selector)["items"]
        self.pod_uids.update(item["metadata"]["uid"] for item in items)
        return items

    def container_pid(self, pod: dict, container: str) -> int:
        """Host pid of the pod's container main process; see find_container_init."""
        uid = pod["metadata"]["uid"]
        self.pod_uids.add(uid)
        pid = find_container_init(uid)
        recorded = runtime_reported_pid(self.data_dir, uid, container)
        if recorded is not None and recorded != pid:
            raise AssertionError(f"the runtime state says pid {recorded} runs {container}, /proc says {pid}")
        return pid

    # ---- diagnostics -----------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        text = read_text(str(self.log_path))
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def diagnostics(self) -> str:
        """Pods, descriptions, events and the server log, for failure messages."""
        sections = []
        if self.is_running():
            for args in (
                ("get", "pods", "-o", "wide"),
                ("get", "deployments,replicasets,services,endpoints", "-o", "wide"),
                ("describe", "pods"),
                ("get", "events", "--sort-by=.metadata.creationTimestamp"),
            ):
                try:
                    done = self.kubectl(*args, check=False, timeout=20)
                    output = (done.stdout + done.stderr).strip()
                except AssertionError as error:
                    output = str(error)
                sections.append(f"--- kubectl {' '.join(args)} ---\n{output[-6000:]}")
        else:
            sections.append("--- podium up is not running ---")
        sections.append(f"--- podium up log (last lines of {self.log_path}) ---\n{self.log_tail()}")
        return "\n\n".join(sections)

    # ---- teardown --------------------------------------------------------------------

    def find_leaks(self) -> Leaks:
        """Everything of this data dir still on the host: processes, mounts, netns, cgroups."""
        root = str(self.data_dir)
        under = lambda path: path == root or path.startswith(root + "/")  # noqa: E731
        leaks = Leaks()
        own = {os.getpid()}
        for pid in all_pids():
            if pid in own:
                continue
            argv = process_cmdline(pid)
            links = {name: read_link(f"/proc/{pid}/{name}") for name in ("exe", "cwd", "root")}
            cgroup = read_text(f"/proc/{pid}/cgroup")
            reasons = [f"{name}={target}" for name, target in links.items() if under(target.removesuffix(" (deleted)"))]
            if any(root in arg for arg in argv):
                reasons.append("command line names the data dir")
            if any(uid in cgroup for uid in self.pod_uids):
                reasons.append("in a pod cgroup")
            if reasons and argv:
                leaks.processes.append(f"pid {pid} {' '.join(argv)[:200]} ({'; '.join(reasons)})")
        leaks.mounts = [point for point in mount_points() if under(point)]
        leaks.netns = [
            f"/run/netns/podium-{uid}" for uid in sorted(self.pod_uids) if os.path.exists(f"/run/netns/podium-{uid}")
        ]
        leaks.cgroups = cgroup_dirs_named(self.pod_uids)
        return leaks

    def collect_pod_uids(self) -> None:
        """Remember every pod UID the runtime or the API knows, before the server stops."""
        sandboxes = self.data_dir / "runtime" / "sandboxes"
        if sandboxes.is_dir():
            self.pod_uids.update(entry.name for entry in sandboxes.iterdir())
        if self.is_running():
            try:
                done = self.kubectl("get", "pods", "-A", "-o", "json", check=False, timeout=20)
                if done.returncode == 0:
                    self.pod_uids.update(item["metadata"]["uid"] for item in json.loads(done.stdout)["items"])
            except (AssertionError, ValueError, KeyError):
                pass

    def clean_up_leaks(self, leaks: Leaks) -> None:
        """Best effort removal of what `podium down` left, so the next test starts clean.

        Only things this cluster made are touched: processes and mounts under its data
        dir, and the netns and cgroups of its own pods.
        """
        for line in leaks.processes:
            pid = int(line.split()[1])
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for point in sorted(leaks.mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)
        for path in leaks.netns:
            subprocess.run(
                ["ip", "netns", "delete", os.path.basename(path)], capture_output=True, timeout=30, check=False
            )
        for path in sorted(leaks.cgroups, key=len, reverse=True):
            for top, directories, _ in sorted(os.walk(path), key=lambda entry: len(entry[0]), reverse=True):
                for directory in directories:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(top, directory))
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def teardown(self) -> str | None:
        """Stop the server, run `podium down`, check for leaks; returns a failure report or None."""
        problems = []
        self.collect_pod_uids()
        try:
            self.stop()
        except AssertionError as error:
            problems.append(str(error))
        try:
            down = self.down()
            if down.returncode != 0:
                problems.append(f"podium down exited {down.returncode}:\n{down.stdout}{down.stderr}")
        except subprocess.TimeoutExpired:
            problems.append("podium down did not finish in 180s")
        if self.etcd is not None:
            self.etcd.stop()
        leaks = self.find_leaks()
        if leaks:
            problems.append(f"podium down left these behind (removed by the test now):\n{leaks.describe()}")
            self.clean_up_leaks(leaks)
        if not problems and not any(point for point in mount_points() if point.startswith(str(self.data_dir))):
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if problems:
            return (
                "\n\n".join(problems)
                + f"\n\n--- podium up log ---\n{self.log_tail()}\n(data dir kept: {self.data_dir})"
            )
        return None


class RequestLoop:
    """GET a URL every `interval` seconds in a thread; bounded by count and time."""

    def __init__(self, url: str, interval: float = 0.02, max_seconds: float = 300, max_requests: int = 20000):
        if not url.startswith("http://127.0.0.1"):
            raise ValueError("the request loop only talks to loopback")
        self.url = url
        self.interval = interval
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        # (monotonic time, body or None, error text or None)
        self.results: list[tuple[float, str | None, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-loop", daemon=True)
        self._lock = threading.Lock()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
            started = time.monotonic()
            try:
                status, body = http_get(self.url, timeout=2)
                result = (started, body, None) if status == 200 else (started, None, f"HTTP {status}: {body[:100]}")
            except OSError as error:
                result = (started, None, f"{type(error).__name__}: {error}")
            with self._lock:
                self.results.append(result)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshot(self) -> list[tuple[float, str | None, str | None]]:
        with self._lock:
            return list(self.results)

    def failures(self) -> list[tuple[float, str | None, str | None]]:
        return [result for result in self.snapshot() if result[2] is not None]

    def bodies(self) -> list[str]:
        return [body for _, body, _ in self.snapshot() if body is not None]


class ReadyPodWatcher:
    """Polls the pods of a selector every 100 ms and records how many are ready.

    A pod counts when its Ready condition is True and it is not terminating: that is
    what the Deployment's availability (and the Service's endpoints) rest on.
    """

    def __init__(self, cluster: Cluster, selector: str, interval: float = 0.1, max_seconds: float = 300):
        from kubernetes import client

        self.core = client.CoreV1Api(cluster.api_client())
        self.selector = selector
        self.interval = interval
        self.max_seconds = max_seconds
        # (monotonic time, ready count, pod names) per sample.
        self.samples: list[tuple[float, int, list[str]]] = []
        self.errors: list[str] = []
        self.pod_names: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-pod-watcher", daemon=True)

    @staticmethod
    def is_ready(pod) -> bool:
        if pod.metadata.deletion_timestamp is not None:
            return False
        conditions = (pod.status and pod.status.conditions) or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                pods = self.core.list_namespaced_pod("default", label_selector=self.selector, _request_timeout=5).items
                ready = sorted(p.metadata.name for p in pods if self.is_ready(p))
                self.pod_names.update(p.metadata.name for p in pods)
                self.samples.append((started, len(ready), ready))
            except Exception as error:  # noqa: BLE001 - recorded and asserted on by the test
                self.errors.append(f"{type(error).__name__}: {error}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> ReadyPodWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def minimum(self) -> int:
        return min((count for _, count, _ in self.samples), default=0)

    def dips(self, below: int) -> list[tuple[float, int, list[str]]]:
        return [sample for sample in self.samples if sample[1] < below]


def make_work_dir() -> Path:
    """A short path under /tmp: socket paths inside the data dir must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="podium-e2e-"))
