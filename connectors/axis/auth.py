"""Sign and verify axis request headers: systemid + HMAC-SHA256 over a JSON copy of the headers.

The recipe (the reference SDK's, without its two bugs: it reuses one header map across calls and
fixes the timestamp once at start-up):

1. a fresh map per request: `systemid`, `timestamp` (``ddMMyyyy'T'HHmmss+SSSS``, SSSS the
   milliseconds zero-padded to four digits), `Content-Type`, then the call's own headers;
2. every entry is sent as ``name: value`` and as ``XroadVnpt-name: value``;
3. the compact JSON object ``{"XroadVnpt-name": value, ...}`` of those entries is the signed text,
   ``name1;name2;...`` the key list;
4. ``XroadVnpt-sign-header-key`` = key list, ``XroadVnpt-sign-header`` = the JSON text,
   ``XroadVnpt-hash-header`` = lowercase hex HMAC-SHA256(secret as UTF-8, JSON text as UTF-8),
   ``XroadVnpt-version: 3.0.201608``.

The text we hash is exactly the text we send. The JSON is ASCII-only (non-ASCII escaped) so it
survives as an HTTP header value. Timestamps are in Vietnam time (UTC+7, no daylight saving), the
axis's local time, whatever the zone of the machine we run on.

The verifier is used by the simulator and is as strict as a careful axis should be: the HMAC, a
known systemid, a key list that matches the JSON, every signed entry present unchanged as a
header, and a timestamp inside the replay window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

PREFIX = "XroadVnpt-"
SIGN_HEADER = "XroadVnpt-sign-header"
SIGN_HEADER_KEY = "XroadVnpt-sign-header-key"
HASH_HEADER = "XroadVnpt-hash-header"
VERSION_HEADER = "XroadVnpt-version"
VERSION = "3.0.201608"

#: The axis runs on Vietnam time.
VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

_TIMESTAMP_RE = re.compile(r"^(\d{2})(\d{2})(\d{4})T(\d{2})(\d{2})(\d{2})\+(\d{4})$")
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def format_timestamp(moment: datetime) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in Vietnam time; `moment` must be timezone-aware."""
    if moment.tzinfo is None:
        raise ValueError("timestamp needs a timezone-aware datetime")
    local = moment.astimezone(VIETNAM_TZ)
    return local.strftime("%d%m%YT%H%M%S") + f"+{local.microsecond // 1000:04d}"


def parse_timestamp(text: str) -> datetime:
    """Inverse of `format_timestamp`; raises ValueError on anything else."""
    match = _TIMESTAMP_RE.match(text)
    if not match:
        raise ValueError(f"timestamp {text!r} is not ddMMyyyy'T'HHmmss+SSSS")
    day, month, year, hour, minute, second, millis = (int(g) for g in match.groups())
    if millis > 999:
        raise ValueError(f"timestamp {text!r} has {millis} milliseconds")
    return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=VIETNAM_TZ)


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(*, systemid: str, secret: str, now: datetime, content_type: str,
                 params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build the complete, fresh header map of one request (insertion-ordered).

    `params` are the call's own headers (`from`, `docId`, ...). Raises ValueError for a header
    name that is not a token or a value that is not printable ASCII.
    """
    entries: dict[str, str] = {
        "systemid": systemid,
        "timestamp": format_timestamp(now),
        "Content-Type": content_type,
    }
    for name, value in (params or {}).items():
        if any(name.lower() == existing.lower() for existing in entries):
            raise ValueError(f"header {name!r} given twice")
        entries[name] = value
    for name, value in entries.items():
        if not _HEADER_NAME_RE.match(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"value of header {name!r} is not printable ASCII")
    signed = {PREFIX + name: value for name, value in entries.items()}
    text = json.dumps(signed, separators=(",", ":"), ensure_ascii=True)
    headers = dict(entries)
    headers.update(signed)
    headers[SIGN_HEADER_KEY] = ";".join(entries)
    headers[SIGN_HEADER] = text
    headers[HASH_HEADER] = hmac_hex(secret, text)
    headers[VERSION_HEADER] = VERSION
    return headers


class AuthFailure(Exception):
    """A request's authentication headers are wrong; `kind` is a short stable label."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class VerifiedHeaders:
    """What a verified request signed: the calling systemid and its signed entries."""

    systemid: str
    timestamp: datetime
    entries: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A signed entry by name, case-insensitively (SDKs write both `docId` and `docid`)."""
        wanted = name.lower()
        for key, value in self.entries:
            if key.lower() == wanted:
                return value
        return default


def verify_headers(headers: Mapping[str, str], *, secret_for: Callable[[str], str | None],
                   now: datetime, window_seconds: float) -> VerifiedHeaders:
    """Check a request's signature headers; `headers` must be a case-insensitive mapping."""
    text = headers.get(SIGN_HEADER)
    key_list = headers.get(SIGN_HEADER_KEY)
    mac = headers.get(HASH_HEADER)
    if not text or key_list is None or not mac:
        raise AuthFailure("missing", "missing XroadVnpt-sign-header, -sign-header-key or -hash-header")
    try:
        signed = json.loads(text)
    except ValueError:
        raise AuthFailure("malformed", "XroadVnpt-sign-header is not JSON") from None
    if not isinstance(signed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in signed.items()):
        raise AuthFailure("malformed", "XroadVnpt-sign-header is not a JSON object of strings")
    names = [n for n in key_list.split(";") if n]
    if sorted(PREFIX + n for n in names) != sorted(signed) or len(set(names)) != len(names):
        raise AuthFailure("malformed", "XroadVnpt-sign-header-key does not list the signed headers")
    systemid = signed.get(PREFIX + "systemid")
    stamp = signed.get(PREFIX + "timestamp")
    if not systemid or not stamp:
        raise AuthFailure("malformed", "systemid and timestamp must be signed")
    secret = secret_for(systemid)
    if secret is None:
        raise AuthFailure("unknown_system", f"unknown systemid {systemid}")
    if not hmac.compare_digest(hmac_hex(secret, text), mac.strip().lower()):
        raise AuthFailure("bad_hmac", "XroadVnpt-hash-header does not match the signed headers")
    for name in names:
        value = signed[PREFIX + name]
        sent = headers.get(PREFIX + name)
        if sent != value:
            raise AuthFailure("header_mismatch", f"header {PREFIX + name} differs from the signed value")
        plain = headers.get(name)
        if plain is not None and plain != value:
            raise AuthFailure("header_mismatch", f"header {name} differs from the signed value")
    try:
        moment = parse_timestamp(stamp)
    except ValueError as exc:
        raise AuthFailure("malformed", str(exc)) from None
    skew = abs((now - moment).total_seconds())
    if skew > window_seconds:
        raise AuthFailure("stale_timestamp",
                          f"timestamp {stamp} is {skew:.0f} s away from server time "
                          f"(window {window_seconds:.0f} s)")
    return VerifiedHeaders(systemid=systemid, timestamp=moment,
                           entries=tuple((n, signed[PREFIX + n]) for n in names))
