"""The Kubernetes manifests are valid against the Kubernetes schemas and agree with the
worker: probes on the right endpoints, grace above the stop grace, settings it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import kubernetes_validate
import pytest
import yaml

from watcher.core.settings import SECRETS, VARIABLES, load_settings
from watcher.observe.security import OPEN

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
MANIFESTS = sorted(p for p in FOLDER.glob("*.yaml") if p.name != "kustomization.yaml")


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [
        d for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d["kind"] == kind
    ]
    return cast(dict[str, Any], found)


def container() -> dict[str, Any]:
    (only,) = manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    return cast(dict[str, Any], only)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_validates_strictly(path: Path) -> None:
    """Each resource matches the schema of the newest Kubernetes the validator knows, with
    no unknown field (strict)."""
    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_refuses_a_wrong_field() -> None:
    """The check has teeth: a misspelt probe field is refused."""
    deployment = manifest("Deployment")
    container_spec = deployment["spec"]["template"]["spec"]["containers"][0]
    container_spec["livenesProbe"] = container_spec.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_applies_every_manifest() -> None:
    """`kubectl apply -k` takes every manifest in the folder."""
    listed = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in MANIFESTS]


def test_probes_liveness_on_the_worker_readiness_on_the_store() -> None:
    """Liveness and start-up ask /livez (the worker alone: a MongoDB outage restarts
    nothing), readiness /readyz (the store); both stay open when HTTP_TOKEN is set."""
    probes = {name: container()[name]["httpGet"]["path"] for name in PROBES}
    assert probes == {
        "livenessProbe": "/livez",
        "startupProbe": "/livez",
        "readinessProbe": "/readyz",
    }
    assert set(probes.values()) <= OPEN
    startup = container()["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def test_the_configmap_is_settings_the_worker_accepts() -> None:
    """Every key is a setting (or a secret's *_FILE) and the values load."""
    data = manifest("ConfigMap")["data"]
    files = {f"{name}_FILE" for name in SECRETS}
    assert set(data) <= set(VARIABLES) | files
    settings = load_settings({k: v for k, v in data.items() if k not in files})
    assert settings.metrics_port == 9108
    assert set(files) <= set(data)  # the secrets come from the mounted Secret's files
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    assert all(data[f].startswith(mounts["secrets"] + "/") for f in files)


def test_two_replicas_share_a_read_write_many_volume() -> None:
    """Both pods mount one RWX claim holding all five data folders."""
    deployment = manifest("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert manifest("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    data = manifest("ConfigMap")["data"]
    folders = [data[variable] for variable in VARIABLES if variable.startswith("DATA_")]
    assert len(folders) == 5
    assert all(folder.startswith(mounts["data"] + "/") for folder in folders)


def test_the_kubelet_waits_out_the_stop_grace() -> None:
    """terminationGracePeriodSeconds leaves STOP_GRACE_SECONDS plus a second to exit."""
    grace = float(manifest("ConfigMap")["data"]["STOP_GRACE_SECONDS"])
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace + 1


def test_runs_unprivileged_with_resources() -> None:
    """Non-root, no privilege escalation, no capabilities, read-only root; requests set."""
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container()["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container()["resources"]["requests"])
