"""Serve a SIMULATED national document axis over HTTP on loopback, for tests and demos.

This is not the national axis. It speaks the same API (connectors/axis/client.py talks to it
unchanged), checks the same systemid + HMAC headers, applies the business rules the real axis is
known to apply (sender registered under the calling systemid, recipients known, one copy per
recipient kept until it is marked done, status packages routed back to the original sender,
its own TraceHeader appended on relay) and can be told to fail in the ways a real network does.
State lives in SQLite plus a directory of package files, so a restart loses nothing.

Error codes are the simulator's own (the axis publishes none); the answer shape is the real one:
`{"status": "FAIL", "ErrorCode": "...", "ErrorDesc": "..."}`. Every field the reference client
reads as a string is a string (never JSON null), and answers are gzip-compressed when asked
(`gzip_answers`, or the `gzip` fault) and the request accepts it.

Strictness is explicit. By default the simulator accepts both wire forms, the reference client's
and the written description's (connectors/axis/simulator/forms.py), and counts which form each
request used. `strict` keeps the written description's checks only (standard hex `hash-file` of
the exact body, comma-separated `to`, GET for the count calls, the timestamp window both ways)
and adds a replay cache: that is the mode for proving our own client in its standard form.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import ipaddress
import json
import os
import re
import socket
import ssl
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from connectors.axis.auth import (HASH_HEADER, VIETNAM_TZ, AuthFailure, VerifiedHeaders,
                                  hex_without_padding, verify_headers)
from connectors.axis.simulator import forms
from connectors.axis.simulator.faults import (Decision, FaultInjector, FaultRule,
                                              FaultSpecError)
from connectors.axis.simulator.routing import (Unroutable, read_package_header,
                                               write_relayed_copy)
from connectors.axis.simulator.store import NewDelivery, Store, row_dict

log = structlog.get_logger("connectors.axis.simulator")

BANNER = "AXIS SIMULATOR - not the national document axis (Truc lien thong van ban quoc gia)"
SERVER_HEADER = "edoc-axis-simulator/0.1 (SIMULATOR; not the national document axis)"
ADAPTER_PATH = "/XrdAdapter/adapter"

#: operation -> HTTP method (axis.md §1, as the reference client calls them)
OPERATIONS = {
    "sendEdoc": "POST", "getReceivedEdocList": "POST", "getEdoc": "POST",
    "downloadEdoc": "GET", "updateStatus": "POST", "getSentEdocList": "POST",
    "countReceiveEdoc": "POST", "countReceiveStatus": "POST", "getAgenciesList": "POST",
    "getAgenciesListQD20": "POST", "registerAgency": "POST", "deleteAgency": "POST",
}
#: Other methods accepted: the written description has the count calls as GET (refused by
#: `strict` the other way round: there GET is the only one).
_ALSO_ACCEPTED = {"countReceiveEdoc": "GET", "countReceiveStatus": "GET"}
_BODY_OPERATIONS = {"sendEdoc", "registerAgency"}
_SWALLOW_BYTES = 64 * 1024

#: The simulator's ErrorCodes (the real axis publishes no catalogue).
ERROR_CODES = {
    "1": "request invalid: missing or malformed header or body, unknown operation",
    "2": "authentication failed: signature headers, systemid, HMAC or timestamp",
    "3": "sender not registered under the calling systemid (or package From differs)",
    "4": "recipient unknown to the axis directory",
    "5": "package cannot be routed: not edXML, unsafe XML, no recipients",
    "6": "package hash differs from the hash-file header",
    "7": "document not found for this systemid",
    "8": "agency registration conflict",
    "9": "package too large",
}

STATUS_DESC = {"initial": "Chua nhan", "processing": "Dang xu ly", "done": "Da nhan",
               "fail": "Nhan loi"}

#: counter name -> (label name, help). Exposed as edoc_axis_simulator_<name>.
COUNTERS = {
    "requests_total": ("operation", "API requests by operation."),
    "received_total": ("message_type", "Messages accepted by sendEdoc."),
    "delivered_total": ("message_type", "Recipient copies placed in mailboxes."),
    "duplicates_total": ("message_type", "Recipient copies repeating an earlier delivery of the "
                                         "same sender document to the same recipient."),
    "fetched_total": ("operation", "Recipient copies served by getEdoc or downloadEdoc."),
    "status_updates_total": ("status", "updateStatus calls by status."),
    "rejected_total": ("reason", "Requests refused, by reason."),
    "faults_injected_total": ("kind", "Simulated faults fired, by kind."),
    "request_forms_total": ("form", "Authenticated requests by wire form: reference, standard, "
                                    "mixed, either (docs/axis-simulator.md)."),
    "form_points_total": ("point", "Wire-form points seen, as point=form "
                                   "(e.g. hash_file=standard)."),
}
METRIC_PREFIX = "edoc_axis_simulator_"

#: The /admin/requests entry of the request being handled.
_RECORD = web.RequestKey("record", dict)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# The reference client's unpadded hex: 57 to 64 characters in practice, 32 at the very least.
_UNPADDED_SHA256_RE = re.compile(r"^[0-9a-f]{32,64}$")
_CHUNK = 256 * 1024


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _new_id(_kind: str) -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class SimulatorConfig:
    db_path: Path
    clients: Mapping[str, str] = field(repr=False)     # systemid -> secret
    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None                       # default: <db_path>.files
    seed_path: Path | None = None                      # default: the bundled seed
    timestamp_window: float = 300.0
    # Not strict: a signed timestamp may be this old (the reference client reuses one for as
    # long as its service object lives; a JVM on UTC even sends UTC wall time, 7 h behind).
    max_timestamp_age: float = 86400.0
    strict: bool = False
    gzip_answers: bool = False                         # compress answers that may be
    faults: tuple[FaultRule, ...] = ()
    fault_seed: int | None = None
    trace_organ_id: str | None = None                  # default: the sender's systemid
    max_upload_bytes: int = 4 * 1024 ** 3
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None                   # require client certificates
    shutdown_timeout: float = 5.0
    clock: Callable[[], datetime] = field(default=_utcnow, repr=False, compare=False)
    # The axis's ids for a new message ("message") and a recipient's copy ("delivery").
    new_id: Callable[[str], str] = field(default=_new_id, repr=False, compare=False)


class _Refusal(Exception):
    def __init__(self, http_status: int, code: str, desc: str, reason: str) -> None:
        super().__init__(desc)
        self.http_status = http_status
        self.code = code
        self.desc = desc
        self.reason = reason


class _Dropped(Exception):
    """The connection was dropped on purpose (a fault) or by the peer."""


def _json(http_status: int, body: Mapping[str, Any]) -> web.Response:
    return web.Response(status=http_status, content_type="application/json",
                        body=json.dumps(body, ensure_ascii=False).encode("utf-8"))


def _ok(**fields: Any) -> web.Response:
    return _json(200, {"status": "OK", "ErrorCode": "0", "ErrorDesc": "", **fields})


def _fail(http_status: int, code: str, desc: str) -> web.Response:
    return _json(http_status, {"status": "FAIL", "ErrorCode": code, "ErrorDesc": desc})


def load_seed(path: Path | None) -> tuple[list[dict[str, Any]], str]:
    """The seed's agencies and the SHA-256 of its text (a seed is applied once per content)."""
    if path is None:
        raw = resources.files("connectors.axis.simulator").joinpath(
            "seed_agencies.json").read_bytes()
    else:
        raw = Path(path).read_bytes()
    data = json.loads(raw)
    agencies = data["agencies"] if isinstance(data, dict) else data
    if not isinstance(agencies, list) or not all(
            isinstance(a, dict) and isinstance(a.get("code"), str) for a in agencies):
        raise ValueError("seed must hold a list of agencies, each with a code")
    return agencies, hashlib.sha256(raw).hexdigest()


def _vn_text(moment: datetime) -> str:
    return moment.astimezone(VIETNAM_TZ).strftime("%Y-%m-%d %H:%M:%S")


class AxisSimulator:
    """The simulated axis: state, rules and the aiohttp application serving them."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir or f"{config.db_path}.files")
        self.incoming = self.data_dir / "incoming"
        self.packages = self.data_dir / "packages"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.packages.mkdir(parents=True, exist_ok=True)
        for stale in self.incoming.glob("*.part"):     # uploads cut by a previous stop
            stale.unlink()
        self.store = Store(config.db_path)
        agencies, digest = load_seed(config.seed_path)
        if self.store.apply_seed(agencies, digest):
            log.info("axis_sim.seeded", agencies=len(agencies))
        self.faults = FaultInjector(config.faults, seed=config.fault_seed,
                                    clock=lambda: self.config.clock().timestamp())
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._seen_macs: dict[tuple[str, str], float] = {}   # strict: (systemid, HMAC) -> time

    def close(self) -> None:
        self.store.close()

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        if self.config.tls_client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.config.tls_client_ca)
        return ctx

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._admin_guard])
        app.on_response_prepare.append(self._mark_response)
        app.router.add_get("/admin/", self._admin_index)
        app.router.add_get("/admin/agencies", self._admin_agencies)
        app.router.add_get("/admin/mailboxes", self._admin_mailboxes)
        app.router.add_get("/admin/duplicates", self._admin_duplicates)
        app.router.add_get("/admin/counters", self._admin_counters)
        app.router.add_get("/admin/metrics", self._admin_metrics)
        app.router.add_get("/admin/requests", self._admin_requests)
        app.router.add_get("/admin/faults", self._admin_faults_get)
        app.router.add_put("/admin/faults", self._admin_faults_set)
        app.router.add_post("/admin/faults", self._admin_faults_set)
        app.router.add_delete("/admin/faults", self._admin_faults_clear)
        app.router.add_route("*", "/{path:.*}", self._api)
        return app

    @staticmethod
    async def _mark_response(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER_HEADER

    @web.middleware
    async def _admin_guard(self, request: web.Request, handler):
        if request.path == "/admin" or request.path.startswith("/admin/"):
            try:
                loopback = ipaddress.ip_address(request.remote or "").is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                return _fail(403, "1", "admin endpoints answer loopback clients only")
        return await handler(request)

    # --- the API ---------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        op = request.path.rstrip("/").rsplit("/", 1)[-1]
        record: dict[str, Any] = {"time": time.time(), "operation": op, "method": request.method}
        request[_RECORD] = record
        self.recent.append(record)
        try:
            if op not in _BODY_OPERATIONS and request.body_exists:
                # A servlet container reads what is left of a small request body (Tomcat: up to
                # maxSwallowSize) so the connection can serve the next request; the reference
                # client's `{}` would otherwise cost a new connection per call.
                await request.content.read(_SWALLOW_BYTES)
            response = await self._dispatch(request, op, record)
        except _Refusal as refusal:
            self.store.bump("rejected_total", refusal.reason)
            record["outcome"] = refusal.reason
            log.info("axis_sim.refused", operation=op, reason=refusal.reason,
                     error_code=refusal.code, desc=refusal.desc,
                     systemid=record.get("systemid"))
            response = _fail(refusal.http_status, refusal.code, refusal.desc)
        except _Dropped:
            record.setdefault("outcome", "dropped")
            return web.Response(status=499)     # never reaches the client: connection is gone
        finally:
            self._count_form(record)
        record.setdefault("outcome", "ok")
        record["http_status"] = response.status
        if record.get("gzip") and not response.prepared:
            self._compress(request, response)
        return response

    def _count_form(self, record: dict[str, Any]) -> None:
        points = record.get("form_points")
        if points is None:
            return
        record["form"] = forms.form_of(points)
        self.store.bump("request_forms_total", record["form"])
        for point, form in sorted(points.items()):
            self.store.bump("form_points_total", f"{point}={form}")

    @staticmethod
    def _compress(request: web.Request, response: web.StreamResponse) -> None:
        """gzip the answer if the request accepts it (the reference client asks for it)."""
        accepted = request.headers.get("Accept-Encoding", "").lower()
        if "gzip" in accepted:
            response.enable_compression(web.ContentCoding.gzip)  # not deflate: what proxies do

    async def _dispatch(self, request: web.Request, op: str,
                        record: dict[str, Any]) -> web.StreamResponse:
        method = OPERATIONS.get(op)
        if method is None:
            raise _Refusal(404, "1", f"Khong ho tro dich vu {op}", "request.unknown_operation")
        if self.config.strict:
            method = _ALSO_ACCEPTED.get(op, method)
            accepted = {method}
        else:
            accepted = {method, _ALSO_ACCEPTED.get(op, method)}
        if request.method not in accepted:
            raise _Refusal(405, "1", f"Dich vu {op} dung phuong thuc {method}", "request.method")
        self.store.bump("requests_total", op)
        decision = self.faults.decide(
            op, default_reset_at="request" if op in _BODY_OPERATIONS else "response")
        for kind in decision.fired:
            self.store.bump("faults_injected_total", kind)
        if decision.fired:
            record["faults"] = list(decision.fired)
        if decision.gzip or self.config.gzip_answers:
            record["gzip"] = True
        if decision.outage:
            record["outcome"] = "fault.outage"
            return _fail(503, "503", "He thong dang bao tri, vui long thu lai sau (simulated outage)")
        if decision.latency_s:
            await self._hold(request, decision.latency_s)
        if decision.error_status is not None:
            record["outcome"] = f"fault.error.{decision.error_status}"
            return _fail(decision.error_status, str(decision.error_status),
                         f"Simulated HTTP {decision.error_status}")
        if decision.timeout_s is not None:
            record["outcome"] = "fault.timeout"
            await self._hold(request, decision.timeout_s)
            return _fail(504, "504", "Simulated timeout")
        if decision.reset_at == "request":
            record["outcome"] = "fault.reset"
            await self._reset_mid_request(request)
        now = self.config.clock()
        try:
            verified = verify_headers(
                request.headers, secret_for=self.config.clients.get, now=now,
                window_seconds=self.config.timestamp_window,
                max_age_seconds=None if self.config.strict else self.config.max_timestamp_age)
            if self.config.strict:
                self._check_replay(verified, request.headers.get(HASH_HEADER, ""), now)
        except AuthFailure as failure:
            raise _Refusal(401, "2", f"Xac thuc that bai: {failure.message}",
                           f"auth.{failure.kind}") from None
        record["systemid"] = verified.systemid
        record["signed"] = [name for name, _ in verified.entries]
        record["form_points"] = forms.header_points(op, request.method, request.headers,
                                                    verified)
        handler = getattr(self, f"_op_{op}")
        response = await handler(request, verified, decision)
        if decision.lose_response:
            record["outcome"] = "fault.lose_response"
            self._reset(request)
            raise _Dropped
        if decision.reset_at == "response" and isinstance(response, web.Response):
            record["outcome"] = "fault.reset"
            await self._write_half_then_reset(request, response)
        if decision.bad_response:
            record["outcome"] = "fault.bad_response"
            return web.Response(status=200, content_type="text/html",
                                text="<html><body>Bad gateway (simulated)</body></html>")
        return response

    def _check_replay(self, verified: VerifiedHeaders, mac: str, now: datetime) -> None:
        """Strict: a signed header set is good for one request (inside the timestamp window)."""
        horizon = now.timestamp() - 2 * self.config.timestamp_window
        for key in [k for k, seen in self._seen_macs.items() if seen < horizon]:
            del self._seen_macs[key]
        key = (verified.systemid, mac.strip().lower())
        if key in self._seen_macs:
            raise AuthFailure("replayed", "these signed headers were already used once")
        self._seen_macs[key] = now.timestamp()

    # --- faults that cut connections ---------------------------------------------------------

    @staticmethod
    def _reset(request: web.Request) -> None:
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:   # linger 0: close with an RST, as a crashed peer or middlebox would
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()

    async def _hold(self, request: web.Request, seconds: float) -> None:
        """Wait `seconds`, giving up as soon as the client has gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise _Dropped
            await asyncio.sleep(min(0.05, left))

    async def _reset_mid_request(self, request: web.Request) -> None:
        target = max(1, (request.content_length or 2) // 2)
        got = 0
        try:
            while got < target:
                chunk = await request.content.readany()
                if not chunk:
                    break
                got += len(chunk)
        except (ConnectionError, aiohttp.ClientPayloadError):
            pass
        self._reset(request)
        raise _Dropped

    async def _write_half_then_reset(self, request: web.Request, response: web.Response) -> None:
        body = response.body if isinstance(response.body, bytes) else b""
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        self._reset(request)
        raise _Dropped

    # --- operations --------------------------------------------------------------------------

    def _required(self, v: VerifiedHeaders, name: str) -> str:
        value = (v.get(name) or "").strip()
        if not value:
            raise _Refusal(400, "1", f"Thieu tham so {name} (signed header)",
                           "request.missing_header")
        return value

    @staticmethod
    def _message_type(v: VerifiedHeaders, default: str | None = "edoc") -> str:
        value = (v.get("messagetype") or default or "").lower()
        if value not in ("edoc", "status"):
            raise _Refusal(400, "1", "messagetype phai la edoc hoac status", "request.bad_header")
        return value

    async def _op_sendEdoc(self, request: web.Request, v: VerifiedHeaders,
                           _decision: Decision) -> web.StreamResponse:
        sender = self._required(v, "from")
        message_type = self._message_type(v, default=None)
        service_type = v.get("servicetype") or "eDoc"
        hash_file = self._required(v, "hash-file").lower()
        if not (_SHA256_RE if self.config.strict else _UNPADDED_SHA256_RE).match(hash_file):
            raise _Refusal(400, "1", "hash-file phai la SHA-256 dang hex", "request.bad_header")
        explicit = self._recipients(v)
        agency = self.store.agency(sender)
        if agency is None or agency["systemid"] != v.systemid:
            raise _Refusal(200, "3", f"Don vi gui {sender} khong dung voi ma da dang ky: "
                           f"{v.systemid}", "sender.not_registered")
        if (request.content_length or 0) > self.config.max_upload_bytes:
            raise _Refusal(413, "9", f"Goi tin vuot qua {self.config.max_upload_bytes} byte",
                           "package.too_large")
        tmp = self.incoming / f"{uuid.uuid4()}.part"
        try:
            size, digest, without_crlf = await self._receive_body(request, tmp)
            match = self._match_hash(hash_file, digest, without_crlf)
            if match is None:
                raise _Refusal(200, "6", f"Ma hash cua goi tin khong khop: hash-file {hash_file},"
                               f" nhan duoc {digest}", "package.hash_mismatch")
            points = request[_RECORD].setdefault("form_points", {})
            points.update(match[1])
            if match[0] != digest:
                # The reference client sends the package followed by CRLF, and hashes the
                # package alone: the CRLF is framing, not part of the package.
                size -= 2
                os.truncate(tmp, size)
                digest = match[0]
            try:
                header = await asyncio.to_thread(read_package_header, tmp)
            except Unroutable as exc:
                raise _Refusal(200, "5", f"Goi tin khong hop le: {exc}",
                               "package.unroutable") from None
            if header.from_organ != sender:
                raise _Refusal(200, "3", f"Don vi gui trong goi tin ({header.from_organ or '-'})"
                               f" khac tham so from ({sender})", "package.sender_mismatch")
            if message_type == "edoc":
                recipients = explicit or list(header.to_organs)
            else:
                recipients = explicit or [r.organ_id for r in header.response_for if r.organ_id]
            recipients = list(dict.fromkeys(recipients))
            if not recipients:
                raise _Refusal(200, "5", "Goi tin khong co don vi nhan", "package.no_recipient")
            for code in recipients:
                if self.store.agency(code) is None:
                    raise _Refusal(200, "4", f"Don vi nhan {code} khong ton tai tren truc",
                                   "recipient.unknown")
            doc_id = self.config.new_id("message")
            path = self.packages / f"{doc_id}.edxml"
            now = self.config.clock()
            if message_type == "edoc":
                await asyncio.to_thread(
                    write_relayed_copy, tmp, path, header,
                    organ_id=self.config.trace_organ_id or v.systemid,
                    timestamp=now.astimezone(VIETNAM_TZ).strftime("%Y/%m/%d %H:%M:%S"))
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

        if message_type == "edoc":
            key_base = ["edoc", sender, header.document_id] if header.document_id else None
        else:
            ref = header.response_for[0].document_id if header.response_for else ""
            key_base = ["status", sender, ref, header.status_code] if ref else None
        deliveries = [NewDelivery(receiver_doc_id=self.config.new_id("delivery"), to_code=code,
                                  dedupe_key=None if key_base is None
                                  else json.dumps(key_base + [code], ensure_ascii=False))
                      for code in recipients]
        duplicates = self.store.add_message({
            "doc_id": doc_id, "systemid": v.systemid, "from_code": sender,
            "message_type": message_type, "service_type": service_type,
            "document_id": header.document_id or
            (header.response_for[0].document_id if header.response_for else ""),
            "title": header.subject, "notation": header.notation,
            "status_code": header.status_code, "size": size, "sha256": digest,
            "path": str(path.relative_to(self.data_dir)), "created_time": _vn_text(now),
        }, deliveries)
        self.store.bump("received_total", message_type)
        self.store.bump("delivered_total", message_type, len(deliveries))
        if duplicates:
            self.store.bump("duplicates_total", message_type, len(duplicates))
        log.info("axis_sim.received", doc_id=doc_id, systemid=v.systemid, sender=sender,
                 message_type=message_type, document_id=header.document_id,
                 recipients=recipients, size=size, duplicates=len(duplicates))
        return _ok(DocId=doc_id)

    def _recipients(self, v: VerifiedHeaders) -> list[str]:
        """The `to` header: a comma list, or (not strict) JSON array text as the reference
        client sends it (`["000.00.00.H55"]`)."""
        text = (v.get("to") or "").strip()
        if text.startswith("[") and not self.config.strict:
            try:
                codes = json.loads(text)
            except ValueError:
                codes = None
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise _Refusal(400, "1", "to phai la danh sach ma don vi", "request.bad_header")
            return [c.strip() for c in codes if c.strip()]
        return [c.strip() for c in re.split(r"[,;]", text) if c.strip()]

    def _match_hash(self, hash_file: str, digest: str,
                    without_crlf: str | None) -> tuple[str, dict[str, str]] | None:
        """Which body the hash-file names, and in which form: (digest of the package, points).

        The exact body in standard hex is always accepted; not strict, also the body minus a
        final CRLF, and the unpadded hex of the reference client."""
        bodies = [(digest, forms.STANDARD)]
        if without_crlf is not None and not self.config.strict:
            bodies.append((without_crlf, forms.REFERENCE))
        for body_digest, framing in bodies:
            standard = hash_file == body_digest
            unpadded = hex_without_padding(bytes.fromhex(body_digest))
            reference = hash_file == unpadded and not self.config.strict
            if not (standard or reference):
                continue
            points = {"framing": framing}
            if unpadded != body_digest:      # otherwise both forms are the same text
                points["hash_file"] = forms.STANDARD if standard else forms.REFERENCE
            return body_digest, points
        return None

    async def _receive_body(self, request: web.Request,
                            tmp: Path) -> tuple[int, str, str | None]:
        """Store the upload; its size, SHA-256, and SHA-256 without its last two bytes if
        those are CRLF (else None)."""
        digest = hashlib.sha256()
        trimmed = hashlib.sha256()      # lags two bytes behind `digest`
        tail = b""
        size = 0
        limit = self.config.max_upload_bytes
        try:
            with open(tmp, "wb") as fh:
                while chunk := await request.content.readany():
                    size += len(chunk)
                    if size > limit:
                        raise _Refusal(413, "9", f"Goi tin vuot qua {limit} byte",
                                       "package.too_large")
                    digest.update(chunk)
                    held = tail + chunk
                    trimmed.update(held[:-2])
                    tail = held[-2:]
                    fh.write(chunk)
        except (ConnectionError, aiohttp.ClientPayloadError):
            self.store.bump("rejected_total", "upload.aborted")
            raise _Dropped from None
        if size == 0:
            raise _Refusal(400, "1", "Goi tin rong", "request.empty_body")
        return size, digest.hexdigest(), trimmed.hexdigest() if tail == b"\r\n" else None

    def _delivery(self, v: VerifiedHeaders, name: str):
        doc_id = self._required(v, name)
        row = self.store.delivery_for(v.systemid, doc_id)
        if row is None:
            raise _Refusal(200, "7", f"Khong tim thay van ban {doc_id}", "doc.not_found")
        return row

    async def _op_getReceivedEdocList(self, _request, v: VerifiedHeaders, _decision):
        rows = self.store.received(v.systemid, self._message_type(v))
        return _ok(data=[_strings({
            "docId": r["receiver_doc_id"], "serviceType": r["service_type"],
            "messageType": r["message_type"], "created_time": r["created_time"],
            "updated_time": r["updated_time"], "from": r["from_code"], "to": r["to_code"],
            "status": r["status"], "status_desc": r["status_desc"] or STATUS_DESC[r["status"]],
        }) for r in rows])

    async def _op_countReceiveEdoc(self, _request, v: VerifiedHeaders, _decision):
        return _ok(count=len(self.store.received(v.systemid, "edoc")))

    async def _op_countReceiveStatus(self, _request, v: VerifiedHeaders, _decision):
        return _ok(count=len(self.store.received(v.systemid, "status")))

    async def _op_getEdoc(self, request, v: VerifiedHeaders, decision: Decision):
        row = self._delivery(v, "docId")
        path = self.data_dir / row["path"]
        size = path.stat().st_size
        prefix = b'{"status":"OK","ErrorCode":"0","ErrorDesc":"","data":"'
        suffix = b'"}'
        length = len(prefix) + 4 * ((size + 2) // 3) + len(suffix)
        self.store.mark_fetched(row["receiver_doc_id"])
        self.store.bump("fetched_total", "getEdoc")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if request[_RECORD].get("gzip"):
            self._compress(request, response)
        if not response.compression:
            response.content_length = length
        await response.prepare(request)
        await response.write(prefix)
        sent = len(prefix)
        with open(path, "rb") as fh:
            while chunk := fh.read(3 * _CHUNK):
                await response.write(base64.b64encode(chunk))
                sent += 4 * ((len(chunk) + 2) // 3)
                if decision.reset_at == "response" and sent >= length // 2:
                    self._reset(request)
                    raise _Dropped
        await response.write(suffix)
        if decision.reset_at == "response":       # tiny package: cut before the end
            self._reset(request)
            raise _Dropped
        await response.write_eof()
        return response

    async def _op_downloadEdoc(self, request, v: VerifiedHeaders, decision: Decision):
        row = self._delivery(v, "docId")
        path = self.data_dir / row["path"]
        size = path.stat().st_size
        self.store.mark_fetched(row["receiver_doc_id"])
        self.store.bump("fetched_total", "downloadEdoc")
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request[_RECORD].get("gzip"):
            self._compress(request, response)
        if not response.compression:
            response.content_length = size
        await response.prepare(request)
        sent = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                if decision.reset_at == "response" and sent + len(chunk) >= size // 2:
                    await response.write(chunk[: max(0, size // 2 - sent)])
                    self._reset(request)
                    raise _Dropped
                await response.write(chunk)
                sent += len(chunk)
        await response.write_eof()
        return response

    async def _op_updateStatus(self, _request, v: VerifiedHeaders, _decision):
        status = self._required(v, "status").lower()
        if status not in STATUS_DESC:
            raise _Refusal(400, "1", "status phai la initial, processing, done hoac fail",
                           "request.bad_header")
        row = self._delivery(v, "docid")
        self.store.set_status(row["receiver_doc_id"], status, STATUS_DESC[status],
                              _vn_text(self.config.clock()))
        self.store.bump("status_updates_total", status)
        log.info("axis_sim.status_updated", receiver_doc_id=row["receiver_doc_id"],
                 status=status, systemid=v.systemid)
        return _ok()

    async def _op_getSentEdocList(self, _request, v: VerifiedHeaders, _decision):
        rows = self.store.sent(v.systemid, self._message_type(v), v.get("docId"))
        return _ok(data=[_strings({
            "serviceType": r["service_type"], "messageType": r["message_type"],
            "senderDocId": r["doc_id"], "receiverDocId": r["receiver_doc_id"],
            "fromCode": r["from_code"], "toCode": r["to_code"], "title": r["title"],
            "notation": r["notation"], "sentTime": r["created_time"],
            "receivedTime": r["received_time"], "sendStatus": "done",
            "sendStatusDesc": "Da gui len truc", "receiveStatus": r["receive_status"],
            "receiveStatusDesc": r["receive_status_desc"] or STATUS_DESC[r["receive_status"]],
        }) for r in rows])

    async def _op_getAgenciesList(self, _request, _v, _decision):
        # A top-level agency has no parent: "" (the reference client reads every field with
        # getAsString(), which fails on a JSON null).
        return _ok(data=[_strings({"id": r["id"], "code": r["code"], "name": r["name"],
                                   "mail": r["mail"], "pid": r["pid"], "oldCode": r["old_code"]})
                         for r in self.store.agencies()])

    async def _op_getAgenciesListQD20(self, _request, v: VerifiedHeaders, _decision):
        level_text = (v.get("level") or "").strip()
        try:
            level = int(level_text) if level_text else 0
        except ValueError:
            raise _Refusal(400, "1", "level phai la so nguyen", "request.bad_header") from None
        return _ok(data=[_strings({"id": r["id"], "code": r["code20"], "code102": r["code"],
                                   "name": r["name"], "mail": r["mail"]})
                         for r in self.store.agencies()
                         if r["code20"] and (level <= 0 or r["code20"].count(".") + 1 == level)])

    async def _op_registerAgency(self, request, v: VerifiedHeaders, _decision):
        raw = await request.content.read(64 * 1024 + 1)
        if len(raw) > 64 * 1024:
            raise _Refusal(413, "1", "Noi dung dang ky qua lon", "request.bad_body")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Refusal(400, "1", "Noi dung dang ky khong phai JSON", "request.bad_body") from None
        if not isinstance(body, dict) or not isinstance(body.get("code"), str) \
                or not body["code"].strip():
            raise _Refusal(400, "1", "Thieu ma don vi (code)", "request.bad_body")
        fields = {k: str(body.get(k) or "").strip()
                  for k in ("code", "name", "pcode", "mail", "mobile", "fax")}
        existing = self.store.agency(fields["code"])
        if existing is not None and existing["systemid"] not in (None, v.systemid):
            raise _Refusal(200, "8", f"Don vi {fields['code']} da duoc dang ky boi he thong khac",
                           "agency.conflict")
        self.store.register(v.systemid, fields)
        log.info("axis_sim.agency_registered", code=fields["code"], systemid=v.systemid)
        return _ok()

    async def _op_deleteAgency(self, _request, v: VerifiedHeaders, _decision):
        code = self._required(v, "AgencyCode")
        agency = self.store.agency(code)
        if agency is None or agency["systemid"] != v.systemid:
            raise _Refusal(200, "8", f"Don vi {code} khong thuoc he thong {v.systemid}",
                           "agency.not_owned")
        self.store.detach(code)
        log.info("axis_sim.agency_deleted", code=code, systemid=v.systemid)
        return _ok()

    # --- admin (loopback only, no HMAC) -----------------------------------------------------

    async def _admin_index(self, _request: web.Request) -> web.Response:
        return web.json_response({
            "simulator": BANNER,
            "endpoints": ["/admin/agencies", "/admin/mailboxes[?agency=CODE]",
                          "/admin/duplicates", "/admin/counters", "/admin/metrics",
                          "/admin/requests", "/admin/faults (GET, PUT, DELETE)"],
            "error_codes": ERROR_CODES,
        })

    async def _admin_agencies(self, _request: web.Request) -> web.Response:
        return web.json_response([row_dict(r) for r in self.store.agencies()])

    async def _admin_mailboxes(self, request: web.Request) -> web.Response:
        rows = self.store.mailbox(request.query.get("agency"))
        boxes: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            item = row_dict(row)
            boxes.setdefault(item.pop("to_code"), []).append(item)
        return web.json_response(boxes)

    async def _admin_duplicates(self, _request: web.Request) -> web.Response:
        rows = [row_dict(r) for r in self.store.duplicates()]
        return web.json_response({"count": len(rows), "items": rows})

    async def _admin_counters(self, _request: web.Request) -> web.Response:
        counters = self.store.counters()
        return web.json_response({
            "counters": {name: counters.get(name, {}) for name in COUNTERS},
            "pending": self.store.pending_counts(),
        })

    async def _admin_metrics(self, _request: web.Request) -> web.Response:
        counters = self.store.counters()
        lines = [f"# HELP {METRIC_PREFIX}info Always 1: this target is the axis SIMULATOR, "
                 "not the national axis.",
                 f"# TYPE {METRIC_PREFIX}info gauge", f'{METRIC_PREFIX}info{{simulator="true"}} 1']
        for name, (label, help_text) in COUNTERS.items():
            metric = METRIC_PREFIX + name
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            for value_label, value in sorted(counters.get(name, {}).items()):
                lines.append(f'{metric}{{{label}="{_prom_escape(value_label)}"}} {value}')
        pending = self.store.pending_counts()
        metric = METRIC_PREFIX + "pending_messages"
        lines += [f"# HELP {metric} Recipient copies not yet marked done or fail.",
                  f"# TYPE {metric} gauge"]
        for message_type in ("edoc", "status"):
            lines.append(f'{metric}{{message_type="{message_type}"}} '
                         f"{pending.get(message_type, 0)}")
        return web.Response(text="\n".join(lines) + "\n",
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def _admin_requests(self, _request: web.Request) -> web.Response:
        return web.json_response(list(self.recent))

    async def _admin_faults_get(self, _request: web.Request) -> web.Response:
        return web.json_response(self.faults.state())

    async def _admin_faults_set(self, request: web.Request) -> web.Response:
        try:
            self.faults.configure(await request.json())
        except (ValueError, FaultSpecError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.warning("axis_sim.faults_set", faults=self.faults.state())
        return web.json_response(self.faults.state())

    async def _admin_faults_clear(self, _request: web.Request) -> web.Response:
        self.faults.configure({"rules": []})
        log.info("axis_sim.faults_cleared")
        return web.json_response(self.faults.state())


def _strings(row: Mapping[str, Any]) -> dict[str, str]:
    """Every field as a string, "" for none: what the reference client can read."""
    return {key: "" if value is None else str(value) for key, value in row.items()}


def _prom_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RunningSimulator:
    """A started simulator: `url` is the adapter endpoint to give AxisClientConfig."""

    def __init__(self, simulator: AxisSimulator, runner: web.AppRunner, port: int) -> None:
        self.simulator = simulator
        self._runner = runner
        self.port = port
        scheme = "https" if simulator.config.tls_cert else "http"
        host = simulator.config.host
        host = f"[{host}]" if ":" in host else host
        self.base_url = f"{scheme}://{host}:{port}"
        self.url = self.base_url + ADAPTER_PATH
        self.admin_url = self.base_url + "/admin"

    async def close(self) -> None:
        await self._runner.cleanup()
        self.simulator.close()
        log.info("axis_sim.stopped", port=self.port)

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve(config: SimulatorConfig) -> RunningSimulator:
    """Start the simulator in the running event loop; `await running.close()` to stop it."""
    simulator = AxisSimulator(config)
    runner = web.AppRunner(simulator.build_app(), handle_signals=False, access_log=None,
                           shutdown_timeout=config.shutdown_timeout)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port,
                           ssl_context=simulator.ssl_context(), reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        simulator.close()
        raise
    running = RunningSimulator(simulator, runner, site.port)
    log.warning("axis_sim.started", banner=BANNER, url=running.url, admin=running.admin_url,
                db=str(config.db_path), systems=sorted(config.clients),
                timestamp_window=config.timestamp_window,
                faults=[r.as_json() for r in config.faults])
    return running
