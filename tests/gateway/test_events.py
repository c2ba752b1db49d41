"""The event contract: schemas, the checks on agencies' events, and the events the gateway emits."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.store import FileStore
from edxml.jsonform import package_from_dict
from edxml.reader import read_package_bytes
from edxml.writer import package_bytes
from gateway import events as ev
from gateway.config import DEFAULT_TOPICS, PER_AGENCY_TOPICS
from gateway.events import EventError

from tests.samples import sample

REPO = Path(__file__).resolve().parents[2]
VN = timezone(timedelta(hours=7))
T0 = datetime(2024, 5, 17, 9, 30, tzinfo=VN)
H55, G22, H41 = "000.00.00.H55", "000.00.00.G22", "000.00.00.H41"
DOC_ID = f"{H55},2024/05/17,1234/UBND-VP"
SOURCE = ev.gateway_source("00.55.W00")


def document_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "message_header": {
            "from": {"organ_id": H55, "organ_name": "UBND tỉnh Thái Nguyên"},
            "to": [{"organ_id": G22}],
            "code": {"code_number": "1234", "code_notation": "UBND-VP"},
            "promulgation_info": {"place": "Thái Nguyên", "promulgation_date": "2024-05-17"},
            "document_type": {"type": 1, "type_name": "Công văn"},
            "subject": "V/v báo cáo tình hình triển khai văn bản điện tử",
        },
        "attachments": [{"content_id": "1", "attachment_name": "1234-UBND-VP.pdf",
                         "content_type": "application/pdf",
                         "uri": "file:///srv/edoc/share/1234-UBND-VP.pdf",
                         "sha256": "A" * 64, "size": 3}],
        "secrecy": "none",
    }
    data.update(changes)
    return data


def receipt_data(code: str = "03", *, sender: str = G22, original_sender: str = H55,
                 **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"message_header": {
        "from": {"organ_id": sender},
        "response_for": {"organ_id": original_sender, "code": "1234/UBND-VP",
                         "promulgation_date": "2024-05-17", "document_id": DOC_ID},
        "status_code": code, "description": "Đã tiếp nhận"}}
    data.update(changes)
    return data


def event(event_type: str, data: Any, *, agency: str | None = None,
          time: datetime | None = T0, id: str = "evt-1") -> CloudEvent:
    return CloudEvent(id=id, source="urn:qlvb:test", type=event_type, data=data, time=time,
                      extensions={"agency": agency} if agency else {})


def parse(ce: CloudEvent, agencies: set[str] | None = None, **kwargs: Any) -> ev.Outbound:
    return ev.parse_incoming(ce, agencies=agencies if agencies is not None else {H55, G22},
                             **kwargs)


def refused(ce: CloudEvent, **kwargs: Any) -> EventError:
    with pytest.raises(EventError) as caught:
        parse(ce, **kwargs)
    return caught.value


def assert_valid(ce: CloudEvent) -> None:
    ev.validate_data(ce.type, ce.data)
    assert ce.dataschema in (None, ev.schema_id(ce.type))


# -- the schema files --------------------------------------------------------------------------

def test_every_event_type_has_one_valid_draft_2020_12_schema() -> None:
    files = sorted(p.name for p in (REPO / "schemas" / "events").glob("*.schema.json"))
    assert files == sorted(ev.schema_file_name(t) for t in ev.EVENT_TYPES)
    for event_type, schema in ev.load_schemas().items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == ev.schema_id(event_type)


def _properties(node: Any, where: str = "$") -> Any:
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            yield f"{where}.{name}", prop
        for key, value in node.items():
            if key in ("if", "then", "else", "not"):
                continue  # conditions restate fields described elsewhere
            if key != "properties" or not isinstance(value, dict):
                yield from _properties(value, f"{where}/{key}")
            else:
                for name, prop in value.items():
                    yield from _properties(prop, f"{where}.{name}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _properties(item, f"{where}[{i}]")


def test_every_field_in_every_schema_is_described_for_vendors() -> None:
    for event_type, schema in ev.load_schemas().items():
        assert schema.get("description"), event_type
        for def_name, definition in schema["$defs"].items():
            assert definition.get("description"), f"{event_type} $defs/{def_name}"
        for where, prop in _properties(schema):
            described = "description" in prop or set(prop) == {"$ref"}
            assert described, f"{event_type} {where} has no description"


def test_model_parts_of_the_schemas_follow_the_package_model() -> None:
    for event_type, schema in ev.load_schemas().items():
        if event_type not in ev._MODEL_PARTS:
            continue
        generated = ev.model_defs(event_type)
        assert {k: schema["$defs"][k] for k in generated} == generated, \
            f"run: python -m gateway.events sync-schemas ({event_type})"


def test_sync_rewrites_a_schema_whose_model_part_drifted(tmp_path: Path) -> None:
    for event_type in ev.EVENT_TYPES:
        name = ev.schema_file_name(event_type)
        (tmp_path / name).write_text((REPO / "schemas" / "events" / name).read_text("utf-8"),
                                     encoding="utf-8")
    assert ev.sync_schema_files(tmp_path) == []
    target = tmp_path / ev.schema_file_name(ev.RECEIPT_SEND)
    document = json.loads(target.read_text("utf-8"))
    del document["$defs"]["StatusHeader"]["properties"]["description"]
    target.write_text(json.dumps(document), encoding="utf-8")
    assert ev.sync_schema_files(tmp_path) == [target]
    assert json.loads(target.read_text("utf-8"))["$defs"]["StatusHeader"] == \
        ev.model_defs(ev.RECEIPT_SEND)["StatusHeader"]


# -- document.send -----------------------------------------------------------------------------

def test_a_document_send_becomes_an_outbound_document() -> None:
    item = parse(event(ev.DOCUMENT_SEND, document_data(), agency=H55))
    assert isinstance(item, ev.OutboundDocument)
    assert (item.sender, item.recipients, item.flow) == (H55, (G22,), "document")
    assert item.document_id == DOC_ID == item.key and item.message_header.document_id == DOC_ID
    assert (item.notation, item.title) == ("1234/UBND-VP", document_data()["message_header"]["subject"])
    ref = item.attachments[0]
    assert (ref.uri, ref.sha256, ref.size) == ("file:///srv/edoc/share/1234-UBND-VP.pdf", "a" * 64, 3)


def test_a_given_document_id_is_kept() -> None:
    data = document_data()
    data["message_header"]["document_id"] = "6f3e2b9c-0d1a-4e5f-8a7b-9c0d1e2f3a4b"
    item = parse(event(ev.DOCUMENT_SEND, data))
    assert item.document_id == "6f3e2b9c-0d1a-4e5f-8a7b-9c0d1e2f3a4b"


@pytest.mark.parametrize("secrecy", ["mat", "toi_mat", "tuyet_mat", "Mật", "", None])
def test_a_secret_document_is_refused_first_and_never_quoted(secrecy: Any) -> None:
    data = document_data(secrecy=secrecy)
    data["message_header"]["subject"] = "NỘI DUNG MẬT KHÔNG ĐƯỢC LỘ"
    data["message_header"]["to"] = "not even a list"  # schema errors come second
    err = refused(event(ev.DOCUMENT_SEND, data, agency=H55))
    assert err.reason == "event.secret_document"
    assert "NỘI DUNG" not in str(err) and "not even" not in str(err)


def test_a_document_without_a_secrecy_answer_is_a_schema_error() -> None:
    data = document_data()
    del data["secrecy"]
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert (err.reason, err.where) == ("event.schema", "$")
    assert err.message == "$: missing required key 'secrecy'"


def test_an_unknown_type_is_refused() -> None:
    err = refused(event("vn.gov.edoc.document.sent.v1", document_data()))
    assert err.reason == "event.type"


@pytest.mark.parametrize(("mutate", "where", "fragment"), [
    (lambda d: d["message_header"].update(subject=12345), "$.message_header.subject",
     "expected a string, got an integer"),
    (lambda d: d["message_header"].update(subjet="x"), "$.message_header",
     "unknown key(s) 'subjet'"),
    (lambda d: d["message_header"].update(to=[]), "$.message_header.to", "must not be empty"),
    (lambda d: d["message_header"]["promulgation_info"].update(promulgation_date="17/05/2024"),
     "$.message_header.promulgation_info.promulgation_date", "expected form"),
    (lambda d: d["attachments"][0].update(sha256="xyz"), "$.attachments[0].sha256",
     "expected form"),
    (lambda d: d["attachments"][0].pop("size"), "$.attachments[0]", "missing required key 'size'"),
    (lambda d: d.update(business={"business_doc_type": 7}), "$.business.business_doc_type",
     "must be at most 3"),
])
def test_schema_errors_name_the_json_path_without_quoting_the_data(mutate: Any, where: str,
                                                                   fragment: str) -> None:
    data = document_data()
    data["message_header"]["content"] = "TÓM TẮT NỘI DUNG"
    mutate(data)
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert (err.reason, err.where) == ("event.schema", where)
    assert err.message.startswith(f"{where}: ") and fragment in err.message
    assert "TÓM TẮT" not in err.message and "12345" not in err.message


def test_data_that_is_not_an_object_is_a_schema_error() -> None:
    assert refused(event(ev.DOCUMENT_SEND, ["a"])).message == "$: expected an object, got an array"


def test_a_sender_the_gateway_does_not_serve_is_refused() -> None:
    err = refused(event(ev.DOCUMENT_SEND, document_data()), agencies={G22})
    assert (err.reason, err.where) == ("event.unknown_sender", "$.message_header.from.organ_id")


def test_ce_agency_must_name_the_sender() -> None:
    err = refused(event(ev.DOCUMENT_SEND, document_data(), agency=G22))
    assert err.reason == "event.agency_mismatch"


def test_recipients_must_be_known_unique_and_well_formed() -> None:
    known = {G22, H41}.__contains__
    data = document_data()
    data["message_header"]["to"] = [{"organ_id": G22}, {"organ_id": "000.00.00.G99"}]
    err = refused(event(ev.DOCUMENT_SEND, data), known_recipient=known)
    assert err.reason == "event.unknown_recipient" and "000.00.00.G99" in err.message
    assert parse(event(ev.DOCUMENT_SEND, data)).recipients == (G22, "000.00.00.G99"), \
        "without a directory, recipients are not looked up"
    data["message_header"]["to"] = [{"organ_id": G22}, {"organ_id": G22}]
    err = refused(event(ev.DOCUMENT_SEND, data), known_recipient=known)
    assert (err.reason, err.where) == ("event.recipients", "$.message_header.to[1].organ_id")
    data["message_header"]["to"] = [{"organ_id": "28.22.H17"}]
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert (err.reason, err.where) == ("edxml.value.organ_id", "$.message_header.to[0].organ_id")


@pytest.mark.parametrize("uri", [
    "https://files.example.invalid/a.pdf",
    "s3://bucket/a.pdf",
    "file://fileserver/share/a.pdf",
    "file:relative/a.pdf",
    "file:///srv/a.pdf#page=2",
])
def test_attachment_references_must_be_local_file_uris(uri: str) -> None:
    data = document_data()
    data["attachments"][0]["uri"] = uri
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert (err.reason, err.where) == ("event.attachment_ref", "$.attachments[0].uri")


def test_a_content_id_used_twice_is_refused() -> None:
    data = document_data()
    data["attachments"].append(dict(data["attachments"][0], attachment_name="b.pdf"))
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert (err.reason, err.where) == ("event.attachment_ref", "$.attachments[1].content_id")


def test_model_errors_keep_the_model_reason() -> None:
    data = document_data()
    data["message_header"]["promulgation_info"]["promulgation_date"] = "2024-02-30"
    err = refused(event(ev.DOCUMENT_SEND, data))
    assert err.reason == "edxml.spec.invalid"
    assert err.where == "$.message_header.promulgation_info.promulgation_date"


@pytest.mark.parametrize(("business", "where"), [
    ({"business_doc_type": 1}, "$.business.document_id"),
    ({"business_doc_type": 2, "document_id": DOC_ID}, "$.business.business_document_info"),
    ({"business_doc_type": 3, "document_id": DOC_ID}, "$.business.replacement_info_list"),
])
def test_business_flows_must_say_what_they_target(business: dict[str, Any], where: str) -> None:
    err = refused(event(ev.DOCUMENT_SEND, document_data(business=business)))
    assert (err.reason, err.where) == ("event.business", where)


def test_a_revoke_naming_its_target_is_accepted() -> None:
    business = {"business_doc_type": 1, "document_id": DOC_ID,
                "business_doc_reason": "Ban hành nhầm"}
    item = parse(event(ev.DOCUMENT_SEND, document_data(business=business)))
    assert item.business is not None and item.business.document_id == DOC_ID


# -- receipt.send ------------------------------------------------------------------------------

def test_a_receipt_goes_from_the_recipient_to_the_document_sender() -> None:
    item = parse(event(ev.RECEIPT_SEND, receipt_data("03"), agency=G22))
    assert isinstance(item, ev.OutboundReceipt)
    assert (item.sender, item.recipients, item.document_id, item.flow) == (G22, (H55,), DOC_ID,
                                                                          "receipt")
    assert item.status_header.timestamp == T0, "no timestamp: the event's time is used"
    assert item.package().message_header == item.status_header


def test_a_receipt_without_event_time_is_stamped_by_the_clock() -> None:
    later = datetime(2024, 5, 18, 8, 0, tzinfo=timezone.utc)
    item = parse(event(ev.RECEIPT_SEND, receipt_data(), time=None), clock=lambda: later)
    assert item.status_header.timestamp == later


def test_a_receipt_from_the_document_sender_is_the_wrong_direction() -> None:
    err = refused(event(ev.RECEIPT_SEND, receipt_data("03", sender=H55)))
    assert (err.reason, err.where) == ("event.status_direction", "$.message_header.from.organ_id")


def test_status_13_is_sent_by_the_document_sender_to_named_recipients() -> None:
    data = receipt_data("13", sender=H55, recipients=[G22, H41])
    item = parse(event(ev.RECEIPT_SEND, data))
    assert (item.sender, item.recipients) == (H55, (G22, H41))
    err = refused(event(ev.RECEIPT_SEND, receipt_data("13", sender=G22, recipients=[H41])))
    assert err.reason == "event.status_direction"
    err = refused(event(ev.RECEIPT_SEND, receipt_data("13", sender=H55)))
    assert (err.reason, err.message) == ("event.schema", "$: missing required key 'recipients'")


def test_other_codes_cannot_be_redirected() -> None:
    err = refused(event(ev.RECEIPT_SEND, receipt_data("06", recipients=[H41])))
    assert (err.reason, err.where) == ("event.status_direction", "$.recipients")
    assert parse(event(ev.RECEIPT_SEND, receipt_data("06", recipients=[H55]))).recipients == (H55,)


def test_a_receipt_must_name_the_document_it_is_about() -> None:
    data = receipt_data()
    del data["message_header"]["response_for"]["document_id"]
    err = refused(event(ev.RECEIPT_SEND, data))
    assert err.where == "$.message_header.response_for" and "document_id" in err.message


def test_a_receipt_must_state_its_status_code() -> None:
    data = receipt_data()
    del data["message_header"]["status_code"]
    err = refused(event(ev.RECEIPT_SEND, data))
    assert err.message == "$.message_header: missing required key 'status_code'"


def test_a_receipt_for_an_unknown_original_sender_is_refused() -> None:
    err = refused(event(ev.RECEIPT_SEND, receipt_data()), known_recipient=lambda o: o != H55)
    assert err.reason == "event.unknown_recipient"


# -- from event to package and back ------------------------------------------------------------

def read_result(path: Path, work: Path) -> dict[str, Any]:
    """What the inbound flow knows about a received package: the worker step itself, run here
    in-process (no trust store, as in a worker started without one)."""
    from gateway.work import read_and_verify

    return read_and_verify(str(path), str(work))


def test_a_sent_document_arrives_as_a_valid_document_arrived_event(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    pdf = share / "1234-UBND-VP.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + b"x" * 5000)
    store = FileStore(tmp_path / "store", allowed_roots=[share])
    data = document_data()
    data["attachments"][0].update(uri=pdf.as_uri(), size=pdf.stat().st_size,
                                  sha256=hashlib.sha256(pdf.read_bytes()).hexdigest())
    item = parse(event(ev.DOCUMENT_SEND, data, agency=H55))
    paths = [store.resolve(ref) for ref in item.attachments]
    spec = item.package_dict(paths, trace_organ_id=H55, now=T0)
    package = tmp_path / "out.edxml"
    package.write_bytes(package_bytes(package_from_dict(spec)))

    result = read_result(package, tmp_path / "read")
    stored = [store.put(Path(a["path"]), a["attachment_name"]) for a in result["attachments"]]
    archived = store.archive_package(package)
    item_on_axis = SimpleNamespace(doc_id="axis-77", to_code=G22)
    arrived = ev.document_arrived(event_id="in-1", item=item_on_axis, result=result,
                                  stored=stored, archived=archived, source=SOURCE)
    assert_valid(arrived)
    assert arrived.extensions["agency"] == G22 and arrived.subject == DOC_ID
    assert arrived.data["package"]["message_header"]["subject"] == data["message_header"]["subject"]
    assert arrived.data["package"]["trace_header_list"]["trace_headers"][0]["organ_id"] == H55
    att = arrived.data["attachments"][0]
    assert (att["sha256"], att["detected_type"]) == (data["attachments"][0]["sha256"],
                                                     "application/pdf")
    assert store.resolve(SimpleNamespace(**{k: att[k] for k in ("uri", "sha256", "size")}))
    assert ev.document_key(result) == DOC_ID


def test_real_packages_with_broken_attachments_still_make_valid_events(tmp_path: Path) -> None:
    result = read_result(sample("edoc_revocation.truncated.edxml"), tmp_path / "r")
    assert result["attachments"][0]["error"] is not None
    archived = FileStore(tmp_path).archive_package(sample("edoc_revocation.truncated.edxml"))
    arrived = ev.document_arrived(event_id="in-2", item=SimpleNamespace(doc_id="d2", to_code=H41),
                                  result=result, stored=[], archived=archived, source=SOURCE)
    assert_valid(arrived)
    assert arrived.data["attachments"][0]["error"]["reason"] == "edxml.attachment.base64"
    assert arrived.data["signature"]["status"] == "placeholder"


@pytest.mark.parametrize("name", ["status_acceptance_03.edxml", "status_inbox_01.edxml",
                                  "status_finish_06.edxml", "status_rejection_02.edxml"])
def test_real_receipts_make_valid_receipt_arrived_events(tmp_path: Path, name: str) -> None:
    result = read_result(sample(name), tmp_path)
    arrived = ev.receipt_arrived(event_id="in-3", item=SimpleNamespace(doc_id="d3", to_code=G22),
                                 result=result, source=SOURCE)
    assert_valid(arrived)
    assert arrived.subject == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT" == ev.document_key(result)


def test_a_refused_package_is_answered_with_a_receipt_our_own_checks_accept(tmp_path: Path) -> None:
    result = read_result(sample("edoc_revocation.truncated.edxml"), tmp_path)
    receipt = ev.rejection_receipt(result=result, recipient_agency=H41,
                                   reason="edxml.attachment.base64", message="attachment 209: bad",
                                   source=SOURCE, answering="in-2", time=T0)
    assert receipt is not None and receipt.type == ev.RECEIPT_SEND
    assert_valid(receipt)
    item = parse(receipt, agencies={H41})
    assert (item.sender, item.recipients, item.status_code.value) == (H41, (G22,), "02")
    assert item.document_id == ev.document_id_of(result)
    again = ev.rejection_receipt(result=result, recipient_agency=H41, reason="r.x", message="m",
                                 source=SOURCE, answering="in-2", time=T0)
    assert again is not None and again.id == receipt.id
    assert ev.rejection_receipt(result={"package": {"message_header": {}}}, recipient_agency=H41,
                                reason="r.x", message="m", source=SOURCE, answering="x") is None


def test_a_status_package_round_trips_through_the_writer(tmp_path: Path) -> None:
    item = parse(event(ev.RECEIPT_SEND, receipt_data("05")))
    read = read_package_bytes(package_bytes(package_from_dict(item.package_dict())), tmp_path)
    assert read.package.message_header == item.status_header


# -- what the gateway emits --------------------------------------------------------------------

def test_delivery_outcomes_validate_and_keep_their_ids() -> None:
    ce = event(ev.DOCUMENT_SEND, document_data(), agency=H55)
    item = parse(ce)
    accepted = ev.delivery_accepted(ce, item, axis_doc_id="8f1d0c7e5b",
                                    package_sha256="b" * 64, attempts=1, source=SOURCE)
    assert_valid(accepted)
    assert accepted.id == ev.delivery_accepted(ce, item, axis_doc_id="8f1d0c7e5b",
                                               package_sha256="b" * 64, attempts=0,
                                               source=SOURCE).id
    assert (accepted.extensions["agency"], accepted.subject) == (H55, DOC_ID)
    failed = ev.delivery_failed(ce, item, reason="axis.rejected", message="ErrorCode 12",
                                attempts=1, source=SOURCE)
    assert_valid(failed)
    assert failed.id not in (accepted.id, ev.delivery_failed(
        ce, item, reason="axis.auth", message="m", attempts=1, source=SOURCE).id)


def test_a_failed_event_is_answered_with_what_could_be_read_from_it() -> None:
    data = document_data()
    data["message_header"]["subject"] = 5
    ce = event(ev.DOCUMENT_SEND, data)
    err = refused(ce)
    failed = ev.delivery_failed(ce, None, reason=err.reason, message=err.message, attempts=0,
                                source=SOURCE)
    assert_valid(failed)
    assert (failed.data["sender"], failed.data["recipients"]) == (H55, [G22])
    garbage = ev.delivery_failed(event(ev.RECEIPT_SEND, "junk"), None, reason="event.schema",
                                 message="m", attempts=0, source=SOURCE)
    assert_valid(garbage)
    assert (garbage.data["sender"], garbage.data["document_id"]) == (None, None)


def test_the_answer_to_a_secret_document_repeats_nothing_of_it() -> None:
    data = document_data(secrecy="tuyet_mat")
    data["message_header"]["document_id"] = "000.00.00.H55,2024/05/17,99/MẬT"
    ce = event(ev.DOCUMENT_SEND, data, agency=H55)
    err = refused(ce)
    failed = ev.delivery_failed(ce, None, reason=err.reason, message=err.message, attempts=0,
                                source=SOURCE)
    assert_valid(failed)
    text = json.dumps(failed.to_structured(), ensure_ascii=False)
    assert "MẬT" not in text and G22 not in text and failed.data["sender"] == H55


def kafka_record(ce: CloudEvent, **coordinates: Any) -> KafkaRecord:
    rec = ce.to_record(key=DOC_ID)
    headers = rec.headers + (("trace", b"1"), ("trace", b"2"))
    return KafkaRecord(key=rec.key, value=rec.value, headers=headers,
                       **{"topic": "edoc.outbound.documents", "partition": 3, "offset": 1042,
                          **coordinates})


def test_dead_letters_keep_the_original_record_byte_for_byte() -> None:
    record = kafka_record(event(ev.DOCUMENT_SEND, document_data(), agency=H55))
    letter = ev.dead_letter(record, reason="axis.rejected", message="x" * 5000, flow="document",
                            attempts=3, first_failure=T0, last_failure=T0 + timedelta(minutes=5),
                            instance="gw-1", source=SOURCE)
    assert_valid(letter)
    assert letter.id == "dl:edoc.outbound.documents:3:1042"
    assert letter.extensions == {"agency": H55, "reason": "axis.rejected", "flow": "document"}
    assert len(letter.data["message"]) == ev.MAX_MESSAGE_CHARS
    assert letter.data["original"]["headers"]["trace"] == [base64.b64encode(b"1").decode(),
                                                           base64.b64encode(b"2").decode()]
    back = ev.original_record(letter)
    assert (back.key, back.value, back.headers) == (record.key, record.value, record.headers)


def test_a_secret_documents_dead_letter_does_not_copy_it() -> None:
    record = kafka_record(event(ev.DOCUMENT_SEND, document_data(secrecy="mat")))
    letter = ev.dead_letter(record, reason="event.secret_document", message="secret",
                            flow="document", attempts=0, first_failure=T0, last_failure=T0,
                            instance="gw-1", source=SOURCE)
    assert_valid(letter)
    assert letter.data["original"]["value"] is None and letter.data["original"]["redacted"]


def test_quarantine_letters_point_at_the_archived_package(tmp_path: Path) -> None:
    archived = FileStore(tmp_path).archive_package(sample("status_inbox_01.edxml"))
    letter = ev.quarantine_letter(item=SimpleNamespace(doc_id="axis-9", to_code=G22),
                                  reason="edxml.signature.invalid", message="digest mismatch",
                                  flow="inbound-document", archived=archived, instance="gw-2",
                                  now=T0, source=SOURCE, event_id="in-9")
    assert_valid(letter)
    assert letter.data["original"] == {"axis_doc_id": "axis-9", "package_uri": archived.uri,
                                       "package_sha256": archived.sha256}


def test_audit_records_as_events_validate() -> None:
    record: dict[str, Any] = {"chain": "gw-1", "seq": 0, "prev": "0" * 64,
                              "time": "2024-05-17T02:30:00.120Z", "flow": "document",
                              "step": "sent", "outcome": "ok", "agency": H55,
                              "document_id": DOC_ID, "axis_doc_id": "8f1d0c7e5b",
                              "package_sha256": "c" * 64}
    record["hash"] = hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
    audit = ev.audit(record, source=SOURCE)
    assert_valid(audit)
    assert (audit.id, audit.subject, audit.extensions["agency"]) == (record["hash"], DOC_ID, H55)
    broken = dict(record, step="Sent Twice")
    with pytest.raises(EventError) as caught:
        ev.validate_data(ev.AUDIT_RECORD, broken)
    assert caught.value.where == "$.step"


def test_validate_data_refuses_unknown_types() -> None:
    with pytest.raises(EventError) as caught:
        ev.validate_data("vn.gov.edoc.unknown.v1", {})
    assert caught.value.reason == "event.type"


# -- the AsyncAPI description and the vendor documentation -------------------------------------

def load_asyncapi() -> dict[str, Any]:
    text = (REPO / "schemas" / "asyncapi.yaml").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return json.loads(body)  # JSON is YAML; the file is kept in its JSON subset


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_asyncapi_describes_every_topic_and_event_type() -> None:
    doc = load_asyncapi()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set({**DEFAULT_TOPICS, **PER_AGENCY_TOPICS}.values())
    names = set()
    for message in doc["components"]["messages"].values():
        names.add(message["name"])
        ref = message["payload"]["schema"]["$ref"]
        assert ref == f"./events/{ev.schema_file_name(message['name'])}"
        assert (REPO / "schemas" / ref).is_file()
        assert message["bindings"]["kafka"]["key"]["description"]
        headers = resolve(doc, message["headers"]["allOf"][0]["$ref"])
        assert {"ce_id", "ce_source", "ce_type", "ce_agency"} <= set(headers["properties"])
    assert names == set(ev.EVENT_TYPES)
    for channel in doc["channels"].values():
        for message in channel["messages"].values():
            resolve(doc, message["$ref"])
    for operation in doc["operations"].values():
        channel = resolve(doc, operation["channel"]["$ref"])
        for message in operation["messages"]:
            assert resolve(doc, message["$ref"]) in channel["messages"].values()


def doc_examples() -> list[tuple[str, dict[str, Any]]]:
    text = (REPO / "docs" / "events.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\S+) -->\s*```json\n(.*?)```", text, re.S)
    return [(event_type, json.loads(body)) for event_type, body in found]


def test_every_example_in_the_vendor_documentation_is_valid() -> None:
    examples = doc_examples()
    assert {t for t, _ in examples} == set(ev.EVENT_TYPES)
    for event_type, data in examples:
        ev.validate_data(event_type, data)
        if event_type in ev.INCOMING_TYPES:
            ce = event(event_type, copy.deepcopy(data))
            parse(ce, agencies={H55, G22, H41})


def test_the_vendor_documentation_lists_every_reason() -> None:
    text = (REPO / "docs" / "events.md").read_text(encoding="utf-8")
    for reason in ev.REASONS:
        assert f"`{reason}`" in text, reason
    for topic in DEFAULT_TOPICS.values():
        assert f"`{topic}`" in text, topic


def test_attachment_bytes_are_checked_against_the_claim_as_they_are_written(tmp_path: Path) -> None:
    """The store skips its own hash pass for outbound attachments; the worker compares the
    SHA-256 and size of the bytes it put into the package with the event's claim."""
    from datetime import date

    from edxml.jsonform import package_to_dict
    from edxml.model import Attachment, Code, DocumentPackage, DocumentType, MessageHeader, \
        Organization, PromulgationInfo
    from gateway import work
    from tests.gateway.outbound_harness import init_signing_worker

    init_signing_worker(tmp_path, H55, "UBND tỉnh Thái Nguyên")
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4 the bytes on disk")
    header = MessageHeader(
        from_=Organization(organ_id=H55), to=(Organization(organ_id=G22),),
        code=Code(code_number="1", code_notation="UBND-VP"),
        promulgation_info=PromulgationInfo(place="Thái Nguyên",
                                           promulgation_date=date(2024, 5, 17)),
        document_type=DocumentType(type=1, type_name="Công văn"), subject="V/v thử")

    def build(**claim: object) -> dict[str, Any]:
        att = Attachment("1", "a.pdf", "application/pdf", path=pdf, **claim)  # type: ignore[arg-type]
        return work.build_and_sign(H55, package_to_dict(DocumentPackage(header, attachments=(att,))),
                                   str(tmp_path / "out.edxml"))

    size = pdf.stat().st_size
    assert build(size=size, sha256="0" * 64)["error"]["reason"] == "store.hash_mismatch"
    assert not (tmp_path / "out.edxml").exists()
    assert build(size=size + 1, sha256=hashlib.sha256(pdf.read_bytes()).hexdigest())["error"][
        "reason"] == "store.size_mismatch"
    ok = build(size=size, sha256=hashlib.sha256(pdf.read_bytes()).hexdigest())
    assert "error" not in ok and (tmp_path / "out.edxml").stat().st_size == ok["size"]


# -- bounds on every field an agency sends -----------------------------------------------------

def _unbounded(node: Any, path: str = "$") -> list[str]:
    """Paths of strings without maxLength/pattern/enum, arrays without maxItems and integers
    without maximum in a schema (following no $ref: every $defs entry is walked itself)."""
    found: list[str] = []
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "string" and not ({"maxLength", "enum", "const"} & set(node)
                                     or "pattern" in node and "{" in node["pattern"]):
            found.append(path)
        if kind == "array" and "maxItems" not in node:
            found.append(path)
        if kind == "integer" and "maximum" not in node:
            found.append(path)
        for key, value in node.items():
            found += _unbounded(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _unbounded(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("event_type", [ev.DOCUMENT_SEND, ev.RECEIPT_SEND])
def test_every_field_an_agency_sends_is_bounded(event_type: str) -> None:
    assert _unbounded(ev.load_schemas()[event_type]) == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d["message_header"].update(subject="s" * 4001), "$.message_header.subject"),
    (lambda d: d["message_header"]["from"].update(organ_name="n" * 1001),
     "$.message_header.from.organ_name"),
    (lambda d: d["message_header"].update(to=[{"organ_id": G22}] * 1001), "$.message_header.to"),
    (lambda d: d["message_header"]["promulgation_info"].update(promulgation_date="0001-01-01"),
     "$.message_header.promulgation_info.promulgation_date"),
    (lambda d: d["message_header"].update(due_date="2201-01-01"), "$.message_header.due_date"),
    (lambda d: d["attachments"][0].update(size=(1 << 40) + 1), "$.attachments[0].size"),
    (lambda d: d.update(attachments=d["attachments"] * 1001), "$.attachments"),
])
def test_out_of_bounds_fields_are_refused_by_the_schema(change: Any, where: str) -> None:
    data = document_data()
    change(data)
    caught = refused(event(ev.DOCUMENT_SEND, data, agency=H55))
    assert caught.reason == "event.schema" and caught.where == where


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+07:00", "2201-01-01T00:00:00Z"])
def test_a_receipt_timestamp_outside_1900_2200_is_refused(moment: str) -> None:
    data = receipt_data()
    data["message_header"]["timestamp"] = moment
    caught = refused(event(ev.RECEIPT_SEND, data, agency=G22))
    assert caught.reason == "event.schema"
    assert caught.where == "$.message_header.timestamp"
