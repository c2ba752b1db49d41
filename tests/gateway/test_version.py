"""One version, told the same everywhere: `--version`, the metrics info series, the audit
chain's first record (and the console's front page, tested with the console)."""

from __future__ import annotations

import json
import subprocess
import sys

from prometheus_client import CollectorRegistry

from gateway.audit import AuditLog, verify_records
from gateway.metrics import GatewayMetrics
from gateway.ops.version import gateway_version
from tests.gateway.test_audit import ListSink


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert gateway_version() == version("edoc-gateway")


def test_version_option_prints_it_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"edoc-gateway {gateway_version()}"


def test_metrics_info_series_carries_it() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    assert registry.get_sample_value("edoc_gateway_build_info",
                                     {"version": gateway_version(),
                                      "python": sys.version.split()[0]}) == 1.0


async def test_the_audit_chains_first_record_names_the_version() -> None:
    sink = ListSink()
    audit = AuditLog("gw-1", sink)
    async with audit:
        await audit.record(flow="document", step="signed", outcome="ok", document_id="D")
    records = [json.loads(r.value) for r in sink.records]
    assert records[0]["step"] == "chain-opened"
    assert records[0]["version"] == gateway_version()
    assert all("version" not in r for r in records[1:])
    assert verify_records(sink.entries()).ok
