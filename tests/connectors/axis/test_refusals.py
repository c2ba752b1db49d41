"""What the axis refuses, and how the client reports it: reason, transient flag, code and text."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connectors.axis import AxisClient, AxisError
from connectors.axis.simulator import serve

from .conftest import (NA_SYSTEM, NA_UBND, TN_SYSTEM, TN_UBND, client_config, document_id,
                       write_edoc)


@pytest.fixture
def package(tmp_path):
    return write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                      document_id=document_id(TN_UBND))


async def test_sender_not_registered_under_the_systemid_is_rejected_with_the_axis_text(
        package, na, admin):
    with pytest.raises(AxisError) as info:
        await na.send_edoc(package, from_organ=TN_UBND)
    error = info.value
    assert (error.reason, error.transient, error.http_status) == ("axis.rejected", False, 200)
    assert error.error_code == "3"
    assert error.error_desc == f"Don vi gui {TN_UBND} khong dung voi ma da dang ky: {NA_SYSTEM}"
    assert (await admin.counters())["rejected_total"] == {"sender.not_registered": 1}


async def test_package_from_must_match_the_from_header(tmp_path, tn):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ="000.00.02.H55", to_organs=[NA_UBND],
                     document_id="D")
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(pkg, from_organ=TN_UBND)
    assert (info.value.reason, info.value.error_code) == ("axis.rejected", "3")


async def test_unknown_recipient_is_rejected_and_nothing_is_delivered(tmp_path, tn, na, admin):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ=TN_UBND,
                     to_organs=[NA_UBND, "000.00.99.H99"], document_id="D")
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(pkg, from_organ=TN_UBND)
    assert (info.value.reason, info.value.error_code) == ("axis.rejected", "4")
    assert "000.00.99.H99" in info.value.error_desc
    assert await na.get_received_edoc_list() == ()
    assert (await admin.counters())["received_total"] == {}


@pytest.mark.parametrize("content", [
    b"this is not xml",
    b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY x "y">]><edXML/>',
    b'<?xml version="1.0"?><edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXML/></edXML>',
])
async def test_packages_that_cannot_be_routed_are_refused(tmp_path, tn, content):
    pkg = tmp_path / "bad.edxml"
    pkg.write_bytes(content)
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(pkg, from_organ=TN_UBND)
    assert (info.value.reason, info.value.error_code) == ("axis.rejected", "5")


async def test_wrong_secret_is_refused_as_auth(package, sim):
    async with AxisClient(client_config(sim, TN_SYSTEM, "not-the-secret")) as client:
        with pytest.raises(AxisError) as info:
            await client.send_edoc(package, from_organ=TN_UBND)
    error = info.value
    assert (error.reason, error.transient, error.http_status, error.error_code) == (
        "axis.auth", False, 401, "2")
    assert "hash-header" in error.error_desc


async def test_unknown_systemid_is_refused_as_auth(sim):
    async with AxisClient(client_config(sim, "vxp.saas.99", "whatever")) as client:
        with pytest.raises(AxisError) as info:
            await client.get_received_edoc_list()
    assert info.value.reason == "axis.auth"
    assert "vxp.saas.99" in info.value.error_desc


@pytest.mark.parametrize("skew, strict", [(timedelta(minutes=-6), True),
                                          (timedelta(minutes=6), True),
                                          (timedelta(minutes=6), False),
                                          (timedelta(hours=-25), False)])
async def test_stale_or_future_timestamp_is_refused_as_auth(sim_config, secrets_by_system, skew,
                                                            strict):
    def clock() -> datetime:
        return datetime.now(timezone.utc) + skew

    async with await serve(replace(sim_config, strict=strict)) as sim:
        config = client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM], clock=clock,
                               dialect="standard")
        async with AxisClient(config) as client:
            with pytest.raises(AxisError) as info:
                await client.count_receive_edoc()
        counters = sim.simulator.store.counters()
    assert info.value.reason == "axis.auth"
    assert "timestamp" in info.value.error_desc
    assert counters["rejected_total"] == {"auth.stale_timestamp": 1}


@pytest.mark.parametrize("behind", [timedelta(minutes=20), timedelta(hours=7)])
async def test_a_timestamp_reused_for_minutes_is_accepted_by_default(sim, secrets_by_system,
                                                                     behind):
    # The reference client fixes its timestamp when its service object is built (20 minutes
    # ago); on a JVM set to UTC it writes UTC wall time as if it were Vietnam time (7 h behind).
    built = datetime.now(timezone.utc) - behind
    config = client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM], clock=lambda: built)
    async with AxisClient(config) as client:
        assert await client.count_receive_edoc() == 0
        assert await client.count_receive_edoc() == 0


async def test_unknown_operation_is_a_bad_request(sim, secrets_by_system):
    async with AxisClient(client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM])) as client:
        with pytest.raises(AxisError) as info:
            await client._json_call("getSomethingElse", "POST", {})
    assert (info.value.reason, info.value.http_status) == ("axis.bad_request", 404)


async def test_invalid_status_value_is_refused_before_sending(tn):
    with pytest.raises(ValueError):
        await tn.update_status("x", "archived")
