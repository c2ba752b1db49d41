"""Log output: one JSON object per line, console text on a terminal, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime

import pytest
import structlog

from gateway.logs import OWN_LOGGERS, REDACTED, clear_secrets, configure_logging, \
    is_secret_name, register_secret


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging():
    """Put logging back as it was: the configuration is process-wide."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers),
             {name: logging.getLogger(name).level for name in OWN_LOGGERS})
    yield
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()
    clear_secrets()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_have_event_level_and_utc_timestamp(restore_logging) -> None:
    out = io.StringIO()
    configure_logging("auto", "info", out)  # not a terminal: JSON
    log = structlog.get_logger("gateway.outbound")
    log.info("package.sent", document_id="Công văn 12/UBND", agency="000.00.00.H55",
             axis_doc_id="4711", seconds=0.25)
    log.warning("axis.slow", operation="sendEdoc")
    first, second = lines(out)
    assert first["event"] == "package.sent" and first["level"] == "info"
    assert first["document_id"] == "Công văn 12/UBND" and first["seconds"] == 0.25
    assert first["logger"] == "gateway.outbound"
    assert first["timestamp"].endswith("Z")
    assert datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")).utcoffset() \
        .total_seconds() == 0
    assert second["level"] == "warning"
    assert "Công văn" in out.getvalue()  # non-ASCII kept readable


def test_own_loggers_follow_the_level_and_libraries_log_warnings_only(restore_logging) -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    structlog.get_logger("gateway.daemon").debug("too.detailed")
    structlog.get_logger("connectors.kafka").info("kafka.topic.ensured")
    logging.getLogger("aiokafka.conn").info("connecting to %s", "node 1")
    logging.getLogger("aiohttp.access").warning("slow request from %s", "127.0.0.1")
    records = lines(out)
    assert [(r["event"], r["level"]) for r in records] == [
        ("kafka.topic.ensured", "info"), ("slow request from 127.0.0.1", "warning")]
    assert records[1]["logger"] == "aiohttp.access" and records[1]["timestamp"].endswith("Z")


def test_registered_secrets_are_redacted_in_messages_and_nested_values(restore_logging) -> None:
    out = io.StringIO()
    configure_logging("json", "debug", out)
    secret = "s3cr3t-axis-hmac-key-Ω"
    register_secret(secret)
    log = structlog.get_logger("gateway.inbound")
    log.error(f"axis refused secret {secret} for systemid 00.55.W00",
              request={"headers": {"X-Trace": f"t-{secret}"}, "retries": [secret, "ok"]})
    logging.getLogger("aiohttp.client").warning("sent %s", secret)
    try:
        raise RuntimeError(f"bad key {secret}")
    except RuntimeError:
        log.exception("call.failed")
    text = out.getvalue()
    assert secret not in text
    first, library, failure = lines(out)
    assert first["event"] == f"axis refused secret {REDACTED} for systemid 00.55.W00"
    assert first["request"] == {"headers": {"X-Trace": f"t-{REDACTED}"},
                                "retries": [REDACTED, "ok"]}
    assert library["event"] == f"sent {REDACTED}"
    assert "RuntimeError: bad key " + REDACTED in failure["exception"]


def test_fields_named_like_secrets_are_redacted_whatever_their_value(restore_logging) -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    structlog.get_logger("gateway.config").info(
        "config.loaded", sasl_password="pw", kafka={"saslPassword": "pw2", "hosts": ["k1"]},
        Authorization="Basic abc", api_key=12345, agency="000.00.00.H55")
    [record] = lines(out)
    assert record["sasl_password"] == record["Authorization"] == record["api_key"] == REDACTED
    assert record["kafka"] == {"saslPassword": REDACTED, "hosts": ["k1"]}
    assert record["agency"] == "000.00.00.H55"


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("sasl_password", True), ("apiKey", True), ("x-hmac-signature", True),
    ("access_token", True), ("client_secret", True), ("authorization", True),
    ("document_id", False), ("monkey", False), ("keys_loaded", False), ("agency", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_console_format_on_a_terminal(restore_logging) -> None:
    out = Terminal()
    configure_logging("auto", "info", out)
    structlog.get_logger("gateway.daemon").info("daemon.started", instance="gw-1",
                                                token="abc123")
    text = out.getvalue()
    assert "daemon.started" in text and "instance" in text and "gw-1" in text
    assert "abc123" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_reconfiguring_replaces_the_handler(restore_logging) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", first)
    configure_logging("json", "info", second)
    structlog.get_logger("gateway.daemon").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1


def test_bad_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError):
        configure_logging("xml")
    with pytest.raises(ValueError):
        configure_logging("json", "loud")
