"""Configure logging: structlog events as JSON lines (or console text on a terminal), secrets
redacted, the libraries' own logging (aiokafka, aiohttp) through the same renderer.

    configure_logging()                       # JSON lines on stderr, level info
    register_secret(settings.sasl_password)   # this value never reaches a log line
    log = structlog.get_logger(__name__)
    log.info("package.sent", document_id=..., agency=..., axis_doc_id=...)

One JSON object per line: `event`, `level`, `timestamp` (ISO 8601, UTC), `logger`, then the
event's fields. Every event, ours or a library's, goes through one `logging` handler on the root
logger; the gateway's own loggers (`edxml`, `connectors`, `gateway`) log at the configured
level, everything else at WARNING and above.

Redaction, applied last before rendering, to the whole event including nested dicts and lists
and the formatted traceback: a field whose name contains a word like password, secret, token,
key, authorization or hmac (`sasl_password`, `apiKey`, `x-hmac-signature`) is replaced by
"[redacted]", and so is every occurrence of a value registered with `register_secret` inside
any string.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
OWN_LOGGERS = ("edxml", "connectors", "gateway")
LIBRARY_LEVEL = logging.WARNING
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
FORMATS = ("auto", "json", "console")
#: Shorter registered values are ignored: they would blank out ordinary words and numbers.
MIN_SECRET_CHARS = 4

_SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "token",
    "tokens", "key", "apikey", "privatekey", "authorization", "hmac", "credential",
    "credentials", "cookie",
})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")
_MAX_DEPTH = 16


# Every field of every line is asked about, and the names are few (the code's own field names):
# remember the answers (bounded, so names taken from data cannot grow it without end).
@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True when a field name contains a secret-like word (split at _, -, . and camelCase)."""
    words = _SPLIT.split(_CAMEL.sub("_", name).lower())
    return any(word in _SECRET_WORDS for word in words)


class Redactor:
    """A structlog processor that blanks secret-named fields and registered secret values."""

    def __init__(self) -> None:
        # Replaced, never mutated, so a concurrent reader always sees a consistent tuple.
        self._secrets: tuple[str, ...] = ()

    def register(self, value: str | bytes | None) -> None:
        if value is None:
            return
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if len(text) < MIN_SECRET_CHARS or text in self._secrets:
            return
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = tuple(sorted((*self._secrets, text), key=len, reverse=True))

    def clear(self) -> None:
        self._secrets = ()

    def redact_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def redact(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.redact_text(value) if self._secrets else value
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth >= _MAX_DEPTH:
            return REDACTED
        if isinstance(value, dict):
            return {key: REDACTED if isinstance(key, str) and is_secret_name(key)
                    else self.redact(item, depth + 1) for key, item in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.redact(item, depth + 1) for item in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, (bytes, bytearray)):
            if any(secret.encode("utf-8") in value for secret in self._secrets):
                return REDACTED
            return value
        if self._secrets:
            # Anything else is rendered through repr(): redact what that would show.
            shown = repr(value)
            redacted = self.redact_text(shown)
            if redacted != shown:
                return redacted
        return value

    def __call__(self, logger: Any, method_name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if is_secret_name(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.redact(event_dict[key])
        return event_dict


# Logging is process-wide (one root logger, one structlog configuration), and so is the set
# of secret values to keep out of it.
_REDACTOR = Redactor()


def register_secret(value: str | bytes | None) -> None:
    """Never log this value (a password, the axis secret, a key passphrase)."""
    _REDACTOR.register(value)


def clear_secrets() -> None:
    """Forget registered values (tests)."""
    _REDACTOR.clear()


def _renderer(format: str, stream: TextIO) -> Any:
    if format == "auto":
        format = "console" if _isatty(stream) else "json"
    if format == "console":
        return structlog.dev.ConsoleRenderer(colors=_isatty(stream),
                                             exception_formatter=structlog.dev.plain_traceback)
    return structlog.processors.JSONRenderer(ensure_ascii=False)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def configure_logging(format: str = "auto", level: str = "info", stream: TextIO | None = None,
                      *, own_loggers: Iterable[str] = OWN_LOGGERS) -> logging.Handler:
    """Route all logging to `stream` (default: sys.stderr at call time); returns the handler.

    `format`: "json" (one object per line), "console" (readable), or "auto" (console when the
    stream is a terminal). `level`: debug, info, warning, error for the gateway's own loggers.
    Calling it again replaces the previous configuration.
    """
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    stream = sys.stderr if stream is None else stream
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before this call must pick up this configuration.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    _REDACTOR,
                    _renderer(format, stream)],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler._edoc_gateway = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_edoc_gateway", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(LIBRARY_LEVEL)
    for name in own_loggers:
        logging.getLogger(name).setLevel(LEVELS[level.lower()])
    return handler


__all__ = ["FORMATS", "LEVELS", "OWN_LOGGERS", "REDACTED", "Redactor", "clear_secrets",
           "configure_logging", "is_secret_name", "register_secret"]
