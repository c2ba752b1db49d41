"""Inputs the fuzzers (fuzz/) found: each must end in the module's own error, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.cloudevents import CloudEvent, KafkaRecord
from edxml.errors import GatewayError
from gateway import events

DATA = Path(__file__).resolve().parents[1] / "data" / "fuzz-regressions"


def _record(data: bytes) -> KafkaRecord:
    # the layout of fuzz/fuzz_events.py: first byte selects type and mode
    selector, value = data[0], data[1:]
    types = (events.DOCUMENT_SEND, events.RECEIPT_SEND, "x")
    headers = (("ce_specversion", b"1.0"), ("ce_id", b"fuzz"), ("ce_source", b"urn:qlvb:fuzz"),
               ("ce_type", types[selector % 3].encode()), ("content-type", b"application/json"))
    if selector & 0x40:
        headers += (("ce_agency", b"000.00.00.H55"),)
    return KafkaRecord(b"k", value, headers)


def test_an_event_with_a_5000_digit_integer_is_refused_as_not_json() -> None:
    data = (DATA / "events-huge-integer.bin").read_bytes()
    with pytest.raises(GatewayError) as err:
        CloudEvent.from_record(_record(data))
    assert err.value.reason == "event.json"
