"""Build the reference-built corpus: packages laid out the way VNPT's edXML library writes them.

Written from the description of the reference library (EdXML102 0.0.3) that came with the
captures of its axis client, and from the shared samples, not from its code:
- every attachment is zipped into a single-member ZIP under its original name and declared
  `application/zip`, except a file that is itself a `.zip`, which travels as it is;
- `Bussiness` comes first in the TraceHeaderList, then the sender's TraceHeader;
- a document package carries the library's placeholder `Signature` (fixed values, default
  namespace), a status package carries no signature element at all.

`python -m tests.edxml.reference_built` rewrites tests/data/reference-built/; the files are
committed, so a test reads exactly the bytes a reviewer can open.
"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "reference-built"

SENDER = "000.00.00.H55"       # UBND tỉnh Thái Nguyên
RECIPIENT = "000.00.00.H41"    # UBND tỉnh Nghệ An
DOCUMENT_ID = f"{SENDER},2026/12/02,123/UBND-VP"

#: What the attachments hold once unwrapped (a tiny PDF, and a genuine ZIP sent as one).
PDF_NAME = "cong-van-123.pdf"
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
ZIP_NAME = "ho-so-kem-theo.zip"
_FIXED = (2026, 12, 2, 9, 30, 0)


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(name, date_time=_FIXED), data,
                    compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


#: A genuine ZIP file the clerk attached (its one member is a text list of the dossier).
GENUINE_ZIP = _zip("danh-muc-ho-so.txt", "Danh mục hồ sơ kèm theo\n".encode("utf-8"))

_PLACEHOLDER_SIGNATURE = """      <Signature>
        <SignedInfo>
          <CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />
          <SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#rsa-sha1" />
          <Reference URI="">
            <Transforms>
              <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature" />
              <Transform Algorithm="http://www.w3.org/TR/xml-exc-c14n#" />
            </Transforms>
            <DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1" />
            <DigestValue>FwgIqsSYJshUS2+wlOM61L+q7Aw=</DigestValue>
          </Reference>
        </SignedInfo>
        <SignatureValue>GbVb8n9+qFxz466Ag0sbpVdLPs2R0+9JBekp12UyarAZjoG0W/kPZZJ1auRZDcNc</SignatureValue>
        <KeyInfo>
          <X509Data>
            <X509SubjectName>CN=user05</X509SubjectName>
            <X509Certificate>MIIFqTCCBJG</X509Certificate>
          </X509Data>
        </KeyInfo>
      </Signature>
"""


def _organization(tag: str, organ_id: str, name: str) -> str:
    return (f"        <edXML:{tag}>\n"
            f"          <edXML:OrganId>{organ_id}</edXML:OrganId>\n"
            f"          <edXML:OrganizationInCharge>{name}</edXML:OrganizationInCharge>\n"
            f"          <edXML:OrganName>{name}</edXML:OrganName>\n"
            f"        </edXML:{tag}>\n")


def _attachment(cid: str, name: str, payload: bytes) -> tuple[str, str]:
    """(manifest Reference, Attachment) of one file the library's way."""
    wire = payload if name.lower().endswith(".zip") else _zip(name, payload)
    reference = (f"        <edXML:Reference>\n"
                 f"          <edXML:ContentId>cid:{cid}</edXML:ContentId>\n"
                 f"          <edXML:ContentType>application/zip</edXML:ContentType>\n"
                 f"          <edXML:Description>{name}</edXML:Description>\n"
                 f"          <edXML:AttachmentName>{name}</edXML:AttachmentName>\n"
                 f"        </edXML:Reference>\n")
    attachment = (f"    <Attachment>\n"
                  f"      <ContentId>cid:{cid}</ContentId>\n"
                  f"      <AttachmentName>{name}</AttachmentName>\n"
                  f"      <Description>{name}</Description>\n"
                  f"      <ContentType>application/zip</ContentType>\n"
                  f'      <edXML:ContentTransferEncoded xmlns:edXML="{NS}">'
                  f"{base64.b64encode(wire).decode()}</edXML:ContentTransferEncoded>\n"
                  f"    </Attachment>\n")
    return reference, attachment


def document_package() -> bytes:
    """A new document (BussinessDocType 0) from Thái Nguyên to Nghệ An, two attachments."""
    parts = [_attachment("301", PDF_NAME, PDF), _attachment("302", ZIP_NAME, GENUINE_ZIP)]
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
{_organization("From", SENDER, "UBND tỉnh Thái Nguyên")}{_organization("To", RECIPIENT, "UBND tỉnh Nghệ An")}        <edXML:DocumentId>{DOCUMENT_ID}</edXML:DocumentId>
        <edXML:Code>
          <edXML:CodeNumber>123</edXML:CodeNumber>
          <edXML:CodeNotation>UBND-VP</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:Place>Thái Nguyên</edXML:Place>
          <edXML:PromulgationDate>2026/12/02</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:DocumentType>
          <edXML:Type>1</edXML:Type>
          <edXML:TypeDetail>0</edXML:TypeDetail>
          <edXML:TypeName>Công văn</edXML:TypeName>
        </edXML:DocumentType>
        <edXML:Subject>V/v phối hợp kết nối liên thông văn bản</edXML:Subject>
        <edXML:SteeringType>1</edXML:SteeringType>
      </edXML:MessageHeader>
      <edXML:TraceHeaderList>
        <edXML:Bussiness>
          <edXML:BussinessDocType>0</edXML:BussinessDocType>
          <edXML:BussinessDocReason>Văn bản điện tử mới</edXML:BussinessDocReason>
          <edXML:Paper>0</edXML:Paper>
          <edXML:StaffInfo>
            <edXML:Department>Văn thư văn phòng</edXML:Department>
            <edXML:Staff>Nguyễn Thị Lan</edXML:Staff>
          </edXML:StaffInfo>
        </edXML:Bussiness>
        <edXML:TraceHeader>
          <edXML:OrganId>{SENDER}</edXML:OrganId>
          <edXML:Timestamp>2026/12/02 09:30:00</edXML:Timestamp>
        </edXML:TraceHeader>
      </edXML:TraceHeaderList>
{_PLACEHOLDER_SIGNATURE}    </edXML:edXMLHeader>
    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
{"".join(r for r, _ in parts)}      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded>
{"".join(a for _, a in parts)}  </AttachmentEncoded>
</edXML>
"""
    return text.encode("utf-8")


def status_package(code: str = "03", description: str = "Tiếp nhận") -> bytes:
    """Nghệ An's receipt for the document above: no signature element at all."""
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{NS}">
  <edXML:edXMLEnvelope xmlns:edXML="{NS}">
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
{_organization("From", RECIPIENT, "UBND tỉnh Nghệ An")}        <edXML:ResponseFor>
          <edXML:OrganId>{SENDER}</edXML:OrganId>
          <edXML:Code>123/UBND-VP</edXML:Code>
          <edXML:PromulgationDate>2026/12/02</edXML:PromulgationDate>
          <edXML:DocumentId>{DOCUMENT_ID}</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StaffInfo>
          <edXML:Department>Văn thư</edXML:Department>
          <edXML:Staff>Trần Văn Bình</edXML:Staff>
        </edXML:StaffInfo>
        <edXML:StatusCode>{code}</edXML:StatusCode>
        <edXML:Description>{description}</edXML:Description>
        <edXML:Timestamp>2026/12/02 10:05:00</edXML:Timestamp>
      </edXML:MessageHeader>
    </edXML:edXMLHeader>
  </edXML:edXMLEnvelope>
</edXML>
"""
    return text.encode("utf-8")


FILES = {
    "edoc_new_h55_to_h41.edxml": document_package,
    "status_03_h41_to_h55.edxml": status_package,
}


def corpus_path(name: str) -> Path:
    return CORPUS_DIR / name


def main() -> None:
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in FILES.items():
        corpus_path(name).write_bytes(build())
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
