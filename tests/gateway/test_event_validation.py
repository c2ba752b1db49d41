"""The compiled fast path of event validation decides exactly as the reference validator does.

`gateway.events.validate_data` asks a compiled validator (fastjsonschema) first and the
reference (jsonschema, `best_match`) only when that one refuses. These tests feed both the same
events, valid and broken, and require the same verdict, reason, message and `where`.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from gateway import events as ev
from gateway.events import EventError

from tests.gateway.test_events import (DOC_ID, G22, H41, H55, doc_examples, document_data,
                                      receipt_data)


def reference(event_type: str, data: Any) -> tuple[str, str, str | None] | None:
    """What validation decided before the fast path: jsonschema alone."""
    error = best_match(ev._validator(event_type).iter_errors(data))
    if error is None:
        return None
    refusal = ev._schema_error(error)
    return refusal.reason, refusal.message, refusal.where


def decided(event_type: str, data: Any) -> tuple[str, str, str | None] | None:
    try:
        ev.validate_data(event_type, data)
    except EventError as exc:
        return exc.reason, exc.message, exc.where
    return None


def _documents() -> list[dict[str, Any]]:
    full = document_data()
    header = full["message_header"]
    header.update(document_id=f"{H55},2024/05/17,1234/UBND-VP", content="Tóm tắt",
                  due_date="2024-06-01",
                  signer_info={"competence": "TM.", "position": "Chủ tịch", "full_name": "A"},
                  other_info={"priority": 2, "page_amount": 3, "direction": True,
                              "appendixes": ["Phụ lục 1"]},
                  response_for=[{"organ_id": G22, "code": "1/UBND",
                                 "promulgation_date": "2024-01-02", "document_id": DOC_ID}],
                  steering_type=1, to_places=["Như trên"])
    full["attachments"][0].update(description="bản ký số", role="digitised")
    revoke = document_data(business={"business_doc_type": 1, "document_id": DOC_ID,
                                     "business_doc_reason": "Sai sót", "paper": 0})
    update = document_data(business={
        "business_doc_type": 2, "document_id": DOC_ID,
        "business_document_info": {"document_info": 1, "document_receiver": 1,
                                   "receiver_list": [{"receiver_type": 1, "organ_id": H41}]},
        "staff_info": {"department": "Văn phòng", "staff": "B", "email": "b@x.vn"}})
    replace = document_data(business={
        "business_doc_type": 3, "document_id": DOC_ID,
        "replacement_info_list": [{"document_id": DOC_ID, "organ_id_list": [G22, H41]}]})
    return [document_data(), full, revoke, update, replace, document_data(attachments=[])]


def _receipts() -> list[dict[str, Any]]:
    stamped = receipt_data("05")
    stamped["message_header"].update(timestamp="2024-05-17T09:30:00+07:00",
                                     staff_info={"department": "Văn thư", "staff": "Lan"})
    return [receipt_data(), stamped,
            receipt_data("13", sender=H55, recipients=[G22, H41])]


BASES = {ev.DOCUMENT_SEND: _documents(), ev.RECEIPT_SEND: _receipts()}

# Values next to what the schemas accept: the forms whose edges differ between validators
# (a trailing newline after a pattern's `$`, a float with an integral value, a boolean for an
# integer or a string), lengths at their bounds, codes just outside their lists.
_NEAR = ["", " ", "\n", "x", "2024-05-17", "2024-05-17\n", "1899-12-31", "2201-01-01",
         "2024-05-17T09:30:00+07:00", "2024-05-17T09:30:00+07:00\n", "2024-05-17 09:30Z",
         "a" * 64, "A" * 63 + "\n", "g" * 64, H55, H55 + "\n", "000.00.00.H55 ", "none", "mat",
         "Mật", "01", "13", "13\n", "99", "digitised", "other ", "file:///srv/a.pdf",
         "x" * 64, "x" * 65, "x" * 1000, "x" * 1001, "ký hiệu", "\x00"]
_leaves = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, 2, 3, 4, 5, -1, 1099511627776,
                                               1099511627777, 10 ** 30]),
    st.sampled_from([0.0, 1.0, 2.0, 0.5, -1.0, 1e300]), st.integers(),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(_NEAR),
    st.text(max_size=12))
_json = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["organ_id", "code", "x", "type",
                                                        "status_code", "document_id"])
                                       | st.text(max_size=6), inner, max_size=3),
                     max_leaves=8)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def events_near_the_schema(draw: st.DrawFn) -> tuple[str, Any]:
    event_type = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(draw(st.sampled_from(BASES[event_type])))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(data)))
        action = draw(st.sampled_from(["replace", "near", "delete", "add", "append"]))
        if not path:
            if action in ("replace", "near"):
                data = draw(_json) if action == "replace" else draw(st.sampled_from(_NEAR))
            continue
        parent, last = _at(data, path[:-1]), path[-1]
        target = _at(data, path)
        if action == "replace":
            parent[last] = draw(_json)
        elif action == "near":
            parent[last] = draw(st.sampled_from(_NEAR))
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(["extra", "content", "status_code", "recipients",
                                         "business", "timestamp", "secrecy"]))] = draw(_json)
        elif action == "append" and isinstance(target, list):
            target.append(copy.deepcopy(target[0]) if target and draw(st.booleans())
                          else draw(_json))
    return event_type, data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_near_the_schema())
def test_the_fast_path_decides_and_words_every_event_as_the_reference(
        case: tuple[str, Any]) -> None:
    event_type, data = case
    expected = reference(event_type, data)
    if ev._fast_valid(event_type, data):
        assert expected is None  # the fast path never lets through what the reference refuses
    assert decided(event_type, data) == expected


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(BASES)), _json)
def test_arbitrary_json_is_decided_as_the_reference_decides(event_type: str, data: Any) -> None:
    assert decided(event_type, data) == reference(event_type, data)


@pytest.mark.parametrize(("event_type", "index"),
                         [(t, i) for t, bases in BASES.items() for i in range(len(bases))])
def test_valid_events_take_the_fast_path(event_type: str, index: int) -> None:
    data = BASES[event_type][index]
    assert reference(event_type, data) is None
    assert ev._fast_valid(event_type, data)
    assert decided(event_type, data) is None


def test_what_only_the_fast_path_refuses_is_still_accepted() -> None:
    # jsonschema's pattern `$` also matches before a final newline; fastjsonschema's does not.
    # The reference has the last word, so the verdict stays the old one.
    data = document_data()
    data["message_header"]["promulgation_info"]["promulgation_date"] = "2024-05-17\n"
    assert not ev._fast_valid(ev.DOCUMENT_SEND, data)
    assert reference(ev.DOCUMENT_SEND, data) is None
    assert decided(ev.DOCUMENT_SEND, data) is None


def test_the_fast_path_does_not_change_the_data() -> None:
    data = document_data()
    before = copy.deepcopy(data)
    assert ev._fast_valid(ev.DOCUMENT_SEND, data)
    assert data == before


def test_only_the_types_agencies_send_have_a_fast_path() -> None:
    # The gateway's own events are checked against the reference alone (tests and tools);
    # the deadletter schema's `const: true` would let a compiled check accept 1.
    for event_type, data in doc_examples():
        assert reference(event_type, data) is None
        assert ev._fast_valid(event_type, data) is (event_type in ev.INCOMING_TYPES)
