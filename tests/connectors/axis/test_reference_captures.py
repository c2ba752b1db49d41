"""The reference client's real requests (tests/data/reference-axis-wire/sdk-requests.json):
every one replayed against the simulator is accepted with the right effect, and our client in
the reference dialect sends the same requests, header by header."""

from __future__ import annotations

import argparse
import base64
import gzip
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from connectors.axis import AgencyRegistration, AxisClient, AxisClientConfig, DeliveryStatus
from connectors.axis.auth import parse_timestamp
from connectors.axis.simulator import RunningSimulator, SimulatorConfig, serve
from connectors.axis.simulator.cli import add_arguments, config_from_args

from tests.edxml import reference_built as rb

from . import captures
from .captures import PREFIX, Request, captured, send_raw, unpadded_sha256
from .conftest import answering

DATA = captures.load()
SECRETS: dict[str, str] = DATA["secrets"]
TN_SYSTEM, NA_SYSTEM = "00.55.W00", "00.41.W00"
DOCUMENT = rb.corpus_path("edoc_new_h55_to_h41.edxml").read_bytes()
STATUS = rb.corpus_path("status_03_h41_to_h55.edxml").read_bytes()


def _stamp(name: str):
    return parse_timestamp(captured(DATA, name).header(PREFIX + "timestamp"))


FIRST = min(_stamp(name) for name in DATA["requests"])


@pytest.fixture
async def replay_sim(tmp_path) -> AsyncIterator[RunningSimulator]:
    """The simulator with the capture's secrets, its clock frozen at the capture's time, and
    ids d-1, d-2 ... for recipients' copies (the captures fetch `d-1`)."""
    counters = {"message": itertools.count(1), "delivery": itertools.count(1)}
    config = SimulatorConfig(db_path=tmp_path / "sim.sqlite", clients=SECRETS,
                             shutdown_timeout=0.5, clock=lambda: FIRST,
                             new_id=lambda kind: f"{kind[0]}-{next(counters[kind])}")
    running = await serve(config)
    try:
        yield running
    finally:
        await running.close()


def _with_package(name: str, package: bytes) -> Request:
    """A captured sendEdoc with our package as its body: the body was not captured, so the
    package, its hash-file and the HMAC are the reference client's recipe applied to ours."""
    request = captured(DATA, name)
    system = request.header(PREFIX + "systemid")
    request.body = package + b"\r\n"
    request.resign(SECRETS[system], hash_file=unpadded_sha256(package))
    return request


def _register_body() -> bytes:
    """The captured registerAgency body, rebuilt from its captured start at its length."""
    entry = DATA["requests"]["registerAgency"]["body"]
    body = {"id": "", "pcode": "000.00.00.H55", "code": "000.00.40.H55",
            "name": "TT Phuc vu HCC", "mail": "", "mobile": "", "fax": ""}
    text = json.dumps(body)
    body["mail"] = "x" * (entry["length"] - len(text))
    data = json.dumps(body).encode()
    assert data.startswith(entry["starts_with"].encode()) and len(data) == entry["length"]
    return data


async def test_every_captured_request_is_accepted_with_the_right_effect(replay_sim):
    sim = replay_sim
    store = sim.simulator.store

    replayed = []

    async def replay(request: Request):
        replayed.append(request)
        answer = await send_raw("127.0.0.1", sim.port, request)
        assert answer.status == 200, answer.body
        return answer

    def ok(answer) -> dict:
        body = answer.json()
        assert (body["status"], body["ErrorCode"]) == ("OK", "0"), body
        return body

    # sendEdoc (document): stored as the package alone (the CRLF is framing), relayed to H41.
    sent = ok(await replay(_with_package("sendEdoc (document)", DOCUMENT)))
    (row,) = store.mailbox(rb.RECIPIENT)
    assert (row["receiver_doc_id"], row["status"]) == ("d-1", "initial")
    stored = (sim.simulator.data_dir / f"packages/{sent['DocId']}.edxml").read_bytes()
    # The package unchanged but for the axis's hop, spliced in after the sender's TraceHeader.
    cut = DOCUMENT.rindex(b"</edXML:TraceHeader>") + len(b"</edXML:TraceHeader>")
    assert stored[:cut] == DOCUMENT[:cut] and stored.endswith(DOCUMENT[cut:])
    assert stored[cut:len(stored) - len(DOCUMENT) + cut].startswith(
        b"<edXML:TraceHeader><edXML:OrganId>00.55.W00</edXML:OrganId>")

    listed = ok(await replay(captured(DATA, "getReceivedEdocList")))["data"]
    assert [(i["docId"], i["from"], i["to"]) for i in listed] == [("d-1", rb.SENDER, rb.RECIPIENT)]
    assert ok(await replay(captured(DATA, "countReceiveEdoc")))["count"] in (1, "1")

    fetched = base64.b64decode(ok(await replay(captured(DATA, "getEdoc")))["data"])
    assert fetched == stored
    downloaded = await replay(captured(DATA, "downloadEdoc"))
    assert downloaded.body == stored

    ok(await replay(captured(DATA, "updateStatus")))
    assert store.mailbox(rb.RECIPIENT)[0]["status"] == "done"
    assert ok(await replay(captured(DATA, "getReceivedEdocList"))).get("data") == []

    # sendEdoc (status, to ["000.00.00.H55"]): the receipt reaches the document's sender.
    ok(await replay(_with_package("sendEdoc (status, to H55)", STATUS)))
    (receipt,) = [r for r in store.mailbox(rb.SENDER) if r["message_type"] == "status"]
    assert receipt["from_code"] == rb.RECIPIENT

    sent_list = ok(await replay(captured(DATA, "getSentEdocList")))["data"]
    assert [(i["senderDocId"], i["toCode"], i["receiveStatus"]) for i in sent_list] == [
        (sent["DocId"], rb.RECIPIENT, "done")]

    agencies = ok(await replay(captured(DATA, "getAgenciesList")))["data"]
    assert agencies and all(isinstance(v, str) for a in agencies for v in a.values())
    top = next(a for a in agencies if a["code"] == "000.00.00.H55")
    assert top["pid"] == ""

    register = captured(DATA, "registerAgency")
    register.body = _register_body()
    ok(await replay(register))
    assert store.agency("000.00.40.H55")["systemid"] == TN_SYSTEM

    counters = store.counters()
    assert counters.get("rejected_total", {}) == {}
    # Each point where the two forms differ was seen in the reference form only.
    assert counters["request_forms_total"] == {"reference": len(replayed)}
    assert {p.split("=")[1] for p in counters["form_points_total"]} == {"reference"}


async def test_captured_requests_replayed_with_gzip_answers_still_read(tmp_path):
    config = SimulatorConfig(db_path=tmp_path / "sim.sqlite", clients=SECRETS,
                             shutdown_timeout=0.5, clock=lambda: FIRST, gzip_answers=True)
    async with await serve(config) as sim:
        answer = await send_raw("127.0.0.1", sim.port, captured(DATA, "getAgenciesList"))
    assert answer.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(answer.body))["status"] == "OK"


# --- our client against the captures ---------------------------------------------------------

_ANSWERS = {
    "sendEdoc": {"DocId": "m-1"},
    "getReceivedEdocList": {"data": []},
    "getSentEdocList": {"data": []},
    "getAgenciesList": {"data": []},
    "countReceiveEdoc": {"count": "0"},
    "updateStatus": {},
    "registerAgency": {},
}
#: Transport details of the reference client's two Java HTTP stacks, not protocol: not compared.
_TRANSPORT = {"host", "connection", "accept", "cache-control", "pragma"}


class Recorder:
    """A loopback HTTP server that records what arrives, exactly, and answers like the axis."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k.decode(), v.decode()) for k, v in request.raw_headers]
        self.seen.append((request.method, request.path, headers, body))
        op = request.path.rsplit("/", 1)[-1]
        if op == "downloadEdoc":
            return web.Response(body=DOCUMENT, content_type="application/octet-stream")
        answer = {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **_ANSWERS.get(op, {})}
        if op == "getEdoc":
            answer["data"] = base64.b64encode(DOCUMENT).decode()
        return web.json_response(answer)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    async with answering(rec.handle) as url:
        yield rec, url


async def _call(client: AxisClient, name: str, tmp_path: Path) -> None:
    if name == "sendEdoc (document)":
        package = tmp_path / "doc.edxml"
        package.write_bytes(DOCUMENT)
        await client.send_edoc(package, from_organ="000.00.00.H55")
    elif name == "sendEdoc (status, to H55)":
        package = tmp_path / "status.edxml"
        package.write_bytes(STATUS)
        await client.send_edoc(package, from_organ="000.00.00.H41", messagetype="status",
                               to=["000.00.00.H55"])
    elif name == "getReceivedEdocList":
        await client.get_received_edoc_list()
    elif name == "getEdoc":
        await client.get_edoc("d-1", tmp_path / "got.edxml")
    elif name == "downloadEdoc":
        await client.download_edoc("d-1", tmp_path / "dl.edxml")
    elif name == "updateStatus":
        await client.update_status("d-1", DeliveryStatus.DONE)
    elif name == "getSentEdocList":
        await client.get_sent_edoc_list()
    elif name == "countReceiveEdoc":
        await client.count_receive_edoc()
    elif name == "getAgenciesList":
        await client.get_agencies_list()
    elif name == "registerAgency":
        await client.register_agency(AgencyRegistration(**json.loads(_register_body())))
    else:
        raise AssertionError(f"no call for capture {name!r}")


def _expected(name: str) -> Request:
    """The capture as our client must send it: the same package-dependent values recomputed
    for our package, and without the client's leaked local folder (`filePath`), which we do not
    send; its HMAC recomputed accordingly."""
    request = captured(DATA, name)
    secret = SECRETS[request.header(PREFIX + "systemid")]
    if name.startswith("sendEdoc"):
        package = DOCUMENT if "document" in name else STATUS
        request.body = package + b"\r\n"
        request.resign(secret, hash_file=unpadded_sha256(package))
    elif PREFIX + "filePath" in request.signed():
        request.resign(secret, filePath=None)
    elif name == "registerAgency":
        request.body = _register_body()
    return request


@pytest.mark.parametrize("name", list(DATA["requests"]))
async def test_our_client_sends_what_the_reference_client_sends(recorder, tmp_path, name):
    rec, endpoint = recorder
    want = _expected(name)
    system = want.header(PREFIX + "systemid")
    moment = parse_timestamp(want.header(PREFIX + "timestamp"))
    config = AxisClientConfig(endpoint=endpoint, systemid=system, secret=SECRETS[system],
                              clock=lambda: moment)
    assert config.dialect == "reference"            # the default
    async with AxisClient(config) as client:
        await _call(client, name, tmp_path)
    ((method, path, headers, body),) = rec.seen

    assert f"{method} {path}" == f"{want.method} {want.path}"
    # Every parameter, signature and plain header of the capture, same value, same order.
    got = [(k, v) for k, v in headers if k.lower() not in _TRANSPORT]
    wanted = [(k, v) for k, v in want.headers if k.lower() not in _TRANSPORT]
    assert [k for k, _ in got] == [k for k, _ in wanted]
    for (k, v), (_, w) in zip(got, wanted):
        assert v == w, f"{name}: header {k}"
    assert body == want.body


async def test_the_command_line_clock_replays_a_capture(tmp_path):
    """`axis-sim --clock ...`, as docs/axis-simulator.md tells a lab to replay the captures."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    stamp = captured(DATA, "getAgenciesList").header(PREFIX + "timestamp")
    args = parser.parse_args(["--db", str(tmp_path / "sim.sqlite"), "--clock", stamp,
                              *[f"--client={s}:{k}" for s, k in SECRETS.items()]])
    config = config_from_args(args)
    assert config.clock() == parse_timestamp(stamp) and not config.strict
    async with await serve(replace(config, shutdown_timeout=0.5)) as sim:
        answer = await send_raw("127.0.0.1", sim.port, captured(DATA, "getAgenciesList"))
    assert answer.status == 200 and answer.json()["ErrorCode"] == "0"
    args = parser.parse_args(["--db", str(tmp_path / "s2.sqlite"), "--strict",
                              "--clock", "2026-12-02T15:34:15+07:00", "--client", "S:k"])
    assert config_from_args(args).strict
