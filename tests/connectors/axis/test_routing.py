"""The simulator's package header reader and TraceHeader splice (simulator/routing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from connectors.axis.simulator.routing import (Unroutable, read_package_header,
                                               trace_header_bytes, write_relayed_copy)

from .conftest import NS, document_id, write_edoc, write_status

Q = {"e": NS}


@pytest.mark.parametrize("prefix", ["edXML", "ns0", ""])
def test_routing_fields_are_read_whatever_the_prefix(tmp_path, prefix):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ="000.00.00.H55",
                     to_organs=["000.00.00.H41", "000.00.00.G22", "000.00.00.H41"],
                     document_id=document_id("000.00.00.H55"), prefix=prefix)
    header = read_package_header(pkg)
    assert header.from_organ == "000.00.00.H55"
    assert header.to_organs == ("000.00.00.H41", "000.00.00.G22")
    assert header.document_id == "000.00.00.H55,2026/11/25,12/UBND-VP"
    assert header.notation == "12/UBND-VP"
    assert header.trace_prefix == prefix
    raw = pkg.read_bytes()
    # After the last TraceHeader, not before Bussiness: the axis hop is the last TraceHeader.
    assert raw[:header.insert_at].endswith(f"</{prefix + ':' if prefix else ''}TraceHeader>".encode())


def test_status_package_routes_by_response_for(tmp_path):
    pkg = write_status(tmp_path / "s.edxml", from_organ="000.00.00.H41",
                       response_for_organ="000.00.00.H55",
                       response_for_document_id=document_id("000.00.00.H55"), status_code="03")
    header = read_package_header(pkg)
    assert header.from_organ == "000.00.00.H41"
    assert [(r.organ_id, r.document_id) for r in header.response_for] == [
        ("000.00.00.H55", "000.00.00.H55,2026/11/25,12/UBND-VP")]
    assert header.status_code == "03"
    assert not header.has_trace_list and header.insert_at is None


def test_parsing_stops_after_the_header(tmp_path):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ="000.00.00.H55",
                     to_organs=["000.00.00.H41"], document_id="X")
    text = pkg.read_text("utf-8").replace("<edXML:edXMLBody>", "<edXML:edXMLBody><<<&&& broken")
    pkg.write_text(text, "utf-8")
    with pytest.raises(etree.XMLSyntaxError):
        etree.parse(str(pkg))
    header = read_package_header(pkg)
    assert header.to_organs == ("000.00.00.H41",)
    assert header.header_end < text.encode().index(b"<<<&&&")


@pytest.mark.parametrize("doc, words", [
    (b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     b'<edXML xmlns="' + NS.encode() + b'"><x>&b;</x></edXML>', "DTDs"),
    (b'<?xml version="1.0"?><!DOCTYPE edXML SYSTEM "http://example.invalid/x.dtd">'
     b'<edXML xmlns="' + NS.encode() + b'"/>', "DTDs"),
    (b'<?xml version="1.0"?><html><body/></html>', "not edXML"),
    (b'<?xml version="1.0"?><edXML xmlns="urn:other"/>', "not edXML"),
    (b'<?xml version="1.0" encoding="ISO-8859-1"?><edXML xmlns="' + NS.encode() + b'"/>', "UTF-8"),
    (b'<edXML xmlns="' + NS.encode() + b'"><unclosed></edXML>', "well-formed"),
    (b'<edXML xmlns="' + NS.encode() + b'"></edXML>', "no edXMLHeader"),
])
def test_unsafe_or_foreign_documents_are_unroutable(tmp_path, doc, words):
    pkg = tmp_path / "bad.edxml"
    pkg.write_bytes(doc)
    with pytest.raises(Unroutable, match=words):
        read_package_header(pkg)


def _relay(tmp_path: Path, pkg: Path) -> tuple[bytes, bytes, bytes]:
    header = read_package_header(pkg)
    out = tmp_path / "relayed.edxml"
    assert write_relayed_copy(pkg, out, header, organ_id="00.55.W00",
                              timestamp="2026/11/25 18:00:00")
    insert = trace_header_bytes(header.trace_prefix, "00.55.W00", "2026/11/25 18:00:00")
    return pkg.read_bytes(), out.read_bytes(), insert


@pytest.mark.parametrize("prefix", ["edXML", ""])
@pytest.mark.parametrize("bussiness", [True, False])
def test_relay_appends_one_trace_header_as_the_last_one(tmp_path, prefix, bussiness):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ="000.00.00.H55",
                     to_organs=["000.00.00.H41"], document_id="D", prefix=prefix,
                     bussiness=bussiness)
    original, relayed, insert = _relay(tmp_path, pkg)

    at = relayed.index(insert)
    assert relayed[:at] + relayed[at + len(insert):] == original   # nothing else changed
    root = etree.fromstring(relayed)
    trace_list = root.find("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList", Q)
    traces = trace_list.findall("e:TraceHeader", Q)
    assert [t.findtext("e:OrganId", namespaces=Q) for t in traces] == ["000.00.00.H55", "00.55.W00"]
    assert traces[-1].findtext("e:Timestamp", namespaces=Q) == "2026/11/25 18:00:00"
    assert traces[-1].tail in (None, "\n        ")    # no whitespace of its own
    following = traces[-1].getnext()
    assert (following is not None and etree.QName(following).localname == "Bussiness") == bussiness
    if prefix:
        assert insert.startswith(b"<edXML:TraceHeader>")


def test_relay_opens_an_empty_trace_header_list(tmp_path):
    pkg = write_edoc(tmp_path / "p.edxml", from_organ="000.00.00.H55",
                     to_organs=["000.00.00.H41"], document_id="D", trace_list="empty")
    _original, relayed, insert = _relay(tmp_path, pkg)
    assert (b"<edXML:TraceHeaderList>" + insert + b"</edXML:TraceHeaderList>") in relayed
    root = etree.fromstring(relayed)
    assert len(root.findall(".//e:TraceHeaderList/e:TraceHeader", Q)) == 1


def test_status_packages_are_relayed_unchanged(tmp_path):
    pkg = write_status(tmp_path / "s.edxml", from_organ="000.00.00.H41",
                       response_for_organ="000.00.00.H55", response_for_document_id="D")
    out = tmp_path / "relayed.edxml"
    assert not write_relayed_copy(pkg, out, read_package_header(pkg), organ_id="x",
                                  timestamp="2026/11/25 18:00:00")
    assert out.read_bytes() == pkg.read_bytes()
