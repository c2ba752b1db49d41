"""The error every layer raises: a stable machine-readable reason plus a message for people.

Exception tree (the whole of it lives here and in the connectors' own modules):

    GatewayError                      reason, message, transient, where
    ├── EdxmlError                    anything about a package: reading, writing, signing
    │   └── AttachmentError           one attachment is unusable; the rest of the package may be fine
    ├── (connectors.axis) AxisError   the axis answered badly or not at all
    └── (gateway) EventError          an agency's event is unusable

Reasons are dotted, lowercase and stable (`edxml.xml.dtd`, `edxml.signature.invalid`,
`axis.unavailable`); they are listed with their meaning in docs/reasons.md. Messages say what
was wrong and where, never a secret and never a whole document.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base error: `reason` is for machines, `message` for people, `transient` for retry policy."""

    transient: bool = False

    def __init__(self, reason: str, message: str, *, where: str | None = None,
                 transient: bool | None = None) -> None:
        super().__init__(f"{reason}: {message}" + (f" (at {where})" if where else ""))
        self.reason = reason
        self.message = message
        self.where = where
        if transient is not None:
            self.transient = transient

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason, "message": self.message}
        if self.where:
            out["where"] = self.where
        return out


class EdxmlError(GatewayError):
    """A package could not be read, written, signed or verified."""


class AttachmentError(EdxmlError):
    """One attachment is unusable (bad base64, truncated, hash mismatch, too large)."""
