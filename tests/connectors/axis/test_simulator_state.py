"""The simulator keeps its state across restarts and reports it on its admin endpoints."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import aiohttp
import pytest

from connectors.axis import AxisClient
from connectors.axis.simulator import BANNER, main, serve, start_simulator_process

from .conftest import (NA_SYSTEM, NA_UBND, TN_SYSTEM, TN_SO_NOI_VU, TN_UBND, client_config,
                       document_id, write_edoc)


async def test_restart_in_the_middle_loses_no_stored_message(tmp_path, sim_config,
                                                             secrets_by_system):
    first = await serve(sim_config)
    async with AxisClient(client_config(first, TN_SYSTEM, secrets_by_system[TN_SYSTEM])) as tn:
        for number in ("1", "2", "3"):
            pkg = write_edoc(tmp_path / f"{number}.edxml", from_organ=TN_UBND,
                             to_organs=[NA_UBND], document_id=document_id(TN_UBND, number))
            await tn.send_edoc(pkg, from_organ=TN_UBND)
    async with AxisClient(client_config(first, NA_SYSTEM, secrets_by_system[NA_SYSTEM])) as na:
        before = await na.get_received_edoc_list()
        await na.get_edoc(before[0].doc_id, tmp_path / "a.edxml")
        await na.update_status(before[0].doc_id, "done")
    await first.close()

    second = await serve(sim_config)
    try:
        async with AxisClient(client_config(second, NA_SYSTEM,
                                            secrets_by_system[NA_SYSTEM])) as na:
            after = await na.get_received_edoc_list()
            assert [i.doc_id for i in after] == [i.doc_id for i in before[1:]]
            for item in after:
                fetched = await na.download_edoc(item.doc_id, tmp_path / f"{item.doc_id}.edxml")
                assert b"<edXML:DocumentId>" in fetched.path.read_bytes()
        async with AxisClient(client_config(second, TN_SYSTEM,
                                            secrets_by_system[TN_SYSTEM])) as tn:
            states = [r.receive_status for r in await tn.get_sent_edoc_list()]
            assert states == ["done", "initial", "initial"]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{second.admin_url}/counters") as resp:
                counters = (await resp.json())["counters"]
        assert counters["received_total"] == {"edoc": 3}
        assert counters["status_updates_total"] == {"done": 1}
    finally:
        await second.close()


async def test_duplicates_counter_counts_a_double_send(tmp_path, tn, admin):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ=TN_UBND, to_organs=[NA_UBND, TN_SO_NOI_VU],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    assert (await admin.get("duplicates"))["count"] == 0
    other = write_edoc(tmp_path / "q.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                       document_id=document_id(TN_UBND, "13"))
    await tn.send_edoc(other, from_organ=TN_UBND)
    assert (await admin.get("duplicates"))["count"] == 0       # another document

    await tn.send_edoc(pkg, from_organ=TN_UBND)
    duplicates = await admin.get("duplicates")
    assert duplicates["count"] == 2                             # once per recipient
    assert sorted(d["to_code"] for d in duplicates["items"]) == sorted([NA_UBND, TN_SO_NOI_VU])
    counters = await admin.counters()
    assert counters["duplicates_total"] == {"edoc": 2}
    assert counters["delivered_total"] == {"edoc": 5}
    mailbox = await admin.get("mailboxes", agency=NA_UBND)
    assert len(mailbox[NA_UBND]) == 3


async def test_metrics_are_prometheus_text_and_mark_the_simulator(tmp_path, tn, sim, admin):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    text = await admin.get("metrics")
    assert 'edoc_axis_simulator_info{simulator="true"} 1' in text
    assert 'edoc_axis_simulator_received_total{message_type="edoc"} 1' in text
    assert 'edoc_axis_simulator_pending_messages{message_type="edoc"} 1' in text
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True)
        assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
    async with admin.session.get(sim.url + "/countReceiveEdoc") as resp:
        assert "SIMULATOR" in resp.headers["Server"]
        assert resp.status == 401                               # unsigned


async def test_admin_lists_agencies_with_their_systemid(admin):
    agencies = {a["code"]: a for a in await admin.get("agencies")}
    assert agencies[TN_UBND]["systemid"] == TN_SYSTEM
    assert agencies[TN_UBND]["code20"] == "H55"
    assert agencies["000.00.00.G22"]["systemid"] is None
    index = await admin.get("")
    assert index["simulator"] == BANNER


def test_simulator_runs_as_a_child_process(tmp_path, secrets_by_system):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    with start_simulator_process(db=tmp_path / "sim.sqlite", clients=secrets_by_system,
                                 log_path=tmp_path / "sim.log") as proc:
        async def exchange() -> None:
            async with AxisClient(client_config(proc, TN_SYSTEM,
                                                secrets_by_system[TN_SYSTEM])) as tn:
                await tn.send_edoc(pkg, from_organ=TN_UBND)
            async with AxisClient(client_config(proc, NA_SYSTEM,
                                                secrets_by_system[NA_SYSTEM])) as na:
                assert len(await na.get_received_edoc_list()) == 1

        asyncio.run(exchange())
        assert proc.peak_rss_bytes() > 0
    assert proc.popen.returncode == 0
    log = (tmp_path / "sim.log").read_text()
    assert "AXIS SIMULATOR" in log
    for secret in secrets_by_system.values():
        assert secret not in log


def test_cli_refuses_to_start_without_clients(tmp_path):
    assert main(["--db", str(tmp_path / "x.sqlite")]) == 2


@pytest.mark.parametrize("bad", ["nocolon", ":secret", "id:"])
def test_cli_refuses_malformed_client_entries(tmp_path, bad):
    assert main(["--db", str(tmp_path / "x.sqlite"), "--client", bad]) == 2
