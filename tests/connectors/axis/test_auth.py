"""Header signing and verification (connectors/axis/auth.py) against the documented recipe,
and what the client actually puts on the wire."""

from __future__ import annotations

import hashlib
import json
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from connectors.axis import AxisClient, AxisClientConfig
from connectors.axis import auth
from connectors.axis.auth import (AuthFailure, format_timestamp, hex_without_padding,
                                  java_hashmap_order, java_string_hash, parse_timestamp,
                                  sign_headers, verify_headers)

from .conftest import answering

FIXED = datetime(2026, 11, 25, 4, 5, 6, 789_000, tzinfo=timezone.utc)   # 11:05:06.789 in Hà Nội


def test_headers_and_hmac_follow_the_recipe_for_fixed_inputs():
    headers = sign_headers(systemid="00.55.W00", secret="s3cret-for-test", now=FIXED,
                           content_type="application/json", params={"docId": "abc-123"})

    signed_text = ('{"XroadVnpt-systemid":"00.55.W00","XroadVnpt-timestamp":"25112026T110506+0789",'
                   '"XroadVnpt-Content-Type":"application/json","XroadVnpt-docId":"abc-123"}')
    expected_mac = hmac.new(b"s3cret-for-test", signed_text.encode("utf-8"),
                            hashlib.sha256).hexdigest()
    assert headers == {
        "systemid": "00.55.W00",
        "timestamp": "25112026T110506+0789",
        "Content-Type": "application/json",
        "docId": "abc-123",
        "XroadVnpt-systemid": "00.55.W00",
        "XroadVnpt-timestamp": "25112026T110506+0789",
        "XroadVnpt-Content-Type": "application/json",
        "XroadVnpt-docId": "abc-123",
        "XroadVnpt-sign-header-key": "systemid;timestamp;Content-Type;docId",
        "XroadVnpt-sign-header": signed_text,
        "XroadVnpt-hash-header": expected_mac,
        "XroadVnpt-version": "3.0.201608",
    }


def test_timestamp_pads_milliseconds_to_four_digits_in_vietnam_time():
    moment = datetime(2026, 1, 2, 20, 30, 40, 7_000, tzinfo=timezone.utc)
    assert format_timestamp(moment) == "03012026T033040+0007"
    assert parse_timestamp("03012026T033040+0007") == moment


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 1, 1))


def test_each_request_gets_a_fresh_map_without_the_previous_calls_headers():
    first = sign_headers(systemid="S", secret="k", now=FIXED, content_type="application/octet-stream",
                         params={"from": "000.00.00.H55", "hash-file": "ab" * 32})
    second = sign_headers(systemid="S", secret="k", now=FIXED + timedelta(milliseconds=5),
                          content_type="application/json", params={"messagetype": "edoc"})
    assert "from" not in second and "XroadVnpt-hash-file" not in second
    assert second["XroadVnpt-sign-header-key"] == "systemid;timestamp;Content-Type;messagetype"
    assert first["timestamp"] != second["timestamp"]


def test_non_ascii_header_value_is_refused_before_sending():
    with pytest.raises(ValueError):
        sign_headers(systemid="S", secret="k", now=FIXED, content_type="application/json",
                     params={"from": "Sở Nội vụ"})


def _verify(headers, *, secret="k", now=FIXED, window=300.0):
    return verify_headers(CIMultiDict(headers), secret_for={"S": secret}.get, now=now,
                          window_seconds=window)


def _signed(**params):
    return sign_headers(systemid="S", secret="k", now=FIXED, content_type="application/json",
                        params=params)


def test_verifier_accepts_a_signed_request_and_exposes_signed_values():
    verified = _verify(_signed(docid="D1", status="done"))
    assert verified.systemid == "S"
    assert verified.get("DOCID") == "D1" and verified.get("status") == "done"


@pytest.mark.parametrize("mutate, kind", [
    (lambda h: h.update({"XroadVnpt-hash-header": "0" * 64}), "bad_hmac"),
    (lambda h: h.update({"XroadVnpt-sign-header": h["XroadVnpt-sign-header"].replace("D1", "D2")}),
     "bad_hmac"),
    (lambda h: h.update({"XroadVnpt-docid": "D2"}), "header_mismatch"),
    (lambda h: h.update({"docid": "D2"}), "header_mismatch"),
    (lambda h: h.update({"XroadVnpt-sign-header-key": "systemid;timestamp;Content-Type"}),
     "malformed"),
    (lambda h: h.pop("XroadVnpt-hash-header"), "missing"),
    (lambda h: h.update({"XroadVnpt-sign-header": "not json"}), "malformed"),
])
def test_verifier_refuses_tampered_headers(mutate, kind):
    headers = _signed(docid="D1")
    mutate(headers)
    with pytest.raises(AuthFailure) as info:
        _verify(headers)
    assert info.value.kind == kind


def test_verifier_refuses_wrong_secret_unknown_system_and_stale_timestamp():
    with pytest.raises(AuthFailure) as info:
        _verify(_signed(), secret="other")
    assert info.value.kind == "bad_hmac"
    with pytest.raises(AuthFailure) as info:
        verify_headers(CIMultiDict(_signed()), secret_for={}.get, now=FIXED, window_seconds=300)
    assert info.value.kind == "unknown_system"
    with pytest.raises(AuthFailure) as info:
        _verify(_signed(), now=FIXED + timedelta(seconds=301))
    assert info.value.kind == "stale_timestamp"
    assert _verify(_signed(), now=FIXED - timedelta(seconds=299)).systemid == "S"


async def test_client_in_the_standard_form_puts_exactly_the_signed_headers_on_the_wire():
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"status": "OK", "ErrorCode": "0", "ErrorDesc": "", "count": 7})

    async with answering(record, "/XrdAdapter/adapter") as url:
        config = AxisClientConfig(endpoint=url,
                                  systemid="00.55.W00", secret="s3cret-for-test",
                                  clock=lambda: FIXED, dialect="standard")
        async with AxisClient(config) as client:
            assert await client.count_receive_edoc() == 7

    text = ('{"XroadVnpt-systemid":"00.55.W00","XroadVnpt-timestamp":"25112026T110506+0789",'
            '"XroadVnpt-Content-Type":"application/json"}')
    (headers,) = seen
    for transport_header in ("Host", "Accept", "Accept-Encoding", "Content-Length"):
        headers.pop(transport_header, None)
    assert headers == {
        "systemid": "00.55.W00",
        "timestamp": "25112026T110506+0789",
        "Content-Type": "application/json",
        "XroadVnpt-systemid": "00.55.W00",
        "XroadVnpt-timestamp": "25112026T110506+0789",
        "XroadVnpt-Content-Type": "application/json",
        "XroadVnpt-sign-header-key": "systemid;timestamp;Content-Type",
        "XroadVnpt-sign-header": text,
        "XroadVnpt-hash-header": hmac.new(b"s3cret-for-test", text.encode(),
                                          hashlib.sha256).hexdigest(),
        "XroadVnpt-version": "3.0.201608",
        "User-Agent": "edoc-gateway",
    }


# -- the cached and table-driven forms against the plain definitions ---------------------------

def _hashmap_order_uncached(names: list[str]) -> list[str]:
    """java.util.HashMap's iteration order, worked out each time (the definition)."""
    size = 16
    while len(names) > size * 0.75:
        size *= 2
    buckets: dict[int, list[str]] = {}
    for name in names:
        h = java_string_hash(name)
        buckets.setdefault((h ^ (h >> 16)) & (size - 1), []).append(name)
    return [name for index in sorted(buckets) for name in buckets[index]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), max_size=20, unique=True))
def test_hashmap_order_is_the_definition_however_often_asked(names: list[str]) -> None:
    expected = _hashmap_order_uncached(names)
    assert java_hashmap_order(names) == expected
    assert java_hashmap_order(list(names)) == expected    # the second time from the cache


@given(st.binary(max_size=64))
def test_unpadded_hex_is_javas_to_hex_string_of_each_byte(digest: bytes) -> None:
    assert hex_without_padding(digest) == "".join(format(b, "x") for b in digest)



def _sign_headers_plain(*, systemid: str, secret: str, now: datetime, content_type: str,
                 params: Mapping[str, str] | None = None, dialect: str = "standard",
                 content_type_first: bool = False,
                 late_params: Mapping[str, str] | None = None) -> dict[str, str]:
    """`sign_headers` as it was first written, entry by entry: the definition."""
    if dialect not in auth.DIALECTS:
        raise ValueError(f"unknown wire dialect {dialect!r}")
    stamp = format_timestamp(now)
    if dialect == "reference":
        # The reference client fills its map with systemid, the call's own parameters, then
        # timestamp and Content-Type; only the HashMap's iteration order reaches the wire.
        entries: dict[str, str] = {"systemid": systemid}
        base = ("systemid", "timestamp", "Content-Type")
    else:
        entries = {"systemid": systemid, "timestamp": stamp, "Content-Type": content_type}
        base = ()
    late = dict(late_params or {})
    for name, value in [*(params or {}).items(), *late.items()]:
        if any(name.lower() == existing.lower() for existing in (*entries, *base)):
            raise ValueError(f"header {name!r} given twice")
        entries[name] = value
    if dialect == "reference":
        for name in late:
            entries[name] = entries.pop(name)
        entries = {"systemid": systemid, **{n: v for n, v in entries.items() if n not in late},
                   "timestamp": stamp, "Content-Type": content_type,
                   **{n: entries[n] for n in late}}
        entries = {name: entries[name] for name in java_hashmap_order(list(entries))}
    for name, value in entries.items():
        if not auth._HEADER_NAME_RE.match(name):
            raise ValueError(f"header name {name!r} is not an HTTP token")
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"value of header {name!r} is not printable ASCII")
    signed = {auth.PREFIX + name: value for name, value in entries.items()}
    text = json.dumps(signed, separators=(",", ":"), ensure_ascii=True)
    if dialect == "reference":
        headers: dict[str, str] = {"Content-Type": content_type} if content_type_first else {}
        for name, value in entries.items():
            if name == "Content-Type" and not content_type_first:
                headers["Content-Type"] = value
            headers[auth.PREFIX + name] = value
    else:
        headers = dict(entries)
        headers.update(signed)
    headers[auth.SIGN_HEADER_KEY] = ";".join(entries)
    headers[auth.SIGN_HEADER] = text
    headers[auth.HASH_HEADER] = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    headers[auth.VERSION_HEADER] = auth.VERSION
    return headers


_NAME = st.text(alphabet="abcdeFGT-_.:; Ăé", min_size=1, max_size=8) | st.sampled_from(
    ["from", "to", "docId", "DocId", "status", "hash-file", "servicetype", "messagetype",
     "timestamp", "Content-Type", "systemid", "SYSTEMID"])
_VALUE = st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=12) | st.text(
    alphabet="0123456789abcdef\"\\{}[],:", max_size=20)


@settings(max_examples=400, deadline=None)
@given(dialect=st.sampled_from(["reference", "standard"]),
       params=st.dictionaries(_NAME, _VALUE, max_size=6),
       late=st.dictionaries(_NAME, _VALUE, max_size=2),
       first=st.booleans(), systemid=_VALUE,
       content_type=st.sampled_from(["application/json", "application/octet-stream", "x\u00e9"]))
def test_sign_headers_writes_what_the_entry_by_entry_definition_writes(
        dialect, params, late, first, systemid, content_type):
    now = datetime(2026, 12, 2, 16, 0, 0, 123456, tzinfo=timezone.utc)
    outcomes = []
    for fn in (sign_headers, _sign_headers_plain):
        try:
            headers = fn(systemid=systemid, secret="bí mật", now=now, content_type=content_type,
                         params=params, dialect=dialect, content_type_first=first,
                         late_params=late or None)
        except ValueError as exc:
            outcomes.append(("error", str(exc)))
        else:
            outcomes.append(("ok", list(headers.items())))
    assert outcomes[0] == outcomes[1]
