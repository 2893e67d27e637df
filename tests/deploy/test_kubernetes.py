"""deploy/kubernetes/, checked statically: schemas, probes, grace periods, migrate ordering.

Every manifest is validated against the Kubernetes JSON schemas that the
`kubernetes-validate` package ships (strict: unknown fields fail; no network). KEDA's
ScaledObject is a custom resource with no schema there: its fields are checked here
against the names it must agree with (the worker Deployment, the queue key).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from broker.cli import _parser
from broker.keys import Keys
from broker.settings import Settings

_yaml: Any = importlib.import_module("yaml")
_validate: Any = importlib.import_module("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"  # the oldest minor still commonly run; newer ones accept these


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in _yaml.safe_load_all(path.read_text()) if d]


def _manifests(directory: Path = KUBE) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) → resource, for every file the directory's kustomization lists."""
    kustomization = _documents(directory / "kustomization.yaml")[0]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in kustomization["resources"]:
        path = directory / entry
        if path.is_dir():
            found.update(_manifests(path))
            continue
        for document in _documents(path):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


MANIFESTS = _manifests()
WITH_KEDA = _manifests(KUBE / "keda")
DEPLOYMENTS = [r for (kind, _), r in MANIFESTS.items() if kind == "Deployment"]


def _pod(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def _settings() -> dict[str, str]:
    data: dict[str, str] = MANIFESTS[("ConfigMap", "broker-settings")]["data"]
    return data


def test_every_file_in_the_directory_is_listed() -> None:
    listed = {
        entry
        for directory in (KUBE, KUBE / "keda")
        for entry in _documents(directory / "kustomization.yaml")[0]["resources"]
    }
    files = {p.name for p in KUBE.glob("*.yaml")} | {p.name for p in (KUBE / "keda").glob("*.yaml")}
    assert files - {"kustomization.yaml"} <= listed


@pytest.mark.parametrize("key", sorted(MANIFESTS), ids=lambda k: f"{k[0]}/{k[1]}")
def test_manifest_validates_against_the_kubernetes_schema(key: tuple[str, str]) -> None:
    _validate.validate(MANIFESTS[key], KUBERNETES_VERSION, strict=True)


def test_api_probes_ask_ok_on_the_served_port() -> None:
    [api] = [c for c in _pod(MANIFESTS[("Deployment", "broker-api")])["containers"]]
    port = int(api["args"][api["args"].index("--port") + 1])
    assert [p["containerPort"] for p in api["ports"]] == [port]
    named = {p["name"]: p["containerPort"] for p in api["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = api[probe]["httpGet"]
        assert get["path"] == "/ok"
        assert named.get(get["port"], get["port"]) == port
    service = MANIFESTS[("Service", "broker-api")]["spec"]
    assert (
        service["selector"]
        == MANIFESTS[("Deployment", "broker-api")]["spec"]["selector"]["matchLabels"]
    )


def test_grace_periods_outlast_the_workers_drain() -> None:
    drain = Settings.model_validate(_settings()).shutdown_grace_seconds
    for deployment in DEPLOYMENTS:
        grace = _pod(deployment)["terminationGracePeriodSeconds"]
        # The drain, then handing unfinished runs back: a few seconds more at least.
        assert grace >= drain + 10, deployment["metadata"]["name"]


def test_no_pod_starts_before_the_migrate_job() -> None:
    job = _pod(MANIFESTS[("Job", "broker-migrate")])
    assert [c["args"] for c in job["containers"]] == [["migrate"]]
    for deployment in DEPLOYMENTS:
        waits = [c["args"] for c in _pod(deployment).get("initContainers", [])]
        assert len(waits) == 1, deployment["metadata"]["name"]
        parsed = _parser().parse_args(waits[0])
        assert parsed.command == "migrate" and parsed.wait and parsed.wait > 0


def test_every_pod_gets_the_stores_settings_and_langgraph_json() -> None:
    secret = MANIFESTS[("Secret", "broker-stores")]["stringData"]
    assert set(secret) == {"DATABASE_URI", "REDIS_URI"}
    Settings.model_validate(
        {**_settings(), **secret}
    )  # every value parses as the processes will parse it
    langgraph = json.loads(
        MANIFESTS[("ConfigMap", "broker-langgraph-json")]["data"]["langgraph.json"]
    )
    assert langgraph["graphs"]
    for resource in [*DEPLOYMENTS, MANIFESTS[("Job", "broker-migrate")]]:
        pod = _pod(resource)
        for container in pod["containers"] + pod.get("initContainers", []):
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"broker-settings", "broker-stores"}, container["name"]
    for deployment in DEPLOYMENTS:
        [main] = _pod(deployment)["containers"]
        mounts = {m["mountPath"] for m in main["volumeMounts"]}
        assert _settings()["BROKER_CONFIG"] in mounts


def test_api_scales_on_cpu_against_a_cpu_request() -> None:
    hpa = MANIFESTS[("HorizontalPodAutoscaler", "broker-api")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "broker-api"
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    [api] = _pod(MANIFESTS[("Deployment", "broker-api")])["containers"]
    assert api["resources"]["requests"]["cpu"]


def test_workers_scale_on_the_queue_key_keys_py_spells() -> None:
    scaled = WITH_KEDA[("ScaledObject", "broker-worker")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in MANIFESTS
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == Keys(_settings()["BROKER_REDIS_PREFIX"]).queue
    assert int(trigger["metadata"]["listLength"]) == int(_settings()["N_JOBS_PER_WORKER"])
    redis = urlsplit(MANIFESTS[("Secret", "broker-stores")]["stringData"]["REDIS_URI"])
    assert trigger["metadata"]["address"] == f"{redis.hostname}:{redis.port or 6379}"
    assert trigger["metadata"]["databaseIndex"] == (redis.path.strip("/") or "0")
    assert set(WITH_KEDA) - set(MANIFESTS) == {("ScaledObject", "broker-worker")}
