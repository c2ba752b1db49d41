"""Errors of the axis connector: every failure of an axis call becomes one `AxisError`.

Library exceptions (aiohttp, asyncio timeouts, ssl) are translated here, at the connector
boundary, so callers only ever see `AxisError` with a stable `reason` and a `transient` flag
that their retry policy reads. The client itself never retries.

    GatewayError (edxml.errors)
    └── AxisError        reason in REASONS; keeps the axis's ErrorCode / ErrorDesc and the HTTP
                         status when there was an answer

Whether a failed call may still have taken effect matters for `sendEdoc`: after
`axis.timeout` or `axis.connection_lost` the axis may have stored the message (check with
getSentEdocList before sending again); after `axis.unavailable` on a refused connection or a 5xx
answer it did not.
"""

from __future__ import annotations

from edxml.errors import GatewayError

#: reason -> (transient, meaning). The one table of what this connector can raise.
REASONS: dict[str, tuple[bool, str]] = {
    "axis.unavailable": (True, "the axis could not be reached or answered HTTP 5xx; try again later"),
    "axis.timeout": (True, "no answer within the configured connect/read/total timeout; the call may have taken effect"),
    "axis.connection_lost": (True, "the connection was reset or closed mid-exchange; the call may have taken effect"),
    "axis.rate_limited": (True, "the axis answered HTTP 429 (too many requests)"),
    "axis.rejected": (False, "the axis refused the call with a business error (ErrorCode other than \"0\")"),
    "axis.auth": (False, "the axis refused our credentials: HTTP 401/403, unknown systemid, bad HMAC, stale timestamp"),
    "axis.bad_request": (False, "the axis answered another HTTP 4xx, or the call could not be formed (bad URL, non-ASCII header value)"),
    "axis.bad_response": (False, "the axis answered something that is not the documented JSON or byte stream"),
    "axis.tls": (False, "the axis's TLS certificate could not be verified against the configured CA bundle"),
}


class AxisError(GatewayError):
    """An axis call failed; `error_code`/`error_desc` are the axis's own when it answered."""

    def __init__(self, reason: str, message: str, *, operation: str | None = None,
                 http_status: int | None = None, error_code: str | None = None,
                 error_desc: str | None = None, transient: bool | None = None,
                 where: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown axis reason {reason!r}")
        if transient is None:
            transient = REASONS[reason][0]
        super().__init__(reason, message, where=where or operation, transient=transient)
        self.operation = operation
        self.http_status = http_status
        self.error_code = error_code
        self.error_desc = error_desc

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["transient"] = self.transient
        for key in ("operation", "http_status", "error_code", "error_desc"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out
