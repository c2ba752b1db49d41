"""Properties of the whole outbound handler: whatever an agency's software puts in a record,
`OutboundPipeline.handle` returns (never raises: one record cannot stop the gateway), and a
package reaches the axis only if it is exactly what the event asked for, signed for the agency
the event is from, with only that agency's own files attached.

The handler runs with its real collaborators (tests/gateway/outbound_harness.py): the run's
Kafka broker, the axis simulator over HTTP, signing worker processes and the file store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors.cloudevents import KafkaRecord
from edxml.model import DocumentPackage, StatusPackage
from edxml.reader import read_package_bytes
from gateway import events
from tests.gateway.outbound_harness import (AGENCIES, H55, RECIPIENT, SO_NOI_VU,
                                            OutboundHarness, document)

SENDERS = [organ_id for organ_id, _ in AGENCIES]
FILES = {H55: [b"%PDF-1.7 van ban UBND\n" * 40, b"noi dung tep goc\n"],
         SO_NOI_VU: [b"%PDF-1.7 So Noi vu\n" * 10]}
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                    HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def harness(kafka_settings, tmp_path_factory) -> OutboundHarness:
    h = OutboundHarness(tmp_path_factory.mktemp("outbound-properties"), kafka_settings)
    for organ_id, contents in FILES.items():
        for i, content in enumerate(contents):
            (h.root(organ_id) / f"f{i}.pdf").write_bytes(content)
    yield h
    h.close()


# -- what goes in ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner,
                                                                 max_size=5),
    max_leaves=20)
header_names = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time",
                                "ce_subject", "ce_agency", "ce_dataschema", "content-type",
                                "ce_x", "CE_ID", "traceparent"])
header_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"1.0", events.DOCUMENT_SEND.encode(), events.RECEIPT_SEND.encode(),
                     H55.encode(), SO_NOI_VU.encode(), b"application/json",
                     b"application/cloudevents+json", b"0001-01-01T00:00:00+07:00",
                     b"9999-12-31T23:59:59-12:00", b"2026-11-25T09:00:00+07:00"]),
    st.builds(lambda n: b"x" * n, st.integers(min_value=150, max_value=5000)))
times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=7)),
                                            timezone(timedelta(hours=-12)),
                                            timezone(timedelta(hours=14))]))
    .map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+07:00", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-12:00", "not a time", "2026-11-25", ""]),
    st.sampled_from(["0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-12:00"]))

usual_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                           timezones=st.just(timezone(timedelta(hours=7)))).map(
    lambda d: d.isoformat())
plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Co", "Cn")),
                     min_size=1, max_size=80).filter(lambda t: t.strip() != "")


def _own_file(organ_id: str, index: int) -> dict[str, Any]:
    content = FILES[organ_id][index]
    return {"content_id": f"{organ_id[-3:]}{index}", "attachment_name": f"f{index}.pdf",
            "content_type": "application/pdf", "uri": "", "sha256":
            hashlib.sha256(content).hexdigest(), "size": len(content), "_file": (organ_id, index)}


@st.composite
def attachment_refs(draw: st.DrawFn, harness_root: Any) -> dict[str, Any]:
    """An attachment reference: an agency's own file (right or wrong claim), another agency's
    file, a signing key, the archive, a path outside everything, or nonsense."""
    owner = draw(st.sampled_from(SENDERS))
    ref = _own_file(owner, draw(st.integers(0, len(FILES[owner]) - 1)))
    ref["uri"] = (harness_root(owner) / ref["attachment_name"]).as_uri()
    twist = draw(st.sampled_from(["none"] * 14 + ["size", "sha", "key", "outside", "text",
                                                  "dotdot"]))
    if twist == "size":
        ref["size"] = draw(st.integers(min_value=0, max_value=1 << 41))
    elif twist == "sha":
        ref["sha256"] = draw(st.text(alphabet="0123456789abcdefABCDEF", min_size=64,
                                     max_size=64))
    elif twist == "key":
        ref["uri"] = "KEY"
    elif twist == "outside":
        ref["uri"] = "file:///etc/passwd"
    elif twist == "text":
        ref["uri"] = draw(st.text(max_size=60))
    elif twist == "dotdot":
        ref["uri"] = (harness_root(owner) / ".." / owner / ref["attachment_name"]).as_uri()
    return ref


@st.composite
def agency_records(draw: st.DrawFn, harness: OutboundHarness) -> tuple[list, bytes | None, Any]:
    """Headers and value of a record that is a valid event of a configured agency, more or less
    damaged: the shape agency software really produces, with hostile parts."""
    sender = draw(st.sampled_from(SENDERS * 4 + ["000.00.09.H55"]))
    kind = draw(st.sampled_from([events.DOCUMENT_SEND, events.RECEIPT_SEND]))
    if kind == events.DOCUMENT_SEND:
        data: Any = document(sender, number=str(draw(st.integers(1, 10 ** 6))),
                             subject=draw(st.sampled_from(["plain"] * 5 + ["any"]).flatmap(
                                 lambda kind: plain_text if kind == "plain"
                                 else st.text(min_size=1, max_size=80))))
        refs = draw(st.lists(attachment_refs(harness.root), max_size=2))
        for ref in refs:
            if ref["uri"] == "KEY":
                ref["uri"] = Path(harness.pki.agencies[H55].key).as_uri()
        data["attachments"] = [{k: v for k, v in r.items() if k != "_file"} for r in refs]
    else:
        data = {"message_header": {
            "from": {"organ_id": sender},
            "response_for": {"organ_id": RECIPIENT, "code": "12/UBND-VP",
                             "promulgation_date": "2026-11-25",
                             "document_id": f"{RECIPIENT},2026/11/25,12/UBND-VP"},
            "status_code": draw(st.sampled_from(["01", "03", "05", "06", "99"])),
            "description": draw(plain_text)}}
    if draw(st.integers(0, 3)) == 0:
        # Damage the data somewhere: a value replaced by an arbitrary JSON value.
        path = draw(st.sampled_from([("secrecy",), ("message_header", "from"),
                                     ("message_header", "subject"), ("message_header", "to"),
                                     ("attachments",), ("message_header", "status_code"),
                                     ("extra",)]))
        target = data
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[path[-1]] = draw(json_values)
    event_id = draw(st.sampled_from(["short"] * 5 + ["huge"]).flatmap(
        lambda size: st.text(min_size=1, max_size=30) if size == "short"
        else st.builds(lambda n: "i" * n, st.integers(150, 700_000))))
    if len(event_id) < 150 and draw(st.integers(0, 3)) > 0:
        # Mostly a fresh id (the sending path); sometimes one used before (the ledger's).
        event_id = f"{event_id[:100]}-{uuid.uuid4().hex}"
    headers = [("ce_specversion", b"1.0"),
               ("ce_id", event_id.encode("utf-8", "surrogatepass")),
               ("ce_source", b"urn:qlvb:test"), ("ce_type", kind.encode())]
    if draw(st.booleans()):
        moment = draw(st.sampled_from(["usual", "hostile"]).flatmap(
            lambda kind: usual_times if kind == "usual" else times))
        headers.append(("ce_time", moment.encode()))
    agency = draw(st.sampled_from([sender] * 6 + [None, H55, SO_NOI_VU, "x" * 2000]))
    if agency is not None:
        headers.append(("ce_agency", agency.encode()))
    value = json.dumps(data, ensure_ascii=False).encode()
    return headers, value, data


# -- what may come out ------------------------------------------------------------------------

def _check_sent(harness: OutboundHarness, before: int, headers: list, data: Any) -> None:
    """At most one package per record, and only one that is exactly what the event asked."""
    packages = harness.sent_packages()[before:]
    assert len(packages) <= 1
    event("sent a package" if packages else "sent nothing")
    if not packages:
        return
    attrs = {k: v for k, v in headers}
    ce_type = attrs.get("ce_type", b"").decode()
    assert ce_type in (events.DOCUMENT_SEND, events.RECEIPT_SEND)
    assert isinstance(data, dict)
    sender = data["message_header"]["from"]["organ_id"]
    assert sender in SENDERS, "sent for an agency this gateway does not serve"
    if "ce_agency" in attrs:
        assert attrs["ce_agency"].decode() == sender
    result = read_package_bytes(packages[0], harness.dir / "read")
    package = result.package
    assert package.message_header.from_.organ_id == sender
    if ce_type == events.RECEIPT_SEND:
        assert isinstance(package, StatusPackage)
        assert package.message_header.status_code.value == data["message_header"]["status_code"]
        return
    assert isinstance(package, DocumentPackage)
    assert data["secrecy"] == "none"
    assert package.message_header.subject == data["message_header"]["subject"]
    assert [o.organ_id for o in package.message_header.to] == [RECIPIENT]
    claimed = data.get("attachments", [])
    assert len(result.attachments) == len(claimed)
    for report, ref in zip(result.attachments, claimed):
        assert report.ok and report.attachment.sha256 == ref["sha256"].lower()
        # Only the sender's own files, exactly as they are on disk.
        assert ref["uri"].startswith(harness.root(sender).as_uri() + "/")
        own = {hashlib.sha256(c).hexdigest() for c in FILES[sender]}
        assert report.attachment.sha256 in own


def _valid_receipt(sender: str) -> dict[str, Any]:
    return {"message_header": {
        "from": {"organ_id": sender},
        "response_for": {"organ_id": RECIPIENT, "code": "12/UBND-VP",
                         "promulgation_date": "2026-11-25",
                         "document_id": f"{RECIPIENT},2026/11/25,12/UBND-VP"},
        "status_code": "03", "description": "Đã tiếp nhận"}}


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[list, bytes | None, Any]:
    """A valid receipt.send or document.send record of a configured agency, often with a
    hostile ce_time, up to two of its headers set to arbitrary values, removed or added, and
    sometimes an arbitrary JSON value instead of its data."""
    sender = draw(st.sampled_from(SENDERS))
    kind = draw(st.sampled_from([events.RECEIPT_SEND, events.DOCUMENT_SEND]))
    data: Any = _valid_receipt(sender) if kind == events.RECEIPT_SEND else document(
        sender, number=uuid.uuid4().hex[:8])
    headers = {"ce_specversion": b"1.0", "ce_id": uuid.uuid4().hex.encode(),
               "ce_source": b"urn:qlvb:test", "ce_type": kind.encode(),
               "ce_agency": sender.encode(), "ce_time": b"2026-11-25T09:00:00+07:00"}
    if draw(st.booleans()):
        headers["ce_time"] = draw(times).encode()
    for _ in range(draw(st.integers(0, 2))):
        name = draw(header_names)
        if draw(st.integers(0, 4)) == 0:
            headers.pop(name, None)
        else:
            headers[name] = draw(times).encode() if name == "ce_time" else draw(header_values)
    if draw(st.integers(0, 9)) == 0:
        data = draw(json_values)
    value = None if data is None else json.dumps(data).encode()
    return list(headers.items()), value, data


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(header_names, header_values), max_size=8),
       st.none() | st.binary(max_size=200) | json_values.map(
           lambda v: json.dumps(v).encode()))
def test_any_record_ends_without_an_exception(harness: OutboundHarness, headers: list,
                                              value: bytes | None) -> None:
    before = len(harness.sent_packages())
    harness.handle(harness.record(headers=headers, value=value))
    try:
        data = json.loads(value) if value else None
    except ValueError:
        data = None
    _check_sent(harness, before, headers, data)


@PROPERTY_SETTINGS
@given(mutated_records())
def test_any_headers_on_a_valid_event_end_without_an_exception(
        harness: OutboundHarness, record: tuple[list, bytes | None, Any]) -> None:
    headers, value, data = record
    before = len(harness.sent_packages())
    harness.handle(harness.record(headers=headers, value=value))
    _check_sent(harness, before, headers, data)


@PROPERTY_SETTINGS
@given(st.data())
def test_an_agencys_damaged_events_never_send_anything_but_what_they_ask(
        harness: OutboundHarness, data: st.DataObject) -> None:
    headers, value, event_data = data.draw(agency_records(harness))
    before = len(harness.sent_packages())
    harness.handle(harness.record(headers=headers, value=value))
    _check_sent(harness, before, headers, event_data)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(sender=st.sampled_from(SENDERS), subject=plain_text,
       files=st.lists(st.integers(0, 1), max_size=2, unique=True),
       moment=st.none() | usual_times)
def test_a_valid_event_is_sent_as_exactly_the_package_it_describes(
        harness: OutboundHarness, sender: str, subject: str, files: list[int],
        moment: str | None) -> None:
    refs = []
    for index in files:
        if index >= len(FILES[sender]):
            continue
        ref = _own_file(sender, index)
        ref.pop("_file")
        ref["uri"] = (harness.root(sender) / ref["attachment_name"]).as_uri()
        refs.append(ref)
    data = document(sender, number=uuid.uuid4().hex[:8], subject=subject, attachments=refs)
    headers = [("ce_specversion", b"1.0"), ("ce_id", uuid.uuid4().hex.encode()),
               ("ce_source", b"urn:qlvb:test"), ("ce_type", events.DOCUMENT_SEND.encode()),
               ("ce_agency", sender.encode())]
    if moment is not None:
        headers.append(("ce_time", moment.encode()))
    before = len(harness.sent_packages())
    harness.handle(harness.record(headers=headers, value=json.dumps(data).encode()))
    assert len(harness.sent_packages()) == before + 1
    _check_sent(harness, before, headers, data)
