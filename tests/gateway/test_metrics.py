"""The metric list: Prometheus naming rules, bounded reason labels, a parseable exposition."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import METRIC_NAMES, METRICS, PREFIX, REASON_MODULES, SAMPLE_NAMES, GatewayMetrics, \
    bounded_reason, known_reasons

NAME = re.compile(r"^edoc_gateway_[a-z][a-z0-9]*(_[a-z0-9]+)*$")
LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
NON_BASE_UNITS = ("_milliseconds", "_microseconds", "_ms", "_minutes", "_hours", "_days",
                  "_kilobytes", "_megabytes", "_percent")
# Names outside the base-unit rule (none: validity is a timestamp in seconds).
UNIT_EXCEPTIONS: set[str] = set()


def touched_metrics() -> tuple[CollectorRegistry, GatewayMetrics]:
    """A registry where every metric has at least one series."""
    registry = CollectorRegistry()
    m = GatewayMetrics(registry, version="1.2.3", agencies={"000.00.00.H55"})
    m.message("document", "ok", agency="000.00.00.H55")
    m.message("document", "failed", "axis.rejected")
    m.event_to_axis_seconds.labels(flow="document").observe(1.5)
    m.axis_to_kafka_seconds.labels(flow="inbound-document").observe(0.3)
    m.retry("document", "axis.unavailable")
    m.dead_letter("receipt", "event.schema")
    m.in_flight.labels(flow="document").set(3)
    m.axis_request("sendEdoc", 0.2)
    m.axis_request("getEdoc", 5.0, "axis.timeout")
    m.oldest_unreceipted_seconds.set(3600)
    m.certificate_not_after.labels(agency="000.00.00.H55").set(1_830_000_000)
    m.crl_next_update.labels(crl="ca.crl").set(1_800_000_000)
    m.audit_records.labels(flow="gateway").inc()
    m.inbound_poll("edoc")
    m.inbound_poll("status", "axis.unavailable")
    m.package_seconds.labels(operation="sign").observe(0.04)
    m.consumer_lag.labels(topic="edoc.outbound.documents").set(12)
    m.up.set(1)
    return registry, m


def test_every_name_follows_the_prometheus_conventions() -> None:
    assert len(set(METRIC_NAMES)) == len(METRIC_NAMES) == len(METRICS)
    for spec in METRICS:
        assert NAME.match(spec.name), spec.name
        if spec.kind == "counter":
            assert spec.name.endswith("_total"), spec.name
        else:
            assert not spec.name.endswith("_total"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith(("_seconds", "_bytes")), spec.name
            assert spec.buckets and list(spec.buckets) == sorted(spec.buckets)
        if spec.kind == "info":
            assert spec.name.endswith("_info"), spec.name
        if spec.name not in UNIT_EXCEPTIONS:
            assert not any(unit in spec.name + "_" for unit in
                           (u + "_" for u in NON_BASE_UNITS)), spec.name
        for label in spec.labels:
            assert LABEL.match(label) and label not in ("le", "quantile"), (spec.name, label)
        assert spec.help.strip()


def test_agency_labels_only_where_the_configured_list_bounds_them() -> None:
    assert [spec.name for spec in METRICS if "agency" in spec.labels] == \
        ["edoc_gateway_agency_messages_total",
         "edoc_gateway_certificate_not_after_timestamp_seconds"]
    registry = CollectorRegistry()
    m = GatewayMetrics(registry, agencies={"000.00.00.H55"})
    m.message("document", "ok", agency="000.00.00.H55")
    m.message("inbound-document", "ok", agency="999.99.99.H99")  # not ours: not a new series
    labels = {s.labels["agency"] for f in text_string_to_metric_families(
        generate_latest(registry).decode()) for s in f.samples if "agency" in s.labels}
    assert labels == {"000.00.00.H55", "other"}


def test_exposition_parses_and_matches_the_declared_names() -> None:
    registry, _ = touched_metrics()
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    # Besides ours: the process and Python runtime collectors (process_*, python_*).
    samples = {s.name for f in families for s in f.samples if s.name.startswith(PREFIX)}
    assert samples == SAMPLE_NAMES
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    assert {n for n in declared if n.startswith(PREFIX)} == set(METRIC_NAMES)
    assert all(n.startswith(("process_", "python_")) for n in declared - set(METRIC_NAMES))
    build = next(s for f in families for s in f.samples if s.name == "edoc_gateway_build_info")
    assert build.labels["version"] == "1.2.3"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_lint_finds_nothing() -> None:
    registry, _ = touched_metrics()
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(registry),
                            capture_output=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).decode().splitlines()
                if line.strip()]
    assert all(any(name in line for name in UNIT_EXCEPTIONS) for line in problems), problems


def test_bounded_reason_keeps_known_codes_and_folds_the_rest() -> None:
    assert bounded_reason("axis.unavailable") == "axis.unavailable"
    assert bounded_reason("event.json") == "event.json"
    assert bounded_reason("audit.closed") == "audit.closed"
    assert bounded_reason("axis.unavailable; DROP TABLE") == "other"
    assert bounded_reason("made.up.reason") == "other"
    assert bounded_reason(None) == "none" and bounded_reason("") == "none"
    assert bounded_reason("x.y", known={"x.y"}) == "x.y"
    assert bounded_reason("axis.unavailable", known={"x.y"}) == "other"


def test_every_reason_module_has_a_reasons_table() -> None:
    present = [name for name in REASON_MODULES if importlib.util.find_spec(name) is not None]
    assert {"edxml.xmlsafe", "connectors.kafka", "gateway.audit", "gateway.dlq"} <= set(present)
    for name in present:
        table = importlib.import_module(name).REASONS
        assert table and all(re.match(r"^[a-z][a-z0-9_.-]*$", code) for code in table), name
    assert len(known_reasons()) > 20


def test_the_daemon_can_add_its_own_modules_reasons() -> None:
    reasons = known_reasons(("connectors.cloudevents",))
    assert "event.envelope" in reasons
    assert bounded_reason("edxml.xml.dtd", reasons) == "edxml.xml.dtd"


def test_unknown_reasons_are_counted_as_other() -> None:
    registry = CollectorRegistry()
    m = GatewayMetrics(registry)
    for n in range(100):
        m.dead_letter("document", f"hostile.{n}")
    m.dead_letter("document", "event.json")
    families = {f.name: f for f in text_string_to_metric_families(
        generate_latest(registry).decode())}
    series = {(s.labels["reason"], s.value) for s in families["edoc_gateway_dead_letters"].samples
              if s.name.endswith("_total")}
    assert series == {("other", 100.0), ("event.json", 1.0)}


def test_each_registry_gets_its_own_metrics() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    GatewayMetrics(first).up.set(1)
    GatewayMetrics(second)
    assert first.get_sample_value("edoc_gateway_up") == 1.0
    assert second.get_sample_value("edoc_gateway_up") == 0.0
    with pytest.raises(ValueError):
        GatewayMetrics(first)  # the same names twice in one registry
