#!/usr/bin/env python3
"""Write the Grafana dashboard of edoc-gateway (edoc-gateway.json beside this file).

    python3 deploy/grafana/build_dashboard.py          # rewrite edoc-gateway.json
    python3 deploy/grafana/build_dashboard.py --check  # exit 1 if the file is not up to date

The dashboard is generated so that every panel has the same shape and every query is in one
readable list; tests/deploy/ checks that the file is what this script writes and that every
metric a query names is one the gateway exports (gateway.metrics). Standard library only.

Panels read from a data source variable (any Prometheus) and an `instance` filter. Reasons,
flows, operations and topics are the label values of docs/operations-metrics.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "edoc-gateway.json"
UID = "edoc-gateway"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'


def q(expr: str, legend: str = "", *, instant: bool = False, fmt: str | None = None) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto",
                              "range": not instant, "instant": instant}
    if fmt:
        target["format"] = fmt
    return target


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows one under the other."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel.setdefault("datasource", DS)
        for index, target in enumerate(panel.get("targets", [])):
            target["refId"] = chr(ord("A") + index)
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x, self.row_height = 0, 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def stat(title: str, description: str, expr: str, *, unit: str = "short",
         thresholds: list[tuple[float | None, str]] | None = None, decimals: int | None = None,
         legend: str = "") -> dict[str, Any]:
    steps = [{"color": color, "value": value}
             for value, color in (thresholds or [(None, "green")])]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                                "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": description,
            "targets": [q(expr, legend, instant=True)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"}}


def series(title: str, description: str, *targets: dict[str, Any], unit: str = "short",
           stack: bool = False, bars: bool = False) -> dict[str, Any]:
    custom: dict[str, Any] = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
                              "fillOpacity": 30 if (stack or bars) else 10,
                              "showPoints": "never", "spanNulls": False,
                              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return {"type": "timeseries", "title": title, "description": description,
            "targets": list(targets),
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom,
                                         "color": {"mode": "palette-classic"}},
                            "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right",
                                   "calcs": ["lastNotNull", "max"], "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def heatmap(title: str, description: str, expr: str) -> dict[str, Any]:
    return {"type": "heatmap", "title": title, "description": description,
            "targets": [q(expr, "{{le}}", fmt="heatmap")],
            "options": {"calculate": False, "yAxis": {"unit": "s"},
                        "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges",
                                                "steps": 64, "exponent": 0.5},
                        "tooltip": {"show": True, "yHistogram": True},
                        "legend": {"show": True}},
            "fieldConfig": {"defaults": {}, "overrides": []}}


def table(title: str, description: str, expr: str, value_name: str,
          thresholds: list[tuple[float | None, str]]) -> dict[str, Any]:
    steps = [{"color": color, "value": value} for value, color in thresholds]
    return {"type": "table", "title": title, "description": description,
            "targets": [q(expr, instant=True, fmt="table")],
            "fieldConfig": {"defaults": {"thresholds": {"mode": "absolute", "steps": steps},
                                         "custom": {"cellOptions": {"type": "color-background"}},
                                         "decimals": 1},
                            "overrides": []},
            "options": {"showHeader": True, "sortBy": [{"displayName": value_name, "desc": False}]},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {"Time": True},
                "renameByName": {"Value": value_name, "agency": "agency (OrganId)"}}}]}


def rate(metric: str, extra: str = "", by: str = "") -> str:
    selector = f"{{{SEL}{', ' + extra if extra else ''}}}"
    inner = f"rate({metric}{selector}[$__rate_interval])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(p: float, metric: str, by: str = "", extra: str = "") -> str:
    selector = f"{{{SEL}{', ' + extra if extra else ''}}}"
    group = f"{by}, le" if by else "le"
    return (f"histogram_quantile({p}, sum by ({group}) "
            f"(rate({metric}_bucket{selector}[$__rate_interval])))")


def build() -> dict[str, Any]:
    L = Layout()

    L.row("Overview")
    L.add(stat("Gateways running", "Instances whose daemon runs (edoc_gateway_up = 1).",
               f"count(edoc_gateway_up{{{SEL}}} == 1) or vector(0)",
               thresholds=[(None, "red"), (1, "green")]), 4, 4)
    L.add(stat("Documents sent (1 h)", "Outbound documents the axis accepted in the last hour.",
               f'sum(increase(edoc_gateway_messages_total{{{SEL}, flow="document", outcome="ok"}}[1h])) or vector(0)',
               decimals=0), 4, 4)
    L.add(stat("Documents received (1 h)", "Inbound documents published to agencies in the last hour.",
               f'sum(increase(edoc_gateway_messages_total{{{SEL}, flow="inbound-document", outcome="ok"}}[1h])) or vector(0)',
               decimals=0), 4, 4)
    L.add(stat("Dead letters (24 h)", "Records written to the dead-letter topic in the last 24 "
               "hours. Anything above 0 needs a look: edoc-gateway dlq list.",
               f"sum(increase(edoc_gateway_dead_letters_total{{{SEL}}}[24h])) or vector(0)",
               decimals=0, thresholds=[(None, "green"), (1, "orange")]), 4, 4)
    L.add(stat("Oldest document without receipt", "Age of the oldest sent document with no "
               "status receipt from its recipient yet (0: none).",
               f"max(edoc_gateway_oldest_unreceipted_seconds{{{SEL}}})", unit="s",
               thresholds=[(None, "green"), (4 * 3600, "orange"), (8 * 3600, "red")]), 4, 4)
    L.add(stat("Certificate: fewest days left", "Days until the first agency signing "
               "certificate expires (see the table below for each agency).",
               f"(min(edoc_gateway_certificate_not_after_timestamp_seconds{{{SEL}}}) - time())"
               " / 86400", unit="d", decimals=0,
               thresholds=[(None, "red"), (7, "orange"), (30, "green")]), 4, 4)

    L.row("Traffic and outcomes")
    L.add(series("Messages finished, by flow and outcome", "Rate of finished messages: "
                 "document/receipt are outbound (agency → axis), inbound-* are from the axis.",
                 q(rate("edoc_gateway_messages_total", by="flow, outcome"), "{{flow}} {{outcome}}"),
                 unit="ops", stack=True), 12, 8)
    L.add(series("Failures by reason", "Messages that did not finish ok, by flow and reason code "
                 "(docs/reasons.md).",
                 q(rate("edoc_gateway_messages_total", 'outcome!="ok"', by="flow, reason"),
                   "{{flow}} {{reason}}"), unit="ops", stack=True), 12, 8)
    L.add(series("Traffic by agency", "Finished messages per configured agency (sender for "
                 "document/receipt, recipient for inbound-*), by flow and outcome.",
                 q(rate("edoc_gateway_agency_messages_total", by="agency, flow, outcome"),
                   "{{agency}} {{flow}} {{outcome}}"), unit="ops", stack=True), 24, 8)
    L.add(series("Retries by reason", "Retries of transient failures: rising retries are "
                 "trouble that has not become a failure yet.",
                 q(rate("edoc_gateway_retries_total", by="flow, reason"), "{{flow}} {{reason}}"),
                 unit="ops"), 8, 8)
    L.add(series("Dead-letter inflow", "Records written to the dead-letter topic per interval, "
                 "by flow and reason; 'internal error' counts records that raised an "
                 "unexpected exception (a gateway bug: see the log's traceback).",
                 q(f"sum by (flow, reason) (increase(edoc_gateway_dead_letters_total{{{SEL}}}"
                   f"[$__rate_interval]))", "{{flow}} {{reason}}"),
                 q(f"sum by (flow) (increase(edoc_gateway_internal_errors_total{{{SEL}}}"
                   f"[$__rate_interval]))", "internal error {{flow}}"), bars=True), 8, 8)
    L.add(series("In flight and audit records", "Messages taken in and not finished; audit "
                 "records acknowledged per second.",
                 q(f"sum by (flow) (edoc_gateway_messages_in_flight{{{SEL}}})", "in flight {{flow}}"),
                 q(rate("edoc_gateway_audit_records_total", by="flow"), "audit {{flow}}")),
          8, 8)

    L.row("Latency")
    L.add(series("Agency event → axis accepted", "Outbound end to end: from the agency's "
                 "event time to the axis accepting the package.",
                 q(quantile(0.5, "edoc_gateway_event_to_axis_seconds", "flow"), "p50 {{flow}}"),
                 q(quantile(0.95, "edoc_gateway_event_to_axis_seconds", "flow"), "p95 {{flow}}"),
                 q(quantile(0.99, "edoc_gateway_event_to_axis_seconds", "flow"), "p99 {{flow}}"),
                 unit="s"), 12, 8)
    L.add(heatmap("Agency event → axis accepted (heatmap)", "Distribution of outbound end-to-end "
                  "times.",
                  f"sum by (le) (increase(edoc_gateway_event_to_axis_seconds_bucket{{{SEL}}}"
                  f"[$__rate_interval]))"), 12, 8)
    L.add(series("Axis list → Kafka", "Inbound: from the message appearing in the axis's list to "
                 "its event stored in Kafka.",
                 q(quantile(0.5, "edoc_gateway_axis_to_kafka_seconds", "flow"), "p50 {{flow}}"),
                 q(quantile(0.95, "edoc_gateway_axis_to_kafka_seconds", "flow"), "p95 {{flow}}"),
                 unit="s"), 12, 8)
    L.add(series("Package work (build, sign, verify)", "CPU time per package operation, 95th "
                 "percentile.",
                 q(quantile(0.95, "edoc_gateway_package_seconds", "operation"), "p95 {{operation}}"),
                 unit="s"), 12, 8)
    L.add(series("Worker pool recreated", "Times a worker process died (OOM killer, signal, "
                 "crash) and the pool was recreated; a package that kills workers twice is "
                 "quarantined as package.poison (docs/hostile-inputs.md).",
                 q(f"sum by (instance) (increase(edoc_gateway_worker_pool_recreated_total{{{SEL}}}"
                   f"[$__rate_interval]))", "{{instance}}"), bars=True), 24, 6)

    L.row("National axis")
    L.add(series("Axis call latency by operation (p95)", "95th percentile of axis API calls.",
                 q(quantile(0.95, "edoc_gateway_axis_request_seconds", "operation"),
                   "{{operation}}"), unit="s"), 8, 8)
    L.add(series("Axis calls by operation and outcome", "Calls per second; outcome ok or the "
                 "reason code.",
                 q(rate("edoc_gateway_axis_request_seconds_count", by="operation, outcome"),
                   "{{operation}} {{outcome}}"), unit="reqps", stack=True), 8, 8)
    L.add(series("Axis error ratio by operation", "Share of calls that failed.",
                 q(rate("edoc_gateway_axis_request_seconds_count", 'outcome!="ok"', by="operation")
                   + " / " + rate("edoc_gateway_axis_request_seconds_count", by="operation"),
                   "{{operation}}"), unit="percentunit"), 8, 8)
    L.add(series("Inbound polls by outcome", "Polls of the axis's received lists (edoc, status).",
                 q(rate("edoc_gateway_inbound_polls_total", by="kind, outcome"),
                   "{{kind}} {{outcome}}"), unit="ops"), 12, 8)
    L.add(series("Oldest document without receipt", "Age of the oldest sent document still "
                 "waiting for its recipient's status receipt.",
                 q(f"max(edoc_gateway_oldest_unreceipted_seconds{{{SEL}}})", "oldest"),
                 unit="s"), 12, 8)

    L.row("Kafka and certificates")
    L.add(series("Consumer lag by topic", "Records on the input topics not yet processed, summed "
                 "over instances.",
                 q(f"sum by (topic) (edoc_gateway_consumer_lag{{{SEL}}})", "{{topic}}")), 12, 8)
    L.add(table("Signing certificates: days to expiry", "Each agency's signing certificate "
                "(lowest over instances). Rotate before 30 days (docs/operations.md).",
                f"(min by (agency) (edoc_gateway_certificate_not_after_timestamp_seconds"
                f"{{{SEL}}}) - time()) / 86400", "days left",
                [(None, "red"), (7, "orange"), (30, "green")]), 12, 8)
    L.add(table("CRLs: days to nextUpdate", "Each configured CRL file (lowest over instances). "
                "Below 0 the CRL is stale: fetch the current one (runbook: EdocCrlStale).",
                f"(min by (crl) (edoc_gateway_crl_next_update_timestamp_seconds{{{SEL}}}) - "
                "time()) / 86400", "days left", [(None, "red"), (0, "orange"), (1, "green")]),
          12, 5)
    L.add(table("Running versions", "Version of each running instance.",
                f"max by (instance, version, python) (edoc_gateway_build_info{{{SEL}}})",
                "count", [(None, "blue")]), 12, 5)

    return {
        "uid": UID,
        "title": "edoc-gateway",
        "description": "Documents between agencies (Kafka) and the national axis: traffic, "
                       "outcomes, latency, retries and dead letters, the axis, Kafka lag and "
                       "certificates. docs/operations.md explains each panel.",
        "tags": ["edoc-gateway", "edxml"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
            {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
             "query": {"query": "label_values(edoc_gateway_up, instance)",
                       "refId": "PrometheusVariableQueryEditor-VariableQuery"},
             "definition": "label_values(edoc_gateway_up, instance)",
             "includeAll": True, "multi": True, "allValue": ".*",
             "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
             "refresh": 2, "sort": 1, "hide": 0},
        ]},
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if edoc-gateway.json differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT.name} is not up to date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
