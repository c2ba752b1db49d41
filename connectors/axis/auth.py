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

That is the "standard" form, the one the written protocol description gives. The reference
client that agencies use with the real axis every day (VNPT's SDKVXP) sends a different one, and
the real axis accepts it (see docs/axis-simulator.md, "Wire forms"): no plain copies, only the
``XroadVnpt-name`` headers (plus a plain ``Content-Type``), and the entries in the order a Java
``HashMap`` of the plain names iterates, which `java_hashmap_order` reproduces. `sign_headers`
writes either form (`dialect`); the verifier accepts both, since a server takes the order from
the key list and must not assume one.

The text we hash is exactly the text we send. The JSON is ASCII-only (non-ASCII escaped) so it
survives as an HTTP header value. Timestamps are in Vietnam time (UTC+7, no daylight saving), the
axis's local time, whatever the zone of the machine we run on.

The verifier is used by the simulator and is as strict as a careful axis should be: the HMAC, a
known systemid, a key list that matches the JSON, every signed entry present unchanged as a
header, and a timestamp inside the replay window.
"""

from __future__ import annotations

import functools
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


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()`` (over UTF-16 code units), as an unsigned 32-bit int."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h


def java_hashmap_order(names: list[str]) -> list[str]:
    """The iteration order of a ``java.util.HashMap`` holding `names`, inserted in this order.

    The reference client keeps its parameters in a HashMap and signs them in its iteration
    order: bucket index (the spread hash ``h ^ (h >>> 16)`` masked by the table size, 16 and
    doubling past a load of 0.75), then insertion order inside a bucket. Java 8 turns a bucket
    into a tree only past 8 entries, which a handful of headers never reaches.
    """
    # Every call of one operation has the same names: the order is worked out once per set.
    return list(_hashmap_order(tuple(names)))


@functools.lru_cache(maxsize=256)
def _hashmap_order(names: tuple[str, ...]) -> tuple[str, ...]:
    size = 16
    while len(names) > size * 0.75:
        size *= 2
    buckets: dict[int, list[str]] = {}
    for name in names:
        h = java_string_hash(name)
        buckets.setdefault((h ^ (h >> 16)) & (size - 1), []).append(name)
    return tuple(name for index in sorted(buckets) for name in buckets[index])


def hex_without_padding(digest: bytes) -> str:
    """Each byte as hex without zero padding (Java's ``Integer.toHexString(b & 0xff)``).

    The reference client writes `hash-file` this way: 57 to 64 characters, equal to the standard
    hex only when no byte is below 0x10.
    """
    return "".join(map(_UNPADDED_HEX.__getitem__, digest))


_UNPADDED_HEX = tuple(format(b, "x") for b in range(256))


def hmac_hex(secret: str, text: str) -> str:
    # hmac.digest: the one-shot C path, the same bytes as hmac.new(...).digest().
    return hmac.digest(secret.encode("utf-8"), text.encode("utf-8"), "sha256").hex()


DIALECTS = ("reference", "standard")


def sign_headers(*, systemid: str, secret: str, now: datetime, content_type: str,
                 params: Mapping[str, str] | None = None, dialect: str = "standard",
                 content_type_first: bool = False,
                 late_params: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build the complete, fresh header map of one request (insertion-ordered).

    `params` are the call's own headers (`from`, `docId`, ...). `dialect` "standard" sends every
    entry plain and prefixed, in the order systemid, timestamp, Content-Type, params;
    "reference" sends the prefixed entries only (and a plain Content-Type, first when
    `content_type_first`, as the reference client does for an upload, else next to its prefixed
    copy), in Java HashMap order. `late_params` are put into the map after timestamp and
    Content-Type (the reference client adds updateStatus's `status` last, which decides its
    place in a HashMap bucket it shares with those two). Raises ValueError for a header name
    that is not a token or a value that is not printable ASCII.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown wire dialect {dialect!r}")
    stamp = format_timestamp(now)
    params = params or {}
    late = late_params or {}
    # What depends only on the names (their order on the wire, the duplicate and token checks)
    # is worked out once per set of names: every call of one operation has the same set.
    order, prefixed, key_list, bad_name = _plan(dialect, tuple(params), tuple(late))
    values = {"systemid": systemid, "timestamp": stamp, "Content-Type": content_type,
              **params, **late}
    signed: dict[str, str] = {}
    for i, name in enumerate(order):
        if i == bad_name:
            raise ValueError(f"header name {name!r} is not an HTTP token")
        value = values[name]
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"value of header {name!r} is not printable ASCII")
        signed[prefixed[i]] = value
    if bad_name is not None:    # a bad name is always one of `order`: unreachable
        raise AssertionError(bad_name)
    text = _JSON_ASCII.encode(signed)
    if dialect == "reference":
        headers: dict[str, str] = {"Content-Type": content_type} if content_type_first else {}
        for name, pname in zip(order, prefixed):
            if name == "Content-Type" and not content_type_first:
                headers["Content-Type"] = content_type
            headers[pname] = signed[pname]
    else:
        headers = {name: signed[pname] for name, pname in zip(order, prefixed)}
        headers.update(signed)
    headers[SIGN_HEADER_KEY] = key_list
    headers[SIGN_HEADER] = text
    headers[HASH_HEADER] = hmac_hex(secret, text)
    headers[VERSION_HEADER] = VERSION
    return headers


#: `json.dumps(..., separators=(",", ":"), ensure_ascii=True)`, its encoder made once.
_JSON_ASCII = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


@functools.lru_cache(maxsize=256)
def _plan(dialect: str, params: tuple[str, ...], late: tuple[str, ...]
          ) -> tuple[tuple[str, ...], tuple[str, ...], str, int | None]:
    """For one set of names: their order in the signed map, the prefixed names, the key list,
    and the index (in that order) of the first name that is not an HTTP token, if any. Raises
    ValueError for a name given twice (case-insensitively), naming the first repeat."""
    seen = {"systemid", "timestamp", "content-type"}
    for name in (*params, *late):
        folded = name.lower()
        if folded in seen:
            raise ValueError(f"header {name!r} given twice")
        seen.add(folded)
    late_set = set(late)
    if dialect == "reference":
        # The reference client fills its map with systemid, the call's own parameters, then
        # timestamp and Content-Type (and updateStatus's late `status`); only the HashMap's
        # iteration order reaches the wire.
        names = ("systemid", *(n for n in params if n not in late_set), "timestamp",
                 "Content-Type", *late)
        order = tuple(java_hashmap_order(list(names)))
    else:
        order = ("systemid", "timestamp", "Content-Type", *params,
                 *(n for n in late if n not in params))
    bad = next((i for i, name in enumerate(order) if not _HEADER_NAME_RE.match(name)), None)
    return order, tuple(PREFIX + name for name in order), ";".join(order), bad


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


def _count(headers: Mapping[str, str], name: str) -> int:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return len(getall(name, []))
    return 1 if name in headers else 0


def verify_headers(headers: Mapping[str, str], *, secret_for: Callable[[str], str | None],
                   now: datetime, window_seconds: float,
                   max_age_seconds: float | None = None) -> VerifiedHeaders:
    """Check a request's signature headers; `headers` must be a case-insensitive mapping (a
    multidict, so that a header sent twice is seen twice).

    A timestamp may lie `window_seconds` either side of `now`; with `max_age_seconds`, one in
    the past is accepted up to that age (the reference client fixes its timestamp when its
    service object is built and reuses the object for minutes).
    """
    for name in (SIGN_HEADER, SIGN_HEADER_KEY, HASH_HEADER):
        if _count(headers, name) > 1:
            raise AuthFailure("duplicate_header", f"header {name} sent more than once")
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
        # A second copy of a parameter would let a proxy or a server that reads the last one
        # act on a value nobody signed.
        if _count(headers, PREFIX + name) > 1 or _count(headers, name) > 1:
            raise AuthFailure("duplicate_header", f"header {PREFIX + name} (or its plain copy) "
                              "sent more than once")
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
    age = (now - moment).total_seconds()
    skew = abs(age)
    if skew > window_seconds and not (max_age_seconds is not None and 0 < age <= max_age_seconds):
        raise AuthFailure("stale_timestamp",
                          f"timestamp {stamp} is {skew:.0f} s away from server time "
                          f"(window {window_seconds:.0f} s)")
    return VerifiedHeaders(systemid=systemid, timestamp=moment,
                           entries=tuple((n, signed[PREFIX + n]) for n in names))
