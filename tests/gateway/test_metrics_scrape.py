"""Metrics hygiene on a live scrape: what `promtool check metrics` sees over HTTP, timestamps
for certificate and CRL validity, runtime collectors, no `_created` series, OpenMetrics."""

from __future__ import annotations

import shutil
import subprocess

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.http import HealthState, start_http_server
from tests.gateway.test_metrics import touched_metrics


@pytest.fixture
async def scraped():
    registry, metrics = touched_metrics()
    metrics.certificate_not_after.labels(agency="000.00.00.H55").set(1_830_000_000)
    metrics.crl_next_update.labels(crl="ca.crl").set(1_800_000_000)
    server = await start_http_server(registry, HealthState(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/metrics") as response:
                text = await response.read()
                content_type = response.headers["Content-Type"]
            async with session.get(server.url + "/metrics", headers={
                    "Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}) \
                    as response:
                openmetrics = await response.read()
                om_type = response.headers["Content-Type"]
        yield text, content_type, openmetrics, om_type
    finally:
        await server.stop()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                    "(Debian package prometheus; scripts/bootstrap installs it)")
def test_promtool_check_metrics_on_a_live_scrape_prints_nothing(scraped) -> None:
    text, _, _, _ = scraped
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            timeout=60)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0 and output == "", output


def test_validity_is_exposed_as_timestamps(scraped) -> None:
    text = scraped[0].decode()
    assert 'edoc_gateway_certificate_not_after_timestamp_seconds{agency="000.00.00.H55"} ' \
           '1.83e+09' in text
    assert 'edoc_gateway_crl_next_update_timestamp_seconds{crl="ca.crl"} 1.8e+09' in text
    assert "_days" not in text


def test_runtime_collectors_are_on_and_created_series_off(scraped) -> None:
    names = {s.name for f in text_string_to_metric_families(scraped[0].decode())
             for s in f.samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
            "python_gc_collections_total"} <= names
    assert not [n for n in names if n.endswith("_created")]


def test_openmetrics_is_served_when_asked(scraped) -> None:
    text, content_type, openmetrics, om_type = scraped
    assert content_type.startswith("text/plain; version=0.0.4")
    assert om_type.startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.rstrip().endswith(b"# EOF")
    assert b"edoc_gateway_messages_total" in openmetrics
