"""The real client against the real simulator over loopback HTTP: the exchange flows."""

from __future__ import annotations

import hashlib

import pytest
from lxml import etree

from connectors.axis import (AgencyRegistration, AxisClient, AxisError, AxisTransport,
                             DeliveryStatus, MessageType)

from .conftest import (NA_UBND, NS, TN_SO_NOI_VU, TN_SYSTEM, TN_TP, TN_UBND, VPCP,
                       client_config, document_id, write_edoc, write_status)

Q = {"e": NS}


def test_client_implements_the_transport_interface(tn):
    assert isinstance(tn, AxisTransport)


async def test_send_list_fetch_mark_done_then_gone(tmp_path, tn, na):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    sent = await tn.send_edoc(pkg, from_organ=TN_UBND)
    assert sent.sha256 == hashlib.sha256(pkg.read_bytes()).hexdigest()
    assert sent.size == pkg.stat().st_size

    items = await na.get_received_edoc_list()
    assert [(i.from_code, i.to_code, i.message_type, i.status) for i in items] == [
        (TN_UBND, NA_UBND, "edoc", "initial")]
    assert await na.count_receive_edoc() == 1

    fetched = await na.get_edoc(items[0].doc_id, tmp_path / "in.edxml")
    downloaded = await na.download_edoc(items[0].doc_id, tmp_path / "in2.edxml")
    body = fetched.path.read_bytes()
    assert downloaded.path.read_bytes() == body
    assert fetched.sha256 == downloaded.sha256 == hashlib.sha256(body).hexdigest()
    root = etree.fromstring(body)
    assert root.findtext("e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader/e:DocumentId",
                         namespaces=Q) == document_id(TN_UBND)

    # Fetched but not marked: still listed (a crash here means fetching it again).
    assert [i.doc_id for i in await na.get_received_edoc_list()] == [items[0].doc_id]
    await na.update_status(items[0].doc_id, DeliveryStatus.DONE)
    assert await na.get_received_edoc_list() == ()
    assert await na.count_receive_edoc() == 0


async def test_relayed_copy_carries_the_axis_trace_header_last(tmp_path, tn, na):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    (item,) = await na.get_received_edoc_list()
    fetched = await na.get_edoc(item.doc_id, tmp_path / "in.edxml")

    root = etree.parse(str(fetched.path)).getroot()
    trace_list = root.find("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList", Q)
    traces = trace_list.findall("e:TraceHeader", Q)
    assert [t.findtext("e:OrganId", namespaces=Q) for t in traces] == [TN_UBND, TN_SYSTEM]
    assert etree.QName(traces[-1].getnext()).localname == "Bussiness"
    assert traces[-1].prefix == "edXML"
    stamp = traces[-1].findtext("e:Timestamp", namespaces=Q)
    assert len(stamp) == 19 and stamp[4] == "/" and stamp[13] == ":"
    assert traces[-2].tail is None        # spliced in without whitespace of its own


async def test_each_recipient_gets_its_own_copy_and_the_sender_sees_each_state(tmp_path, tn, na):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND,
                     to_organs=[NA_UBND, TN_SO_NOI_VU, TN_TP], document_id=document_id(TN_UBND))
    sent = await tn.send_edoc(pkg, from_organ=TN_UBND)

    (na_item,) = await na.get_received_edoc_list()
    tn_items = await tn.get_received_edoc_list()     # all agencies under the calling systemid
    assert sorted(i.to_code for i in tn_items) == [TN_SO_NOI_VU, TN_TP]
    assert len({na_item.doc_id, *(i.doc_id for i in tn_items)}) == 3

    await na.get_edoc(na_item.doc_id, tmp_path / "na.edxml")
    await na.update_status(na_item.doc_id, "done")
    await tn.update_status(tn_items[0].doc_id, DeliveryStatus.FAIL)

    rows = await tn.get_sent_edoc_list(doc_id=sent.doc_id)
    states = {r.to_code: r.receive_status for r in rows}
    assert states == {NA_UBND: "done", tn_items[0].to_code: "fail", tn_items[1].to_code: "initial"}
    assert {r.sender_doc_id for r in rows} == {sent.doc_id}
    assert all(r.title == "V/v kết nối liên thông văn bản" and r.notation == "12/UBND-VP"
               for r in rows)
    assert [i.to_code for i in await tn.get_received_edoc_list()] == [tn_items[1].to_code]


async def test_status_package_routes_back_to_the_original_sender(tmp_path, tn, na):
    doc = document_id(TN_UBND)
    await tn.send_edoc(write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND,
                                  to_organs=[NA_UBND], document_id=doc), from_organ=TN_UBND)
    status = write_status(tmp_path / "st.edxml", from_organ=NA_UBND, response_for_organ=TN_UBND,
                          response_for_document_id=doc, status_code="03")
    await na.send_edoc(status, from_organ=NA_UBND, messagetype=MessageType.STATUS)

    assert await na.get_received_edoc_list(MessageType.STATUS) == ()
    (receipt,) = await tn.get_received_edoc_list(MessageType.STATUS)
    assert (receipt.from_code, receipt.to_code, receipt.message_type) == (NA_UBND, TN_UBND, "status")
    assert await tn.count_receive_status() == 1
    fetched = await tn.get_edoc(receipt.doc_id, tmp_path / "receipt.edxml")
    assert fetched.path.read_bytes() == status.read_bytes()      # no TraceHeaderList: unchanged
    await tn.update_status(receipt.doc_id, "done")
    assert await tn.count_receive_status() == 0
    (sent,) = await na.get_sent_edoc_list(messagetype="status")
    assert (sent.to_code, sent.receive_status) == (TN_UBND, "done")


async def test_to_header_overrides_the_package_recipients(tmp_path, tn, na):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND, to=[TN_TP])
    assert await na.get_received_edoc_list() == ()
    assert [i.to_code for i in await tn.get_received_edoc_list()] == [TN_TP]
    await tn.send_edoc(pkg, from_organ=TN_UBND, to=TN_SO_NOI_VU)      # one code as a string
    assert [i.to_code for i in await tn.get_received_edoc_list()] == [TN_TP, TN_SO_NOI_VU]


async def test_directory_lists_both_code_forms(tn):
    agencies = {a.code: a for a in await tn.get_agencies_list()}
    assert agencies["000.00.00.H55"].name == "UBND tỉnh Thái Nguyên"
    assert agencies[VPCP].name == "Văn phòng Chính phủ"
    assert agencies[TN_SO_NOI_VU].pid == agencies["000.00.00.H55"].id
    for code in ("000.00.00.H41", "000.00.00.H14", "000.00.00.H29", "000.00.00.H37"):
        assert code in agencies
    level1 = {a.code: a.code102 for a in await tn.get_agencies_list_qd20(level=1)}
    assert level1["H55"] == "000.00.00.H55" and level1["G22"] == VPCP
    assert "H55.02" not in level1
    level2 = {a.code: a.code102 for a in await tn.get_agencies_list_qd20(level=2)}
    assert level2["H55.02"] == TN_SO_NOI_VU
    everything = await tn.get_agencies_list_qd20()
    assert len(everything) == len(agencies)


async def test_registered_agency_can_send_and_receive_until_deleted(tmp_path, tn, na):
    new = AgencyRegistration(code="000.00.40.H55", name="UBND huyện Võ Nhai",
                             pcode="000.00.00.H55", mail="ubnd.vonhai@thainguyen.gov.vn")
    await tn.register_agency(new)
    assert "000.00.40.H55" in {a.code for a in await tn.get_agencies_list()}
    pkg = write_edoc(tmp_path / "out.edxml", from_organ="000.00.40.H55", to_organs=[NA_UBND],
                     document_id=document_id("000.00.40.H55"))
    await tn.send_edoc(pkg, from_organ="000.00.40.H55")

    with pytest.raises(AxisError) as info:          # someone else's agency
        await na.register_agency(AgencyRegistration(code="000.00.40.H55", name="x"))
    assert info.value.reason == "axis.rejected" and info.value.error_code == "8"

    await tn.delete_agency("000.00.40.H55")
    with pytest.raises(AxisError) as info:
        await tn.send_edoc(pkg, from_organ="000.00.40.H55")
    assert info.value.reason == "axis.rejected"
    assert "khong dung voi ma da dang ky" in info.value.error_desc


async def test_fetching_someone_elses_message_is_refused(tmp_path, tn, na):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    (item,) = await na.get_received_edoc_list()
    for call in (tn.get_edoc(item.doc_id, tmp_path / "x"), tn.download_edoc(item.doc_id, tmp_path / "y")):
        with pytest.raises(AxisError) as info:
            await call
        assert (info.value.reason, info.value.error_code) == ("axis.rejected", "7")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(AxisError):
        await tn.update_status(item.doc_id, "done")
    assert len(await na.get_received_edoc_list()) == 1


async def test_headers_are_fresh_for_every_request(tmp_path, sim, tn, admin):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    await tn.send_edoc(pkg, from_organ=TN_UBND)
    await tn.get_received_edoc_list()
    await tn.count_receive_edoc()
    signed = [r["signed"] for r in await admin.get("requests")]
    # The reference form (Java HashMap order); nothing of one call leaks into the next.
    assert signed == [
        ["systemid", "servicetype", "messagetype", "hash-file", "from", "timestamp", "Content-Type"],
        ["systemid", "servicetype", "messagetype", "timestamp", "Content-Type"],
        ["systemid", "servicetype", "messagetype", "timestamp", "Content-Type"],
    ]


async def test_given_hash_is_sent_as_is(tmp_path, sim, secrets_by_system):
    pkg = write_edoc(tmp_path / "out.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                     document_id=document_id(TN_UBND))
    digest = hashlib.sha256(pkg.read_bytes()).hexdigest()
    async with AxisClient(client_config(sim, TN_SYSTEM, secrets_by_system[TN_SYSTEM])) as tn:
        assert (await tn.send_edoc(pkg, from_organ=TN_UBND, sha256=digest.upper())).sha256 == digest
        with pytest.raises(AxisError) as info:
            await tn.send_edoc(pkg, from_organ=TN_UBND, sha256="0" * 64)
    assert (info.value.reason, info.value.error_code) == ("axis.rejected", "6")


async def test_the_receiving_calls_keep_one_connection(tmp_path, sim, secrets_by_system, tn):
    # getEdoc and updateStatus carry the reference client's `{}` body (with Expect:
    # 100-continue); the simulator reads it as a servlet container does, so each call does not
    # cost a new TCP (on the real axis, TLS) connection.
    import aiohttp

    from .conftest import NA_SYSTEM

    created = 0

    async def on_create(*_args: object) -> None:
        nonlocal created
        created += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    for n in range(3):
        pkg = write_edoc(tmp_path / f"out{n}.edxml", from_organ=TN_UBND, to_organs=[NA_UBND],
                         document_id=document_id(TN_UBND, str(n + 1)))
        await tn.send_edoc(pkg, from_organ=TN_UBND)
    async with AxisClient(client_config(sim, NA_SYSTEM, secrets_by_system[NA_SYSTEM])) as na:
        na._get_session()._trace_configs.append(trace)
        trace.freeze()
        items = await na.get_received_edoc_list()
        assert len(items) == 3
        for n, item in enumerate(items):
            await na.get_edoc(item.doc_id, tmp_path / f"in{n}.edxml")
            await na.update_status(item.doc_id, DeliveryStatus.DONE)
    assert created <= 1
