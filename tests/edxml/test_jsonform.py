"""The JSON form with its per-class field tables gives what reading the fields each time gave."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from edxml import jsonform
from edxml.errors import EdxmlError
from edxml.model import (Business, Kind, MessageHeader, StatusHeader, TraceHeaderList,
                         xml_fields)

from tests.edxml import strategies

_SRC = Path(tempfile.mkdtemp(prefix="edxml-jsonform-"))


def _uncached_to_dict(obj: Any) -> dict[str, Any]:
    """node_to_dict as it was written before the tables: the fields read for every object."""
    out: dict[str, Any] = {}
    for attr, xf in xml_fields(type(obj)):
        value = getattr(obj, attr)
        if value is None:
            continue
        key = jsonform._key(attr)
        if xf.kind is Kind.NODE:
            out[key] = _uncached_to_dict(value)
        elif xf.kind is Kind.REPEAT or (xf.kind is Kind.LIST and xf.item_kind is Kind.NODE):
            out[key] = [_uncached_to_dict(v) for v in value]
        elif xf.kind is Kind.LIST:
            out[key] = list(value)
        else:
            out[key] = jsonform._value_to_json(xf.kind, value)
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(strategies.document_packages(_SRC))
def test_headers_convert_as_before_and_back(pkg: Any) -> None:
    for node, cls in ((pkg.message_header, MessageHeader), (pkg.trace_header_list,
                                                             TraceHeaderList)):
        as_dict = jsonform.node_to_dict(node)
        assert as_dict == _uncached_to_dict(node)
        assert list(as_dict) == list(_uncached_to_dict(node))  # same key order
        assert jsonform.node_from_dict(cls, as_dict, "$") == node


@settings(max_examples=40, deadline=None)
@given(strategies.status_packages)
def test_status_headers_convert_as_before_and_back(pkg: Any) -> None:
    as_dict = jsonform.node_to_dict(pkg.message_header)
    assert as_dict == _uncached_to_dict(pkg.message_header)
    assert jsonform.node_from_dict(StatusHeader, as_dict, "$") == pkg.message_header


@pytest.mark.parametrize("cls", [MessageHeader, StatusHeader, Business, TraceHeaderList])
def test_unknown_keys_are_refused_naming_the_known_ones_in_wire_order(cls: type) -> None:
    known = ", ".join(jsonform._key(attr) for attr, _ in xml_fields(cls))
    with pytest.raises(EdxmlError) as caught:
        jsonform.node_from_dict(cls, {"zzz": 1, "aaa": 2}, "$.x")
    assert caught.value.reason == "edxml.spec.invalid" and caught.value.where == "$.x"
    assert caught.value.message == f"unknown key(s) aaa, zzz; known: {known}"
