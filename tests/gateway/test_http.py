"""The operational endpoints over real loopback HTTP: liveness, readiness, metrics."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.http import HealthState, start_http_server
from gateway.metrics import GatewayMetrics


@pytest.fixture
async def served():
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    health = HealthState(["kafka", "axis", "keys"])
    server = await start_http_server(registry, health, host="127.0.0.1", port=0)
    async with aiohttp.ClientSession() as session:
        yield server, session, health, metrics
    await server.stop()


async def test_healthz_answers_while_the_loop_runs(served) -> None:
    server, session, _, _ = served
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    async with session.get(server.url + "/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz_flips_with_the_checks(served) -> None:
    server, session, health, _ = served
    async with session.get(server.url + "/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["failing"] == {"kafka": "not checked yet", "axis": "not checked yet",
                               "keys": "not checked yet"}

    for name in ("kafka", "axis", "keys"):
        health.set_ok(name)
    async with session.get(server.url + "/readyz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ready" and all(c["ok"] for c in body["checks"].values())

    health.set_failed("axis", "axis.unavailable: HTTP 503")
    async with session.get(server.url + "/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["failing"] == {"axis": "axis.unavailable: HTTP 503"}
    assert body["checks"]["kafka"]["ok"] is True

    health.set_ok("axis")
    async with session.get(server.url + "/readyz") as response:
        assert response.status == 200


async def test_metrics_serves_the_registry(served) -> None:
    server, session, _, metrics = served
    metrics.up.set(1)
    metrics.message("document", "failed", "axis.rejected")
    async with session.get(server.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("edoc_gateway_up", ())] == 1.0
    assert samples[("edoc_gateway_messages_total", (("flow", "document"),
                                                    ("outcome", "failed"),
                                                    ("reason", "axis.rejected")))] == 1.0


async def test_a_stopped_server_no_longer_answers() -> None:
    server = await start_http_server(CollectorRegistry(), HealthState())
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url + "/readyz") as response:
            assert response.status == 200  # no checks registered: nothing to wait for
        await server.stop()
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(server.url + "/healthz"):
                pass


def test_reasons_are_cut_short_and_state_changes_keep_their_time() -> None:
    health = HealthState()
    health.set_failed("kafka", "x" * 1000)
    assert len(health.failing()["kafka"]) == 200
    health.set_ok("kafka")
    since = health.snapshot()["kafka"]["since"]
    health.set_ok("kafka")
    assert health.snapshot()["kafka"]["since"] == since
    assert health.ready
