"""Bad input gets a Kubernetes-style error, never a crash or a 5xx.

A seeded, bounded fuzz of the REST API: valid objects with fields swapped for values of
the wrong type or range, malformed bodies, unknown content types, bad query parameters
and paths. Every answer must be a success or a `metav1.Status` whose `code` is the HTTP
status and below 500; afterwards the server still serves, and kubectl can still list
(and render as tables) whatever was stored.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import urllib.error
import urllib.request

from podium_cluster import Cluster, http_get

# PODIUM_FUZZ_SEED explores other inputs; the default keeps CI's run repeatable.
SEED = int(os.environ.get("PODIUM_FUZZ_SEED", "20261123"))
MAX_REQUESTS = 20000
MAX_SECONDS = 40
NAMESPACE = "fuzz"

# Replicas stay 0 and bare pods name a node that does not exist, so nothing the fuzz
# stores ever starts a process: the test exercises the API, and stays bounded.
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d", "labels": {"a": "b"}, "annotations": {"note": "x"}},
    "spec": {
        "replicas": 0,
        "selector": {
            "matchLabels": {"app": "z"},
            "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}],
        },
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {"app": "z", "k": "v"}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "nope:1",
                        "ports": [{"containerPort": 80, "name": "http"}],
                        "resources": {"limits": {"cpu": "10m", "memory": "16Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
                        "env": [{"name": "A", "value": "b"}],
                    }
                ]
            },
        },
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "s"},
    "spec": {
        "type": "ClusterIP",
        "selector": {"app": "z"},
        "ports": [{"port": 81, "targetPort": 8080, "protocol": "TCP", "name": "h"}],
    },
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "labels": {"app": "z"}},
    "spec": {
        "nodeName": "no-such-node",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "nope:1", "command": ["sh"], "args": ["-c", "x"]}],
    },
}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "type": "Opaque", "data": {"a": "Yg=="}}
TARGETS = [
    (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", DEPLOYMENT),
    (f"/api/v1/namespaces/{NAMESPACE}/services", SERVICE),
    (f"/api/v1/namespaces/{NAMESPACE}/pods", POD),
    (f"/api/v1/namespaces/{NAMESPACE}/configmaps", CONFIG_MAP),
    (f"/api/v1/namespaces/{NAMESPACE}/secrets", SECRET),
]
ODD_VALUES = [
    None, True, False, 0, -1, 65536, 2**31, 2**63, -(2**63), 1.5, "", "x", "25%", "101%", "-1",
    "1Gi", "abc" * 80, [], {}, [1], {"a": None}, "\u0000", "ünï", "1e309", "Always",
]
CONTENT_TYPES = [
    "application/json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "text/plain",
    "",
]
BAD_QUERIES = [
    "?labelSelector=a+in+(",
    "?labelSelector=!!",
    "?fieldSelector=bogus%3D1",
    "?resourceVersion=abc",
    "?limit=-5",
    "?limit=abc",
    "?continue=zzz",
    "?dryRun=All",
    "?dryRun=Maybe",
    "?fieldValidation=Bogus",
    "?gracePeriodSeconds=-3",
    "?propagationPolicy=Nope",
    "?watch=true&resourceVersion=99999999999999999999&timeoutSeconds=1",
    "?limit=99999999999999999999",
]
ODD_PATHS = ["/status", "/scale", "/binding", "/log", "/exec", "/%00", "/..", "/status/extra", "/a/b/c/d"]


def field_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from field_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from field_paths(child, (*prefix, index))


def replace_at(document, path, value) -> None:
    for step in path[:-1]:
        document = document[step]
    document[path[-1]] = value


def mutated(rng: random.Random, template: dict) -> dict:
    document = copy.deepcopy(template)
    for _ in range(rng.randint(1, 3)):
        # Replica counts stay as they are (see DEPLOYMENT) and so does the kind.
        paths = [p for p in field_paths(document) if p and p[-1] not in ("replicas", "kind", "nodeName")]
        if not paths:
            break
        try:
            replace_at(document, rng.choice(paths), copy.deepcopy(rng.choice(ODD_VALUES)))
        except (TypeError, IndexError, KeyError):
            pass
    return document


def call(cluster: Cluster, method: str, path: str, body: bytes | None, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(cluster.server + path, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with cluster.opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def problem_with(status: int, body: bytes) -> str | None:
    """Why this answer breaks the contract, or None when it keeps it."""
    if status >= 500:
        return f"HTTP {status}"
    if status < 400:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return f"HTTP {status} with a body that is not JSON"
    if not isinstance(answer, dict) or answer.get("kind") != "Status":
        return f"HTTP {status} without a metav1.Status"
    if answer.get("code") != status or answer.get("status") != "Failure" or not answer.get("message"):
        return f"HTTP {status} with a Status whose code/status/message do not match"
    return None


def test_bad_input_gets_status_errors_and_never_a_5xx(cluster: Cluster):
    rng = random.Random(SEED)
    server = cluster.server
    status, _ = call(
        cluster, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": NAMESPACE}}).encode(), "application/json"
    )
    assert status == 201, status

    problems: list[str] = []
    counts = {"2xx": 0, "4xx": 0}
    started = time.monotonic()
    sent = 0
    while sent < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
        base, template = rng.choice(TARGETS)
        name = template["metadata"]["name"]
        roll = rng.random()
        if roll < 0.6:
            document = json.dumps(mutated(rng, template)).encode()
            method, path = rng.choice(
                [("POST", base), ("PUT", f"{base}/{name}"), ("PATCH", f"{base}/{name}"), ("PUT", f"{base}/{name}/status")]
            )
            content_type = rng.choice(CONTENT_TYPES[:3]) if method == "PATCH" else "application/json"
        elif roll < 0.75:
            document = rng.choice([b"{not json", b"\xff\xfe", b"[]", b"null", b'{"kind": 7}', b"", b'"text"'])
            method, path = rng.choice([("POST", base), ("PUT", f"{base}/{name}"), ("PATCH", f"{base}/{name}")])
            content_type = rng.choice(CONTENT_TYPES)
        elif roll < 0.85:
            document = json.dumps(
                rng.choice(
                    [
                        [{"op": "replace", "path": "/spec", "value": rng.choice(ODD_VALUES)}],
                        [{"op": "bogus", "path": "/x"}],
                        [{"op": "remove", "path": "/metadata/name"}],
                        [{"op": "test", "path": "/metadata/name", "value": "other"}],
                        {"metadata": {"resourceVersion": "1"}},
                    ]
                )
            ).encode()
            method, path = "PATCH", f"{base}/{name}"
            content_type = rng.choice(CONTENT_TYPES[:4])
        else:
            document = None
            method = rng.choice(["GET", "DELETE"])
            path = rng.choice([base, f"{base}/{name}", f"{base}/{name}{rng.choice(ODD_PATHS)}"])
            path += rng.choice(BAD_QUERIES)
            content_type = ""
        status, body = call(cluster, method, path, document, content_type)
        sent += 1
        if status < 400:
            counts["2xx"] += 1
        elif status < 500:
            counts["4xx"] += 1
        problem = problem_with(status, body)
        if problem and len(problems) < 20:
            problems.append(f"{method} {path} ({content_type or 'no content type'}): {problem}: {body[:300]!r}")

    print(f"sent {sent} requests in {time.monotonic() - started:.1f}s: {counts}")
    assert not problems, f"{len(problems)} answers broke the error contract:\n" + "\n".join(problems)
    # The run means something only if both kinds of answer came back in numbers.
    assert counts["2xx"] > 100 and counts["4xx"] > 100, counts
    status, body = http_get(f"{server}/readyz", opener=cluster.opener)
    assert (status, body.strip()) == (200, "ok"), (status, body)
    listing = cluster.kubectl("get", "all,configmaps,secrets", "-n", NAMESPACE, check=False)
    assert listing.returncode == 0, listing.stderr
    assert "error" not in listing.stderr.lower(), listing.stderr
