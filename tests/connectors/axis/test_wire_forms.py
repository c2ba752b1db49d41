"""The reference client's wire form, point by point (docs/axis-simulator.md, "Wire forms"):
the simulator accepts it, counts which form each request used, and `strict` keeps the written
description's checks; our client decodes compressed answers."""

from __future__ import annotations

import base64
import gzip
import hashlib
import tempfile
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiohttp import web
from lxml import etree

from connectors.axis import AxisClient, AxisClientConfig, AxisError
from connectors.axis.auth import format_timestamp
from connectors.axis.simulator import serve

from tests.edxml import reference_built as rb

from . import captures
from .captures import PREFIX, Request, captured, send_raw, unpadded_sha256
from .conftest import (NA_SYSTEM, NA_UBND, NS, TN_SYSTEM, TN_UBND, answering, client_config,
                       document_id, write_edoc, write_status)

DATA = captures.load()
Q = {"e": NS}


def fresh(name: str, systemid: str, secret: str, *, age: timedelta = timedelta(0),
          **params: str | None) -> Request:
    """A captured request re-signed for this test's systemid, secret and clock."""
    request = captured(DATA, name)
    stamp = format_timestamp(datetime.now(timezone.utc) - age)
    request.resign(secret, systemid=systemid, timestamp=stamp, **params)
    return request


def package_with_a_low_byte(tmp_path, **kwargs):
    """A package whose SHA-256 has a byte below 0x10, so unpadded hex differs from standard
    (about 87 % of packages)."""
    for n in range(100):
        path = write_edoc(tmp_path / f"p{n}.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                          document_id=document_id(TN_UBND, str(n)), **kwargs)
        digest = hashlib.sha256(path.read_bytes()).digest()
        if any(b < 0x10 for b in digest):
            return path
    raise AssertionError("no package with a low byte in 100 tries")


def send_document(path, secret: str, *, reference: bool = True) -> Request:
    """sendEdoc of `path` with the reference client's hash-file and CRLF framing, or (not
    `reference`) the standard ones."""
    data = path.read_bytes()
    hash_file = unpadded_sha256(data) if reference else hashlib.sha256(data).hexdigest()
    request = fresh("sendEdoc (document)", TN_SYSTEM, secret, hash_file=hash_file,
                    **{"from": TN_UBND})
    request.body = data + b"\r\n" if reference else data
    request.set("Content-Length", str(len(request.body)))
    return request


async def test_unpadded_hash_file_and_crlf_framing_are_accepted(tmp_path, sim, secrets_by_system,
                                                                admin):
    """Point 1: the reference client's hash-file (no zero padding) of the package, sent
    followed by CRLF, is accepted; the package is stored without the CRLF."""
    path = package_with_a_low_byte(tmp_path)
    answer = await send_raw("127.0.0.1", sim.port, send_document(path, secrets_by_system[TN_SYSTEM]))
    assert answer.status == 200 and answer.json()["ErrorCode"] == "0", answer.body
    (row,) = sim.simulator.store.mailbox(NA_UBND)
    assert row["size"] == path.stat().st_size
    points = (await admin.counters())["form_points_total"]
    assert points["hash_file=reference"] == 1 and points["framing=reference"] == 1


async def test_strict_refuses_the_unpadded_hash_file(tmp_path, sim_config, secrets_by_system):
    path = package_with_a_low_byte(tmp_path)
    async with await serve(replace(sim_config, strict=True)) as sim:
        answer = await send_raw("127.0.0.1", sim.port,
                                send_document(path, secrets_by_system[TN_SYSTEM]))
    assert answer.status == 400 and answer.json()["ErrorCode"] == "1"


async def test_to_as_json_array_text_routes_a_status(tmp_path, sim, secrets_by_system):
    """Point 2: `to` = `["000.00.00.H55"]` names the recipient of a status package."""
    path = write_status(tmp_path / "s.edxml", from_organ=NA_UBND, response_for_organ=TN_UBND,
                        response_for_document_id=document_id(TN_UBND))
    data = path.read_bytes()
    # Standard hash-file of the exact file, so that only `to` is in the reference form here.
    request = fresh("sendEdoc (status, to H55)", NA_SYSTEM, secrets_by_system[NA_SYSTEM],
                    hash_file=hashlib.sha256(data).hexdigest(), to=f'["{TN_UBND}"]',
                    **{"from": NA_UBND})
    request.body = data
    request.set("Content-Length", str(len(request.body)))
    answer = await send_raw("127.0.0.1", sim.port, request)
    assert answer.json()["ErrorCode"] == "0", answer.body
    (row,) = sim.simulator.store.mailbox(TN_UBND)
    assert (row["message_type"], row["from_code"]) == ("status", NA_UBND)


async def test_count_is_a_post_with_an_empty_json_body(sim, secrets_by_system):
    """Point 3: countReceiveEdoc as POST `{}` (readiness and `run --check` use it)."""
    request = fresh("countReceiveEdoc", NA_SYSTEM, secrets_by_system[NA_SYSTEM])
    answer = await send_raw("127.0.0.1", sim.port, request)
    assert answer.status == 200 and answer.json()["count"] == 0


async def test_agency_list_answers_strings_where_the_reference_client_reads_strings(
        sim, secrets_by_system):
    """Point 5: no JSON null (Gson getAsString() fails on it): a top-level pid is ""."""
    answer = await send_raw("127.0.0.1", sim.port,
                            fresh("getAgenciesList", TN_SYSTEM, secrets_by_system[TN_SYSTEM]))
    agencies = answer.json()["data"]
    assert all(isinstance(value, str) for agency in agencies for value in agency.values())
    assert next(a for a in agencies if a["code"] == TN_UBND)["pid"] == ""


async def test_reference_request_shapes_are_accepted(tmp_path, sim, secrets_by_system, tn, na):
    """Point 6: only XroadVnpt-* parameters, HashMap order, `docId`, `{}` bodies, an unknown
    signed parameter (`filePath`) and a timestamp 20 minutes old (a reused service object)."""
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    (item,) = await na.get_received_edoc_list()
    secret = secrets_by_system[NA_SYSTEM]
    old = timedelta(minutes=20)
    fetch = fresh("getEdoc", NA_SYSTEM, secret, age=old, docId=item.doc_id)
    answer = await send_raw("127.0.0.1", sim.port, fetch)
    assert answer.status == 200 and answer.json()["ErrorCode"] == "0", answer.body
    mark = fresh("updateStatus", NA_SYSTEM, secret, age=old, docId=item.doc_id)
    answer = await send_raw("127.0.0.1", sim.port, mark)
    assert answer.status == 200 and answer.json()["ErrorCode"] == "0", answer.body
    assert await na.get_received_edoc_list() == ()


async def test_a_second_copy_of_a_signed_parameter_is_refused(tmp_path, sim, secrets_by_system,
                                                              admin):
    """A second, different XroadVnpt-from after the signed one must not be read by anybody."""
    path = package_with_a_low_byte(tmp_path)
    request = send_document(path, secrets_by_system[TN_SYSTEM], reference=False)
    request.headers.append((PREFIX + "from", "000.00.02.H55"))
    answer = await send_raw("127.0.0.1", sim.port, request)
    assert (answer.status, answer.json()["ErrorCode"]) == (401, "2")
    assert (await admin.counters())["rejected_total"] == {"auth.duplicate_header": 1}
    assert sim.simulator.store.mailbox(NA_UBND) == []


async def test_a_second_signature_header_is_refused(sim, secrets_by_system):
    request = fresh("getAgenciesList", TN_SYSTEM, secrets_by_system[TN_SYSTEM])
    request.headers.append((PREFIX + "hash-header", "0" * 64))
    answer = await send_raw("127.0.0.1", sim.port, request)
    assert answer.status == 401


async def test_strict_refuses_a_replayed_signature(sim_config, secrets_by_system):
    async with await serve(replace(sim_config, strict=True)) as sim:
        request = fresh("getAgenciesList", TN_SYSTEM, secrets_by_system[TN_SYSTEM])
        first = await send_raw("127.0.0.1", sim.port, request)
        second = await send_raw("127.0.0.1", sim.port, request)
        counters = sim.simulator.store.counters()
    assert (first.status, second.status) == (200, 401)
    assert counters["rejected_total"] == {"auth.replayed": 1}


async def test_axis_trace_header_is_last_when_bussiness_comes_first(tmp_path, tn, na):
    """Point 8: in a package laid out the reference library's way (Bussiness, then the
    sender's TraceHeader), the axis hop still lands after the sender's TraceHeader."""
    pkg = tmp_path / "ref.edxml"
    pkg.write_bytes(rb.document_package())
    await tn.send_edoc(pkg, from_organ=rb.SENDER)
    (item,) = await na.get_received_edoc_list()
    fetched = await na.get_edoc(item.doc_id, tmp_path / "in.edxml")
    trace_list = etree.parse(str(fetched.path)).getroot().find(
        "e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList", Q)
    names = [etree.QName(child).localname for child in trace_list]
    assert names == ["Bussiness", "TraceHeader", "TraceHeader"]
    assert [t.findtext("e:OrganId", namespaces=Q)
            for t in trace_list.findall("e:TraceHeader", Q)] == [rb.SENDER, TN_SYSTEM]


async def test_the_form_of_each_request_is_counted(sim, secrets_by_system, admin):
    async with AxisClient(client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM],
                                        dialect="standard")) as standard:
        await standard.count_receive_edoc()
    async with AxisClient(client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM])) as ours:
        await ours.count_receive_edoc()
    counters = await admin.counters()
    assert counters["request_forms_total"] == {"standard": 1, "reference": 1}
    assert counters["form_points_total"]["method=standard"] == 1
    assert counters["form_points_total"]["method=reference"] == 1
    metrics = await admin.get("metrics")
    assert 'edoc_axis_simulator_request_forms_total{form="standard"} 1' in metrics
    requests = await admin.get("requests")
    assert [r["form"] for r in requests] == ["standard", "reference"]


# --- point 4: compressed answers ---------------------------------------------------------------

async def test_gzip_answers_are_decoded_by_our_client():
    """Point 4: a proxy in front of the axis (or the axis) compresses; every JSON call and the
    streamed getEdoc answer still read."""
    package = b"<?xml version='1.0'?><edXML/>" * 50

    async def handle(request: web.Request) -> web.Response:
        op = request.path.rsplit("/", 1)[-1]
        body = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "count": 3}
        if op == "getEdoc":
            body["data"] = base64.b64encode(package).decode()
        response = web.json_response(body)
        response.enable_compression(web.ContentCoding.gzip)
        return response

    async with answering(handle, "/a") as url:
        config = AxisClientConfig(endpoint=url, systemid="S", secret="k")
        async with AxisClient(config) as client:
            assert await client.count_receive_edoc() == 3
            with tempfile.TemporaryDirectory() as tmp:
                fetched = await client.get_edoc("d", Path(tmp) / "p.edxml")
                assert fetched.path.read_bytes() == package


async def test_simulator_gzip_fault_and_our_client(tmp_path, sim, tn, na, admin):
    await admin.set_faults([{"kind": "gzip"}])
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    (item,) = await na.get_received_edoc_list()
    fetched = await na.get_edoc(item.doc_id, tmp_path / "in.edxml")
    downloaded = await na.download_edoc(item.doc_id, tmp_path / "in2.edxml")
    assert fetched.path.read_bytes() == downloaded.path.read_bytes()
    assert (await admin.counters())["faults_injected_total"]["gzip"] >= 4


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("coding, pack", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),          # zlib-wrapped, as the RFC says
    ("deflate", _raw_deflate),           # raw, as some servers send it
    ("identity", lambda data: data),
])
async def test_each_answer_encoding_is_decoded(coding, pack):
    answer = b'{"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "count": 5}'

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=pack(answer), headers={"Content-Encoding": coding,
                                                        "Content-Type": "application/json"})

    async with answering(handle, "/a") as url:
        config = AxisClientConfig(endpoint=url, systemid="S", secret="k")
        async with AxisClient(config) as client:
            assert await client.count_receive_edoc() == 5


async def test_a_truncated_gzip_answer_is_a_bad_response():
    body = gzip.compress(b'{"status": "OK", "ErrorCode": "0", "count": 1}')[:-12]

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Encoding": "gzip",
                                                "Content-Type": "application/json"})

    async with answering(handle, "/a") as url:
        config = AxisClientConfig(endpoint=url, systemid="S", secret="k")
        async with AxisClient(config) as client:
            with pytest.raises(AxisError) as info:
                await client.count_receive_edoc()
        assert info.value.reason == "axis.bad_response"
