"""CustomResourceDefinitions as users and operators use them: every kubectl minor applies,
lists (printer columns, short names), explains, patches, scales and deletes custom
resources; a bad one is refused naming the field; the official Python client's
CustomObjectsApi and ApiextensionsV1Api work; deleting the CRD deletes its objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium_cluster import Cluster, parse_table, wait_for

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
MINORS = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]
GROUP = "stable.example.com"


def crontab_crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"crontabs.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "description": "What the cron tab runs.",
                                    "required": ["cronSpec"],
                                    "properties": {
                                        "cronSpec": {"type": "string", "description": "When it runs."},
                                        "image": {"type": "string"},
                                        "replicas": {"type": "integer", "minimum": 0, "default": 1},
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}},
                                },
                            },
                        }
                    },
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def crontab(name: str, **spec) -> str:
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "CronTab",
            "metadata": {"name": name},
            "spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", **spec},
        }
    )


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crontab_crd()))
    cluster.kubectl("wait", "--for", "condition=established", "--timeout=30s", f"crd/crontabs.{GROUP}")


def test_every_kubectl_minor_works_custom_resources(cluster: Cluster):
    install_crd(cluster)
    crds = parse_table(cluster.kubectl("get", "crds").stdout)
    assert [row["NAME"] for row in crds] == [f"crontabs.{GROUP}"], crds
    assert "CREATED AT" in cluster.kubectl("get", "crds").stdout

    for minor in MINORS:
        kubectl = KUBECTL_DIR / f"kubectl.{minor}"
        name = f"tab-{minor.replace('.', '-')}"

        def run(*args: str, input: str | None = None, check: bool = True, kubectl: Path = kubectl):
            return cluster.kubectl(*args, kubectl=kubectl, input=input, check=check)

        run("apply", "-f", "-", input=crontab(name))
        # Applied again with a change: a merge patch (custom resources have no strategic merge).
        run("apply", "-f", "-", input=crontab(name, image="other-image"))
        rows = parse_table(run("get", "ct", name).stdout)
        assert rows == [{"NAME": name, "SPEC": "* * * * */5", "REPLICAS": "1", "AGE": rows[0]["AGE"]}], (minor, rows)
        got = json.loads(run("get", f"crontabs.{GROUP}", name, "-o", "json").stdout)
        assert got["spec"] == {"cronSpec": "* * * * */5", "image": "other-image", "replicas": 1}, (minor, got)

        run("patch", "crontab", name, "--type=merge", "-p", '{"spec":{"image":"patched"}}')
        run("label", "crontab", name, "team=a")
        listed = parse_table(run("get", "crontabs", "-l", "team=a").stdout)
        assert [row["NAME"] for row in listed] == [name], (minor, listed)

        run("scale", f"crontab/{name}", "--replicas=3")
        scaled = json.loads(run("get", "crontab", name, "-o", "json").stdout)
        assert scaled["spec"]["replicas"] == 3 and scaled["spec"]["image"] == "patched", (minor, scaled)

        explained = run("explain", "crontab.spec").stdout
        assert "What the cron tab runs." in explained and "cronSpec" in explained, (minor, explained)

        bad = run("apply", "-f", "-", input=crontab(f"bad-{name}", replicas="three"), check=False)
        assert bad.returncode != 0, (minor, bad.stdout)
        assert "spec.replicas" in bad.stderr and "must be of type integer" in bad.stderr, (minor, bad.stderr)

        run("delete", "crontab", name)
        assert run("get", "crontabs", "-o", "name").stdout.strip() == "", minor

    # Deleting the CRD deletes its objects and stops serving the resource.
    cluster.kubectl("apply", "-f", "-", input=crontab("left-behind"))
    cluster.kubectl("delete", "crd", f"crontabs.{GROUP}", "--timeout=60s")
    wait_for(
        "crontabs to be no longer served",
        lambda: (cluster.kubectl("get", "crontabs", check=False).returncode != 0, ""),
        timeout=15,
    )
    install_crd(cluster)
    assert cluster.kubectl("get", "crontabs", "-o", "name").stdout.strip() == ""


def test_the_python_client_works_custom_resources(cluster: Cluster):
    from kubernetes import client, watch
    from kubernetes.client.rest import ApiException

    api_client = cluster.api_client()
    extensions = client.ApiextensionsV1Api(api_client)
    created = extensions.create_custom_resource_definition(crontab_crd())
    assert created.metadata.name == f"crontabs.{GROUP}"

    def established() -> tuple[bool, object]:
        crd = extensions.read_custom_resource_definition(f"crontabs.{GROUP}")
        conditions = crd.status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions), conditions

    wait_for("the CRD to be established", established, timeout=15)
    listed = extensions.list_custom_resource_definition()
    assert [c.metadata.name for c in listed.items] == [f"crontabs.{GROUP}"]

    objects = client.CustomObjectsApi(api_client)
    body = json.loads(crontab("py"))
    made = objects.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", body)
    assert made["spec"]["replicas"] == 1
    version = made["metadata"]["resourceVersion"]

    patched = objects.patch_namespaced_custom_object(
        GROUP, "v1", "default", "crontabs", "py", {"spec": {"image": "new"}}
    )
    assert patched["spec"]["image"] == "new"
    status = objects.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "crontabs", "py", {"status": {"replicas": 1}}
    )
    assert status["status"] == {"replicas": 1}
    scale = objects.get_namespaced_custom_object_scale(GROUP, "v1", "default", "crontabs", "py")
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1

    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(
            GROUP, "v1", "default", "crontabs", json.loads(crontab("bad", replicas=-1))
        )
    assert refused.value.status == 422
    assert "spec.replicas in body should be greater than or equal to 0" in refused.value.body

    # A watch from the create's resourceVersion replays the patches, then the delete.
    objects.delete_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "py")
    seen = []
    for event in watch.Watch().stream(
        objects.list_namespaced_custom_object,
        GROUP,
        "v1",
        "default",
        "crontabs",
        resource_version=version,
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        if event["type"] == "DELETED":
            break
    assert seen == ["MODIFIED", "MODIFIED", "DELETED"], seen
    assert objects.list_namespaced_custom_object(GROUP, "v1", "default", "crontabs")["items"] == []

    extensions.delete_custom_resource_definition(f"crontabs.{GROUP}")

    def removed() -> tuple[bool, object]:
        try:
            extensions.read_custom_resource_definition(f"crontabs.{GROUP}")
        except ApiException as gone:
            return gone.status == 404, gone.status
        return False, "still there"

    wait_for("the CRD to be removed", removed, timeout=15)
