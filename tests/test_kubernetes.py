"""deploy/k8s validated offline against the Kubernetes schemas (PyPI kubernetes-validate).

No cluster runs here: these check that every manifest is a valid object of the API versions
named, and that the pieces fit together (labels, ports, probes, grace period, routes).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes still commonly run, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
DRAIN_S = 30  # app/__main__.py: uvicorn's timeout_graceful_shutdown


def documents() -> dict[str, dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        (doc,) = yaml.safe_load_all((K8S / name).read_text())
        found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    return documents()


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_strictly(manifests: dict[str, dict], version: str) -> None:
    assert set(manifests) >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
    }
    for doc in manifests.values():
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_wrong_manifest(manifests: dict[str, dict]) -> None:
    broken = copy.deepcopy(manifests["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [1]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def container(manifests: dict[str, dict]) -> dict:
    (only,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def test_probes_hit_routes_the_service_has(manifests: dict[str, dict], tmp_path: Path) -> None:
    paths = set(create_app(Settings(model_repository=tmp_path)).openapi()["paths"])
    main = container(manifests)
    probes = {k: main[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe")}
    assert set(probes.values()) == {"/readyz"} and main["livenessProbe"]["httpGet"]["path"]
    assert {main["livenessProbe"]["httpGet"]["path"], "/readyz"} <= paths
    assert main["ports"][0]["containerPort"] == Settings().port


def test_selectors_match_the_pods(manifests: dict[str, dict]) -> None:
    labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        manifests["Deployment"]["spec"]["selector"]["matchLabels"],
        manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        manifests["Service"]["spec"]["selector"],
    ):
        assert selector.items() <= labels.items()
    target = manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    deployment = manifests["Deployment"]["metadata"]["name"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment)
    port = container(manifests)["ports"][0]["name"]
    assert manifests["Service"]["spec"]["ports"][0]["targetPort"] == port


def test_stopping_covers_endpoint_removal_and_drain(manifests: dict[str, dict]) -> None:
    spec = manifests["Deployment"]["spec"]["template"]["spec"]
    pre_stop = container(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 5
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + DRAIN_S


def test_locked_down_like_the_image(manifests: dict[str, dict]) -> None:
    spec = manifests["Deployment"]["spec"]["template"]["spec"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"^USER (\d+)", dockerfile, flags=re.M).group(1)  # type: ignore[union-attr]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == uid
    main = container(manifests)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "HOME=/tmp" in dockerfile
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/tmp"}
    assert main["resources"]["requests"]["memory"] and main["resources"]["requests"]["cpu"]


def test_settings_in_the_configmap_exist(manifests: dict[str, dict]) -> None:
    fields = {f"LATENTSERVE_{name.upper()}" for name in Settings.model_fields}
    assert set(manifests["ConfigMap"]["data"]) <= fields
    data = manifests["ConfigMap"]["data"]
    settings = {k.removeprefix("LATENTSERVE_").lower(): v for k, v in data.items()}
    assert Settings.model_validate(settings).log_json is True
