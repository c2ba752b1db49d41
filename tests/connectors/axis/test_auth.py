"""Header signing and verification (connectors/axis/auth.py) against the documented recipe,
and what the client actually puts on the wire."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from connectors.axis import AxisClient, AxisClientConfig
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
