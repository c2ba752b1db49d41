"""Alert rules: promtool checks and unit tests, metric names, runbook links."""

from __future__ import annotations

import re

import pytest

from gateway.metrics import METRIC_NAMES, SAMPLE_NAMES
from tests.deploy.conftest import DEPLOY, REPO, load_yaml, run, tool
from tests.deploy.promql import metric_names

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
RUNBOOK = REPO / "docs" / "runbook.md"

#: Series that come from other exporters, and which: the alert rules may use these.
EXTERNAL_METRICS = {
    "up": "Prometheus itself (scrape health of the edoc-gateway job)",
    "kube_cronjob_status_last_successful_time": "kube-state-metrics (audit verify CronJob)",
    "kube_cronjob_created": "kube-state-metrics (audit verify CronJob)",
    "node_systemd_unit_state": "node_exporter systemd collector (audit verify timer)",
}

PROMTOOL_HINT = "Debian package prometheus; scripts/bootstrap installs it"


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]
            if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_promtool_accepts_the_alert_rules():
    promtool = tool("promtool", PROMTOOL_HINT)
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_rules_pass_their_unit_tests():
    promtool = tool("promtool", PROMTOOL_HINT)
    result = run([promtool, "test", "rules", RULE_TESTS.name], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_lab_prometheus_config_is_valid_and_loads_the_rules():
    promtool = tool("promtool", PROMTOOL_HINT)
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    assert "edoc-gateway" in [job["job_name"] for job in config["scrape_configs"]]


def test_every_alert_reads_only_exported_metrics():
    unknown = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            if name.startswith("edoc_gateway_"):
                ok = name in SAMPLE_NAMES or name in METRIC_NAMES
            else:
                ok = name in EXTERNAL_METRICS
            if not ok:
                unknown.setdefault(rule["alert"], set()).add(name)
    assert unknown == {}


def test_alerts_cover_what_operators_must_be_told():
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    for needed in ("up", "edoc_gateway_up", "edoc_gateway_axis_request_seconds_count",
                   "edoc_gateway_dead_letters_total", "edoc_gateway_consumer_lag",
                   "edoc_gateway_oldest_unreceipted_seconds",
                   "edoc_gateway_certificate_not_after_timestamp_seconds",
                   "edoc_gateway_crl_next_update_timestamp_seconds",
                   "kube_cronjob_status_last_successful_time", "node_systemd_unit_state"):
        assert needed in used, needed


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors = {github_anchor(line.lstrip("#")) for line in
               RUNBOOK.read_text(encoding="utf-8").splitlines() if line.startswith("## ")}
    bases = set()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        base, _, anchor = notes["runbook_url"].partition("#")
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert base.startswith(("https://", "http://")) and "docs/" not in base, \
            f"{rule['alert']}: runbook_url must be absolute (deploy/prometheus/runbook_base.py)"
        bases.add(base)
        assert rule["alert"].lower() in anchors, f"no section {rule['alert']} in docs/runbook.md"
    assert len(bases) == 1, f"one runbook base for every alert: {bases}"


def test_runbook_base_script_sets_one_absolute_base_everywhere(tmp_path):
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY / "prometheus", copy / "prometheus")
    shutil.copytree(DEPLOY / "k8s", copy / "k8s")
    script = copy / "prometheus" / "runbook_base.py"
    base = "https://wiki.tinh.gov.vn/edoc/runbook.html"
    done = subprocess.run([sys.executable, str(script), base], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("prometheus/alerts.yml", "prometheus/alerts.test.yml", "k8s/prometheusrule.yaml"):
        text = (copy / name).read_text(encoding="utf-8")
        assert "runbook.edoc-gateway.invalid" not in text, name
        assert f'runbook_url: "{base}#edoccrlstale"' in text, name
    assert subprocess.run([sys.executable, str(script), "relative/path"]).returncode == 2


def test_every_alert_is_shown_firing_by_a_unit_test():
    tests = load_yaml(RULE_TESTS)["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    silent = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set()
    assert names - silent == {"EdocAxisErrorsHigh", "EdocCertificateExpiring",
                              "EdocCertificateExpiringSoon"}


@pytest.mark.parametrize("expr, names", [
    ('sum by (flow) (rate(edoc_gateway_messages_total{outcome!="ok"}[5m]))',
     {"edoc_gateway_messages_total"}),
    ("x unless y offset 15m", {"x", "y"}),
    ('histogram_quantile(0.9, sum by (le) (rate(a_bucket{i=~"$instance"}[$__rate_interval])))',
     {"a_bucket"}),
    ('absent(up{job="edoc-gateway"} == 1) or vector(0)', {"up"}),
])
def test_metric_names_are_read_from_promql(expr, names):
    assert metric_names(expr) == names
