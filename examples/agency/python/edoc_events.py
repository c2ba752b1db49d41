"""What an agency's software needs to talk to edoc-gateway over Kafka: build, check, publish and
read CloudEvents (Kafka binary mode). Depends on aiokafka and jsonschema only — not on the
gateway — so it can be copied into a vendor's product as a starting point.

    event = document_send(sender=..., recipients=[...], number="1234", notation="UBND-VP", ...)
    validate(event)                      # against schemas/events/<type>.schema.json
    await publish(producer, event)       # on edoc.outbound.<sending agency>.documents

docs/integration.md walks through it; docs/events.md is the contract.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

VN = timezone(timedelta(hours=7))
DOCUMENT_SEND = "vn.gov.edoc.document.send.v1"
RECEIPT_SEND = "vn.gov.edoc.receipt.send.v1"
# The gateway's default topics: each agency has its own, named with its OrganId, and its Kafka
# user may write only its own outbound topics and read only its own delivery and inbound ones.
# The gateway sends an event in the name of the agency whose topic it was published to.
TOPICS = {DOCUMENT_SEND: "edoc.outbound.{agency}.documents",
          RECEIPT_SEND: "edoc.outbound.{agency}.receipts"}
READ_TOPICS = ("edoc.delivery.{agency}", "edoc.inbound.{agency}.documents",
               "edoc.inbound.{agency}.receipts")


def kafka_login(env: Any = None) -> dict[str, Any]:
    """aiokafka keyword arguments for your own Kafka account, from the environment:
    KAFKA_SECURITY_PROTOCOL (SASL_SSL in production), KAFKA_SASL_MECHANISM (SCRAM-SHA-512),
    KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE. Empty for a PLAINTEXT lab."""
    import os

    env = os.environ if env is None else env
    protocol = env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        options.update(sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                       sasl_plain_username=env["KAFKA_SASL_USERNAME"],
                       sasl_plain_password=env["KAFKA_SASL_PASSWORD"])
    if protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(cafile=env.get("KAFKA_SSL_CAFILE"))
    return options


def outbound_topic(event_type: str, agency: str) -> str:
    """Where `agency` publishes events of `event_type`."""
    return TOPICS[event_type].replace("{agency}", agency)


def read_topics(agency: str) -> list[str]:
    """What the gateway publishes for `agency`: delivery outcomes, documents and receipts."""
    return [t.replace("{agency}", agency) for t in READ_TOPICS]


def schema_dir() -> Path:
    """schemas/events of the repository this file sits in (examples/agency/python/...)."""
    return Path(__file__).resolve().parents[3] / "schemas" / "events"


@cache
def _validator(event_type: str, directory: Path | None = None) -> Draft202012Validator:
    path = (directory or schema_dir()) / f"{event_type}.schema.json"
    return Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Event:
    """A CloudEvent as agency software publishes or reads it."""

    type: str
    data: dict[str, Any]
    source: str
    agency: str
    key: str                                  # the DocumentId: the Kafka record key
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(VN))

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka record headers of the binary content mode."""
        attrs = {"ce_specversion": "1.0", "ce_id": self.id, "ce_source": self.source,
                 "ce_type": self.type, "ce_time": self.time.isoformat(),
                 "ce_subject": self.key, "ce_agency": self.agency,
                 "content-type": "application/json"}
        return [(name, value.encode("utf-8")) for name, value in attrs.items()]

    def value(self) -> bytes:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def structured(self) -> dict[str, Any]:
        """The event in the CloudEvents JSON format: one line of a conformance file."""
        return {"specversion": "1.0", "id": self.id, "source": self.source, "type": self.type,
                "time": self.time.isoformat(), "subject": self.key, "agency": self.agency,
                "datacontenttype": "application/json", "data": self.data}


def attachment(path: Path, *, content_id: str = "1", content_type: str = "application/pdf",
               description: str | None = None) -> dict[str, Any]:
    """An attachment reference (claim check): the file stays on the shared volume; the event
    carries its absolute file:// URI, SHA-256 and size. Do not change the file afterwards."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    ref = {"content_id": content_id, "attachment_name": path.name, "content_type": content_type,
           "uri": path.resolve().as_uri(), "sha256": digest.hexdigest(),
           "size": path.stat().st_size}
    if description:
        ref["description"] = description
    return ref


def document_send(*, sender: tuple[str, str], recipients: list[tuple[str, str]], number: str,
                  notation: str, subject: str, place: str, attachments: list[dict[str, Any]],
                  type_name: str = "Công văn", signer: str | None = None,
                  when: date | None = None, source: str | None = None) -> Event:
    """A `document.send` event for a new document (see docs/events.md)."""
    when = when or datetime.now(VN).date()
    organ_id, organ_name = sender
    document_id = f"{organ_id},{when:%Y/%m/%d},{number}/{notation}"
    header: dict[str, Any] = {
        "from": {"organ_id": organ_id, "organ_name": organ_name},
        "to": [{"organ_id": o, "organ_name": n} for o, n in recipients],
        "document_id": document_id,
        "code": {"code_number": number, "code_notation": notation},
        "promulgation_info": {"place": place, "promulgation_date": when.isoformat()},
        "document_type": {"type": 1, "type_name": type_name},
        "subject": subject,
    }
    if signer:
        header["signer_info"] = {"full_name": signer}
    data = {"message_header": header, "attachments": attachments, "secrecy": "none"}
    return Event(type=DOCUMENT_SEND, data=data, source=source or f"urn:qlvb:{organ_id}",
                 agency=organ_id, key=document_id)


def receipt_send(*, sender: str, document: dict[str, Any], status_code: str, description: str,
                 staff: str | None = None, department: str | None = None,
                 source: str | None = None) -> Event:
    """A `receipt.send` event (status 01 đã đến, 03 tiếp nhận, ...) about a document that
    arrived: `document` is the arrived event's `package.message_header`."""
    response_for = {"organ_id": document["from"]["organ_id"],
                    "document_id": document["document_id"]}
    code = document.get("code") or {}
    if code.get("code_number"):
        response_for["code"] = "/".join(p for p in (code.get("code_number"),
                                                    code.get("code_notation")) if p)
    promulgation = (document.get("promulgation_info") or {}).get("promulgation_date")
    if promulgation:
        response_for["promulgation_date"] = promulgation
    header: dict[str, Any] = {"from": {"organ_id": sender}, "response_for": response_for,
                              "status_code": status_code, "description": description}
    if staff or department:
        header["staff_info"] = {k: v for k, v in (("department", department), ("staff", staff))
                                if v}
    return Event(type=RECEIPT_SEND, data={"message_header": header},
                 source=source or f"urn:qlvb:{sender}", agency=sender,
                 key=document["document_id"])


def validate(event_type: str, data: Any, schemas: Path | None = None) -> list[str]:
    """The schema errors of `data` (empty: valid), each as "JSON path: message"."""
    errors = sorted(_validator(event_type, schemas).iter_errors(data),
                    key=lambda e: list(e.absolute_path))
    return ["$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
            + f": {e.message}" for e in errors]


async def publish(producer: Any, event: Event, topic: str | None = None) -> None:
    """Publish in binary mode and wait for the broker's acknowledgement. Check the data first:
    an invalid event only comes back as delivery.failed."""
    problems = validate(event.type, event.data)
    if problems:
        raise ValueError(f"{event.type} does not match its schema: {problems[0]}")
    await producer.send_and_wait(topic or outbound_topic(event.type, event.agency),
                                 value=event.value(),
                                 key=event.key.encode("utf-8"), headers=event.headers())


@dataclass(frozen=True)
class Received:
    """An event read from one of the gateway's topics."""

    id: str
    type: str
    agency: str | None
    key: str | None
    data: Any
    topic: str
    partition: int
    offset: int


def decode(record: Any) -> Received | None:
    """A consumed record as an event, or None if it is not a binary-mode CloudEvent."""
    headers = {name: bytes(value or b"").decode("utf-8") for name, value in record.headers or ()}
    if "ce_id" not in headers or "ce_type" not in headers:
        return None
    data = json.loads(record.value) if record.value else None
    return Received(id=headers["ce_id"], type=headers["ce_type"], agency=headers.get("ce_agency"),
                    key=record.key.decode("utf-8") if record.key else None, data=data,
                    topic=record.topic, partition=record.partition, offset=record.offset)
