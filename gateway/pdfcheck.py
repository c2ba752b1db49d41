"""Signed PDF attachments in the pipelines: the report, the issuer rule and Điều 3.6.

    inbound:  read + verify and the PDF reports (one worker trip, work.receive) → issuer rule
              → publish / quarantine
    outbound: materialise attachments → outbound_check (worker pool) → build + sign, or refuse
    inspect:  the same report for one package on disk

The judging is `edxml.pdfsig`'s; this module picks the PDFs, runs the analysis in the worker
pool (off the event loop), applies the per-agency policies of `[attachments]` and shapes the
result for the `document.arrived` event (`attachment_signatures`), the audit and the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from edxml.errors import GatewayError
from edxml.pdfsig import (
    AttachmentFacts,
    RuleFinding,
    check_issuer,
    check_original_digitised,
    report_from_dict,
)
from edxml.roles import split_role
from gateway import work

log = structlog.get_logger(__name__)

PDF_TYPES = ("application/pdf", "application/x-pdf")


def _looks_pdf(name: str | None, content_type: str | None) -> bool:
    return (content_type or "").lower() in PDF_TYPES or (name or "").lower().endswith(".pdf")


def _entry(content_id: str | None, name: str, role: str | None, report: Mapping[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"content_id": content_id, "attachment_name": name}
    if role:
        entry["role"] = role
    if report is not None:
        entry.update(report)
    return entry


def _facts(entries: Sequence[Mapping[str, Any]], types: Sequence[str | None]) -> list[AttachmentFacts]:
    return [AttachmentFacts(e["attachment_name"], e.get("role"), t,
                            report_from_dict(e) if "status" in e else None)
            for e, t in zip(entries, types, strict=True)]


def summarise(entries: list[dict[str, Any]], types: Sequence[str | None], *, sender: str | None,
              issuer_policy: str) -> dict[str, Any]:
    """The `attachment_signatures` value: one entry per attachment (a PDF's report, or only its
    role), and the issuer rule's finding unless its policy is off."""
    summary: dict[str, Any] = {"attachments": entries}
    if issuer_policy != "off" and sender:
        finding = check_issuer(_facts(entries, types), sender)
        summary["issuer"] = {"policy": issuer_policy, **finding.as_dict()}
    return summary


async def _reports(ctx: Any, paths: list[str]) -> list[dict[str, Any]]:
    if not paths:
        return []
    return await asyncio.get_running_loop().run_in_executor(
        ctx.pool, work.pdf_reports, paths, ctx.config.attachments.max_pdf_bytes)


# -- inbound ---------------------------------------------------------------------------------


def inbound_pdfs(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The attachments of a read document whose PDF signatures are reported: written by the
    reader without an error, and a PDF by name or type; none for a status package or a
    package the reader refused."""
    if "error" in result or result.get("kind") != "edoc":
        return []
    return [a for a in _usable(result)
            if _looks_pdf(a["attachment_name"], a.get("detected_type") or a.get("declared_type"))]


def _usable(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for a in result["attachments"] if not a.get("error") and a.get("path")]


async def with_inbound_report(ctx: Any, result: dict[str, Any]) -> dict[str, Any]:
    """`result` (from work.read_and_verify) plus `attachment_signatures` for a document.

    The reports are those the worker made in the same trip (`work.receive`), or else are made
    now in the pool."""
    if "error" in result or result.get("kind") != "edoc":
        return result
    reports = result.get("pdf_reports")
    if reports is None:
        reports = await _reports(ctx, [a["path"] for a in inbound_pdfs(result)])
    return inbound_report(ctx.config, result, reports)


def inbound_report(config: Any, result: Mapping[str, Any],
                   reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`result` plus `attachment_signatures`, given one report per `inbound_pdfs(result)`."""
    header = result["package"]["message_header"]
    sender = (header.get("from") or {}).get("organ_id")
    described = {a.get("content_id"): a.get("description")
                 for a in result["package"].get("attachments", ())}
    usable = _usable(result)
    pdfs = inbound_pdfs(result)
    by_id = dict(zip((id(a) for a in pdfs), reports, strict=True))
    entries = [_entry(a["content_id"], a["attachment_name"], split_role(described.get(a["content_id"]))[0],
                      by_id.get(id(a))) for a in usable]
    types = [a.get("detected_type") or a.get("declared_type") for a in usable]
    policy = config.attachments.issuer_policy_for(sender) if sender else "off"
    summary = summarise(entries, types, sender=sender, issuer_policy=policy)
    out = {k: v for k, v in result.items() if k != "pdf_reports"}
    out["attachment_signatures"] = summary
    return out


def issuer_breach(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields that say, on the package's one log line (`inbound.published` or
    `inbound.quarantined`), that its PDFs broke the issuer rule: `attachment_unsigned` (the
    rule's message), `issuer_policy` and the `sender` it was checked against; None when the
    rule passed or was not checked. (A line of its own per package cost the event loop about
    as much as the rest of the package's decision.)"""
    issuer = (result.get("attachment_signatures") or {}).get("issuer")
    if issuer is None or issuer["ok"]:
        return None
    sender = (result["package"]["message_header"].get("from") or {}).get("organ_id")
    return {"attachment_unsigned": issuer["message"], "issuer_policy": issuer["policy"],
            "sender": sender}


def inbound_refusal(result: Mapping[str, Any]) -> GatewayError | None:
    """Quarantine (with 02) when the sender's policy is `require` and its rule failed."""
    issuer = (result.get("attachment_signatures") or {}).get("issuer")
    if issuer and issuer["policy"] == "require" and not issuer["ok"]:
        return GatewayError("attachment.unsigned", issuer["message"])
    return None


def audit_text(result: Mapping[str, Any]) -> str | None:
    """One line for the audit record: each PDF and who validly signed it, and the issuer rule."""
    summary = result.get("attachment_signatures")
    if not summary:
        return None
    return describe(summary)[:1000] or None


def describe(summary: Mapping[str, Any]) -> str:
    parts = []
    for e in summary.get("attachments", ()):
        if "status" not in e:
            continue
        sigs = ", ".join(f"{s['verdict']} {((s.get('signer') or {}).get('organ_id') or (s.get('signer') or {}).get('common_name') or '?')}"
                         for s in e.get("signatures", ()))
        state = sigs or e["status"] + (f" {e['reason']}" if e.get("reason") else "")
        parts.append(f"{e['attachment_name']}: {state}")
    issuer = summary.get("issuer")
    if issuer:
        parts.append(f"issuer rule ({issuer['policy']}): " + ("ok" if issuer["ok"] else issuer["reason"]))
    return "; ".join(parts)


# -- outbound --------------------------------------------------------------------------------


async def outbound_check(ctx: Any, item: Any, package: Mapping[str, Any]) -> dict[str, Any] | None:
    """Before a document is built and signed: refuse it (`GatewayError`) when its sender is in
    `refuse_unsigned` and its main PDF is not validly signed by it, or when Điều 3.6 is
    `require` for the sender and the document lacks a signed PDF or an original. Returns the
    summary when anything was checked."""
    cfg = ctx.config.attachments
    if getattr(item, "flow", None) != "document":
        return None
    refuse = item.sender in cfg.refuse_unsigned
    rule = cfg.original_digitised_for(item.sender)
    if not refuse and rule == "off":
        return None
    atts = package.get("attachments", ())
    refs = item.attachments
    pdf_index = [i for i, a in enumerate(atts) if _looks_pdf(a.get("attachment_name"), a.get("content_type"))]
    reports = dict(zip(pdf_index, await _reports(ctx, [str(atts[i]["path"]) for i in pdf_index]), strict=True))
    entries = [_entry(a.get("content_id"), a.get("attachment_name") or "", getattr(refs[i], "role", None),
                      reports.get(i)) for i, a in enumerate(atts)]
    types = [a.get("content_type") for a in atts]
    summary = summarise(entries, types, sender=item.sender, issuer_policy="require" if refuse else "off")
    facts = _facts(entries, types)
    if refuse and not summary["issuer"]["ok"]:
        raise GatewayError("attachment.unsigned", summary["issuer"]["message"])
    if rule != "off":
        finding: RuleFinding = check_original_digitised(facts)
        summary["original_digitised"] = {"policy": rule, **finding.as_dict()}
        if not finding.ok:
            if rule == "require":
                raise GatewayError("attachment.roles", finding.message)
            log.warning("outbound.original_digitised", agency=item.sender, document_id=item.document_id,
                        error=finding.message)
            await ctx.audit_record(flow="document", step="checked", outcome="rule-breached",
                                   agency=item.sender, document_id=item.document_id,
                                   reason="attachment.roles")
    return summary


def delivery_rules(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The rule findings a `delivery.accepted` event carries (`attachment_rules`): those that
    were checked and let the document through (a `report` breach, or a pass)."""
    if not summary:
        return None
    rules = {name: summary[name] for name in ("issuer", "original_digitised") if name in summary}
    return rules or None


# -- inspect ---------------------------------------------------------------------------------


def inspect_report(attachments: Sequence[Any], trust_dir: str | None, crl_files: Sequence[str] | None,
                   issuer: str | None) -> dict[str, Any]:
    """`attachment_signatures` for `edoc-gateway inspect` (in-process; one package)."""
    from edxml.pdfsig import PdfTrust, analyse_pdf

    trust = PdfTrust.from_paths([trust_dir] if trust_dir else [], crl_files or [])
    entries = []
    types = []
    for a in attachments:
        att = a.attachment
        role, _ = split_role(att.description)
        report = None
        kind = a.detected_type or att.content_type
        if a.error is None and att.path is not None and _looks_pdf(att.attachment_name, kind):
            report = analyse_pdf(Path(att.path), trust).as_dict()
        entries.append(_entry(att.content_id, att.attachment_name, role, report))
        types.append(kind)
    return summarise(entries, types, sender=issuer, issuer_policy="report")


def print_summary(summary: Mapping[str, Any] | None) -> None:
    """The text form, under the attachment lines of `inspect`."""
    if not summary:
        return
    for e in summary.get("attachments", ()):
        role = f" ({e['role']})" if e.get("role") else ""
        if "status" not in e:
            if role:
                print(f"  file {e['attachment_name']}{role}")
            continue
        if e["status"] != "signed":
            why = f": {e['reason']}: {e['message']}" if e.get("reason") else ""
            print(f"  pdf {e['attachment_name']}{role}: {e['status']}{why}")
            continue
        print(f"  pdf {e['attachment_name']}{role}: {len(e['signatures'])} signature(s)")
        for s in e["signatures"]:
            signer = s.get("signer") or {}
            who = signer.get("common_name") or signer.get("subject") or "?"
            uid = f" [{signer['organ_id']}]" if signer.get("organ_id") else ""
            when = f" at {s['signing_time']}" if s.get("signing_time") else ""
            ts = s.get("timestamp")
            stamp = f", timestamp {ts['time']}" + ("" if ts.get("trusted") else " (untrusted)") if ts else ""
            why = f" ({s['reason']}: {s['message']})" if s.get("reason") else ""
            print(f"    {s['verdict']}: {who}{uid}{when}{stamp}, {s['hash_algorithm']}, "
                  f"covers {s['coverage'].replace('_', ' ')}{why}")
            if signer.get("issuer"):
                print(f"      issuer {signer['issuer']}, serial {signer['serial']}")
    issuer = summary.get("issuer")
    if issuer:
        state = "ok" if issuer["ok"] else f"{issuer['reason']}: {issuer['message']}"
        print(f"  issuer rule: {state}")
