"""Talk to the national document axis over HTTP: the AxisTransport interface and its aiohttp client.

One `AxisClient` holds one aiohttp session (one connection pool) for its lifetime. Every call
builds a fresh signed header map (connectors.axis.auth), has connect/read/total timeouts, and
turns every failure into `AxisError` (connectors.axis.errors). Packages travel as files: uploads
are streamed from disk with a Content-Length, downloads are streamed to disk, and the base64
answer of getEdoc is decoded while it arrives, so memory stays bounded whatever the package size.
The client does not retry; that is the caller's policy, driven by `AxisError.transient`.

Two wire forms (`AxisClientConfig.dialect`; docs/axis-simulator.md, "Wire forms"):
"reference" (the default) puts on the wire what the reference Java client (VNPT's SDKVXP) sends
to the real axis every day: only `XroadVnpt-*` parameters in Java HashMap order, `hash-file` as
unpadded hex and the package followed by CRLF, `to` as JSON array text, `docId`, POST with `{}`
for the empty calls. "standard" is the form of the written protocol description, for an axis
known to accept it. Answers compressed with gzip or deflate are decoded in both.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
import json
import os
import re
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aiohttp
import structlog

from connectors.axis.auth import DIALECTS, VERSION_HEADER, hex_without_padding, sign_headers
from connectors.axis.errors import AxisError

log = structlog.get_logger("connectors.axis")

JSON_TYPE = "application/json"
OCTET_TYPE = "application/octet-stream"
SERVICE_TYPE = "eDoc"
#: What the reference client says it is; some fronts of the axis may look at it.
REFERENCE_USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"
STANDARD_USER_AGENT = "edoc-gateway"
#: The answer encodings we decode (and so the only ones we ask for).
ACCEPT_ENCODING = "gzip,deflate"
#: The body of the reference client's calls that carry nothing.
EMPTY_JSON = b"{}"
#: `json.dumps(..., separators=(",", ":"))`, its encoder made once instead of per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class MessageType(str, Enum):
    """The `messagetype` header: a document package or a status (receipt) package."""

    EDOC = "edoc"
    STATUS = "status"


class DeliveryStatus(str, Enum):
    """The `status` of updateStatus: what the receiver did with a fetched message."""

    INITIAL = "initial"
    PROCESSING = "processing"
    DONE = "done"          # fetched and stored: the axis drops it from the received list
    FAIL = "fail"          # gave up on it


# ---------------------------------------------------------------------------------------------
# Answers as frozen dataclasses. The axis's JSON names are mapped to snake_case in one table per
# type; a missing or null field becomes "".

@dataclass(frozen=True)
class SendResult:
    doc_id: str            # the axis's id of the message (DocId)
    sha256: str            # SHA-256 (standard hex) of the package file
    size: int              # of the package file
    hash_file: str = ""    # the hash-file header as sent (its form depends on the dialect)


@dataclass(frozen=True)
class FetchResult:
    doc_id: str
    path: Path
    size: int
    sha256: str            # of the bytes written to `path`


@dataclass(frozen=True)
class ReceivedItem:
    doc_id: str
    service_type: str
    message_type: str
    created_time: str
    updated_time: str
    from_code: str
    to_code: str
    status: str
    status_desc: str


@dataclass(frozen=True)
class SentItem:
    service_type: str
    message_type: str
    sender_doc_id: str
    receiver_doc_id: str
    from_code: str
    to_code: str
    title: str
    notation: str
    sent_time: str
    received_time: str
    send_status: str
    send_status_desc: str
    receive_status: str
    receive_status_desc: str


@dataclass(frozen=True)
class Agency:
    id: str
    code: str              # QCVN 102 code, e.g. 000.00.00.H55
    name: str
    mail: str
    pid: str               # parent's id
    old_code: str


@dataclass(frozen=True)
class AgencyQD20:
    id: str
    code: str              # Quyết định 20/2020 code, e.g. H55.01
    code102: str
    name: str
    mail: str


@dataclass(frozen=True)
class AgencyRegistration:
    """Body of registerAgency."""

    code: str
    name: str
    pcode: str = ""        # parent agency's code
    id: str = ""
    mail: str = ""
    mobile: str = ""
    fax: str = ""

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "pcode": self.pcode, "code": self.code, "name": self.name,
                "mail": self.mail, "mobile": self.mobile, "fax": self.fax}


_RECEIVED_FIELDS = {
    "doc_id": "docId", "service_type": "serviceType", "message_type": "messageType",
    "created_time": "created_time", "updated_time": "updated_time", "from_code": "from",
    "to_code": "to", "status": "status", "status_desc": "status_desc",
}
_SENT_FIELDS = {
    "service_type": "serviceType", "message_type": "messageType", "sender_doc_id": "senderDocId",
    "receiver_doc_id": "receiverDocId", "from_code": "fromCode", "to_code": "toCode",
    "title": "title", "notation": "notation", "sent_time": "sentTime",
    "received_time": "receivedTime", "send_status": "sendStatus",
    "send_status_desc": "sendStatusDesc", "receive_status": "receiveStatus",
    "receive_status_desc": "receiveStatusDesc",
}
_AGENCY_FIELDS = {"id": "id", "code": "code", "name": "name", "mail": "mail", "pid": "pid",
                  "old_code": "oldCode"}
_AGENCY_QD20_FIELDS = {"id": "id", "code": "code", "code102": "code102", "name": "name",
                       "mail": "mail"}


# ---------------------------------------------------------------------------------------------

@runtime_checkable
class AxisTransport(Protocol):
    """What the pipelines need from the axis. `AxisClient` speaks the national axis API; a
    provincial LGSP front (WSO2 /vanbans, BKAV /getPendingDocIds ...) would be another
    implementation. Every method raises only `AxisError` for remote failures."""

    async def send_edoc(self, package: str | os.PathLike[str], *, from_organ: str,
                        messagetype: MessageType | str = MessageType.EDOC,
                        to: Sequence[str] = (), sha256: str | None = None) -> SendResult: ...

    async def get_received_edoc_list(
            self, messagetype: MessageType | str = MessageType.EDOC) -> tuple[ReceivedItem, ...]: ...

    async def get_edoc(self, doc_id: str, dest: str | os.PathLike[str]) -> FetchResult: ...

    async def download_edoc(self, doc_id: str, dest: str | os.PathLike[str]) -> FetchResult: ...

    async def update_status(self, doc_id: str, status: DeliveryStatus | str) -> None: ...

    async def get_sent_edoc_list(self, *, messagetype: MessageType | str = MessageType.EDOC,
                                 doc_id: str | None = None) -> tuple[SentItem, ...]: ...

    async def count_receive_edoc(self) -> int: ...

    async def count_receive_status(self) -> int: ...

    async def get_agencies_list(self) -> tuple[Agency, ...]: ...

    async def get_agencies_list_qd20(self, level: int | str | None = None) -> tuple[AgencyQD20, ...]: ...

    async def register_agency(self, agency: AgencyRegistration) -> None: ...

    async def delete_agency(self, agency_code: str) -> None: ...

    async def aclose(self) -> None: ...


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class AxisClientConfig:
    """How to reach the axis. `endpoint` is the adapter URL; calls go to `{endpoint}/{operation}`.

    Timeouts in seconds: `connect_timeout` (pool wait + TCP/TLS connect), `read_timeout` (longest
    silence while reading), `total_timeout` for ordinary calls and `transfer_timeout` for the
    calls that move a whole package (sendEdoc, getEdoc, downloadEdoc); None means no limit.
    """

    endpoint: str
    systemid: str
    secret: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    total_timeout: float | None = 120.0
    transfer_timeout: float | None = 3600.0
    ca_file: str | None = None            # PEM bundle to trust instead of the system store
    client_cert: str | None = None        # PEM certificate (chain) for mutual TLS
    client_key: str | None = None         # its key, if not in client_cert
    pool_size: int = 16
    chunk_size: int = 256 * 1024
    max_answer_bytes: int = 64 * 1024 * 1024   # JSON answers other than getEdoc's data
    user_agent: str | None = None         # None: the dialect's own
    dialect: str = "reference"            # "reference" | "standard": the wire form sent
    clock: Callable[[], datetime] = field(default=_now, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"axis dialect must be one of {', '.join(DIALECTS)}, "
                             f"not {self.dialect!r}")


class AxisClient:
    """The national axis API over aiohttp. Use as `async with AxisClient(cfg) as axis:` or call
    `aclose()` when done."""

    def __init__(self, config: AxisClientConfig) -> None:
        self._config = config
        self._base = config.endpoint.rstrip("/")
        self._reference = config.dialect == "reference"
        self._user_agent = config.user_agent or (
            REFERENCE_USER_AGENT if self._reference else STANDARD_USER_AGENT)
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None
        if config.ca_file or config.client_cert:
            self._ssl = ssl.create_default_context(cafile=config.ca_file)
            if config.client_cert:
                self._ssl.load_cert_chain(config.client_cert, config.client_key)
        self._timeout = aiohttp.ClientTimeout(
            total=config.total_timeout, connect=config.connect_timeout,
            sock_connect=config.connect_timeout, sock_read=config.read_timeout)
        self._transfer_timeout = aiohttp.ClientTimeout(
            total=config.transfer_timeout, connect=config.connect_timeout,
            sock_connect=config.connect_timeout, sock_read=config.read_timeout)

    @property
    def config(self) -> AxisClientConfig:
        return self._config

    async def __aenter__(self) -> AxisClient:
        self._get_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._config.pool_size,
                                             ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False,
                skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding", "Accept"))
        return self._session

    # --- the calls -------------------------------------------------------------------------

    async def send_edoc(self, package: str | os.PathLike[str], *, from_organ: str,
                        messagetype: MessageType | str = MessageType.EDOC,
                        to: Sequence[str] = (), sha256: str | None = None) -> SendResult:
        """Upload one package file; `sha256` (standard hex of the file) is computed in a
        streaming pass if not given."""
        size = os.stat(package).st_size
        digest = sha256.lower() if sha256 else await asyncio.to_thread(sha256_file, package)
        if isinstance(to, str):
            to = [to]
        if self._reference:
            # The reference client: unpadded hex of the file's digest, the file then CRLF, `to`
            # as JSON array text, and its own parameter order (set by the HashMap anyway).
            try:
                hash_file = hex_without_padding(bytes.fromhex(digest))
            except ValueError:
                hash_file = digest      # not hex: sent as given, the axis will say so
            params = {"servicetype": SERVICE_TYPE, "messagetype": MessageType(messagetype).value,
                      "hash-file": hash_file, "from": from_organ}
            if to:
                params["to"] = _COMPACT_JSON.encode(list(to))
            trailer = b"\r\n"
        else:
            hash_file = digest
            params = {"from": from_organ, "servicetype": SERVICE_TYPE,
                      "messagetype": MessageType(messagetype).value, "hash-file": digest}
            if to:
                params["to"] = ",".join(to)
            trailer = b""
        with open(package, "rb") as fh:
            if size <= self._config.chunk_size:
                # One chunk's worth: read at once (cheaper than a thread hop per chunk); the
                # Content-Length is what was read. Asking for the size the file has (+1) spares
                # a chunk-sized buffer per call; a file grown since is read on to the same limit.
                body = fh.read(size + 1)
                if len(body) > size:
                    body += fh.read(self._config.chunk_size - size)
                body += trailer
                payload: Any = aiohttp.payload.BytesPayload(body, content_type=OCTET_TYPE)
                length = len(body)
            else:
                # Streamed in chunks off the event loop, with a Content-Length (never chunked).
                payload = aiohttp.payload.AsyncIterablePayload(
                    _file_chunks(fh, self._config.chunk_size, trailer), content_type=OCTET_TYPE)
                length = size + len(trailer)
            answer = await self._json_call("sendEdoc", "POST", params, content_type=OCTET_TYPE,
                                           data=payload, timeout=self._transfer_timeout,
                                           content_length=length)
        doc_id = answer.get("DocId", answer.get("docId"))
        if not isinstance(doc_id, (str, int)) or str(doc_id) == "":
            raise AxisError("axis.bad_response", "sendEdoc answer has no DocId",
                            operation="sendEdoc")
        return SendResult(doc_id=str(doc_id), sha256=digest, size=size, hash_file=hash_file)

    async def get_received_edoc_list(
            self, messagetype: MessageType | str = MessageType.EDOC) -> tuple[ReceivedItem, ...]:
        answer = await self._json_call("getReceivedEdocList", "POST", {
            "servicetype": SERVICE_TYPE, "messagetype": MessageType(messagetype).value})
        return _items(answer, ReceivedItem, _RECEIVED_FIELDS, "getReceivedEdocList")

    async def get_edoc(self, doc_id: str, dest: str | os.PathLike[str]) -> FetchResult:
        """Fetch one message as base64-in-JSON, decoding it to `dest` as it arrives."""
        op = "getEdoc"
        dest = Path(dest)
        async with self._exchange(op, "POST", {"docId": doc_id}, data=self._empty_body(),
                                  timeout=self._transfer_timeout) as resp:
            if resp.status >= 300:
                raise _http_error(op, resp.status, await self._read_capped(resp, op))
            with _PartFile(dest) as out:
                decoder = _Base64Sink(out)
                reader = _JsonStreamReader("data", decoder.write)
                try:
                    async for chunk in _decoded_chunks(resp, self._config.chunk_size, op):
                        reader.feed(chunk)
                    answer = reader.finish()
                    _check_status(op, answer, resp.status)
                    if not reader.streamed:
                        raise AxisError("axis.bad_response", "getEdoc answer has no data string",
                                        operation=op, http_status=resp.status)
                    decoder.finish()
                except ValueError as exc:
                    raise AxisError("axis.bad_response", f"getEdoc answer unreadable: {exc}",
                                    operation=op, http_status=resp.status) from None
                out.commit()
        return FetchResult(doc_id=doc_id, path=dest, size=decoder.size,
                           sha256=decoder.hexdigest())

    async def download_edoc(self, doc_id: str, dest: str | os.PathLike[str]) -> FetchResult:
        """Fetch one message as a raw byte stream to `dest`."""
        op = "downloadEdoc"
        dest = Path(dest)
        async with self._exchange(op, "GET", {"docId": doc_id},
                                  timeout=self._transfer_timeout) as resp:
            if resp.status >= 300:
                raise _http_error(op, resp.status, await self._read_capped(resp, op))
            chunks = _decoded_chunks(resp, self._config.chunk_size, op)
            first = b""
            async for first in chunks:
                if first:
                    break
            if first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                # The axis answers errors as JSON; a package starts with "<".
                body = first + await self._read_capped(resp, op, chunks=chunks)
                answer = _decode_json(op, body, resp.status)
                _check_status(op, answer, resp.status)
                raise AxisError("axis.bad_response", "downloadEdoc answered JSON, not a package",
                                operation=op, http_status=resp.status)
            digest = hashlib.sha256()
            size = 0
            with _PartFile(dest) as out:
                out.write(first)
                digest.update(first)
                size += len(first)
                async for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                if size == 0:
                    raise AxisError("axis.bad_response", "downloadEdoc answered an empty body",
                                    operation=op, http_status=resp.status)
                out.commit()
        return FetchResult(doc_id=doc_id, path=dest, size=size, sha256=digest.hexdigest())

    async def update_status(self, doc_id: str, status: DeliveryStatus | str) -> None:
        status = DeliveryStatus(status).value
        if self._reference:
            await self._json_call("updateStatus", "POST", {"docId": doc_id},
                                  late_params={"status": status}, data=EMPTY_JSON)
        else:
            await self._json_call("updateStatus", "POST", {"docid": doc_id, "status": status})

    async def get_sent_edoc_list(self, *, messagetype: MessageType | str = MessageType.EDOC,
                                 doc_id: str | None = None) -> tuple[SentItem, ...]:
        params = {"servicetype": SERVICE_TYPE, "messagetype": MessageType(messagetype).value}
        if doc_id:
            params["docId"] = doc_id
        answer = await self._json_call("getSentEdocList", "POST", params)
        return _items(answer, SentItem, _SENT_FIELDS, "getSentEdocList")

    async def count_receive_edoc(self) -> int:
        return await self._count_call("countReceiveEdoc", MessageType.EDOC)

    async def count_receive_status(self) -> int:
        return await self._count_call("countReceiveStatus", MessageType.STATUS)

    async def _count_call(self, op: str, messagetype: MessageType) -> int:
        if self._reference:
            # POST with `{}`, naming the mailbox as the list call does (the reference client).
            answer = await self._json_call(op, "POST", {"servicetype": SERVICE_TYPE,
                                                        "messagetype": messagetype.value},
                                           data=EMPTY_JSON)
        else:
            answer = await self._json_call(op, "GET", {})
        return _count(answer, op)

    async def get_agencies_list(self) -> tuple[Agency, ...]:
        answer = await self._json_call("getAgenciesList", "POST", {})
        return _items(answer, Agency, _AGENCY_FIELDS, "getAgenciesList")

    async def get_agencies_list_qd20(self, level: int | str | None = None) -> tuple[AgencyQD20, ...]:
        params = {} if level is None else {"level": str(level)}
        answer = await self._json_call("getAgenciesListQD20", "POST", params)
        return _items(answer, AgencyQD20, _AGENCY_QD20_FIELDS, "getAgenciesListQD20")

    async def register_agency(self, agency: AgencyRegistration) -> None:
        body = json.dumps(agency.as_json(), ensure_ascii=False).encode("utf-8")
        await self._json_call("registerAgency", "POST", {}, data=body)

    async def delete_agency(self, agency_code: str) -> None:
        await self._json_call("deleteAgency", "POST", {"AgencyCode": agency_code})

    # --- plumbing ----------------------------------------------------------------------------

    def _empty_body(self) -> bytes | None:
        """The body of a call that carries nothing: `{}` in the reference form."""
        return EMPTY_JSON if self._reference else None

    def _request_headers(self, op: str, method: str, params: Mapping[str, str], *,
                         content_type: str, data: Any, content_length: int | None,
                         late_params: Mapping[str, str] | None) -> dict[str, str]:
        """The complete header map of one signed request."""
        upload = content_type == OCTET_TYPE
        try:
            headers = sign_headers(systemid=self._config.systemid, secret=self._config.secret,
                                   now=self._config.clock(), content_type=content_type,
                                   params=params, dialect=self._config.dialect,
                                   content_type_first=upload, late_params=late_params)
        except ValueError as exc:
            raise AxisError("axis.bad_request", str(exc), operation=op) from None
        # The reference client's place for it: between the signature and the version.
        version = headers.pop(VERSION_HEADER)
        headers["User-Agent"] = self._user_agent
        headers[VERSION_HEADER] = version
        if content_length is None and self._reference and method != "GET":
            content_length = len(data) if isinstance(data, bytes) else 0
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        if self._reference and isinstance(data, bytes) and data:
            # The reference client's HTTP library announces every JSON body this way.
            headers["Expect"] = "100-continue"
        if not upload:
            # We decode these (`_decoded_chunks`); the reference client asks for them too.
            headers["Accept-Encoding"] = ACCEPT_ENCODING
        return headers

    @contextlib.asynccontextmanager
    async def _exchange(self, op: str, method: str, params: Mapping[str, str], *,
                        content_type: str = JSON_TYPE, data: Any = None,
                        timeout: aiohttp.ClientTimeout | None = None,
                        content_length: int | None = None,
                        late_params: Mapping[str, str] | None = None
                        ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One signed request; aiohttp and timeout errors raised while it or the caller's body
        runs are translated to AxisError."""
        headers = self._request_headers(op, method, params, content_type=content_type,
                                        data=data, content_length=content_length,
                                        late_params=late_params)
        session = self._get_session()
        started = time.monotonic()
        status: int | None = None
        try:
            async with session.request(method, f"{self._base}/{op}", headers=headers, data=data,
                                       timeout=timeout or self._timeout,
                                       allow_redirects=False) as resp:
                status = resp.status
                yield resp
        except AxisError as exc:
            _log_failed(op, exc, status, started)
            raise
        except _TRANSPORT_ERRORS as exc:
            raise _log_failed(op, translate_exception(exc, op), status, started) from exc
        else:
            _log_call(op, "ok", status, started)

    async def _json_call(self, op: str, method: str, params: Mapping[str, str], *,
                         content_type: str = JSON_TYPE, data: Any = None,
                         timeout: aiohttp.ClientTimeout | None = None,
                         content_length: int | None = None,
                         late_params: Mapping[str, str] | None = None) -> dict[str, Any]:
        # `_exchange` written out, without the context manager's generator (every call of the
        # send path goes through here): the same request, the same translation of errors.
        headers = self._request_headers(op, method, params, content_type=content_type,
                                        data=data, content_length=content_length,
                                        late_params=late_params)
        session = self._get_session()
        started = time.monotonic()
        status: int | None = None
        try:
            async with session.request(method, f"{self._base}/{op}", headers=headers, data=data,
                                       timeout=timeout or self._timeout,
                                       allow_redirects=False) as resp:
                status = resp.status
                body = await self._read_capped(resp, op)
                if status >= 300:
                    raise _http_error(op, status, body)
                answer = _decode_json(op, body, status)
                _check_status(op, answer, status)
        except AxisError as exc:
            _log_failed(op, exc, status, started)
            raise
        except _TRANSPORT_ERRORS as exc:
            raise _log_failed(op, translate_exception(exc, op), status, started) from exc
        _log_call(op, "ok", status, started)
        return answer

    async def _read_capped(self, resp: aiohttp.ClientResponse, op: str, *,
                           chunks: AsyncIterator[bytes] | None = None) -> bytes:
        """The (decoded) answer body, at most `max_answer_bytes` of it."""
        limit = self._config.max_answer_bytes
        parts: list[bytes] = []
        total = 0
        if chunks is None:
            chunks = _decoded_chunks(resp, self._config.chunk_size, op)
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise AxisError("axis.bad_response", f"answer larger than {limit} bytes",
                                operation=op, http_status=resp.status)
            parts.append(chunk)
        return b"".join(parts)


# --- answers ----------------------------------------------------------------------------------

# Words in an ErrorDesc that make a non-zero ErrorCode something other than a business rejection.
# The axis publishes no error catalogue; these are the only signals its texts give.
_AUTH_HINTS = re.compile(r"xac thuc|xác thực|hmac|unauthori[sz]ed|authenticat|systemid",
                         re.IGNORECASE)
_TRANSIENT_HINTS = re.compile(r"thu lai sau|thử lại sau|qua tai|quá tải|timeout|time out|"
                              r"tam thoi|tạm thời|temporar|try again|busy", re.IGNORECASE)


# What a request can fail with below the axis's own answers (translated to AxisError).
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ssl.SSLError)


def _log_failed(op: str, error: AxisError, status: int | None, started: float) -> AxisError:
    """Log a failed call (as `_log_call`) and return its error, to be raised."""
    _log_call(op, error.reason, status, started)
    return error


def _log_call(op: str, outcome: str, http_status: int | None, started: float) -> None:
    log.debug("axis.call", operation=op, outcome=outcome, http_status=http_status,
              seconds=round(time.monotonic() - started, 3))


def _decode_json(op: str, body: bytes, http_status: int) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AxisError("axis.bad_response", f"answer is not JSON ({len(body)} bytes)",
                        operation=op, http_status=http_status) from None
    if not isinstance(answer, dict):
        raise AxisError("axis.bad_response", "answer is not a JSON object", operation=op,
                        http_status=http_status)
    return answer


def _check_status(op: str, answer: Mapping[str, Any], http_status: int) -> None:
    """Raise for an answer whose status/ErrorCode say the call failed."""
    code = answer.get("ErrorCode")
    status = answer.get("status")
    code_text = None if code is None else str(code)
    if code_text in (None, "0") and status in (None, "OK"):
        if code_text is None and status is None:
            raise AxisError("axis.bad_response", "answer has neither status nor ErrorCode",
                            operation=op, http_status=http_status)
        return
    desc = answer.get("ErrorDesc")
    desc_text = "" if desc is None else str(desc)
    reason = "axis.rejected"
    if _AUTH_HINTS.search(desc_text):
        reason = "axis.auth"
    elif _TRANSIENT_HINTS.search(desc_text):
        reason = "axis.unavailable"
    raise AxisError(reason, f"{op} refused: ErrorCode {code_text} {desc_text}".rstrip(),
                    operation=op, http_status=http_status, error_code=code_text,
                    error_desc=desc_text)


def _http_error(op: str, status: int, body: bytes) -> AxisError:
    code = desc = None
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        answer = json.loads(body)
        if isinstance(answer, dict):
            code = None if answer.get("ErrorCode") is None else str(answer["ErrorCode"])
            desc = None if answer.get("ErrorDesc") is None else str(answer["ErrorDesc"])
    if status in (401, 403):
        reason = "axis.auth"
    elif status == 429:
        reason = "axis.rate_limited"
    elif status == 408:
        reason = "axis.timeout"
    elif status >= 500:
        reason = "axis.unavailable"
    elif 400 <= status < 500:
        reason = "axis.bad_request"
    else:
        reason = "axis.bad_response"
    detail = f": ErrorCode {code} {desc or ''}".rstrip() if code is not None or desc else ""
    return AxisError(reason, f"{op} answered HTTP {status}{detail}", operation=op,
                     http_status=status, error_code=code, error_desc=desc)


def translate_exception(exc: BaseException, op: str) -> AxisError:
    """Map an aiohttp / asyncio / ssl exception to AxisError (the connector boundary)."""
    kind = type(exc).__name__
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return AxisError("axis.tls", f"{op}: TLS certificate not trusted ({exc})", operation=op)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return AxisError("axis.timeout", f"{op}: no answer in time ({kind})", operation=op)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return AxisError("axis.unavailable", f"{op}: cannot connect ({exc})", operation=op)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        aiohttp.ClientOSError, aiohttp.ClientConnectionResetError,
                        ConnectionError)):
        return AxisError("axis.connection_lost", f"{op}: connection lost ({kind}: {exc})",
                         operation=op)
    if isinstance(exc, aiohttp.InvalidURL):
        return AxisError("axis.bad_request", f"{op}: invalid axis URL ({exc})", operation=op)
    if isinstance(exc, aiohttp.ClientResponseError):
        return AxisError("axis.bad_response", f"{op}: malformed HTTP answer ({exc.message})",
                         operation=op, http_status=exc.status or None)
    return AxisError("axis.unavailable", f"{op}: {kind}: {exc}", operation=op)


def _items(answer: Mapping[str, Any], cls: type, fields: Mapping[str, str], op: str) -> tuple:
    data = answer.get("data")
    if data is None:
        return ()
    if not isinstance(data, list):
        raise AxisError("axis.bad_response", "data is not a list", operation=op)
    out = []
    for row in data:
        if not isinstance(row, dict):
            raise AxisError("axis.bad_response", "data holds a non-object entry", operation=op)
        out.append(cls(**{attr: _text(row.get(key)) for attr, key in fields.items()}))
    return tuple(out)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _count(answer: Mapping[str, Any], op: str) -> int:
    value = answer.get("count", answer.get("data"))
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AxisError("axis.bad_response", "answer has no integer count", operation=op) from None


# --- files and streams --------------------------------------------------------------------------

async def _file_chunks(fh: Any, chunk_size: int, trailer: bytes = b"") -> AsyncIterator[bytes]:
    """A file's bytes in chunks read off the event loop, then `trailer`."""
    while chunk := await asyncio.to_thread(fh.read, chunk_size):
        yield chunk
    if trailer:
        yield trailer


async def _decoded_chunks(resp: aiohttp.ClientResponse, chunk_size: int,
                          op: str) -> AsyncIterator[bytes]:
    """The answer body as it arrives, undoing a gzip or deflate Content-Encoding.

    A proxy in front of the axis (or the axis itself) may compress; the reference client
    decodes it, so must we. Each piece handed on is at most `chunk_size` bytes, however well the
    input compresses, so the callers' size caps hold for the decoded bytes.
    """
    coding = resp.headers.get("Content-Encoding", "").strip().lower()
    if coding in ("", "identity"):
        async for chunk in resp.content.iter_chunked(chunk_size):
            yield chunk
        return
    if coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        decoder = None          # zlib-wrapped, or raw as some servers send it: see first bytes
    else:
        raise AxisError("axis.bad_response", f"answer uses Content-Encoding {coding!r}",
                        operation=op, http_status=resp.status)
    try:
        async for chunk in resp.content.iter_chunked(chunk_size):
            if decoder is None:
                raw = len(chunk) >= 2 and (chunk[0] & 0x0F != 8 or (chunk[0] << 8 | chunk[1]) % 31)
                decoder = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
            data = chunk
            while data:
                piece = decoder.decompress(data, chunk_size)
                data = decoder.unconsumed_tail
                if piece:
                    yield piece
                if decoder.eof:
                    break
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail
            if not decoder.eof:
                raise AxisError("axis.bad_response", f"{coding} answer ends early",
                                operation=op, http_status=resp.status)
    except zlib.error as exc:
        raise AxisError("axis.bad_response", f"{coding} answer cannot be decoded: {exc}",
                        operation=op, http_status=resp.status) from None

def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1024 * 1024) -> str:
    """SHA-256 hex of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class _PartFile:
    """Write to `dest.part`, rename to `dest` on commit, delete the part file otherwise."""

    def __init__(self, dest: Path) -> None:
        self._dest = dest
        self._part = dest.with_name(dest.name + ".part")
        self._fh = None
        self._committed = False

    def __enter__(self) -> _PartFile:
        self._fh = open(self._part, "wb")
        return self

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> None:
        self._fh.close()
        os.replace(self._part, self._dest)
        self._committed = True

    def __exit__(self, *exc_info: object) -> None:
        if not self._committed:
            self._fh.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._part)


class _Base64Sink:
    """Decode base64 text pushed in arbitrary pieces, write the bytes, hash them."""

    _WS = b" \t\r\n"

    def __init__(self, out: _PartFile) -> None:
        self._out = out
        self._carry = b""
        self._ended = False
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, text: bytes) -> None:
        text = text.translate(None, self._WS)
        if not text:
            return
        if self._ended:
            raise ValueError("base64 continues after its padding")
        buf = self._carry + text if self._carry else text
        cut = len(buf) - len(buf) % 4
        block, self._carry = buf[:cut], buf[cut:]
        if block:
            self._emit(block)

    def _emit(self, block: bytes) -> None:
        try:
            data = binascii.a2b_base64(block, strict_mode=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64 near decoded byte {self.size}: {exc}") from None
        if block.endswith(b"="):
            self._ended = True
        self._out.write(data)
        self._digest.update(data)
        self.size += len(data)

    def finish(self) -> None:
        if self._carry:
            raise ValueError(f"base64 truncated ({len(self._carry)} characters left over)")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _JsonStreamReader:
    """Read one JSON object incrementally; the string value of `stream_key` is unescaped and
    pushed to `sink` piece by piece, the other members are collected (each at most `max_value`
    bytes of JSON) and returned by `finish()`."""

    _WS = b" \t\r\n"
    _ESCAPES = {ord('"'): b'"', ord("\\"): b"\\", ord("/"): b"/", ord("b"): b"\b",
                ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t"}

    def __init__(self, stream_key: str, sink: Callable[[bytes], None],
                 max_value: int = 1024 * 1024) -> None:
        self._stream_key = stream_key
        self._sink = sink
        self._max = max_value
        self._state = "start"
        self._buf = bytearray()     # key or raw value being collected
        self._split = bytearray()   # an escape of the streamed string split across chunks
        self._key = ""
        self._depth = 0
        self._in_str = False
        self._esc = False
        self._fields: dict[str, Any] = {}
        self.streamed = False

    def feed(self, chunk: bytes) -> None:
        pos, end = 0, len(chunk)
        while pos < end:
            state = self._state
            if state == "stream":
                pos = self._feed_stream(chunk, pos)
                continue
            if state in ("key", "raw"):
                pos = self._feed_collect(chunk, pos)
                continue
            byte = chunk[pos]
            pos += 1
            if byte in self._WS:
                continue
            if state == "start":
                self._expect(byte, b"{")
                self._state = "key_or_end"
            elif state in ("key_or_end", "key_only"):
                if byte == ord("}") and state == "key_or_end":
                    self._state = "done"
                else:
                    self._expect(byte, b'"')
                    self._state, self._buf = "key", bytearray()
                    self._in_str, self._esc = True, False
            elif state == "colon":
                self._expect(byte, b":")
                self._state = "value"
            elif state == "value":
                if byte == ord('"') and self._key == self._stream_key:
                    self._state, self.streamed = "stream", True
                else:
                    self._state, self._buf = "raw", bytearray()
                    self._depth, self._in_str, self._esc = 0, False, False
                    pos -= 1
            elif state == "after_value":
                if byte == ord(","):
                    self._state = "key_only"
                else:
                    self._expect(byte, b"}")
                    self._state = "done"
            elif state == "done":
                raise ValueError("data after the JSON object")

    @staticmethod
    def _expect(byte: int, wanted: bytes) -> None:
        if byte != wanted[0]:
            raise ValueError(f"expected {wanted.decode()!r}, found {chr(byte)!r}")

    def _feed_collect(self, chunk: bytes, pos: int) -> int:
        """Key text (until its closing quote) or a raw value (until , or } at depth 0)."""
        end = len(chunk)
        raw = self._state == "raw"
        while pos < end:
            byte = chunk[pos]
            if self._in_str:
                pos += 1
                if self._esc:
                    self._esc = False
                elif byte == 0x5C:
                    self._esc = True
                elif byte == 0x22:
                    self._in_str = False
                    if not raw:
                        self._key = json.loads(b'"' + bytes(self._buf) + b'"')
                        self._state = "colon"
                        return pos
                self._buf.append(byte)
            elif byte == 0x22:
                self._in_str = True
                self._buf.append(byte)
                pos += 1
            elif byte in b"{[":
                self._depth += 1
                self._buf.append(byte)
                pos += 1
            elif byte in b"}]" and self._depth > 0:
                self._depth -= 1
                self._buf.append(byte)
                pos += 1
            elif byte in b",}" and self._depth == 0:
                self._fields[self._key] = json.loads(bytes(self._buf))
                self._state = "after_value"
                return pos          # the separator is read in state after_value
            else:
                self._buf.append(byte)
                pos += 1
            if len(self._buf) > self._max:
                raise ValueError(f"member {self._key!r} longer than {self._max} bytes")
        return pos

    def _feed_stream(self, chunk: bytes, pos: int) -> int:
        if self._split:                        # an escape split across chunks
            while pos < len(chunk) and len(self._split) < self._escape_length(self._split):
                self._split.append(chunk[pos])
                pos += 1
            if len(self._split) == self._escape_length(self._split):
                self._sink(self._unescape(bytes(self._split)))
                self._split = bytearray()
            return pos
        # Two memchr-speed scans beat one regex scan by far on megabytes of base64.
        quote = chunk.find(b'"', pos)
        backslash = chunk.find(b"\\", pos, quote if quote >= 0 else len(chunk))
        at = backslash if backslash >= 0 else quote
        if at < 0:
            self._sink(chunk[pos:])
            return len(chunk)
        if at > pos:
            self._sink(chunk[pos:at])
        if chunk[at] == 0x22:
            self._state = "after_value"
            return at + 1
        need = self._escape_length(chunk[at:at + 2])
        if at + need <= len(chunk):
            self._sink(self._unescape(chunk[at:at + need]))
            return at + need
        self._split = bytearray(chunk[at:])
        return len(chunk)

    @staticmethod
    def _escape_length(start: bytes | bytearray) -> int:
        """Length of the escape beginning with `start` (at least the backslash)."""
        if len(start) < 2:
            return 2
        return 6 if start[1] == ord("u") else 2

    def _unescape(self, esc: bytes) -> bytes:
        if esc[1] == ord("u"):
            return chr(int(esc[2:6], 16)).encode("utf-8")
        try:
            return self._ESCAPES[esc[1]]
        except KeyError:
            raise ValueError(f"bad JSON escape {esc!r}") from None

    def finish(self) -> dict[str, Any]:
        if self._state != "done" or self._split:
            raise ValueError("answer ended before the JSON object was complete")
        return self._fields
