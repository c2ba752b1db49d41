"""Fixtures for the axis connector: small edXML packages, a simulator per test, clients."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import aiohttp
import pytest
from aiohttp import web

from connectors.axis import AxisClient, AxisClientConfig
from connectors.axis.simulator import RunningSimulator, SimulatorConfig, serve

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

# Systemids that the bundled seed attaches agencies to.
TN_SYSTEM = "00.55.W00"      # Thái Nguyên provincial node
NA_SYSTEM = "00.41.W00"      # Nghệ An
TN_UBND = "000.00.00.H55"
TN_SO_NOI_VU = "000.00.02.H55"
TN_TP = "000.00.31.H55"
NA_UBND = "000.00.00.H41"
VPCP = "000.00.00.G22"


def _organization(tag: str, organ_id: str, p: str) -> str:
    return (f"<{p}{tag}><{p}OrganId>{escape(organ_id)}</{p}OrganId>"
            f"<{p}OrganName>Cơ quan {escape(organ_id)}</{p}OrganName></{p}{tag}>")


def write_edoc(path: Path, *, from_organ: str, to_organs: Sequence[str], document_id: str,
               subject: str = "V/v kết nối liên thông văn bản", prefix: str = "edXML",
               bussiness: bool = True, attachment: bytes = b"%PDF-1.4 test attachment\n",
               trace_list: str = "normal") -> Path:
    """A small document package in the reference layout. `prefix` "" writes unprefixed names
    (default namespace); `trace_list` is "normal", "empty" (self-closing) or "none"."""
    p = f"{prefix}:" if prefix else ""
    decl = f' xmlns:{prefix}="{NS}"' if prefix else ""
    to = "".join(_organization("To", code, p) for code in to_organs)
    if trace_list == "none":
        trace = ""
    elif trace_list == "empty":
        trace = f"<{p}TraceHeaderList/>"
    else:
        biz = (f"<{p}Bussiness><{p}BussinessDocType>0</{p}BussinessDocType>"
               f"<{p}BussinessDocReason>Văn bản mới</{p}BussinessDocReason>"
               f"<{p}Paper>0</{p}Paper></{p}Bussiness>\n        ") if bussiness else ""
        trace = (f"<{p}TraceHeaderList>\n        <{p}TraceHeader><{p}OrganId>{from_organ}"
                 f"</{p}OrganId><{p}Timestamp>2026/11/25 09:00:00</{p}Timestamp>"
                 f"</{p}TraceHeader>\n        {biz}</{p}TraceHeaderList>")
    b64 = base64.b64encode(attachment).decode()
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <{p}edXMLEnvelope{decl}>
    <{p}edXMLHeader>
      <{p}MessageHeader>
        {_organization("From", from_organ, p)}
        {to}
        <{p}DocumentId>{escape(document_id)}</{p}DocumentId>
        <{p}Code><{p}CodeNumber>12</{p}CodeNumber><{p}CodeNotation>UBND-VP</{p}CodeNotation></{p}Code>
        <{p}PromulgationInfo><{p}Place>Thái Nguyên</{p}Place><{p}PromulgationDate>2026/11/25</{p}PromulgationDate></{p}PromulgationInfo>
        <{p}DocumentType><{p}Type>1</{p}Type><{p}TypeDetail>0</{p}TypeDetail><{p}TypeName>Công văn</{p}TypeName></{p}DocumentType>
        <{p}Subject>{escape(subject)}</{p}Subject>
      </{p}MessageHeader>
      {trace}
    </{p}edXMLHeader>
    <{p}edXMLBody>
      <{p}edXMLManifest version="1.0">
        <{p}Reference><{p}ContentId>cid:1</{p}ContentId><{p}ContentType>application/pdf</{p}ContentType><{p}AttachmentName>a.pdf</{p}AttachmentName></{p}Reference>
      </{p}edXMLManifest>
    </{p}edXMLBody>
  </{p}edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment><ContentId>1</ContentId><AttachmentName>a.pdf</AttachmentName><ContentType>application/pdf</ContentType><{p}ContentTransferEncoded{decl}>{b64}</{p}ContentTransferEncoded></Attachment>
  </AttachmentEncoded>
</edXML>
"""
    path.write_text(text, encoding="utf-8")
    return path


def write_status(path: Path, *, from_organ: str, response_for_organ: str,
                 response_for_document_id: str, status_code: str = "01") -> Path:
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        {_organization("From", from_organ, "edXML:")}
        <edXML:ResponseFor>
          <edXML:OrganId>{response_for_organ}</edXML:OrganId>
          <edXML:Code>12/UBND-VP</edXML:Code>
          <edXML:PromulgationDate>2026/11/25</edXML:PromulgationDate>
          <edXML:DocumentId>{escape(response_for_document_id)}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StaffInfo><edXML:Department>Văn thư</edXML:Department><edXML:Staff>Nguyễn Văn A</edXML:Staff></edXML:StaffInfo>
        <edXML:StatusCode>{status_code}</edXML:StatusCode>
        <edXML:Description>Đã đến</edXML:Description>
        <edXML:Timestamp>2026/11/25 10:00:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"""
    path.write_text(text, encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def answering(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                    path: str = "/XrdAdapter/adapter") -> AsyncIterator[str]:
    """A loopback HTTP server answering every request with `handler`: a stand-in for whatever
    sits in front of the axis (a proxy that compresses, a recorder of what our client sends).
    Yields the endpoint URL to give the client."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site.port}{path}"
    finally:
        await runner.cleanup()


def document_id(sender: str, number: str = "12") -> str:
    return f"{sender},2026/11/25,{number}/UBND-VP"


@pytest.fixture
def secrets_by_system() -> dict[str, str]:
    # Fresh per test run: generated, never committed.
    return {TN_SYSTEM: secrets.token_hex(16), NA_SYSTEM: secrets.token_hex(16)}


@pytest.fixture
def sim_config(tmp_path: Path, secrets_by_system: dict[str, str]) -> SimulatorConfig:
    return SimulatorConfig(db_path=tmp_path / "axis-sim.sqlite", clients=secrets_by_system,
                           shutdown_timeout=0.5)


@pytest.fixture
async def sim(sim_config: SimulatorConfig) -> AsyncIterator[RunningSimulator]:
    running = await serve(sim_config)
    try:
        yield running
    finally:
        await running.close()


def client_config(sim: RunningSimulator, systemid: str, secret: str, **overrides) -> AxisClientConfig:
    values = dict(endpoint=sim.url, systemid=systemid, secret=secret, connect_timeout=2.0,
                  read_timeout=5.0, total_timeout=10.0, transfer_timeout=20.0)
    values.update(overrides)
    return AxisClientConfig(**values)


@pytest.fixture
async def tn(sim: RunningSimulator, secrets_by_system) -> AsyncIterator[AxisClient]:
    async with AxisClient(client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM])) as client:
        yield client


@pytest.fixture
async def na(sim: RunningSimulator, secrets_by_system) -> AsyncIterator[AxisClient]:
    async with AxisClient(client_config(sim, NA_SYSTEM, secrets_by_system[NA_SYSTEM])) as client:
        yield client


class Admin:
    """The simulator's admin endpoints over real HTTP."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def get(self, path: str, **params: str):
        async with self.session.get(f"{self.base}/{path}", params=params) as resp:
            assert resp.status == 200, await resp.text()
            if resp.content_type == "application/json":
                return await resp.json()
            return await resp.text()

    async def set_faults(self, rules: list[dict], seed: int | None = 1) -> dict:
        async with self.session.put(f"{self.base}/faults",
                                    json={"seed": seed, "rules": rules}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def counters(self) -> dict:
        return (await self.get("counters"))["counters"]


@pytest.fixture
async def admin(sim: RunningSimulator) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        yield Admin(sim.admin_url, session)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)
