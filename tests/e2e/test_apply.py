"""Server-side apply as users run it: every kubectl minor's `apply --server-side`
(multi-document), `diff --server-side`, conflicts with another manager and
`--force-conflicts`, a client-side-applied object taken over without conflicts; and the
official Python client's `server_side_apply`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from podium_cluster import Cluster

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
MINORS = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]


def manifests(name: str, replicas: int | None, message: str) -> str:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"message": message}}
    spec: dict = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "web", "image": "sample-app:v1"}]},
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
    # YAML documents: kubectl reads a stream that starts with JSON as JSON only.
    return yaml.safe_dump_all([config, deployment])


def test_every_kubectl_minor_applies_on_the_server(cluster: Cluster):
    for minor in MINORS:
        kubectl = KUBECTL_DIR / f"kubectl.{minor}"
        name = f"ssa-{minor.replace('.', '-')}"

        def run(*args: str, input: str | None = None, check: bool = True, kubectl: Path = kubectl):
            return cluster.kubectl(*args, kubectl=kubectl, input=input, check=check)

        done = run("apply", "--server-side", "-f", "-", input=manifests(name, 1, "one"))
        assert f"configmap/{name} serverside-applied" in done.stdout, (minor, done.stdout)
        assert f"deployment.apps/{name} serverside-applied" in done.stdout, (minor, done.stdout)
        config = json.loads(run("get", "configmap", name, "-o", "json", "--show-managed-fields").stdout)
        entries = config["metadata"]["managedFields"]
        assert [(e["manager"], e["operation"]) for e in entries] == [("kubectl", "Apply")], (minor, entries)
        assert entries[0]["fieldsV1"] == {"f:data": {"f:message": {}}}, (minor, entries)

        # diff --server-side: exit 1 with the change shown, exit 0 when there is none.
        changed = run("diff", "--server-side", "-f", "-", input=manifests(name, 1, "two"), check=False)
        assert changed.returncode == 1, (minor, changed.returncode, changed.stderr)
        assert "-  message: one" in changed.stdout and "+  message: two" in changed.stdout, (minor, changed.stdout)
        same = run("diff", "--server-side", "-f", "-", input=manifests(name, 1, "one"), check=False)
        assert same.returncode == 0, (minor, same.stdout, same.stderr)
        # The dry run stored nothing.
        assert json.loads(run("get", "configmap", name, "-o", "json").stdout)["data"] == {"message": "one"}

        # Another manager changes replicas: applying another value conflicts, forcing takes it.
        run("scale", "deployment", name, "--replicas=3")
        conflict = run("apply", "--server-side", "-f", "-", input=manifests(name, 2, "one"), check=False)
        assert conflict.returncode != 0, (minor, conflict.stdout)
        assert "conflict" in conflict.stderr and ".spec.replicas" in conflict.stderr, (minor, conflict.stderr)
        run("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifests(name, 2, "one"))
        deployment = json.loads(run("get", "deployment", name, "-o", "json").stdout)
        assert deployment["spec"]["replicas"] == 2, (minor, deployment["spec"])

        # A field no longer applied is removed (this manager was its only owner).
        run("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifests(name, None, "one"))
        deployment = json.loads(run("get", "deployment", name, "-o", "json").stdout)
        assert deployment["spec"]["replicas"] == 1, (minor, deployment["spec"])  # back to the default

        # Applied client-side first, then server-side with the same configuration: no conflict.
        csa = f"csa-{minor.replace('.', '-')}"
        run("apply", "-f", "-", input=manifests(csa, 2, "x"))
        run("apply", "--server-side", "-f", "-", input=manifests(csa, 2, "x"))

        run("delete", "deployment", name, csa)
        run("delete", "configmap", name, csa)


def test_the_python_client_applies_on_the_server(cluster: Cluster):
    from kubernetes import dynamic
    from kubernetes.client.rest import ApiException

    client = dynamic.DynamicClient(cluster.api_client())
    configmaps = client.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"a": "1"}}
    made = configmaps.server_side_apply(body=body, name="py-ssa", namespace="default", field_manager="python")
    assert made.data.a == "1"
    assert [(e.manager, e.operation) for e in made.metadata.managedFields] == [("python", "Apply")]

    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"a": "2"}}
    try:
        configmaps.server_side_apply(body=other, name="py-ssa", namespace="default", field_manager="other")
    except ApiException as conflict:
        assert conflict.status == 409
        assert json.loads(conflict.body)["details"]["causes"][0]["field"] == ".data.a"
    else:
        raise AssertionError("a conflicting apply was accepted")
    forced = configmaps.server_side_apply(
        body=other, name="py-ssa", namespace="default", field_manager="other", force_conflicts=True
    )
    assert forced.data.a == "2"
    assert [e.manager for e in forced.metadata.managedFields] == ["other"]
    configmaps.delete(name="py-ssa", namespace="default")
