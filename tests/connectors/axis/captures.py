"""The reference client's captured requests (tests/data/reference-axis-wire/), and raw HTTP.

A captured request is replayed over a plain socket, headers in their captured wire order and
spelling, so nothing between the test and the simulator adds, drops or reorders a header. The
signing here is written out with `hmac` and `json` on purpose: it is the reference client's recipe
as the capture shows it, independent of connectors.axis.auth, so these requests can test the
simulator before and after any change to our own signing code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

CAPTURE_FILE = (Path(__file__).resolve().parents[2] / "data" / "reference-axis-wire"
                / "sdk-requests.json")
PREFIX = "XroadVnpt-"


def load() -> dict:
    return json.loads(CAPTURE_FILE.read_text(encoding="utf-8"))


@dataclass
class Request:
    """One request: method, path, headers in wire order, body."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return found[0] if found else None

    def set(self, name: str, value: str) -> None:
        """Replace a header's value where it stands (the first of that name)."""
        for i, (k, _) in enumerate(self.headers):
            if k.lower() == name.lower():
                self.headers[i] = (k, value)
                return
        raise KeyError(name)

    def drop(self, name: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]

    def signed(self) -> dict[str, str]:
        return json.loads(self.header(PREFIX + "sign-header") or "{}")

    def resign(self, secret: str, **params: str | None) -> None:
        """Change (or with None remove) signed parameters, keeping their places, and sign the
        result the reference client's way: compact JSON in key-list order, HMAC-SHA256 hex."""
        names = self.header(PREFIX + "sign-header-key").split(";")
        signed = self.signed()
        for name, value in params.items():
            name = name.replace("_", "-")
            if value is None:
                names.remove(name)
                signed.pop(PREFIX + name)
                self.drop(PREFIX + name)
            else:
                signed[PREFIX + name] = value
                self.set(PREFIX + name, value)
        text = json.dumps({PREFIX + n: signed[PREFIX + n] for n in names},
                          separators=(",", ":"))
        self.set(PREFIX + "sign-header-key", ";".join(names))
        self.set(PREFIX + "sign-header", text)
        self.set(PREFIX + "hash-header", hmac_hex(secret, text))
        if self.header("Content-Length") is not None:
            self.set("Content-Length", str(len(self.body)))


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def unpadded_sha256(data: bytes) -> str:
    """The reference client's hash-file: each byte as hex without zero padding."""
    return "".join(format(b, "x") for b in hashlib.sha256(data).digest())


def captured(data: dict, name: str) -> Request:
    entry = data["requests"][name]
    method, path = entry["request_line"].split(" ", 1)
    body = entry["body"]["starts_with"].encode() if entry["body"]["length"] == 2 else b""
    return Request(method, path, [tuple(h) for h in entry["headers_in_wire_order"]], body)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> dict:
        return json.loads(self.body)


async def send_raw(host: str, port: int, request: Request) -> Answer:
    """Send `request` byte for byte on a new connection; read one final answer (1xx skipped)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers) + "\r\n"
        writer.write(head.encode("latin-1") + request.body)
        await writer.drain()
        while True:
            status_line = (await reader.readline()).decode("latin-1")
            status = int(status_line.split(" ", 2)[1])
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode("latin-1").rstrip("\r\n")):
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if 100 <= status < 200:
                continue
            break
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while (size := int((await reader.readline()).split(b";")[0], 16)):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            body = b"".join(parts)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(status, headers, body)
    finally:
        writer.close()
