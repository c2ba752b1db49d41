"""The package model: typed, immutable objects for document and status packages.

Field order is wire order. Each field's metadata names its edXML element and how its value is
written, so the writer and the reader share one table of the standard instead of two
hand-written copies (`xml_fields()` reads it). Python names are the edXML names in snake_case;
the few renames (`from_` for From, `business` for the misspelt Bussiness) are visible here.

Identifiers (OrganId, DocumentId) are kept as the wire strings: the writer checks them strictly
and the reader leniently (see `edxml.values`), because real traffic carries malformed ones that a
receiver must still be able to hand on.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

from edxml.values import BusinessDocType

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class Kind(enum.Enum):
    """How a field's value travels as element content."""

    TEXT = "text"
    INT = "int"
    DATE = "date"            # yyyy/MM/dd
    TIMESTAMP = "timestamp"  # yyyy/MM/dd HH:mm:ss, Vietnam time
    BOOL = "bool"            # true / false
    STATUS = "status"        # StatusCode, two digits
    NODE = "node"            # one nested element
    REPEAT = "repeat"        # the element itself repeats (To+, ResponseFor*, TraceHeader*)
    LIST = "list"            # a wrapper element holding repeated items (ToPlaces/Place*)


@dataclass(frozen=True)
class XmlField:
    name: str
    kind: Kind
    item: str | None = None                    # LIST: the repeated child's element name
    item_kind: Kind | None = None              # LIST: TEXT or NODE
    node: type | None = None                   # NODE/REPEAT/LIST of NODE: the model class
    required: bool = False
    allowed: range | None = None               # INT: the values the standard allows


_INT = range(-999_999_999, 1_000_000_000)   # what fits the XSD's nine digits
_COUNT = range(0, 1_000_000_000)
_FLAG = range(0, 2)


def _xml(name: str, kind: Kind = Kind.TEXT, *, item: str | None = None,
         item_kind: Kind | None = None, node: type | None = None, required: bool = False,
         default: Any = None, allowed: range | None = None) -> Any:
    if kind is Kind.INT and allowed is None:
        allowed = _INT
    meta = {"xml": XmlField(name, kind, item, item_kind, node, required, allowed)}
    if kind in (Kind.REPEAT, Kind.LIST) and default is None:
        return field(default=(), metadata=meta)
    return field(default=default, metadata=meta)


def xml_fields(cls: type) -> Iterator[tuple[str, XmlField]]:
    """The (attribute name, XmlField) pairs of a model class, in wire order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("xml")
        if meta is not None:
            yield f.name, meta


class StatusCode(enum.Enum):
    """The nine status codes of a receipt (edxml.md §4); no others exist in any source."""

    RECEIVED = "01"           # đã đến
    REJECTED = "02"           # từ chối
    ACCEPTED = "03"           # tiếp nhận
    ASSIGNED = "04"           # phân công
    IN_PROGRESS = "05"        # đang xử lý
    FINISHED = "06"           # hoàn thành
    RECALL_REQUESTED = "13"   # yêu cầu lấy lại
    RECALL_AGREED = "15"      # đồng ý cập nhật/lấy lại
    RECALL_REFUSED = "16"     # từ chối cập nhật/lấy lại

    @property
    def label(self) -> str:
        """The Vietnamese meaning a clerk reads."""
        return _STATUS_LABELS[self]

    @property
    def from_receiver(self) -> bool:
        """True for codes the receiving agency sends back; only 13 goes sender → receiver."""
        return self is not StatusCode.RECALL_REQUESTED


_STATUS_LABELS = {
    StatusCode.RECEIVED: "Đã đến",
    StatusCode.REJECTED: "Từ chối",
    StatusCode.ACCEPTED: "Tiếp nhận",
    StatusCode.ASSIGNED: "Phân công",
    StatusCode.IN_PROGRESS: "Đang xử lý",
    StatusCode.FINISHED: "Hoàn thành",
    StatusCode.RECALL_REQUESTED: "Yêu cầu lấy lại",
    StatusCode.RECALL_AGREED: "Đồng ý cập nhật/lấy lại",
    StatusCode.RECALL_REFUSED: "Từ chối cập nhật/lấy lại",
}


# --- organisations and identities -------------------------------------------------------------

@dataclass(frozen=True)
class Organization:
    """From / To: an agency. Only OrganId is reliably filled in real traffic."""

    organ_id: str = _xml("OrganId", required=True, default="")
    organization_in_charge: str | None = _xml("OrganizationInCharge")
    organ_name: str | None = _xml("OrganName")
    organ_add: str | None = _xml("OrganAdd")
    email: str | None = _xml("Email")
    telephone: str | None = _xml("Telephone")
    fax: str | None = _xml("Fax")
    website: str | None = _xml("Website")


@dataclass(frozen=True)
class Code:
    code_number: str = _xml("CodeNumber", required=True, default="")      # số
    code_notation: str = _xml("CodeNotation", required=True, default="")  # ký hiệu, e.g. QĐ-UBND


@dataclass(frozen=True)
class PromulgationInfo:
    place: str = _xml("Place", required=True, default="")
    promulgation_date: date | None = _xml("PromulgationDate", Kind.DATE, required=True)


@dataclass(frozen=True)
class DocumentType:
    """Type/TypeDetail are kept raw: their code list is not settled (edxml.md §2)."""

    type: int | None = _xml("Type", Kind.INT, required=True)
    type_detail: int | None = _xml("TypeDetail", Kind.INT)
    type_name: str = _xml("TypeName", required=True, default="")  # e.g. "Công văn"


@dataclass(frozen=True)
class SignerInfo:
    competence: str | None = _xml("Competence")   # KT., TL., TM. …
    position: str | None = _xml("Position")
    full_name: str = _xml("FullName", required=True, default="")


@dataclass(frozen=True)
class OtherInfo:
    priority: int = _xml("Priority", Kind.INT, required=True, default=0,
                         allowed=range(0, 5))  # see edxml.values.Priority
    sphere_of_promulgation: str | None = _xml("SphereOfPromulgation")
    typer_notation: str | None = _xml("TyperNotation")
    promulgation_amount: int | None = _xml("PromulgationAmount", Kind.INT, allowed=_COUNT)
    page_amount: int | None = _xml("PageAmount", Kind.INT, allowed=_COUNT)
    reply_fors: str | None = _xml("ReplyFors")
    direction: bool | None = _xml("Direction", Kind.BOOL)
    reference_codes: str | None = _xml("ReferenceCodes")
    appendixes: tuple[str, ...] = _xml("Appendixes", Kind.LIST, item="Appendix",
                                       item_kind=Kind.TEXT)


@dataclass(frozen=True)
class ResponseFor:
    """The document this one answers, or (in a status package) the document a receipt is about."""

    organ_id: str = _xml("OrganId", required=True, default="")
    code: str | None = _xml("Code")  # "số/ký hiệu" in one string
    promulgation_date: date | None = _xml("PromulgationDate", Kind.DATE)
    # Mandatory on output (a receipt names its document by sender + DocumentId); some
    # producers send only Code, which the reader accepts.
    document_id: str | None = _xml("DocumentId", required=True)


@dataclass(frozen=True)
class MessageHeader:
    """MessageHeader of a document package, fields in the reference Java library's order (§2)."""

    from_: Organization = _xml("From", Kind.NODE, node=Organization, required=True,
                               default=Organization())
    to: tuple[Organization, ...] = _xml("To", Kind.REPEAT, node=Organization, required=True)
    document_id: str | None = _xml("DocumentId")
    code: Code = _xml("Code", Kind.NODE, node=Code, required=True, default=Code())
    promulgation_info: PromulgationInfo = _xml("PromulgationInfo", Kind.NODE,
                                               node=PromulgationInfo, required=True,
                                               default=PromulgationInfo())
    document_type: DocumentType = _xml("DocumentType", Kind.NODE, node=DocumentType,
                                       required=True, default=DocumentType())
    subject: str = _xml("Subject", required=True, default="")  # trích yếu
    content: str | None = _xml("Content")
    signer_info: SignerInfo | None = _xml("SignerInfo", Kind.NODE, node=SignerInfo)
    due_date: date | None = _xml("DueDate", Kind.DATE)  # hạn xử lý
    other_info: OtherInfo | None = _xml("OtherInfo", Kind.NODE, node=OtherInfo)
    response_for: tuple[ResponseFor, ...] = _xml("ResponseFor", Kind.REPEAT, node=ResponseFor)
    steering_type: int | None = _xml("SteeringType", Kind.INT)
    response_for_task: tuple[str, ...] | None = _xml("ResponseForTask", Kind.LIST,
                                                     item="TaskCode", item_kind=Kind.TEXT,
                                                     default=None)
    application_type: str | None = _xml("ApplicationType")  # MCDT_DT for one-stop-shop systems
    to_places: tuple[str, ...] | None = _xml("ToPlaces", Kind.LIST, item="Place",
                                             item_kind=Kind.TEXT, default=None)


# --- trace and business flow ------------------------------------------------------------------

@dataclass(frozen=True)
class TraceHeader:
    """One hop: the system that handled the package and when. The axis appends its own."""

    organ_id: str = _xml("OrganId", required=True, default="")
    timestamp: datetime | None = _xml("Timestamp", Kind.TIMESTAMP, required=True)


@dataclass(frozen=True)
class BusinessStaffInfo:
    """Bussiness/StaffInfo: the clerk behind a business flow (§3 order)."""

    department: str | None = _xml("Department")
    department_id: str | None = _xml("DepartmentId")
    staff: str | None = _xml("Staff")
    staff_id: str | None = _xml("StaffId")
    email: str | None = _xml("Email")
    mobile: str | None = _xml("Mobile")


@dataclass(frozen=True)
class Receiver:
    organ_id: str = _xml("OrganId", required=True, default="")
    receiver_type: int = _xml("ReceiverType", Kind.INT, required=True, default=1,
                              allowed=_FLAG)  # 0 removed, 1 added


@dataclass(frozen=True)
class BusinessDocumentInfo:
    """What an update (BussinessDocType 2) changes."""

    document_info: int = _xml("DocumentInfo", Kind.INT, required=True, default=0,
                              allowed=_FLAG)          # 1 = metadata changed
    document_receiver: int = _xml("DocumentReceiver", Kind.INT, required=True, default=0,
                                  allowed=_FLAG)      # 1 = recipient list changed
    receiver_list: tuple[Receiver, ...] = _xml("ReceiverList", Kind.LIST, item="Receiver",
                                               item_kind=Kind.NODE, node=Receiver)


@dataclass(frozen=True)
class ReplacementInfo:
    """Replace (BussinessDocType 3): which document is replaced, for which agencies."""

    document_id: str = _xml("DocumentId", required=True, default="")
    organ_id_list: tuple[str, ...] = _xml("OrganIdList", Kind.LIST, item="OrganId",
                                          item_kind=Kind.TEXT, required=True)


@dataclass(frozen=True)
class Business:
    """The misspelt `Bussiness` element: the business flow of a document package."""

    document_id: str | None = _xml("DocumentId")  # target of revoke/update/replace
    business_doc_type: int = _xml("BussinessDocType", Kind.INT, required=True,
                                  default=BusinessDocType.NEW.value, allowed=range(0, 4))
    business_doc_reason: str | None = _xml("BussinessDocReason")
    paper: int | None = _xml("Paper", Kind.INT, allowed=_FLAG)  # 1: a paper copy is also sent
    staff_info: BusinessStaffInfo | None = _xml("StaffInfo", Kind.NODE, node=BusinessStaffInfo)
    business_document_info: BusinessDocumentInfo | None = _xml(
        "BussinessDocumentInfo", Kind.NODE, node=BusinessDocumentInfo)
    replacement_info_list: tuple[ReplacementInfo, ...] | None = _xml(
        "ReplacementInfoList", Kind.LIST, item="ReplacementInfo", item_kind=Kind.NODE,
        node=ReplacementInfo, default=None)


@dataclass(frozen=True)
class TraceHeaderList:
    trace_headers: tuple[TraceHeader, ...] = _xml("TraceHeader", Kind.REPEAT, node=TraceHeader)
    business: Business | None = _xml("Bussiness", Kind.NODE, node=Business)


# --- attachments ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attachment:
    """One attached file: its manifest entry plus where its bytes are.

    `content_id` is stored without the `cid:` prefix (the wire carries both spellings). For
    writing, `path` is the file whose bytes are streamed into the package; a reader sets it to
    the decoded file it wrote.
    """

    content_id: str
    attachment_name: str
    content_type: str = "application/octet-stream"
    description: str | None = None
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None


# --- packages ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DocumentPackage:
    """A document package ("edoc"): header, trace and business flow, attachments."""

    message_header: MessageHeader
    trace_header_list: TraceHeaderList = TraceHeaderList()
    attachments: tuple[Attachment, ...] = ()

    @property
    def business_doc_type(self) -> BusinessDocType:
        business = self.trace_header_list.business
        return BusinessDocType(business.business_doc_type) if business else BusinessDocType.NEW


@dataclass(frozen=True)
class StaffInfo:
    """StaffInfo of a status package (§1.2 order)."""

    department: str | None = _xml("Department")
    staff: str | None = _xml("Staff")
    mobile: str | None = _xml("Mobile")
    email: str | None = _xml("Email")


@dataclass(frozen=True)
class StatusHeader:
    """MessageHeader of a status package (a receipt)."""

    from_: Organization = _xml("From", Kind.NODE, node=Organization, required=True,
                               default=Organization())
    response_for: ResponseFor = _xml("ResponseFor", Kind.NODE, node=ResponseFor, required=True,
                                     default=ResponseFor())
    staff_info: StaffInfo | None = _xml("StaffInfo", Kind.NODE, node=StaffInfo)
    status_code: StatusCode = _xml("StatusCode", Kind.STATUS, required=True,
                                   default=StatusCode.RECEIVED)
    description: str = _xml("Description", required=True, default="")
    timestamp: datetime | None = _xml("Timestamp", Kind.TIMESTAMP, required=True)


@dataclass(frozen=True)
class StatusPackage:
    """A status package ("status"): a receipt naming the original document via ResponseFor."""

    message_header: StatusHeader


Package = DocumentPackage | StatusPackage
