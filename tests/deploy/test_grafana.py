"""The Grafana dashboard: it loads, is what its generator writes, and queries only metrics the
gateway exports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from gateway.metrics import METRIC_NAMES, SAMPLE_NAMES
from tests.deploy.conftest import DEPLOY, run, tool
from tests.deploy.promql import metric_names

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "edoc-gateway.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(board: dict) -> list[tuple[str, str]]:
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            out.append((f"variable {variable['name']}", variable["definition"]))
    return out


def test_dashboard_file_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text(encoding="utf-8") == module.render(), \
        "run python3 deploy/grafana/build_dashboard.py"


def test_every_query_reads_only_metrics_the_gateway_exports():
    board = dashboard()
    unknown = {}
    for title, expr in queries(board):
        if expr.startswith("label_values("):
            expr = expr.removeprefix("label_values(").split(",")[0]
        for name in metric_names(expr):
            if not (name in SAMPLE_NAMES or name in METRIC_NAMES):
                unknown.setdefault(title, set()).add(name)
    assert unknown == {}


def test_dashboard_shows_what_the_operators_watch():
    used = {name for _, expr in queries(dashboard()) for name in metric_names(expr)}
    bases = {name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
             for name in used}
    expected = {"edoc_gateway_messages_total", "edoc_gateway_event_to_axis_seconds",
                "edoc_gateway_axis_to_kafka_seconds", "edoc_gateway_retries_total",
                "edoc_gateway_dead_letters_total", "edoc_gateway_oldest_unreceipted_seconds",
                "edoc_gateway_consumer_lag", "edoc_gateway_axis_request_seconds",
                "edoc_gateway_certificate_not_after_timestamp_seconds",
                "edoc_gateway_crl_next_update_timestamp_seconds", "edoc_gateway_up"}
    assert expected <= bases
    # Every exported metric has a place on the dashboard.
    assert set(METRIC_NAMES) <= bases


def test_every_query_is_valid_promql(tmp_path: Path):
    promtool = tool("promtool", "Debian package prometheus; scripts/bootstrap installs it")
    # Grafana's variables replaced by values, each query as a recording rule promtool parses.
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for index, (_, expr) in enumerate(queries(dashboard())):
        if expr.startswith("label_values("):
            continue
        expr = (expr.replace("$__rate_interval", "5m").replace("$instance", ".*"))
        lines += [f"      - record: dashboard:query_{index}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard-queries.yml"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run([promtool, "check", "rules", str(rules)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_panels_have_unique_ids_descriptions_and_do_not_overlap():
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in panels:
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert [t["refId"] for t in panel["targets"]] == \
                [chr(ord("A") + i) for i in range(len(panel["targets"]))]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    assert board["uid"] == "edoc-gateway"
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "instance"]
