#!/usr/bin/env python3
"""Copy the event examples of docs/events.md into schemas/asyncapi.yaml as message examples.

    python3 deploy/tools/asyncapi_examples.py          # rewrite schemas/asyncapi.yaml
    python3 deploy/tools/asyncapi_examples.py --check  # exit 1 if it is not up to date

docs/events.md holds one example value per event type (after `<!-- example: <type> -->`);
each AsyncAPI message gets it as `examples[0].payload`, with the record headers an agency or
the gateway would send. One source for both documents, so a vendor's code generator and a
reader of the guide see the same event. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ASYNCAPI = REPO / "schemas" / "asyncapi.yaml"
EVENTS_DOC = REPO / "docs" / "events.md"

_EXAMPLE = re.compile(r"<!-- example: (\S+) -->\s*```json\n(.*?)\n```", re.S)

#: Who publishes each type: (ce_source, ce_agency or None, ce_subject from the payload).
_GATEWAY = "urn:edoc:gateway:00.55.W00"
_TIME = "2024-05-17T09:30:00+07:00"


def examples_of_docs(text: str | None = None) -> dict[str, Any]:
    text = EVENTS_DOC.read_text(encoding="utf-8") if text is None else text
    return {kind: json.loads(body) for kind, body in _EXAMPLE.findall(text)}


def _subject(event_type: str, payload: dict[str, Any]) -> str | None:
    header = payload.get("message_header") or (payload.get("package") or {}).get(
        "message_header") or {}
    if "receipt" in event_type:
        return (header.get("response_for") or {}).get("document_id")
    return header.get("document_id") or payload.get("document_id")


def headers_for(event_type: str, payload: dict[str, Any], index: int) -> dict[str, str]:
    header = payload.get("message_header") or {}
    from_agency = (header.get("from") or {}).get("organ_id")
    agency = {
        "vn.gov.edoc.document.send.v1": from_agency,
        "vn.gov.edoc.receipt.send.v1": from_agency,
        "vn.gov.edoc.delivery.accepted.v1": payload.get("sender"),
        "vn.gov.edoc.delivery.failed.v1": payload.get("sender"),
        "vn.gov.edoc.document.arrived.v1": payload.get("recipient"),
        "vn.gov.edoc.receipt.arrived.v1": payload.get("recipient"),
        "vn.gov.edoc.audit.record.v1": payload.get("agency"),
    }.get(event_type)
    source = f"urn:qlvb:{from_agency}" if event_type.endswith(".send.v1") else _GATEWAY
    out = {"ce_specversion": "1.0",
           "ce_id": f"9f0c2a61-3f4e-4d7e-9a55-1c2b3d4e5f{60 + index:02d}",
           "ce_source": source, "ce_type": event_type, "ce_time": _TIME}
    subject = _subject(event_type, payload)
    if subject:
        out["ce_subject"] = subject
    if agency:
        out["ce_agency"] = agency
    out["content-type"] = "application/json"
    return out


def render(api_text: str | None = None) -> str:
    text = ASYNCAPI.read_text(encoding="utf-8") if api_text is None else api_text
    lines = text.splitlines(keepends=True)
    head = "".join(line for line in lines if line.startswith("#"))
    api = json.loads("".join(line for line in lines if not line.startswith("#")))
    examples = examples_of_docs()
    for index, message in enumerate(api["components"]["messages"].values()):
        payload = examples.get(message["name"])
        if payload is None:
            raise SystemExit(f"docs/events.md has no example of {message['name']}")
        message["examples"] = [{
            "name": message["name"].removeprefix("vn.gov.edoc.").removesuffix(".v1")
                                   .replace(".", "-"),
            "summary": "The example of docs/events.md.",
            "headers": headers_for(message["name"], payload, index),
            "payload": payload}]
    return head + json.dumps(api, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    rendered = render()
    if args.check:
        return 0 if ASYNCAPI.read_text(encoding="utf-8") == rendered else 1
    ASYNCAPI.write_text(rendered, encoding="utf-8")
    print(f"wrote {ASYNCAPI}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
