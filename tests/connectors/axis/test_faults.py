"""Simulated failures, and the error class the client reports for each (transient or not)."""

from __future__ import annotations

import socket

import pytest

from connectors.axis import AxisClient, AxisError
from connectors.axis.simulator import FaultInjector, FaultSpecError
from connectors.axis.simulator.faults import parse_cli_fault

from .conftest import (NA_UBND, TN_SYSTEM, TN_UBND, client_config, document_id, write_edoc)


@pytest.fixture
def package(tmp_path):
    return write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                      document_id=document_id(TN_UBND), attachment=bytes(range(256)) * 2000)


@pytest.mark.parametrize("status, reason, transient", [
    (503, "axis.unavailable", True),
    (500, "axis.unavailable", True),
    (502, "axis.unavailable", True),
    (429, "axis.rate_limited", True),
    (400, "axis.bad_request", False),
    (403, "axis.auth", False),
])
async def test_http_error_statuses_are_classified(tn, admin, status, reason, transient):
    await admin.set_faults([{"kind": "error", "status": status}])
    with pytest.raises(AxisError) as info:
        await tn.get_received_edoc_list()
    assert (info.value.reason, info.value.transient, info.value.http_status) == (
        reason, transient, status)


async def test_held_request_is_a_transient_timeout(sim, secrets_by_system, admin):
    await admin.set_faults([{"kind": "timeout", "seconds": 20}])
    config = client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM], read_timeout=0.3)
    async with AxisClient(config) as client:
        with pytest.raises(AxisError) as info:
            await client.count_receive_edoc()
    assert (info.value.reason, info.value.transient) == ("axis.timeout", True)


async def test_total_timeout_is_enforced_too(sim, secrets_by_system, admin):
    await admin.set_faults([{"kind": "latency", "ms": 20000}])
    config = client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM], total_timeout=0.3)
    async with AxisClient(config) as client:
        with pytest.raises(AxisError) as info:
            await client.get_agencies_list()
    assert (info.value.reason, info.value.transient) == ("axis.timeout", True)


async def test_reset_mid_upload_is_transient_and_stores_nothing(package, tn, na, admin):
    await admin.set_faults([{"kind": "reset", "operations": ["sendEdoc"]}])
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(package, from_organ=TN_UBND)
    assert (info.value.reason, info.value.transient) == ("axis.connection_lost", True)
    await admin.set_faults([])
    assert await na.get_received_edoc_list() == ()
    assert (await admin.counters())["faults_injected_total"] == {"reset": 1}


@pytest.mark.parametrize("operation", ["getEdoc", "downloadEdoc"])
async def test_reset_mid_download_is_transient_and_leaves_no_file(tmp_path, package, tn, na,
                                                                  admin, operation):
    await tn.send_edoc(package, from_organ=TN_UBND)
    (item,) = await na.get_received_edoc_list()
    await admin.set_faults([{"kind": "reset", "operations": [operation]}])
    fetch = na.get_edoc if operation == "getEdoc" else na.download_edoc
    with pytest.raises(AxisError) as info:
        await fetch(item.doc_id, tmp_path / "in.edxml")
    assert (info.value.reason, info.value.transient) == ("axis.connection_lost", True)
    assert not (tmp_path / "in.edxml").exists()
    assert not (tmp_path / "in.edxml.part").exists()
    await admin.set_faults([])
    assert (await fetch(item.doc_id, tmp_path / "in.edxml")).size > 0


async def test_reset_mid_json_answer_is_transient(tn, admin):
    await admin.set_faults([{"kind": "reset", "operations": ["getAgenciesList"]}])
    with pytest.raises(AxisError) as info:
        await tn.get_agencies_list()
    assert (info.value.reason, info.value.transient) == ("axis.connection_lost", True)


async def test_outage_window_fails_every_call_until_it_ends(package, tn, admin):
    await admin.set_faults([{"kind": "outage", "start_in": -1, "duration": 3600}])
    for call in (tn.count_receive_edoc(), tn.send_edoc(package, from_organ=TN_UBND)):
        with pytest.raises(AxisError) as info:
            await call
        assert (info.value.reason, info.value.transient, info.value.http_status) == (
            "axis.unavailable", True, 503)
    await admin.set_faults([{"kind": "outage", "start_in": -3600, "duration": 10}])  # over
    assert await tn.count_receive_edoc() == 0


async def test_lost_response_after_accepting_the_send(package, tn, na, admin):
    await admin.set_faults([{"kind": "lose_response", "operations": ["sendEdoc"], "count": 1}])
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(package, from_organ=TN_UBND)
    assert (info.value.reason, info.value.transient) == ("axis.connection_lost", True)

    # The axis did store it: the sender can see it before deciding to send again.
    (sent,) = await tn.get_sent_edoc_list()
    assert sent.to_code == NA_UBND
    assert len(await na.get_received_edoc_list()) == 1

    await tn.send_edoc(package, from_organ=TN_UBND)      # a blind retry delivers it twice
    assert len(await na.get_received_edoc_list()) == 2
    duplicates = await admin.get("duplicates")
    assert duplicates["count"] == 1
    assert duplicates["items"][0]["document_id"] == document_id(TN_UBND)


async def test_non_json_answer_is_a_permanent_bad_response(tn, admin):
    await admin.set_faults([{"kind": "bad_response"}])
    with pytest.raises(AxisError) as info:
        await tn.get_received_edoc_list()
    assert (info.value.reason, info.value.transient) == ("axis.bad_response", False)


async def test_latency_delays_but_does_not_fail(tn, admin):
    await admin.set_faults([{"kind": "latency", "ms": 50}])
    assert await tn.count_receive_edoc() == 0
    assert (await admin.counters())["faults_injected_total"] == {"latency": 1}


async def test_faults_are_scoped_to_operations_and_counted_down(package, tn, admin):
    await admin.set_faults([{"kind": "error", "operations": ["sendEdoc"], "count": 1}])
    assert await tn.get_received_edoc_list() == ()            # not in scope
    with pytest.raises(AxisError):
        await tn.send_edoc(package, from_organ=TN_UBND)       # fires once
    assert (await tn.send_edoc(package, from_organ=TN_UBND)).doc_id
    state = await admin.get("faults")
    assert state["rules"][0]["count"] == 0


async def test_refused_connection_is_transient_unavailable(secrets_by_system, sim):
    with socket.socket() as probe:            # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM],
                           endpoint=f"http://127.0.0.1:{port}/XrdAdapter/adapter")
    async with AxisClient(config) as client:
        with pytest.raises(AxisError) as info:
            await client.count_receive_edoc()
    assert (info.value.reason, info.value.transient) == ("axis.unavailable", True)


async def test_admin_refuses_a_bad_fault_plan(admin):
    async with admin.session.put(f"{admin.base}/faults",
                                 json={"rules": [{"kind": "earthquake"}]}) as resp:
        assert resp.status == 400
    assert (await admin.get("faults"))["rules"] == []


def test_same_seed_gives_the_same_fault_sequence():
    plan = {"seed": 42, "rules": [{"kind": "error", "rate": 0.5}, {"kind": "reset", "rate": 0.3}]}
    runs = []
    for _ in range(2):
        injector = FaultInjector()
        injector.configure(plan)
        runs.append([tuple(injector.decide("sendEdoc").fired) for _ in range(200)])
    assert runs[0] == runs[1]
    fired = [f for f in runs[0] if "error" in f]
    assert 60 < len(fired) < 140          # a rate, not always or never


def test_cli_fault_flags_parse_to_rules():
    rule = parse_cli_fault("error:rate=0.25,status=429,ops=sendEdoc+getEdoc,count=3", now=0)
    assert (rule.kind, rule.rate, rule.status, rule.operations, rule.count) == (
        "error", 0.25, 429, ("sendEdoc", "getEdoc"), 3)
    outage = parse_cli_fault("outage:start_in=10,duration=30", now=1000.0)
    assert (outage.start, outage.duration) == (1010.0, 30.0)
    for bad in ("flood", "error:rate=2", "outage:duration=5", "latency:ms"):
        with pytest.raises(FaultSpecError):
            parse_cli_fault(bad, now=0)
