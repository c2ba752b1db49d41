"""CloudEvents <-> Kafka record mapping, without a broker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.cloudevents import REASONS, CloudEvent, EnvelopeError, KafkaRecord

ICT = timezone(timedelta(hours=7))


def sample_event(**overrides: object) -> CloudEvent:
    fields: dict[str, object] = dict(
        id="0f8e2a6c-2f5e-4c55-9d41-5b1f3b0f2a10", source="urn:edoc:agency:000.00.00.G22",
        type="vn.gov.edoc.document.outbound.v1", subject="DOC-2024-0001",
        time=datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=ICT),
        data={"documentId": "DOC-2024-0001", "trichYeu": "Về việc báo cáo tháng 5", "pages": 3},
        extensions={"agency": "000.00.00.G22", "traceparent": "00-abc-def-01"})
    fields.update(overrides)
    return CloudEvent(**fields)  # type: ignore[arg-type]


def test_binary_mode_puts_attributes_in_ce_headers_and_data_in_value() -> None:
    record = sample_event().to_record(key="DOC-2024-0001")
    headers = dict(record.headers)
    assert record.key == b"DOC-2024-0001"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == b"0f8e2a6c-2f5e-4c55-9d41-5b1f3b0f2a10"
    assert headers["ce_source"] == b"urn:edoc:agency:000.00.00.G22"
    assert headers["ce_type"] == b"vn.gov.edoc.document.outbound.v1"
    assert headers["ce_subject"] == b"DOC-2024-0001"
    assert headers["ce_time"] == b"2024-05-17T09:30:15.123000+07:00"
    assert headers["ce_agency"] == b"000.00.00.G22"
    assert headers["content-type"] == b"application/json"
    assert json.loads(record.value) == sample_event().data
    assert "Về việc".encode() in record.value  # UTF-8, not \\u escapes


def test_binary_record_reads_back_as_the_same_event() -> None:
    event = sample_event()
    assert CloudEvent.from_record(event.to_record(key=b"k")) == event


def test_utc_time_is_written_with_z_suffix() -> None:
    record = sample_event(time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)).to_record()
    assert dict(record.headers)["ce_time"] == b"2024-01-02T03:04:05Z"


def test_key_defaults_to_partitionkey_extension() -> None:
    event = sample_event(extensions={"partitionkey": "DOC-9"})
    assert event.to_record().key == b"DOC-9"
    assert event.to_record(key=b"explicit").key == b"explicit"


def test_event_without_data_has_no_value_and_no_content_type() -> None:
    record = sample_event(data=None).to_record()
    assert record.value is None
    assert "content-type" not in dict(record.headers)
    assert CloudEvent.from_record(record).data is None


def test_structured_mode_record_is_decoded() -> None:
    event = sample_event()
    structured = event.to_structured_record(key="DOC-2024-0001")
    assert dict(structured.headers) == {"content-type": b"application/cloudevents+json"}
    assert CloudEvent.from_record(structured) == event


def test_structured_mode_integer_and_boolean_extensions_become_strings() -> None:
    value = json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t",
                        "attempt": 3, "replay": True, "data": {"a": 1}}).encode()
    event = CloudEvent.from_record(KafkaRecord(
        key=None, value=value,
        headers=(("content-type", b"application/cloudevents+json; charset=utf-8"),)))
    assert dict(event.extensions) == {"attempt": "3", "replay": "true"}
    assert event.data == {"a": 1}


def test_non_ce_headers_are_ignored() -> None:
    record = sample_event().to_record()
    noisy = KafkaRecord(record.key, record.value,
                        record.headers + (("traceparent-x", b"\xff\xfe"), ("retry", b"2")))
    assert CloudEvent.from_record(noisy) == sample_event()


def _without(record: KafkaRecord, name: str) -> KafkaRecord:
    return KafkaRecord(record.key, record.value, tuple(h for h in record.headers if h[0] != name))


def _replace(record: KafkaRecord, name: str, value: bytes) -> KafkaRecord:
    return KafkaRecord(record.key, record.value,
                       tuple((n, value if n == name else v) for n, v in record.headers))


def _reason(record: KafkaRecord) -> str:
    with pytest.raises(EnvelopeError) as caught:
        CloudEvent.from_record(record)
    assert caught.value.transient is False
    return caught.value.reason


@pytest.mark.parametrize("header", ["ce_id", "ce_source", "ce_type", "ce_specversion"])
def test_missing_required_header_is_an_envelope_error(header: str) -> None:
    assert _reason(_without(sample_event().to_record(), header)) == "event.envelope"


@pytest.mark.parametrize("header,value", [
    ("ce_specversion", b"0.3"),
    ("ce_id", b""),
    ("ce_time", b"yesterday"),
    ("ce_time", b"2024-05-17T09:30:15"),   # no offset
    ("ce_time", b"2024-05-17"),            # a date is not a date-time
    ("ce_source", b"\xc3\x28"),            # not UTF-8
])
def test_invalid_envelope_header_is_an_envelope_error(header: str, value: bytes) -> None:
    assert _reason(_replace(sample_event().to_record(), header, value)) == "event.envelope"


def test_repeated_ce_header_is_an_envelope_error() -> None:
    record = sample_event().to_record()
    doubled = KafkaRecord(record.key, record.value, record.headers + (("ce_id", b"other"),))
    assert _reason(doubled) == "event.envelope"


def test_record_without_any_ce_header_is_an_envelope_error() -> None:
    assert _reason(KafkaRecord(b"k", b'{"a": 1}', ())) == "event.envelope"


@pytest.mark.parametrize("value", [b"{not json", b"\xff\xfe{}", b'{"a": 1', b"[" * 100_000])
def test_value_that_is_not_json_is_a_json_error(value: bytes) -> None:
    record = sample_event().to_record()
    assert _reason(KafkaRecord(record.key, value, record.headers)) == "event.json"


def test_non_json_content_type_is_a_content_type_error() -> None:
    record = _replace(sample_event().to_record(), "content-type", b"application/xml")
    assert _reason(KafkaRecord(record.key, b"<a/>", record.headers)) == "event.content_type"


def test_structured_event_with_base64_data_is_a_content_type_error() -> None:
    value = json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t",
                        "data_base64": "AAEC"}).encode()
    record = KafkaRecord(None, value, (("content-type", b"application/cloudevents+json"),))
    assert _reason(record) == "event.content_type"


def test_structured_event_that_is_not_an_object_is_an_envelope_error() -> None:
    record = KafkaRecord(None, b"[1, 2]", (("content-type", b"application/cloudevents+json"),))
    assert _reason(record) == "event.envelope"


@pytest.mark.parametrize("name", ["Agency", "data", "id", "with_underscore", ""])
def test_invalid_extension_name_is_refused_when_building(name: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        sample_event(extensions={name: "x"})
    assert caught.value.reason == "event.envelope"


def test_naive_time_is_refused_when_building() -> None:
    with pytest.raises(EnvelopeError):
        sample_event(time=datetime(2024, 5, 17, 9, 30))


def test_event_is_immutable() -> None:
    event = sample_event()
    with pytest.raises(AttributeError):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.extensions["agency"] = "other"  # type: ignore[index]


def test_every_reason_raised_is_documented() -> None:
    assert set(REASONS) == {"event.envelope", "event.json", "event.content_type",
                            "event.too_large"}


def _binary(**overrides: bytes) -> KafkaRecord:
    headers = {"ce_specversion": b"1.0", "ce_id": b"e-1", "ce_source": b"urn:test",
               "ce_type": b"vn.gov.edoc.receipt.send.v1", **overrides}
    return KafkaRecord(b"k", b"{}", tuple(headers.items()))


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-12:00",
                                    "1899-12-31T23:59:59Z", "2201-01-01T00:00:00Z"])
def test_time_outside_the_years_1900_2200_is_an_envelope_error(moment: str) -> None:
    # Year 1 in +07:00 is before datetime.min in UTC: it used to come through and overflow
    # later, in date arithmetic, outside any error handling.
    assert _reason(_binary(ce_time=moment.encode())) == "event.envelope"


@pytest.mark.parametrize("moment", ["1900-01-01T00:00:00+07:00", "2200-12-31T23:59:59Z"])
def test_time_at_the_edges_of_the_bounds_is_accepted(moment: str) -> None:
    assert CloudEvent.from_record(_binary(ce_time=moment.encode())).time is not None


def test_huge_id_is_refused_before_it_is_decoded() -> None:
    # 600 KB of an id that is not even UTF-8: the size is checked first, on the raw bytes.
    assert _reason(_binary(ce_id=b"\xff" * 600_000)) == "event.too_large"
    assert _reason(_binary(ce_id=b"a" * 201)) == "event.too_large"
    assert CloudEvent.from_record(_binary(ce_id=b"a" * 200)).id == "a" * 200


def test_huge_attributes_and_too_many_headers_are_refused() -> None:
    assert _reason(_binary(ce_subject=b"s" * 1001)) == "event.too_large"
    assert _reason(_binary(ce_agency=b"s" * 5000)) == "event.too_large"
    many = tuple((f"x-{i}", b"") for i in range(65))
    assert _reason(KafkaRecord(b"k", b"{}", _binary().headers + many)) == "event.too_large"
    structured = json.dumps({"specversion": "1.0", "id": "i" * 300, "source": "s",
                             "type": "t"}).encode()
    assert _reason(KafkaRecord(None, structured, (("content-type",
                                                  b"application/cloudevents+json"),))) \
        == "event.too_large"


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
attr_text = st.text(min_size=1, max_size=40)
timestamps = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                          timezones=st.sampled_from([timezone.utc, ICT,
                                                     timezone(timedelta(hours=-5, minutes=-30))]))
extension_names = st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True).filter(
    lambda n: n not in {"id", "source", "type", "time", "subject", "dataschema", "specversion",
                        "datacontenttype", "data"})


@st.composite
def events(draw: st.DrawFn) -> CloudEvent:
    return CloudEvent(id=draw(attr_text), source=draw(attr_text), type=draw(attr_text),
                      data=draw(st.none() | json_values.filter(lambda v: v is not None)),
                      time=draw(st.none() | timestamps), subject=draw(st.none() | attr_text),
                      extensions=draw(st.dictionaries(extension_names, st.text(max_size=20),
                                                      max_size=3)))


@given(events(), st.none() | st.binary(max_size=16))
def test_any_event_survives_binary_round_trip(event: CloudEvent, key: bytes | None) -> None:
    record = event.to_record(key=key)
    assert CloudEvent.from_record(record) == event
    assert record.key == (key if key is not None else
                          event.extensions.get("partitionkey", "").encode() or None)


@given(events())
def test_any_event_survives_structured_round_trip(event: CloudEvent) -> None:
    assert CloudEvent.from_record(event.to_structured_record()) == event


@given(st.none() | st.binary(max_size=64), st.none() | st.binary(max_size=256),
       st.lists(st.tuples(st.sampled_from(["ce_id", "ce_source", "ce_type", "ce_specversion",
                                           "ce_time", "ce_x", "content-type", "other"]),
                          st.binary(max_size=40)), max_size=8))
def test_arbitrary_record_either_decodes_or_raises_envelope_error(
        key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    try:
        CloudEvent.from_record(KafkaRecord(key, value, tuple(headers)))
    except EnvelopeError as exc:
        assert exc.reason in REASONS


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)


def _outcome(encode, value):
    try:
        return ("ok", encode(value))
    except ValueError as exc:        # NaN and the infinities: refused by both
        return ("refused", type(exc), str(exc))


@given(_JSON_VALUES)
def test_the_encoders_made_once_write_what_json_dumps_writes(value: object) -> None:
    from connectors import cloudevents
    from gateway import audit, ledger

    assert _outcome(cloudevents._DATA_JSON.encode, value) == _outcome(
        lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False),
        value)
    assert _outcome(ledger._LEDGER_JSON.encode, value) == _outcome(
        lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")), value)
    if isinstance(value, dict):
        assert _outcome(audit.canonical_json, value) == _outcome(
            lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                 allow_nan=False).encode("utf-8"), value)
