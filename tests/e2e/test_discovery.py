"""Aggregated discovery (`apidiscovery.k8s.io/v2`, `v2beta1`): every kubectl minor learns
the whole API from `/api` and `/apis` in one round trip each, and sees the same resources
as the legacy per-group-version documents list."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from podium_cluster import Cluster, parse_table

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
MINORS = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def get(cluster: Cluster, path: str, accept: str, etag: str | None = None):
    request = urllib.request.Request(f"{cluster.server}{path}", headers={"Accept": accept})
    if etag is not None:
        request.add_header("If-None-Match", etag)
    try:
        with cluster.opener.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def legacy_resources(cluster: Cluster) -> set[tuple[str, str]]:
    """(name, groupVersion) of every top-level resource at its group's preferred version,
    from the legacy documents: what `kubectl api-resources` lists."""
    versions = ["v1"]
    _, _, body = get(cluster, "/apis", "application/json")
    for group in json.loads(body)["groups"]:
        versions.append(group["preferredVersion"]["groupVersion"])
    found = set()
    for group_version in versions:
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        status, _, body = get(cluster, path, "application/json")
        assert status == 200, (path, status, body)
        for resource in json.loads(body)["resources"]:
            if "/" not in resource["name"]:
                found.add((resource["name"], group_version))
    return found


def test_every_kubectl_minor_discovers_in_one_round_trip_per_root(cluster: Cluster):
    expected = legacy_resources(cluster)
    assert ("deployments", "apps/v1") in expected and ("pods", "v1") in expected
    for minor in MINORS:
        kubectl = KUBECTL_DIR / f"kubectl.{minor}"
        assert kubectl.exists(), f"{kubectl} is missing; this machine kind ships kubectl 1.27-1.33"
        done = cluster.kubectl("api-resources", "-v=6", kubectl=kubectl)
        rows = parse_table(done.stdout)
        seen = {(row["NAME"], row["APIVERSION"]) for row in rows}
        assert seen == expected, f"kubectl {minor}: missing {expected - seen}, extra {seen - expected}"
        deployments = next(row for row in rows if row["NAME"] == "deployments")
        assert deployments["SHORTNAMES"] == "deploy" and deployments["NAMESPACED"] == "true", deployments
        namespaces = next(row for row in rows if row["NAME"] == "namespaces")
        assert namespaces["NAMESPACED"] == "false", namespaces
        # Aggregated: the roots only, never a per-group-version document.
        # `GET https://host/path?...` up to 1.31; structured `verb="GET" url="..."` after.
        requested = re.findall(r'(?:GET |verb="GET" url=")https://[^/ "]+(/[^?" ]*)', done.stderr)
        assert requested, f"kubectl {minor} -v=6 logged no requests:\n{done.stderr}"
        per_group_version = [path for path in requested if path not in ("/api", "/apis")]
        assert per_group_version == [], f"kubectl {minor} fell back to legacy discovery: {requested}"


def test_aggregated_documents_and_their_etag(cluster: Cluster):
    status, headers, body = get(cluster, "/apis", AGGREGATED_V2 + ",application/json")
    assert status == 200
    assert headers["Content-Type"] == AGGREGATED_V2, headers
    document = json.loads(body)
    assert document["kind"] == "APIGroupDiscoveryList" and document["apiVersion"] == "apidiscovery.k8s.io/v2"
    apps = next(item for item in document["items"] if item["metadata"]["name"] == "apps")
    assert apps["versions"][0]["version"] == "v1" and apps["versions"][0]["freshness"] == "Current"
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced" and deployments["responseKind"]["kind"] == "Deployment"
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}

    # The same ETag again is 304 with no body; the legacy form is unaffected.
    status, _, body = get(cluster, "/apis", AGGREGATED_V2, etag=headers["Etag"])
    assert (status, body) == (304, b"")
    status, headers, body = get(cluster, "/api", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")
    assert status == 200 and "v=v2beta1" in headers["Content-Type"]
    core = json.loads(body)
    assert [item["metadata"]["name"] for item in core["items"]] == [""]
    status, headers, body = get(cluster, "/apis", "application/json")
    assert status == 200 and json.loads(body)["kind"] == "APIGroupList"
    # A group-version that is not served is 404, as upstream.
    status, _, body = get(cluster, "/apis/nothing.example.com/v1", "application/json")
    assert status == 404 and json.loads(body)["kind"] == "Status"
