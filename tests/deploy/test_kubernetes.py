"""Kubernetes manifests: rendered with `kubectl kustomize` (or read file by file where kubectl is
missing), validated against the Kubernetes OpenAPI schemas (the kubernetes-validate package,
offline), and checked for what the operator guide promises."""

from __future__ import annotations

import copy
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, load_yaml, load_yaml_documents, run

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"  # oldest minor still commonly run; the manifests need >= 1.25


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = run([kubectl, "kustomize", str(K8S)])
        assert result.returncode == 0, result.stderr
        return load_yaml_documents(result.stdout)
    # Without kubectl: the listed resources as they are (no generated ConfigMap, no namespace).
    kustomization = load_yaml(K8S / "kustomization.yaml")
    docs = []
    for name in kustomization["resources"]:
        docs += load_yaml_documents((K8S / name).read_text(encoding="utf-8"))
    return docs


def by_kind(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def test_rendered_set_has_every_object_operators_need(objects):
    kinds = sorted(o["kind"] for o in objects)
    expected = ["CronJob", "Deployment", "Namespace", "PersistentVolumeClaim",
                "PodDisruptionBudget", "PrometheusRule", "Service", "ServiceAccount",
                "ServiceMonitor"]
    if shutil.which("kubectl"):
        expected.append("ConfigMap")  # from configMapGenerator
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == "edoc-gateway", obj["kind"]
    assert kinds == sorted(expected)


def test_builtin_objects_match_the_kubernetes_schemas_strictly(objects):
    kv = pytest.importorskip("kubernetes_validate",
                             reason="kubernetes-validate (PyPI) ships the schemas offline")
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked structurally below
        kv.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 7
    # The validator does catch a misspelt field.
    broken = copy.deepcopy(by_kind(objects, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBERNETES_VERSION, strict=True)


def gateway_container(objects) -> dict[str, Any]:
    return by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_probes_ask_readyz_and_healthz_on_the_metrics_port(objects):
    container = gateway_container(objects)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"] == [{"name": "http-metrics", "containerPort": 9464,
                                   "protocol": "TCP"}]
    config = tomllib.loads((K8S / "gateway.toml").read_text(encoding="utf-8"))
    assert config["http"]["listen"] == "0.0.0.0:9464"


def test_pods_run_unprivileged_with_requests_and_a_grace_period(objects):
    for kind in ("Deployment", "CronJob"):
        obj = by_kind(objects, kind)
        pod = (obj["spec"]["template"]["spec"] if kind == "Deployment"
               else obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["memory"]
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    config = tomllib.loads((K8S / "gateway.toml").read_text(encoding="utf-8"))
    assert pod["terminationGracePeriodSeconds"] > config["gateway"]["shutdown_grace_seconds"]


def test_secrets_are_mounted_as_files_never_passed_as_environment(objects):
    pod = by_kind(objects, "Deployment")["spec"]["template"]["spec"]
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]
                      if "secret" in v}
    assert set(secret_volumes.values()) == {"edoc-gateway-axis", "edoc-gateway-agency-keys"}
    for volume in pod["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["defaultMode"] & 0o007 == 0, "not world-readable"
    container = pod["containers"][0]
    for env in container.get("env", []):
        assert "secretKeyRef" not in env.get("valueFrom", {}), env["name"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name in secret_volumes:
        assert mounts[name]["readOnly"] is True


def test_every_path_in_the_configuration_is_inside_a_mount(objects):
    container = gateway_container(objects)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    text = (K8S / "gateway.toml").read_text(encoding="utf-8")
    paths = re.findall(r'"(/[^"]+)"', text)
    assert paths
    for path in paths:
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), path
    assert "/etc/edoc-gateway/gateway.toml" in mounts


def test_k8s_configuration_loads_when_its_files_exist(tmp_path: Path):
    """gateway.toml of the manifests, with its mount points moved under tmp_path."""
    from edxml.pki import init_test_pki
    from gateway.config import load_config, load_signers

    pki = init_test_pki(tmp_path / "pki", agencies=[("000.00.00.H55", "UBND tỉnh")])
    keys = tmp_path / "keys"
    keys.mkdir()
    files = pki.agencies["000.00.00.H55"]
    (keys / "000.00.00.H55-key.pem").write_bytes(Path(files.key).read_bytes())
    (keys / "000.00.00.H55-cert.pem").write_bytes(Path(files.cert).read_bytes()
                                                  + Path(files.chain).read_bytes())
    (tmp_path / "axis").mkdir()
    (tmp_path / "axis" / "secret").write_text("s3cret\n")
    (tmp_path / "store").mkdir()
    text = (K8S / "gateway.toml").read_text(encoding="utf-8")
    text = (text.replace("/etc/edoc-gateway/keys", str(keys))
                .replace("/etc/edoc-gateway/axis", str(tmp_path / "axis"))
                .replace("/etc/edoc-gateway/trust", str(pki.trust_dir))
                .replace("/var/lib/edoc-gateway/store", str(tmp_path / "store")))
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(text, encoding="utf-8")
    config = load_config(config_file, {})
    assert list(load_signers(config)) == ["000.00.00.H55"]


def test_pdb_service_and_servicemonitor_select_the_gateway_pods(objects):
    pod_labels = by_kind(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    pdb = by_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    service = by_kind(objects, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    # The Service's name is the job label of the scraped series: the alert rules expect it.
    assert service["metadata"]["name"] == "edoc-gateway"
    monitor = by_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_prometheusrule_holds_exactly_the_alert_rules(objects):
    rule = by_kind(objects, "PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_rules", K8S / "sync_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "prometheusrule.yaml").read_text(encoding="utf-8") == module.render(), \
        "run python3 deploy/k8s/sync_rules.py"


def test_audit_verify_cronjob_is_the_one_the_alert_watches(objects):
    cronjob = by_kind(objects, "CronJob")
    assert cronjob["metadata"]["name"] == "edoc-gateway-audit-verify"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    container = job["template"]["spec"]["containers"][0]
    assert container["args"] == ["audit", "verify", "--config", "/etc/edoc-gateway/gateway.toml"]
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] != "tmp")
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    assert 'cronjob="edoc-gateway-audit-verify"' in rules
