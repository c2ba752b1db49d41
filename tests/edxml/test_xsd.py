"""schemas/edxml.xsd: it loads, it accepts what the reference layout contains, it refuses mistakes."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
import xmlschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import SignatureConstructionMethod, XMLSigner, XMLVerifier

from tests.samples import sample

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "edxml.xsd"
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = "http://www.w3.org/2000/09/xmldsig#"
P = {"e": NS, "ds": DS}

# The smallest document package in the reference layout: default namespace on the root, explicit
# edXML: prefixes inside the envelope, AttachmentEncoded unprefixed (same namespace).
MINIMAL_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>000.00.00.H55</edXML:OrganId></edXML:From>
        <edXML:To><edXML:OrganId>000.00.00.G22</edXML:OrganId></edXML:To>
        <edXML:Code>
          <edXML:CodeNumber>15</edXML:CodeNumber>
          <edXML:CodeNotation>UBND-VP</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:Place>Thái Nguyên</edXML:Place>
          <edXML:PromulgationDate>2024/12/20</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:DocumentType>
          <edXML:Type>18</edXML:Type>
          <edXML:TypeName>Công văn</edXML:TypeName>
        </edXML:DocumentType>
        <edXML:Subject>V/v kết nối, liên thông phần mềm quản lý văn bản</edXML:Subject>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader>
          <edXML:OrganId>000.00.00.H55</edXML:OrganId>
          <edXML:Timestamp>2024/12/20 08:30:00</edXML:Timestamp>
        </edXML:TraceHeader>
        <edXML:Bussiness>
          <edXML:BussinessDocType>0</edXML:BussinessDocType>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>15-UBND-VP.pdf</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>cid:1</ContentId>
      <AttachmentName>15-UBND-VP.pdf</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">JVBERi0xLjQK</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"""

# Every optional block of a document package, in the order of spec §2 and §3.
FULL_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.H55</edXML:OrganId>
          <edXML:OrganizationInCharge>Ủy ban nhân dân tỉnh Thái Nguyên</edXML:OrganizationInCharge>
          <edXML:OrganName>UBND tỉnh Thái Nguyên</edXML:OrganName>
          <edXML:OrganAdd>Số 18 Nha Trang, TP Thái Nguyên</edXML:OrganAdd>
          <edXML:Email>vanthu@thainguyen.gov.vn</edXML:Email>
          <edXML:Telephone>0208 3855 674</edXML:Telephone>
          <edXML:Fax>0208 3855 675</edXML:Fax>
          <edXML:Website>thainguyen.gov.vn</edXML:Website>
        </edXML:From>
        <edXML:To><edXML:OrganId>000.00.00.G22</edXML:OrganId><edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName></edXML:To>
        <edXML:To><edXML:OrganId>H41.12</edXML:OrganId></edXML:To>
        <edXML:DocumentId>000.00.00.H55,2024/12/20,69/2024/QĐ-UBND</edXML:DocumentId>
        <edXML:Code><edXML:CodeNumber>69/2024</edXML:CodeNumber><edXML:CodeNotation>QĐ-UBND</edXML:CodeNotation></edXML:Code>
        <edXML:PromulgationInfo><edXML:Place>Thái Nguyên</edXML:Place><edXML:PromulgationDate>2024/12/20</edXML:PromulgationDate></edXML:PromulgationInfo>
        <edXML:DocumentType><edXML:Type>2</edXML:Type><edXML:TypeDetail>0</edXML:TypeDetail><edXML:TypeName>Quyết định</edXML:TypeName></edXML:DocumentType>
        <edXML:Subject>Sửa đổi Quy chế quản lý Hệ thống quản lý văn bản và điều hành</edXML:Subject>
        <edXML:Content>Tóm tắt nội dung</edXML:Content>
        <edXML:SignerInfo><edXML:Competence>TM. UBND</edXML:Competence><edXML:Position>Chủ tịch</edXML:Position><edXML:FullName>Nguyễn Văn A</edXML:FullName></edXML:SignerInfo>
        <edXML:DueDate>2025/01/15</edXML:DueDate>
        <edXML:OtherInfo>
          <edXML:Priority>4</edXML:Priority>
          <edXML:SphereOfPromulgation>Liên thông văn bản quốc gia</edXML:SphereOfPromulgation>
          <edXML:TyperNotation>VP</edXML:TyperNotation>
          <edXML:PromulgationAmount>10</edXML:PromulgationAmount>
          <edXML:PageAmount>3</edXML:PageAmount>
          <edXML:Direction>true</edXML:Direction>
          <edXML:Appendixes><edXML:Appendix>Phụ lục I</edXML:Appendix><edXML:Appendix>Phụ lục II</edXML:Appendix></edXML:Appendixes>
        </edXML:OtherInfo>
        <edXML:ResponseFor>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:Code>7816/VPCP-TTĐT</edXML:Code>
          <edXML:DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</edXML:DocumentId>
          <edXML:PromulgationDate>2015/09/30</edXML:PromulgationDate>
        </edXML:ResponseFor>
        <edXML:ResponseFor>
          <edXML:OrganId>000.00.00.H41</edXML:OrganId>
          <edXML:DocumentId>0f8fad5b-d9cb-469f-a165-70867728950e</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:SteeringType>1</edXML:SteeringType>
        <edXML:ResponseForTask><edXML:TaskCode>NV-2024-15</edXML:TaskCode></edXML:ResponseForTask>
        <edXML:ApplicationType>MCDT_DT</edXML:ApplicationType>
        <edXML:ToPlaces><edXML:Place>Như trên</edXML:Place><edXML:Place>Lưu: VT</edXML:Place></edXML:ToPlaces>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:TraceHeader><edXML:OrganId>000.00.00.H55</edXML:OrganId><edXML:Timestamp>2024/12/20 08:30:00</edXML:Timestamp></edXML:TraceHeader>
        <edXML:TraceHeader><edXML:OrganId>000.00.00.G22</edXML:OrganId><edXML:Timestamp>2024/12/20 08:30:02</edXML:Timestamp></edXML:TraceHeader>
        <edXML:Bussiness>
          <edXML:DocumentId>000.00.00.H55,2024/12/19,68/2024/QĐ-UBND</edXML:DocumentId>
          <edXML:BussinessDocType>3</edXML:BussinessDocType>
          <edXML:BussinessDocReason>Thay thế văn bản ban hành sai thể thức</edXML:BussinessDocReason>
          <edXML:Paper>0</edXML:Paper>
          <edXML:StaffInfo>
            <edXML:Department>Văn thư</edXML:Department><edXML:DepartmentId>VT</edXML:DepartmentId>
            <edXML:Staff>Lê Thị B</edXML:Staff><edXML:StaffId>42</edXML:StaffId>
            <edXML:Email>vanthu@thainguyen.gov.vn</edXML:Email><edXML:Mobile>0912000001</edXML:Mobile>
          </edXML:StaffInfo>
          <edXML:BussinessDocumentInfo>
            <edXML:DocumentInfo>1</edXML:DocumentInfo>
            <edXML:DocumentReceiver>1</edXML:DocumentReceiver>
            <edXML:ReceiverList>
              <edXML:Receiver><edXML:OrganId>000.00.00.H41</edXML:OrganId><edXML:ReceiverType>1</edXML:ReceiverType></edXML:Receiver>
              <edXML:Receiver><edXML:OrganId>000.00.00.H14</edXML:OrganId><edXML:ReceiverType>0</edXML:ReceiverType></edXML:Receiver>
            </edXML:ReceiverList>
          </edXML:BussinessDocumentInfo>
          <edXML:ReplacementInfoList>
            <edXML:ReplacementInfo>
              <edXML:DocumentId>000.00.00.H55,2024/12/19,68/2024/QĐ-UBND</edXML:DocumentId>
              <edXML:OrganIdList><edXML:OrganId>000.00.00.G22</edXML:OrganId><edXML:OrganId>H41.12</edXML:OrganId></edXML:OrganIdList>
            </edXML:ReplacementInfo>
          </edXML:ReplacementInfoList>
        </edXML:Bussiness>
      </edXML:TraceHeaderList>
    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:3b1c5e1e-0a55-4c1e-9d1e-4f1a2b3c4d5e</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:Description>Bản ký số</edXML:Description>
          <edXML:AttachmentName>69-2024-QD-UBND.pdf</edXML:AttachmentName>
        </edXML:Reference>
        <edXML:Reference>
          <edXML:ContentId>cid:2</edXML:ContentId>
          <edXML:ContentType>application/vnd.openxmlformats-officedocument.wordprocessingml.document</edXML:ContentType>
          <edXML:AttachmentName>69-2024-QD-UBND.docx</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>3b1c5e1e-0a55-4c1e-9d1e-4f1a2b3c4d5e</ContentId>
      <AttachmentName>69-2024-QD-UBND.pdf</AttachmentName>
      <Description>Bản ký số</Description>
      <ContentType>application/pdf</ContentType>
      <edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">JVBERi0xLjcK</edXML:ContentTransferEncoded>
    </Attachment>
    <Attachment>
      <ContentId>cid:2</ContentId>
      <AttachmentName>69-2024-QD-UBND.docx</AttachmentName>
      <ContentType>application/vnd.openxmlformats-officedocument.wordprocessingml.document</ContentType>
      <edXML:ContentTransferEncoded xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">UEsDBBQ=</edXML:ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"""

STATUS = """<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From><edXML:OrganId>000.00.00.H55</edXML:OrganId><edXML:OrganName>UBND tỉnh Thái Nguyên</edXML:OrganName></edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:Code>7816/VPCP-TTĐT</edXML:Code>
          <edXML:PromulgationDate>2015/09/30</edXML:PromulgationDate>
          <edXML:DocumentId>000.00.00.G22,2015/09/30,7816/VPCP-TTĐT</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StaffInfo><edXML:Department>Văn thư</edXML:Department><edXML:Staff>Lê Thị B</edXML:Staff></edXML:StaffInfo>
        <edXML:StatusCode>03</edXML:StatusCode>
        <edXML:Description>Tiếp nhận văn bản điện tử, vào sổ văn bản đến</edXML:Description>
        <edXML:Timestamp>2024/12/20 09:00:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"""


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(SCHEMA_PATH))


@pytest.fixture(scope="module")
def libxml2_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def errors(schema: xmlschema.XMLSchema10, doc: etree._ElementTree | etree._Element) -> list[tuple[str, str]]:
    return [(e.path, e.reason or "") for e in schema.iter_errors(doc)]


def parse(xml: str) -> etree._ElementTree:
    return etree.ElementTree(etree.fromstring(xml.encode("utf-8")))


def find(doc: etree._ElementTree, path: str) -> etree._Element:
    found = doc.getroot().find(path, P)
    assert found is not None, path
    return found


def test_schema_loads_in_both_validators(schema, libxml2_schema):
    assert schema.validity == "valid"
    assert schema.target_namespace == NS
    assert [e.local_name for e in schema.elements.values()] == ["edXML"]


@pytest.mark.parametrize("name", ["status_inbox_01.edxml", "status_rejection_02.edxml",
                                  "status_acceptance_03.edxml", "status_finish_06.edxml"])
def test_status_samples_validate(schema, libxml2_schema, name):
    doc = etree.parse(str(sample(name)))
    assert errors(schema, doc) == []
    assert libxml2_schema.validate(doc), libxml2_schema.error_log


def test_new_document_sample_fails_exactly_where_it_is_not_what_we_emit(schema, libxml2_schema):
    doc = etree.parse(str(sample("edoc_new.truncated.edxml")))
    found = errors(schema, doc)
    assert [path for path, _ in found] == [
        "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To/OrganId",   # 28.22.H17
        "/edXML/edXMLEnvelope/edXMLHeader",                            # placeholder Signature
        "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded",  # ...TRUNCATED(...)
    ]
    assert "pattern" in found[0][1]
    assert "edXML:Signature" in found[1][1]
    assert "pattern" in found[2][1]
    assert not libxml2_schema.validate(doc)
    assert len(libxml2_schema.error_log) == 3


def test_revocation_sample_fails_only_on_placeholder_signature_and_truncated_attachment(schema):
    doc = etree.parse(str(sample("edoc_revocation.truncated.edxml")))
    assert [path for path, _ in errors(schema, doc)] == [
        "/edXML/edXMLEnvelope/edXMLHeader",
        "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded",
    ]


def test_revocation_sample_validates_once_its_two_defects_are_repaired(schema):
    doc = etree.parse(str(sample("edoc_revocation.truncated.edxml")))
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader")
    header.remove(header.find("e:Signature", P))
    find(doc, "e:AttachmentEncoded/e:Attachment/e:ContentTransferEncoded").text = "UEsDBBQ="
    assert errors(schema, doc) == []


@pytest.mark.parametrize("xml", [MINIMAL_DOCUMENT, FULL_DOCUMENT, STATUS], ids=["minimal", "full", "status"])
def test_reference_layout_validates(schema, libxml2_schema, xml):
    doc = parse(xml)
    assert errors(schema, doc) == []
    assert libxml2_schema.validate(doc), libxml2_schema.error_log


def test_document_without_attachments_validates(schema):
    doc = parse(MINIMAL_DOCUMENT)
    doc.getroot().remove(find(doc, "e:AttachmentEncoded"))
    manifest = find(doc, "e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest")
    manifest.remove(manifest.find("e:Reference", P))
    assert errors(schema, doc) == []


def test_status_without_staff_info_validates(schema):
    doc = parse(STATUS)
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    header.remove(header.find("e:StaffInfo", P))
    assert errors(schema, doc) == []


# --- Real XMLDSig signatures, last child of edXMLHeader -----------------------------------------

@pytest.fixture(scope="module")
def signing_identity() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Văn thư UBND tỉnh Thái Nguyên"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert


def sign(xml: str, identity) -> etree._Element:
    key, cert = identity
    root = etree.fromstring(xml.encode("utf-8"))
    header = root.find("e:edXMLEnvelope/e:edXMLHeader", P)
    etree.SubElement(header, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm="rsa-sha256",
                       digest_algorithm="sha256", c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
    return signer.sign(root, key=key, cert=[cert])


@pytest.mark.parametrize("xml", [MINIMAL_DOCUMENT, STATUS], ids=["document", "status"])
def test_package_signed_with_real_xmldsig_validates(schema, libxml2_schema, signing_identity, xml):
    signed = sign(xml, signing_identity)
    header = signed.find("e:edXMLEnvelope/e:edXMLHeader", P)
    assert header[-1].tag == f"{{{DS}}}Signature"
    assert errors(schema, signed) == []
    assert libxml2_schema.validate(signed), libxml2_schema.error_log
    XMLVerifier().verify(signed, x509_cert=signing_identity[1])  # the signature is real


def test_signature_must_be_the_last_child_of_the_header(schema, signing_identity):
    signed = sign(MINIMAL_DOCUMENT, signing_identity)
    header = signed.find("e:edXMLEnvelope/e:edXMLHeader", P)
    signature = header[-1]
    header.remove(signature)
    header.insert(1, signature)  # between MessageHeader and TraceHeaderList
    assert [p for p, _ in errors(schema, signed)] == ["/edXML/edXMLEnvelope/edXMLHeader"]


def test_signature_with_broken_xmldsig_structure_fails(schema, signing_identity):
    signed = sign(MINIMAL_DOCUMENT, signing_identity)
    signature_value = signed.find(".//ds:SignatureValue", P)
    signature_value.getparent().remove(signature_value)
    assert errors(schema, signed) != []


# --- Mutations that must fail -------------------------------------------------------------------

def _swap_subject_and_document_type(doc):
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    subject = header.find("e:Subject", P)
    header.remove(subject)
    header.insert(list(header).index(header.find("e:DocumentType", P)), subject)


def _remove(path):
    def mutate(doc):
        el = find(doc, path)
        el.getparent().remove(el)
    return mutate


def _set(path, value):
    def mutate(doc):
        find(doc, path).text = value
    return mutate


def _move_document_id_last(doc):
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    doc_id = header.find("e:DocumentId", P)
    header.remove(doc_id)
    header.append(doc_id)


def _placeholder_signature(doc):
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader")
    etree.SubElement(header, f"{{{NS}}}Signature")


def _attachment_in_no_namespace(doc):
    attachments = find(doc, "e:AttachmentEncoded")
    attachments.tag = "AttachmentEncoded"


def _trace_header_after_bussiness(doc):
    trace_list = find(doc, "e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList")
    first = trace_list.find("e:TraceHeader", P)
    trace_list.remove(first)
    trace_list.append(first)


def _status_with_to(doc):
    header = find(doc, "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader")
    to = etree.Element(f"{{{NS}}}To")
    etree.SubElement(to, f"{{{NS}}}OrganId").text = "000.00.00.G22"
    header.insert(1, to)


DOC = "e:edXMLEnvelope/e:edXMLHeader/e:MessageHeader"
BODY = "e:edXMLEnvelope/e:edXMLBody/e:edXMLManifest"

MUTATIONS = [
    ("wrong order: Subject before DocumentType", FULL_DOCUMENT, _swap_subject_and_document_type,
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("wrong order: DocumentId last (.NET order)", FULL_DOCUMENT, _move_document_id_last,
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("wrong order: TraceHeader after Bussiness", FULL_DOCUMENT, _trace_header_after_bussiness,
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList"),
    ("missing Subject", MINIMAL_DOCUMENT, _remove(f"{DOC}/e:Subject"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("empty Subject", MINIMAL_DOCUMENT, _set(f"{DOC}/e:Subject", "  "),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Subject"),
    ("missing To", MINIMAL_DOCUMENT, _remove(f"{DOC}/e:To"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("ISO date", MINIMAL_DOCUMENT, _set(f"{DOC}/e:PromulgationInfo/e:PromulgationDate", "2024-12-20"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/PromulgationInfo/PromulgationDate"),
    ("month 13", FULL_DOCUMENT, _set(f"{DOC}/e:DueDate", "2025/13/01"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DueDate"),
    ("ISO timestamp", MINIMAL_DOCUMENT,
     _set("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList/e:TraceHeader/e:Timestamp", "2024-12-20T08:30:00"),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/TraceHeader/Timestamp"),
    ("hour 24", STATUS, _set(f"{DOC}/e:Timestamp", "2024/12/20 24:00:00"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Timestamp"),
    ("unknown status code 07", STATUS, _set(f"{DOC}/e:StatusCode", "07"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode"),
    ("status code without leading zero", STATUS, _set(f"{DOC}/e:StatusCode", "3"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode"),
    ("status without Timestamp", STATUS, _remove(f"{DOC}/e:Timestamp"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("status that also has To", STATUS, _status_with_to,
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader"),
    ("malformed OrganId", MINIMAL_DOCUMENT, _set(f"{DOC}/e:From/e:OrganId", "28.22.H17"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganId"),
    ("DocumentId without date", FULL_DOCUMENT, _set(f"{DOC}/e:DocumentId", "000.00.00.H55,69/2024/QĐ-UBND"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId"),
    ("priority 5", FULL_DOCUMENT, _set(f"{DOC}/e:OtherInfo/e:Priority", "5"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Priority"),
    ("Direction 1", FULL_DOCUMENT, _set(f"{DOC}/e:OtherInfo/e:Direction", "1"),
     "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Direction"),
    ("BussinessDocType 4", MINIMAL_DOCUMENT,
     _set("e:edXMLEnvelope/e:edXMLHeader/e:TraceHeaderList/e:Bussiness/e:BussinessDocType", "4"),
     "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"),
    ("placeholder Signature in the edXML namespace", MINIMAL_DOCUMENT, _placeholder_signature,
     "/edXML/edXMLEnvelope/edXMLHeader"),
    ("base64 on several lines", MINIMAL_DOCUMENT,
     _set("e:AttachmentEncoded/e:Attachment/e:ContentTransferEncoded", "JVBE\nRi0xLjQK"),
     "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"),
    ("AttachmentEncoded outside the edXML namespace", MINIMAL_DOCUMENT, _attachment_in_no_namespace,
     "/edXML"),
    ("manifest version 2.0", MINIMAL_DOCUMENT, lambda doc: find(doc, BODY).set("version", "2.0"),
     "/edXML/edXMLEnvelope/edXMLBody/edXMLManifest"),
]


@pytest.mark.parametrize("xml, mutate, path", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutation_fails_where_it_was_made(schema, libxml2_schema, xml, mutate, path):
    doc = parse(xml)
    assert errors(schema, doc) == []
    mutate(doc)
    found = errors(schema, doc)
    assert [p for p, _ in found] == [path], found
    assert not libxml2_schema.validate(doc)


def test_attachment_base64_is_checked_for_padding(schema):
    doc = parse(MINIMAL_DOCUMENT)
    find(doc, "e:AttachmentEncoded/e:Attachment/e:ContentTransferEncoded").text = \
        base64.b64encode(b"%PDF-1.4\n").decode()[:-1]
    assert [p for p, _ in errors(schema, doc)] == ["/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"]
