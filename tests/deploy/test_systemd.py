"""The systemd units: checked by `systemd-analyze verify` where it exists, and read for the
hardening and restart settings the operator guide promises."""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path

from tests.deploy.conftest import DEPLOY, REPO, run, tool

SYSTEMD = DEPLOY / "systemd"
UNITS = ("edoc-gateway.service", "edoc-gateway-audit-verify.service",
         "edoc-gateway-audit-verify.timer")
INSTALLED_BINARY = "/opt/edoc-gateway/bin/edoc-gateway"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path):
    analyze = tool("systemd-analyze", "Debian package systemd")
    # verify insists that ExecStart= exists: point it at this checkout's installed command.
    binary = shutil.which("edoc-gateway") or str(Path(sys.executable).parent / "edoc-gateway")
    assert Path(binary).exists()
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace(INSTALLED_BINARY, binary), encoding="utf-8")
    result = run([analyze, "verify", *(f"./{name}" for name in UNITS)], cwd=tmp_path)
    # Unknown keys and bad values are only printed (exit 0): any output is a finding.
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", \
        result.stdout + result.stderr


def test_daemon_unit_is_hardened_and_restarts_on_failure():
    service = unit("edoc-gateway.service")["Service"]
    assert service["User"] == "edoc-gateway" and service["Group"] == "edoc-gateway"
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "Restart": "on-failure", "StandardOutput": "journal",
                       "StandardError": "journal", "CapabilityBoundingSet": "",
                       "ReadWritePaths": "/var/lib/edoc-gateway/store"}.items():
        assert service[key] == value, key
    assert service["EnvironmentFile"] == "/etc/edoc-gateway/edoc-gateway.env"
    assert service["ExecStart"].startswith(
        f"{INSTALLED_BINARY} run --config /etc/edoc-gateway/gateway.toml")
    # Room for the daemon's own shutdown grace (20 s by default) before systemd kills it.
    assert int(service["TimeoutStopSec"].removesuffix("s")) > 20
    assert service["KillSignal"] == "SIGTERM"
    assert unit("edoc-gateway.service")["Install"]["WantedBy"] == "multi-user.target"


def test_audit_verify_runs_from_a_timer_with_the_same_configuration():
    service = unit("edoc-gateway-audit-verify.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == \
        f"{INSTALLED_BINARY} audit verify --config /etc/edoc-gateway/gateway.toml"
    timer = unit("edoc-gateway-audit-verify.timer")
    assert timer["Timer"]["OnUnitActiveSec"] == "1h"
    assert timer["Install"]["WantedBy"] == "timers.target"
    # The alert rule watches this unit by name.
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    assert 'name="edoc-gateway-audit-verify.service"' in rules


def test_environment_file_example_names_the_variables_the_example_config_uses():
    example = (SYSTEMD / "edoc-gateway.env.example").read_text(encoding="utf-8")
    config = (REPO / "deploy" / "gateway.example.toml").read_text(encoding="utf-8")
    assert 'secret_env = "EDOC_AXIS_SECRET"' in config
    assert "\nEDOC_AXIS_SECRET=" in example
    sysusers = (SYSTEMD / "edoc-gateway.sysusers").read_text(encoding="utf-8")
    assert "\nu edoc-gateway " in sysusers
