"""Admit a received package: it is what the axis says it is, signed by whom it claims.

The inbound pipeline asks these questions of every package it has read and verified, after the
reader's own refusals and before publishing anything:

    From of the package        == the sender the axis lists for the message  (package.sender_mismatch)
    the receiving agency        in To of a document package                   (package.not_addressed)
    a `valid` signer's OrganId == From                                        (signature.signer_mismatch)
    a sender that signs         never arrives unsigned or placeholder-signed  (signature.downgrade)

and, for a refused package, who may be told (status 02): only the sender the axis vouches for,
and only when the package's own From agrees with it.

The axis authenticates the calling *system* (systemid + HMAC), and checks that the `from` of a
send is an agency of that system; it routes by what it reads of the package. The signature
binds the package to a certificate. Only the two together bind a package to an agency: the
axis's `from` says which agency sent it, the signer's OrganId says who vouches for its bytes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edxml.errors import GatewayError

REASONS = {
    "package.sender_mismatch": "the package's From is not the sender the axis lists for it",
    "package.not_addressed": "the receiving agency is not among the package's To",
    "signature.signer_mismatch": "the signing certificate's OrganId is not the package's From",
    "signature.downgrade": "a sender that signs sent a package that is unsigned or carries a "
                           "placeholder signature",
}


def header_of(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return (result.get("package") or {}).get("message_header") or {}


def from_organ_id(result: Mapping[str, Any]) -> str | None:
    """The OrganId the package names as its sender (its MessageHeader/From)."""
    return ((header_of(result).get("from") or {}).get("organ_id") or "").strip() or None


def to_organ_ids(result: Mapping[str, Any]) -> list[str]:
    return [str(t.get("organ_id") or "").strip() for t in header_of(result).get("to") or ()]


def signer_organ_id(signature: Mapping[str, Any]) -> str | None:
    """The OrganId of the agency whose certificate made a `valid` signature, or None.

    The verifier states it as `signer_organ_id` (the certificate's UID, or a configured mapping
    for certificates that lack one). A verdict that does not carry the field at all comes from
    a verifier that predates it: the OrganId is then read from the UID attribute of the signer's
    subject, which the verdict exposes.
    """
    if "signer_organ_id" in signature:
        value = signature.get("signer_organ_id")
        return str(value).strip() or None if value else None
    subject = (signature.get("signer") or {}).get("subject")
    if not subject:
        return None
    return _uid_of(str(subject))


def _uid_of(subject: str) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError:
        return None
    uids = {str(a.value).strip() for a in name.get_attributes_for_oid(NameOID.USER_ID)}
    # Two different UIDs name no one agency in particular.
    return uids.pop() if len(uids) == 1 else None


@dataclass(frozen=True)
class SenderPolicy:
    """Which senders must sign: those configured by OrganId pattern, and those learned.

    `patterns` are shell-style (`000.00.00.G22`, `*.H41`, `H55.*`); `learned` tells whether a
    valid signature bound to that sender has been received before (gateway.senders).
    """

    patterns: tuple[str, ...] = ()

    def configured(self, organ_id: str) -> bool:
        return any(fnmatch.fnmatchcase(organ_id, p) for p in self.patterns)


def binding_refusal(item: Any, result: Mapping[str, Any], *, kind: str) -> GatewayError | None:
    """The package against the axis's word: its From is the listed sender, and (a document)
    it is addressed to the agency receiving it."""
    claimed = from_organ_id(result)
    listed = (getattr(item, "from_code", "") or "").strip()
    if claimed != listed:
        return GatewayError("package.sender_mismatch",
                            f"the package names {claimed or 'no sender'} as From, the axis lists "
                            f"it as sent by {listed or 'no one'}", where="MessageHeader/From")
    if kind != "status" and item.to_code not in to_organ_ids(result):
        return GatewayError("package.not_addressed",
                            f"the package is for {', '.join(to_organ_ids(result)) or 'no one'}, "
                            f"not for {item.to_code}, which the axis delivered it to",
                            where="MessageHeader/To")
    return None


def signer_refusal(result: Mapping[str, Any]) -> GatewayError | None:
    """A valid signature is by the certificate of the package's own sender."""
    sig = result.get("signature") or {}
    if sig.get("status") != "valid":
        return None
    sender = from_organ_id(result)
    signer = signer_organ_id(sig)
    if signer != sender:
        return GatewayError(
            "signature.signer_mismatch",
            f"the package from {sender} is signed by the certificate of "
            f"{signer or 'no agency (it names no OrganId)'}", where="Signature")
    return None


def downgrade_refusal(result: Mapping[str, Any], *, must_sign: bool) -> GatewayError | None:
    """A sender that signs does not send unsigned or placeholder-signed packages.

    Asked only of packages the signature policy would otherwise publish: it adds a refusal,
    never removes one.
    """
    sig = result.get("signature") or {}
    if must_sign and sig.get("status") in ("absent", "placeholder"):
        what = "not signed" if sig.get("status") == "absent" else "signed with a placeholder"
        return GatewayError("signature.downgrade",
                            f"{from_organ_id(result)} signs its packages, and this one is {what}",
                            where="Signature")
    return None


def rejection_recipient(item: Any, result: Mapping[str, Any]) -> str | None:
    """Whom a status 02 for this refused package may go to, or None for no status at all.

    Only the sender the axis lists (it authenticated that sender's system), only when the
    package's own From says the same.
    """
    listed = (getattr(item, "from_code", "") or "").strip()
    if not listed or from_organ_id(result) != listed:
        return None
    return listed


def learned_signer(result: Mapping[str, Any]) -> str | None:
    """The sender to remember as signing: a published package with a valid signature by the
    sender's own certificate."""
    sig = result.get("signature") or {}
    sender = from_organ_id(result)
    if sig.get("status") == "valid" and sender and signer_organ_id(sig) == sender:
        return sender
    return None


def patterns_of(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(v.strip() for v in values if v and v.strip())
