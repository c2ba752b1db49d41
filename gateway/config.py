"""Load the gateway's configuration once, at start: TOML file, environment overrides, checks.

    config = load_config(Path("/etc/edoc-gateway/gateway.toml"), os.environ)
    settings = config.kafka.settings()           # connectors.kafka.KafkaSettings
    axis = config.axis.client_config()           # connectors.axis.client.AxisClientConfig
    signers = load_signers(config)               # OrganId -> edxml.signature.Signer

Every key is declared once in `SECTIONS` / `AGENCY_KEYS` with its type and default; a key that is
not declared is an error, so a typo cannot silently fall back to a default. Any key can be
overridden from the environment as `EDOC_GATEWAY__<SECTION>__<KEY>` (agencies:
`EDOC_GATEWAY__AGENCIES__<index>__<KEY>`), the value parsed to the key's type. Relative paths are
resolved against the directory of the configuration file and must exist.

Secrets (the axis secret, the Kafka SASL password, private-key passwords) are never written in
the file: a `<name>_env` key names an environment variable, or a `<name>_file` key names a file
holding the value. They are loaded into `Secret`, whose repr shows only where the value came
from; no error message quotes a value.

Errors are `ConfigError` with reason `config.invalid` (wrong type, value or combination),
`config.missing` (a required key or environment variable is absent) or `config.file` (a file or
directory named by the configuration cannot be read), and a message that starts with the key,
e.g. ``agencies[2].cert: file not found: /etc/edoc-gateway/keys/h55.pem``.
"""

from __future__ import annotations

import hmac
import os
import re
import socket
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from edxml.errors import GatewayError

if TYPE_CHECKING:
    from connectors.axis.client import AxisClientConfig
    from connectors.kafka import KafkaSettings
    from edxml.signature import Signer, VerificationPolicy
    from edxml.trust import TrustStore

REASONS: dict[str, str] = {
    "config.invalid": "a configuration key has a wrong type or value, is unknown, or conflicts "
                      "with another key (the message names the key)",
    "config.missing": "a required configuration key, or the environment variable a *_env key "
                      "names, is absent",
    "config.file": "a file or directory named by the configuration (or the configuration file "
                   "itself) does not exist or cannot be read",
}

ENV_PREFIX = "EDOC_GATEWAY__"


class ConfigError(GatewayError):
    """The configuration cannot be used; fix it and start again (never transient)."""

    transient = False


class Secret:
    """A secret value that shows only where it came from (`env NAME` or `file PATH`)."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The value itself: hand it to the library that needs it, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Secret) and self.source == other.source
                and hmac.compare_digest(self._value.encode(), other._value.encode()))

    def __hash__(self) -> int:
        return hash(("Secret", self.source))

    def __getstate__(self) -> tuple[str, str]:  # worker processes receive the config pickled
        return self._value, self.source

    def __setstate__(self, state: tuple[str, str]) -> None:
        self._value, self.source = state


# ---------------------------------------------------------------------------------------------
# The declared keys


_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default (`_REQUIRED` if none) and checks.

    kinds: str, int, float (seconds and the like), bool, path (must exist: `exists` is "file",
    "dir" or "any"), paths (a list of those), strs (a list of strings), env (the name of an
    environment variable holding a secret).
    """

    kind: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] | None = None
    minimum: float | None = None      # inclusive
    positive: bool = False            # > 0
    exists: str = "file"
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def _seconds(default: float, doc: str) -> Key:
    return Key("float", default, positive=True, doc=doc)


DEFAULT_TOPICS: dict[str, str] = {
    "outbound_documents": "edoc.outbound.documents",
    "outbound_receipts": "edoc.outbound.receipts",
    "delivery": "edoc.delivery",
    "inbound_documents": "edoc.inbound.documents",
    "inbound_receipts": "edoc.inbound.receipts",
    "audit": "edoc.audit",
    "deadletter": "edoc.deadletter",
    "ledger": "edoc.gateway.ledger",
    "poller": "edoc.gateway.poller",
    "senders": "edoc.gateway.senders",
}

# The topics between the gateway and the agencies. In the per-agency layout ([topics]
# per_agency = true, the default) each is a template with `{agency}`, so that every agency's
# software gets topics of its own and a Kafka ACL can let its principal write only its own
# outbound topics and read only its own inbound and delivery topics: the sending agency of an
# event is then decided by the topic it came from, which the agency cannot forge. The shared
# names (DEFAULT_TOPICS) stay for a lab (`per_agency = false`); `run --check` names that layout
# unsafe for production.
AGENCY_TOPICS = ("outbound_documents", "outbound_receipts", "delivery", "inbound_documents",
                 "inbound_receipts")
PER_AGENCY_TOPICS: dict[str, str] = {
    "outbound_documents": "edoc.outbound.{agency}.documents",
    "outbound_receipts": "edoc.outbound.{agency}.receipts",
    "delivery": "edoc.delivery.{agency}",
    "inbound_documents": "edoc.inbound.{agency}.documents",
    "inbound_receipts": "edoc.inbound.{agency}.receipts",
}

SIGNATURE_POLICIES = ("require-valid", "allow-placeholder", "allow-unsigned")
# Which verdict statuses (edxml.signature.SignatureVerdict.status) each policy lets through;
# "invalid" never passes.
_POLICY_ACCEPTS = {
    "require-valid": frozenset({"valid"}),
    "allow-placeholder": frozenset({"valid", "placeholder"}),
    "allow-unsigned": frozenset({"valid", "placeholder", "absent"}),
}

SECTIONS: dict[str, dict[str, Key]] = {
    "gateway": {
        "instance_id": Key("str", None, doc="this instance's name (audit chain, logs); "
                           "default hostname-pid"),
        "workers": Key("int", 2, minimum=1, doc="processes for building, signing, verifying"),
        "worker_memory_bytes": Key("int", 2 * 1024 ** 3, minimum=0,
                                   doc="address-space limit (RLIMIT_AS) of each worker process; "
                                   "0 for none"),
        "shutdown_grace_seconds": _seconds(20.0, "time to finish in-flight work on SIGTERM"),
        "batch": Key("int", 8, minimum=1,
                     doc="outbound records of one lane handled together: one acknowledged "
                     "Kafka round for their ledger intents and one for their outcomes; 1 "
                     "handles records one by one"),
    },
    "http": {
        "listen": Key("str", "127.0.0.1:9464", doc="host:port of /metrics, /healthz, /readyz"),
        "console": Key("str", "auto", choices=("auto", "on", "off"),
                       doc="the read-only status console on the same port: auto = only when "
                           "listen is a loopback address"),
        "console_index": Key("path", None, doc="the console's trace index file (default "
                             "<store root>/ops/trace-index.sqlite)"),
        "receipt_overdue_seconds": _seconds(8 * 3600.0, "the console lists sent documents "
                                            "without any receipt after this long"),
    },
    "log": {
        "format": Key("str", "auto", choices=("auto", "json", "console"),
                      doc="json lines, console, or auto (console on a terminal, else json)"),
        "level": Key("str", "info", choices=("debug", "info", "warning", "error"),
                     doc="lowest level written"),
    },
    "kafka": {
        "bootstrap_servers": Key("str", doc="host:port[,host:port...] of the brokers"),
        "client_id": Key("str", "edoc-gateway", doc="client id shown in broker logs/quotas"),
        "group_id": Key("str", "edoc-gateway", doc="consumer group of the gateway instances"),
        "security_protocol": Key("str", "PLAINTEXT",
                                 choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
                                 doc="how to talk to the brokers"),
        "sasl_mechanism": Key("str", None, choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
                              doc="SASL mechanism (with SASL_*)"),
        "sasl_username": Key("str", None, doc="SASL user name"),
        "sasl_password_env": Key("env", None, doc="variable holding the SASL password"),
        "sasl_password_file": Key("path", None, doc="file holding the SASL password"),
        "ssl_cafile": Key("path", None, doc="PEM CA bundle for the brokers' certificates"),
        "ssl_certfile": Key("path", None, doc="client certificate (PEM) for mutual TLS"),
        "ssl_keyfile": Key("path", None, doc="its private key (PEM, unencrypted)"),
        "request_timeout_seconds": _seconds(30.0, "longest wait for a broker's answer"),
        "max_poll_interval_seconds": _seconds(300.0, "longest time between polls before the "
                                              "group considers the consumer dead"),
        "session_timeout_seconds": _seconds(30.0, "heartbeat silence after which an instance "
                                            "is dropped from the group (and the poller lease "
                                            "moves)"),
    },
    "topics": {
        "per_agency": Key("bool", True, doc="agency topics are per-agency templates with "
                          "{agency} (each agency's principal gets its own topics); false: the "
                          "shared single-topic layout, for a lab only"),
        **{name: Key("str", None if name in PER_AGENCY_TOPICS else default,
                     doc=(f"topic name template (default {PER_AGENCY_TOPICS[name]}, or "
                          f"{default} with per_agency = false)" if name in PER_AGENCY_TOPICS
                          else f"topic name (default {default})"))
           for name, default in DEFAULT_TOPICS.items()}},
    "axis": {
        "endpoint": Key("str", doc="base URL of the axis adapter (http:// or https://)"),
        "systemid": Key("str", doc="this deployment's systemid on the axis, e.g. 00.55.W00"),
        "secret_env": Key("env", None, doc="variable holding the axis secret"),
        "secret_file": Key("path", None, doc="file holding the axis secret"),
        "connect_timeout_seconds": _seconds(10.0, "TCP/TLS connect timeout"),
        "read_timeout_seconds": _seconds(60.0, "longest silence while reading an answer"),
        "timeout_seconds": _seconds(120.0, "total time of an ordinary call"),
        "transfer_timeout_seconds": _seconds(3600.0, "total time of sendEdoc/getEdoc "
                                             "(a whole package)"),
        "ca_bundle": Key("path", None, doc="PEM bundle trusted for the axis's TLS certificate "
                         "instead of the system store"),
        "client_cert": Key("path", None, doc="client certificate (PEM) for mutual TLS"),
        "client_key": Key("path", None, doc="its key, if not inside client_cert"),
        "max_connections": Key("int", 16, minimum=1, doc="connection pool size"),
        "poll": Key("bool", True, doc="poll the axis for inbound messages"),
        "poll_interval_seconds": _seconds(5.0, "pause between two polls of the received list"),
        "dialect": Key("str", "reference", choices=("reference", "standard"),
                       doc="wire form of the requests: the reference client's (what the real "
                       "axis accepts today) or the written description's"),
    },
    "retry": {
        "max_attempts": Key("int", 10, minimum=1, doc="attempts of one step before giving up"),
        "initial_seconds": _seconds(0.5, "first backoff (doubles, with jitter)"),
        "max_seconds": _seconds(60.0, "longest single backoff"),
        "total_seconds": _seconds(900.0, "longest time spent retrying one step"),
    },
    "inbound": {
        "signature_policy": Key("str", "allow-placeholder", choices=SIGNATURE_POLICIES,
                                doc="which received signatures are accepted"),
        "allow_sha1": Key("bool", False, doc="accept rsa-sha1/sha1 signatures from every sender "
                          "(off: only from legacy_sha1_senders)"),
        "legacy_sha1_senders": Key("strs", (), doc="OrganIds (of the signing certificate) still "
                                   "allowed to sign with rsa-sha1/sha1"),
        "certificate_organ_ids": Key("strs", (), doc="'SHA256-FINGERPRINT=OrganId' for signing "
                                     "certificates that carry no UID"),
        "require_crl": Key("bool", False, doc="every issuer must have a loaded CRL"),
        "trust_dir": Key("path", exists="any", doc="trusted roots and intermediates (a PEM/DER "
                         "file or a directory of them)"),
        "crl_files": Key("paths", (), doc="CRL files (PEM or DER)"),
        "reject_with_status": Key("bool", True, doc="answer a refused package with status 02"),
        "max_attachment_bytes": Key("int", 2 * 1024 ** 3, minimum=1,
                                    doc="largest decoded attachment accepted"),
        "signing_senders": Key("strs", (), doc="OrganId patterns (shell-style, e.g. *.H41) of "
                               "senders that must sign: an unsigned or placeholder-signed "
                               "package from them is refused (signature.downgrade)"),
        "max_event_bytes": Key("int", 900_000, minimum=65_536,
                               doc="largest arrived event published inline; above it the "
                               "document's Content goes to the store (content_ref)"),
    },
    "attachments": {
        "issuer_policy": Key("str", "report", choices=("off", "report", "require"),
                             doc="inbound: a sender's main PDF must carry its valid signature "
                                 "(report in the event, or require: quarantine with 02)"),
        "issuer_require": Key("strs", (), doc="senders whose documents are quarantined when "
                                              "their main PDF is not signed by them"),
        "issuer_report": Key("strs", (), doc="senders only reported on, whatever issuer_policy"),
        "refuse_unsigned": Key("strs", (), doc="our agencies that refuse to send a document "
                                               "whose main PDF they have not validly signed"),
        "original_digitised": Key("str", "off", choices=("off", "report", "require"),
                                  doc="outbound Điều 3.6 rule for our agencies: a signed "
                                      "digitised PDF plus an original data file"),
        "original_digitised_require": Key("strs", (), doc="agencies for which 3.6 is require"),
        "original_digitised_report": Key("strs", (), doc="agencies for which 3.6 is report"),
        "max_pdf_bytes": Key("int", 2 * 1024 ** 3, minimum=1,
                             doc="largest PDF whose signatures are analysed"),
    },
    "store": {
        "root": Key("path", exists="dir", doc="attachment store and package archive"),
        "allowed_roots": Key("paths", (), exists="dir",
                             doc="directories holding one subdirectory per agency, named by its "
                                 "OrganId: an agency's default attachment root(s)"),
    },
}

AGENCY_KEYS: dict[str, Key] = {
    "organ_id": Key("str", doc="the agency's OrganId (mã định danh), strict form"),
    "name": Key("str", doc="the agency's name, for people"),
    "key": Key("path", None, doc="private key (PEM)"),
    "cert": Key("path", None, doc="certificate (PEM; intermediates may follow the leaf)"),
    "chain": Key("path", None, doc="intermediates (PEM), if not in cert"),
    "pkcs12": Key("path", None, doc="key and certificates as one PKCS#12 file"),
    "password_env": Key("env", None, doc="variable holding the key's password"),
    "password_file": Key("path", None, doc="file holding the key's password"),
    "attachment_roots": Key("paths", None, exists="dir",
                            doc="directories this agency's file:// attachment references may "
                                "point into (default: <allowed root>/<organ_id> for each "
                                "[store] allowed_roots entry)"),
    "principal": Key("str", None, doc="Kafka principal of the agency's software (default "
                     "User:<organ_id>): may write this agency's outbound topics and read its "
                     "inbound and delivery topics"),
}

# [[grants]]: one principal (a vendor's installation serving several agencies) that may act for
# several agencies. Explicit, per principal: nothing else lets one principal reach two agencies.
GRANT_KEYS: dict[str, Key] = {
    "principal": Key("str", doc="Kafka principal, e.g. User:vendor-x"),
    "agencies": Key("strs", doc="OrganIds of configured agencies it publishes and reads for"),
}

# Secrets and where they may come from: (section, name) -> required.
_SECRETS = {("axis", "secret"): True, ("kafka", "sasl_password"): False,
            ("agencies", "password"): False}
_INLINE_SECRETS = {"axis": {"secret"}, "kafka": {"sasl_password", "password"},
                   "agencies": {"password"}}


# ---------------------------------------------------------------------------------------------
# The typed configuration


@dataclass(frozen=True)
class GatewaySection:
    instance_id: str
    workers: int = 2
    shutdown_grace_seconds: float = 20.0
    worker_memory_bytes: int = 2 * 1024 ** 3
    batch: int = 8


@dataclass(frozen=True)
class HttpSection:
    listen: str = "127.0.0.1:9464"
    console: str = "auto"
    console_index: Path | None = None
    receipt_overdue_seconds: float = 8 * 3600.0

    @property
    def console_enabled(self) -> bool:
        """`on`, or `auto` on a loopback address: the console shows document metadata, so it
        is not served to the network unless asked for (behind the operator's auth proxy)."""
        if self.console != "auto":
            return self.console == "on"
        import ipaddress

        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


@dataclass(frozen=True)
class LogSection:
    format: str = "auto"
    level: str = "info"


@dataclass(frozen=True)
class KafkaSection:
    bootstrap_servers: str
    client_id: str = "edoc-gateway"
    group_id: str = "edoc-gateway"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    request_timeout_seconds: float = 30.0
    max_poll_interval_seconds: float = 300.0
    session_timeout_seconds: float = 30.0

    def settings(self) -> KafkaSettings:
        """The connector's settings (raises the connector's `kafka.config` error if unusable)."""
        from connectors.kafka import KafkaSettings

        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers, client_id=self.client_id,
            security_protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password.reveal() if self.sasl_password else None,
            ssl_cafile=_str(self.ssl_cafile), ssl_certfile=_str(self.ssl_certfile),
            ssl_keyfile=_str(self.ssl_keyfile),
            request_timeout_ms=int(self.request_timeout_seconds * 1000))

    def consumer_options(self) -> dict[str, Any]:
        """Timing arguments for `connectors.kafka.EventConsumer` (group_id is passed apart:
        the poller lease uses a group of its own)."""
        return {"max_poll_interval_ms": int(self.max_poll_interval_seconds * 1000),
                "session_timeout_ms": int(self.session_timeout_seconds * 1000)}


@dataclass(frozen=True)
class TopicsSection:
    outbound_documents: str = PER_AGENCY_TOPICS["outbound_documents"]
    outbound_receipts: str = PER_AGENCY_TOPICS["outbound_receipts"]
    delivery: str = PER_AGENCY_TOPICS["delivery"]
    inbound_documents: str = PER_AGENCY_TOPICS["inbound_documents"]
    inbound_receipts: str = PER_AGENCY_TOPICS["inbound_receipts"]
    audit: str = DEFAULT_TOPICS["audit"]
    deadletter: str = DEFAULT_TOPICS["deadletter"]
    ledger: str = DEFAULT_TOPICS["ledger"]
    poller: str = DEFAULT_TOPICS["poller"]
    senders: str = DEFAULT_TOPICS["senders"]
    per_agency: bool = True

    def agency_topic(self, name: str, organ_id: str) -> str:
        """The topic `name` (a key of AGENCY_TOPICS) for `organ_id`: the template with the
        OrganId put in, dots kept, or the shared name when it has no `{agency}`."""
        template = getattr(self, name)
        if "{agency}" not in template:
            return template
        topic = template.replace("{agency}", organ_id)
        if not _TOPIC_RE.match(topic):
            raise ConfigError("config.invalid", f"topics.{name}: {organ_id[:64]!r} cannot be "
                              "part of a topic name", where=f"topics.{name}")
        return topic

    def outbound_topic(self, kind: str, organ_id: str) -> str:
        """Where `organ_id`'s software publishes: `kind` is "documents" or "receipts"."""
        name = {"documents": "outbound_documents", "document": "outbound_documents",
                "receipts": "outbound_receipts", "receipt": "outbound_receipts"}.get(kind)
        if name is None:
            raise ValueError(f"kind must be 'documents' or 'receipts', not {kind!r}")
        return self.agency_topic(name, organ_id)

    def delivery_topic(self, organ_id: str) -> str:
        """Where the outcomes of `organ_id`'s events go."""
        return self.agency_topic("delivery", organ_id)

    def inbound_topic(self, kind: str, organ_id: str) -> str:
        """The topic for an inbound event for `organ_id`: `kind` is "documents" or "receipts".

        A name containing `{agency}` is a per-agency template: the OrganId is put in, dots
        kept (`edoc.inbound.{agency}.documents` -> `edoc.inbound.000.00.00.H55.documents`).
        """
        template = {"documents": self.inbound_documents, "document": self.inbound_documents,
                    "receipts": self.inbound_receipts, "receipt": self.inbound_receipts}.get(kind)
        if template is None:
            raise ValueError(f"kind must be 'documents' or 'receipts', not {kind!r}")
        if "{agency}" not in template:
            return template
        topic = template.replace("{agency}", organ_id)
        if not _TOPIC_RE.match(topic):
            raise ConfigError("config.invalid", f"topics.inbound_{kind.rstrip('s')}s: "
                              f"{organ_id[:64]!r} cannot be part of a topic name",
                              where=f"topics.inbound_{kind.rstrip('s')}s")
        return topic

    def fixed(self) -> dict[str, str]:
        """Topic names that are not templates, by key."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "per_agency" and "{agency}" not in getattr(self, f.name)}


@dataclass(frozen=True)
class AxisSection:
    endpoint: str
    systemid: str
    secret: Secret
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    timeout_seconds: float = 120.0
    transfer_timeout_seconds: float = 3600.0
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    max_connections: int = 16
    poll: bool = True
    poll_interval_seconds: float = 5.0
    dialect: str = "reference"

    def client_config(self) -> AxisClientConfig:
        from connectors.axis.client import AxisClientConfig

        return AxisClientConfig(
            endpoint=self.endpoint, systemid=self.systemid, secret=self.secret.reveal(),
            connect_timeout=self.connect_timeout_seconds, read_timeout=self.read_timeout_seconds,
            total_timeout=self.timeout_seconds, transfer_timeout=self.transfer_timeout_seconds,
            ca_file=_str(self.ca_bundle), client_cert=_str(self.client_cert),
            client_key=_str(self.client_key), pool_size=self.max_connections,
            dialect=self.dialect)


@dataclass(frozen=True)
class RetrySection:
    max_attempts: int = 10
    initial_seconds: float = 0.5
    max_seconds: float = 60.0
    total_seconds: float = 900.0


@dataclass(frozen=True)
class InboundSection:
    trust_dir: Path
    signature_policy: str = "allow-placeholder"
    allow_sha1: bool = False
    require_crl: bool = False
    crl_files: tuple[Path, ...] = ()
    legacy_sha1_senders: tuple[str, ...] = ()
    certificate_organ_ids: tuple[str, ...] = ()
    reject_with_status: bool = True
    max_attachment_bytes: int = 2 * 1024 ** 3
    signing_senders: tuple[str, ...] = ()
    max_event_bytes: int = 900_000

    def accepts(self, signature_status: str) -> bool:
        """Whether a package whose signature verdict has this status may be published."""
        return signature_status in _POLICY_ACCEPTS[self.signature_policy]

    def verification_policy(self) -> VerificationPolicy:
        from edxml.signature import VerificationPolicy

        return VerificationPolicy(allow_sha1=self.allow_sha1, require_crl=self.require_crl,
                                  legacy_sha1_senders=frozenset(self.legacy_sha1_senders),
                                  certificate_organ_ids=self.certificate_organ_id_map())

    def certificate_organ_id_map(self) -> dict[str, str]:
        """certificate_organ_ids as {sha256 fingerprint (lowercase hex): OrganId}."""
        out = {}
        for entry in self.certificate_organ_ids:
            fingerprint, _, organ_id = entry.partition("=")
            out[fingerprint.replace(":", "").strip().lower()] = organ_id.strip()
        return out


@dataclass(frozen=True)
class AttachmentsSection:
    """Signed PDF attachments: the issuer rule and the original-plus-digitised rule (Điều 3.6)."""

    issuer_policy: str = "report"
    issuer_require: tuple[str, ...] = ()
    issuer_report: tuple[str, ...] = ()
    refuse_unsigned: tuple[str, ...] = ()
    original_digitised: str = "off"
    original_digitised_require: tuple[str, ...] = ()
    original_digitised_report: tuple[str, ...] = ()
    max_pdf_bytes: int = 2 * 1024 ** 3

    def issuer_policy_for(self, sender: str) -> str:
        """off, report or require for documents from ``sender`` (inbound)."""
        if sender in self.issuer_require:
            return "require"
        if sender in self.issuer_report:
            return "report"
        return self.issuer_policy

    def original_digitised_for(self, agency: str) -> str:
        """off, report or require for documents ``agency`` sends."""
        if agency in self.original_digitised_require:
            return "require"
        if agency in self.original_digitised_report:
            return "report"
        return self.original_digitised


@dataclass(frozen=True)
class StoreSection:
    root: Path
    allowed_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AgencyConfig:
    """One agency the gateway sends and receives for, and where its signing key is."""

    organ_id: str
    name: str
    key: Path | None = None
    cert: Path | None = None
    chain: Path | None = None
    pkcs12: Path | None = None
    password: Secret | None = None
    # The effective roots: as configured, else derived from [store] allowed_roots.
    attachment_roots: tuple[Path, ...] = ()
    principal: str | None = None

    @property
    def kafka_principal(self) -> str:
        """The Kafka principal of this agency's own software."""
        return self.principal or f"User:{self.organ_id}"


@dataclass(frozen=True)
class GrantConfig:
    """One principal allowed to publish and read for several agencies (`[[grants]]`)."""

    principal: str
    agencies: tuple[str, ...]


@dataclass(frozen=True)
class GatewayConfig:
    gateway: GatewaySection
    http: HttpSection
    log: LogSection
    kafka: KafkaSection
    topics: TopicsSection
    axis: AxisSection
    retry: RetrySection
    inbound: InboundSection
    store: StoreSection
    agencies: tuple[AgencyConfig, ...]
    source: Path | None = None
    attachments: AttachmentsSection = AttachmentsSection()
    # Files holding secrets (keys, passwords, the axis secret): no attachment may reach them.
    secret_files: tuple[Path, ...] = ()
    grants: tuple[GrantConfig, ...] = ()

    def attachment_roots(self) -> dict[str, tuple[Path, ...]]:
        """Each agency's attachment roots (OrganId -> directories)."""
        return {a.organ_id: a.attachment_roots for a in self.agencies}

    @property
    def agency_ids(self) -> frozenset[str]:
        return frozenset(a.organ_id for a in self.agencies)

    def agency(self, organ_id: str) -> AgencyConfig | None:
        return next((a for a in self.agencies if a.organ_id == organ_id), None)

    def inbound_topics(self) -> dict[str, str]:
        """Every inbound topic in use, topic -> "documents"/"receipts" (per agency if templated)."""
        out: dict[str, str] = {}
        for kind in ("documents", "receipts"):
            for agency in self.agencies:
                out[self.topics.inbound_topic(kind, agency.organ_id)] = kind
        return out

    def outbound_topics(self) -> dict[str, tuple[str, str | None]]:
        """Every outbound topic the gateway reads: topic -> (kind, the agency it belongs to).

        The agency is None in the shared layout, where any configured agency may write.
        """
        out: dict[str, tuple[str, str | None]] = {}
        for kind in ("documents", "receipts"):
            for agency in self.agencies:
                topic = self.topics.outbound_topic(kind, agency.organ_id)
                shared = "{agency}" not in getattr(self.topics, f"outbound_{kind}")
                out[topic] = (kind, None if shared else agency.organ_id)
        return out

    def delivery_topics(self) -> list[str]:
        return sorted({self.topics.delivery_topic(a.organ_id) for a in self.agencies})

    def topic_agency(self, topic: str) -> str | None:
        """The agency an outbound topic belongs to (None: shared, or not an outbound topic)."""
        found = self._outbound_topic_map.get(topic)
        return found[1] if found else None

    @cached_property
    def _outbound_topic_map(self) -> dict[str, tuple[str, str | None]]:
        # Asked for every record: computed once (a frozen dataclass still has a __dict__).
        return self.outbound_topics()

    def principals(self) -> dict[str, tuple[str, ...]]:
        """Kafka principal -> the agencies whose topics it may use: each agency's own principal,
        plus the explicit [[grants]]."""
        out: dict[str, list[str]] = {}
        for agency in self.agencies:
            out.setdefault(agency.kafka_principal, []).append(agency.organ_id)
        for grant in self.grants:
            have = out.setdefault(grant.principal, [])
            have.extend(a for a in grant.agencies if a not in have)
        return {p: tuple(a) for p, a in out.items()}

    def summary(self) -> dict[str, Any]:
        """The configuration as JSON-ready data, secrets shown only by their source."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return repr(value)
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(listen)
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(listen)
        host = host[1:-1]
    return host, int(port)


# ---------------------------------------------------------------------------------------------
# Loading


class _Loader:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.base = path.parent
        self.environ = environ
        self.origin: dict[str, str] = {}   # key path -> environment variable it came from
        self.secret_paths: list[Path] = []   # files that secrets were read from

    # -- errors ------------------------------------------------------------------------------

    def error(self, reason: str, where: str, message: str) -> ConfigError:
        origin = self.origin.get(where)
        label = f"{where} (from {origin})" if origin else where
        return ConfigError(reason, f"{label}: {message}", where=where)

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError("config.file", f"cannot read the configuration file {self.path}: "
                              f"{exc.strerror or type(exc).__name__}",
                              where=str(self.path)) from None
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError("config.invalid", f"{self.path}: not UTF-8 (byte {exc.start})",
                              where=str(self.path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config.invalid", f"{self.path}: not valid TOML: {exc}",
                              where=str(self.path)) from None
        for name, value in data.items():
            if name in ("agencies", "grants"):
                if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
                    raise self.error("config.invalid", name, "must be an array of tables "
                                     f"([[{name}]])")
            elif name not in SECTIONS:
                raise self.error("config.invalid", name, f"unknown section; known: "
                                 f"{', '.join([*SECTIONS, 'agencies', 'grants'])}")
            elif not isinstance(value, dict):
                raise self.error("config.invalid", name, "must be a table ([" + name + "])")
        return data

    def apply_environment(self, data: dict[str, Any]) -> None:
        for var in sorted(self.environ):
            if not var.startswith(ENV_PREFIX):
                continue
            parts = var[len(ENV_PREFIX):].lower().split("__")
            raw = self.environ[var]
            if parts[0] == "agencies":
                if len(parts) != 3 or not parts[1].isdigit():
                    raise ConfigError("config.invalid", f"{var}: agency overrides are "
                                      f"{ENV_PREFIX}AGENCIES__<index>__<KEY>", where=var)
                index, key = int(parts[1]), parts[2]
                agencies = data.get("agencies", [])
                if index >= len(agencies):
                    raise ConfigError("config.invalid", f"{var}: there is no agencies[{index}] "
                                      f"in the file ({len(agencies)} defined)", where=var)
                spec = AGENCY_KEYS.get(key)
                where = f"agencies[{index}].{key}"
                target = agencies[index]
            else:
                if len(parts) != 2 or parts[0] not in SECTIONS:
                    raise ConfigError("config.invalid", f"{var}: not a known setting (expected "
                                      f"{ENV_PREFIX}<SECTION>__<KEY>, sections: "
                                      f"{', '.join(SECTIONS)})", where=var)
                section, key = parts
                spec = SECTIONS[section].get(key)
                where = f"{section}.{key}"
                target = data.setdefault(section, {})
            if spec is None:
                self.origin[where] = var
                raise self.error("config.invalid", where, self._unknown_key_message(where, key))
            self.origin[where] = var
            target[key] = self.parse_env(where, spec, raw)

    def parse_env(self, where: str, spec: Key, raw: str) -> Any:
        text = raw.strip()
        if spec.kind in ("str", "path", "env"):
            return text
        if spec.kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise self.error("config.invalid", where, "expected true or false")
        if spec.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise self.error("config.invalid", where, "expected an integer") from None
        if spec.kind == "float":
            try:
                return float(text)
            except ValueError:
                raise self.error("config.invalid", where, "expected a number") from None
        if spec.kind in ("paths", "strs"):
            if text.startswith("["):
                try:
                    return tomllib.loads(f"v = {text}")["v"]
                except tomllib.TOMLDecodeError:
                    raise self.error("config.invalid", where, "expected a TOML array "
                                     "like [\"a\", \"b\"] or a comma-separated list") from None
            return [item.strip() for item in text.split(",") if item.strip()]
        raise AssertionError(spec.kind)

    @staticmethod
    def _unknown_key_message(where: str, key: str) -> str:
        section = where.split(".")[0].split("[")[0]
        if key in _INLINE_SECRETS.get(section, ()):
            return (f"secrets are not accepted inline; use {key}_env (the name of an "
                    f"environment variable) or {key}_file (a file holding it)")
        known = {"agencies": AGENCY_KEYS, "grants": GRANT_KEYS}.get(section) or SECTIONS[section]
        return f"unknown key; known: {', '.join(known)}"

    # -- values ------------------------------------------------------------------------------

    def section(self, data: Mapping[str, Any], name: str, specs: Mapping[str, Key],
                where_prefix: str) -> dict[str, Any]:
        """Check a table's keys against `specs`; return the typed values (defaults filled)."""
        for key in data:
            if key not in specs:
                where = f"{where_prefix}.{key}"
                raise self.error("config.invalid", where, self._unknown_key_message(where, key))
        out: dict[str, Any] = {}
        for key, spec in specs.items():
            where = f"{where_prefix}.{key}"
            if key in data:
                out[key] = self.value(where, spec, data[key])
            elif spec.required:
                raise self.error("config.missing", where, "required")
            else:
                out[key] = spec.default
        return out

    def value(self, where: str, spec: Key, raw: Any) -> Any:
        kind = spec.kind
        if kind in ("str", "env"):
            if not isinstance(raw, str):
                raise self.error("config.invalid", where, f"expected a string, got {_tname(raw)}")
            value = raw.strip()
            if not value:
                raise self.error("config.invalid", where, "must not be empty")
            if spec.choices is not None:
                matched = next((c for c in spec.choices if c.lower() == value.lower()), None)
                if matched is None:
                    raise self.error("config.invalid", where, f"must be one of "
                                     f"{', '.join(spec.choices)}")
                value = matched
            if kind == "env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
                raise self.error("config.invalid", where, "must be the name of an environment "
                                 "variable (letters, digits, '_'), not the secret itself")
            return value
        if kind == "bool":
            if not isinstance(raw, bool):
                raise self.error("config.invalid", where, f"expected true or false, got "
                                 f"{_tname(raw)}")
            return raw
        if kind in ("int", "float"):
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or \
                    (kind == "int" and not isinstance(raw, int)):
                raise self.error("config.invalid", where, f"expected "
                                 f"{'an integer' if kind == 'int' else 'a number'}, got "
                                 f"{_tname(raw)}")
            if spec.positive and not raw > 0:
                raise self.error("config.invalid", where, "must be greater than 0")
            if spec.minimum is not None and raw < spec.minimum:
                raise self.error("config.invalid", where, f"must be at least {spec.minimum:g}")
            return float(raw) if kind == "float" else raw
        if kind == "path":
            return self.path_value(where, spec.exists, raw)
        if kind == "paths":
            if not isinstance(raw, list):
                raise self.error("config.invalid", where, f"expected a list of paths, got "
                                 f"{_tname(raw)}")
            return tuple(self.path_value(f"{where}[{i}]", spec.exists, item, origin_of=where)
                         for i, item in enumerate(raw))
        if kind == "strs":
            if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
                raise self.error("config.invalid", where, "expected a list of strings")
            return tuple(raw)
        raise AssertionError(kind)

    def path_value(self, where: str, exists: str, raw: Any, *, origin_of: str | None = None) -> Path:
        if origin_of and origin_of in self.origin:
            self.origin.setdefault(where, self.origin[origin_of])
        if not isinstance(raw, str) or not raw.strip():
            raise self.error("config.invalid", where, "expected a non-empty path string")
        path = Path(os.path.expanduser(raw.strip()))
        if not path.is_absolute():
            path = self.base / path
        path = Path(os.path.normpath(path))
        if exists == "dir":
            if not path.exists():
                raise self.error("config.file", where, f"directory not found: {path}")
            if not path.is_dir():
                raise self.error("config.file", where, f"not a directory: {path}")
        elif exists == "file":
            if not path.exists():
                raise self.error("config.file", where, f"file not found: {path}")
            if not path.is_file():
                raise self.error("config.file", where, f"not a regular file: {path}")
        elif not path.exists():
            raise self.error("config.file", where, f"not found: {path}")
        return path

    def secret(self, values: dict[str, Any], prefix: str, name: str, *,
               required: bool) -> Secret | None:
        env_name, file_path = values.pop(f"{name}_env"), values.pop(f"{name}_file")
        where_env, where_file = f"{prefix}.{name}_env", f"{prefix}.{name}_file"
        if env_name is not None and file_path is not None:
            raise self.error("config.invalid", where_env, f"give either {name}_env or "
                             f"{name}_file, not both")
        if env_name is not None:
            value = self.environ.get(env_name)
            if value is None:
                raise self.error("config.missing", where_env, f"environment variable "
                                 f"{env_name} is not set")
            if not value.strip():
                raise self.error("config.invalid", where_env, f"environment variable "
                                 f"{env_name} is empty")
            return Secret(value.strip(), f"env {env_name}")
        if file_path is not None:
            self.secret_paths.append(file_path)
            try:
                value = file_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise self.error("config.file", where_file, f"cannot read {file_path}: "
                                 f"{exc.strerror or type(exc).__name__}") from None
            except UnicodeDecodeError:
                raise self.error("config.invalid", where_file, f"{file_path} is not UTF-8 "
                                 "text") from None
            if not value.strip():
                raise self.error("config.invalid", where_file, f"{file_path} is empty")
            return Secret(value.strip(), f"file {file_path}")
        if required:
            raise self.error("config.missing", where_env, f"the {name} is required: set "
                             f"{name}_env (an environment variable's name) or {name}_file")
        return None


def _tname(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def load_config(path: Path, environ: Mapping[str, str]) -> GatewayConfig:
    """Read, override from `environ`, check and type the configuration; raise `ConfigError`."""
    path = Path(path)
    if not path.is_absolute():
        path = Path(os.path.abspath(path))
    loader = _Loader(path, environ)
    data = loader.read()
    loader.apply_environment(data)

    values = {name: loader.section(data.get(name, {}), name, specs, name)
              for name, specs in SECTIONS.items()}

    # [gateway]
    gw = values["gateway"]
    if gw["instance_id"] is None:
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "gateway"
        gw["instance_id"] = f"{host[:100]}-{os.getpid()}"
    elif not _INSTANCE_RE.match(gw["instance_id"]):
        raise loader.error("config.invalid", "gateway.instance_id", "use 1-128 letters, digits, "
                           "'.', '_' or '-'")
    gateway = GatewaySection(**gw)

    # [http]
    try:
        _split_listen(values["http"]["listen"])
    except ValueError:
        raise loader.error("config.invalid", "http.listen", "expected host:port, e.g. "
                           "127.0.0.1:9464 or [::1]:9464") from None
    http = HttpSection(**values["http"])
    log = LogSection(**values["log"])

    # [kafka]
    kv = values["kafka"]
    kv["sasl_password"] = loader.secret(kv, "kafka", "sasl_password", required=False)
    kafka = KafkaSection(**kv)
    _check_kafka(loader, kafka)

    # [topics]
    tv = values["topics"]
    for name, template in PER_AGENCY_TOPICS.items():
        if tv[name] is None:
            tv[name] = template if tv["per_agency"] else DEFAULT_TOPICS[name]
    topics = TopicsSection(**tv)
    _check_topics(loader, topics)

    # [axis]
    av = values["axis"]
    av["secret"] = loader.secret(av, "axis", "secret", required=True)
    parts = urlsplit(av["endpoint"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise loader.error("config.invalid", "axis.endpoint", "expected an http:// or https:// "
                           "URL")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", av["systemid"]):
        raise loader.error("config.invalid", "axis.systemid", "use letters, digits, '.', '_' "
                           "or '-' (e.g. 00.55.W00)")
    if av["client_key"] is not None and av["client_cert"] is None:
        raise loader.error("config.invalid", "axis.client_key", "needs axis.client_cert")
    axis = AxisSection(**av)

    # [retry]
    retry = RetrySection(**values["retry"])
    if retry.max_seconds < retry.initial_seconds:
        raise loader.error("config.invalid", "retry.max_seconds", "must not be less than "
                           "retry.initial_seconds")

    inbound = InboundSection(**values["inbound"])
    for i, entry in enumerate(inbound.certificate_organ_ids):
        fingerprint, sep, organ_id = entry.partition("=")
        if not sep or not re.fullmatch(r"[0-9A-Fa-f]{64}", fingerprint.replace(":", "").strip()) \
                or not organ_id.strip():
            raise loader.error("config.invalid", f"inbound.certificate_organ_ids[{i}]",
                               "expected 'SHA256-FINGERPRINT=OrganId' (64 hex digits, colons "
                               "allowed)")
    if inbound.max_event_bytes > 1_000_000:
        # The producer's request limit (1 MiB) must hold the record with its headers.
        raise loader.error("config.invalid", "inbound.max_event_bytes", "must not exceed "
                           "1000000 (the producer's request limit is 1 MiB)")
    store = StoreSection(**values["store"])

    agencies = _agencies(loader, data.get("agencies", []), store)
    secret_files = _secret_files(loader, kafka, axis, agencies)
    key_dirs = tuple(dict.fromkeys(p.parent for a in agencies for p in (a.key, a.pkcs12)
                                   if p is not None))
    _check_attachment_roots(loader, agencies, store, secret_files, key_dirs)
    grants = _grants(loader, data.get("grants", []), agencies)

    return GatewayConfig(gateway=gateway, http=http, log=log, kafka=kafka, topics=topics,
                         axis=axis, retry=retry, inbound=inbound, store=store,
                         agencies=agencies, source=path, secret_files=secret_files,
                         attachments=AttachmentsSection(**values["attachments"]),
                         grants=grants)


def _secret_files(loader: _Loader, kafka: KafkaSection, axis: AxisSection,
                  agencies: tuple[AgencyConfig, ...]) -> tuple[Path, ...]:
    found: list[Path] = list(loader.secret_paths)
    for agency in agencies:
        found += [p for p in (agency.key, agency.pkcs12) if p is not None]
    found += [p for p in (kafka.ssl_keyfile, axis.client_key) if p is not None]
    return tuple(dict.fromkeys(found))


def _check_attachment_roots(loader: _Loader, agencies: tuple[AgencyConfig, ...],
                            store: StoreSection, secret_files: tuple[Path, ...],
                            key_dirs: tuple[Path, ...]) -> None:
    """No agency's attachment root may contain, or lie inside, another agency's root, the
    store (archive, received attachments) or a directory holding signing keys, nor contain any
    other secret file (a password, the axis secret): a reference could otherwise reach them.
    Compared after resolving symlinks."""
    def real(path: Path) -> Path:
        return Path(os.path.realpath(path))

    def overlap(a: Path, b: Path) -> bool:
        return a == b or a.is_relative_to(b) or b.is_relative_to(a)

    apart = [("the store root (store.root)", real(store.root))]
    apart += [(f"the key directory {d}", real(d)) for d in key_dirs]
    for index, agency in enumerate(agencies):
        where = f"agencies[{index}].attachment_roots"
        for root in agency.attachment_roots:
            mine = real(root)
            for what, other in apart:
                if overlap(mine, other):
                    raise loader.error("config.invalid", where, f"{root} overlaps {what}; an "
                                       "agency's attachment roots must be apart from the "
                                       "store and the keys")
            for secret in secret_files:
                if real(secret).is_relative_to(mine):
                    raise loader.error("config.invalid", where, f"{root} contains the secret "
                                       f"file {secret}")
            for k, other_agency in enumerate(agencies):
                if k == index:
                    continue
                for theirs in other_agency.attachment_roots:
                    if overlap(mine, real(theirs)):
                        raise loader.error("config.invalid", where, f"{root} overlaps "
                                           f"{theirs}, an attachment root of "
                                           f"{other_agency.organ_id}; each agency needs its "
                                           "own directories")


def _check_kafka(loader: _Loader, kafka: KafkaSection) -> None:
    from connectors.kafka import KafkaConnectorError

    if kafka.session_timeout_seconds > kafka.max_poll_interval_seconds:
        raise loader.error("config.invalid", "kafka.session_timeout_seconds", "must not exceed "
                           "kafka.max_poll_interval_seconds")
    try:
        kafka.settings()
    except KafkaConnectorError as exc:
        key = exc.where or "bootstrap_servers"
        if key == "sasl_username" and kafka.sasl_username and kafka.sasl_password is None:
            key = "sasl_password_env"
        raise loader.error("config.invalid", f"kafka.{key}", exc.message) from None


def _check_topics(loader: _Loader, topics: TopicsSection) -> None:
    for f in fields(topics):
        if f.name == "per_agency":
            continue
        name = getattr(topics, f.name)
        where = f"topics.{f.name}"
        if topics.per_agency and f.name in AGENCY_TOPICS and name.count("{agency}") != 1:
            raise loader.error("config.invalid", where, "with per_agency = true each agency "
                               "topic is a template with {agency} once (e.g. "
                               f"{PER_AGENCY_TOPICS[f.name]}); per_agency = false is the "
                               "shared layout, for a lab only")
        if "{agency}" in name and f.name not in (
                AGENCY_TOPICS if topics.per_agency else ("inbound_documents", "inbound_receipts")):
            raise loader.error("config.invalid", where, "only the agency topics may contain "
                               "{agency}" if topics.per_agency else "only inbound_documents "
                               "and inbound_receipts may contain {agency} with per_agency = "
                               "false")
        sample = name.replace("{agency}", "000.00.00.H55")
        if not _TOPIC_RE.match(sample) or sample in (".", ".."):
            raise loader.error("config.invalid", where, "a Kafka topic name uses letters, "
                               "digits, '.', '_' and '-' (at most 249), plus {agency} in the "
                               "inbound names")
    names = [getattr(topics, f.name) for f in fields(topics) if f.name != "per_agency"]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise loader.error("config.invalid", "topics", f"the same topic is used twice: "
                           f"{', '.join(duplicates)}")


def _agencies(loader: _Loader, raw: list[dict[str, Any]],
              store: StoreSection) -> tuple[AgencyConfig, ...]:
    from edxml.errors import EdxmlError
    from edxml.values import OrganId

    if not raw:
        raise loader.error("config.missing", "agencies", "at least one [[agencies]] table is "
                           "required (organ_id, name, key + cert or pkcs12)")
    out: list[AgencyConfig] = []
    seen: dict[str, int] = {}
    principals: dict[str, int] = {}
    for index, table in enumerate(raw):
        prefix = f"agencies[{index}]"
        values = loader.section(table, "agencies", AGENCY_KEYS, prefix)
        try:
            OrganId.parse(values["organ_id"], strict=True)
        except EdxmlError as exc:
            raise loader.error("config.invalid", f"{prefix}.organ_id", exc.message) from None
        if values["organ_id"] in seen:
            raise loader.error("config.invalid", f"{prefix}.organ_id", f"{values['organ_id']} "
                               f"is already agencies[{seen[values['organ_id']]}]")
        seen[values["organ_id"]] = index
        values["password"] = loader.secret(values, prefix, "password", required=False)
        if values["principal"] is not None:
            values["principal"] = _principal(loader, f"{prefix}.principal", values["principal"])
        principal = values["principal"] or f"User:{values['organ_id']}"
        if principal in principals:
            # One principal for two agencies is a grant, and grants are explicit.
            raise loader.error("config.invalid", f"{prefix}.principal", f"{principal} is already "
                               f"agencies[{principals[principal]}]'s principal; a principal that "
                               "acts for several agencies is a [[grants]] table")
        principals[principal] = index
        has_pem = values["key"] is not None or values["cert"] is not None
        if values["pkcs12"] is not None and has_pem:
            raise loader.error("config.invalid", f"{prefix}.pkcs12", "give either pkcs12 or "
                               "key + cert, not both")
        if values["pkcs12"] is None:
            for part in ("key", "cert"):
                if values[part] is None:
                    raise loader.error("config.missing", f"{prefix}.{part}", "required (or give "
                                       "pkcs12 instead of key + cert)")
        elif values["chain"] is not None:
            raise loader.error("config.invalid", f"{prefix}.chain", "chain goes with key + "
                               "cert; a PKCS#12 file carries its own intermediates")
        if values["attachment_roots"] is None:
            # Default: the agency's own subdirectory of each shared root (it need not exist
            # yet; a reference into a missing one is simply store.missing).
            values["attachment_roots"] = tuple(root / values["organ_id"]
                                               for root in store.allowed_roots)
        out.append(AgencyConfig(**values))
    return tuple(out)


_PRINCIPAL_RE = re.compile(r"^User:[A-Za-z0-9._@=,+-]{1,200}$")


def _principal(loader: _Loader, where: str, value: str) -> str:
    if not _PRINCIPAL_RE.match(value):
        raise loader.error("config.invalid", where, "a Kafka principal is User:<name> (letters, "
                           "digits and . _ @ = , + -), e.g. User:000.00.00.H55")
    return value


def _grants(loader: _Loader, raw: list[dict[str, Any]],
            agencies: tuple[AgencyConfig, ...]) -> tuple[GrantConfig, ...]:
    configured = {a.organ_id for a in agencies}
    out: list[GrantConfig] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(raw):
        prefix = f"grants[{index}]"
        values = loader.section(table, "grants", GRANT_KEYS, prefix)
        principal = _principal(loader, f"{prefix}.principal", values["principal"])
        if principal in seen:
            raise loader.error("config.invalid", f"{prefix}.principal", f"{principal} is "
                               f"already grants[{seen[principal]}]; list all its agencies there")
        seen[principal] = index
        if not values["agencies"]:
            raise loader.error("config.invalid", f"{prefix}.agencies", "name at least one agency")
        for i, organ_id in enumerate(values["agencies"]):
            if organ_id not in configured:
                raise loader.error("config.invalid", f"{prefix}.agencies[{i}]", f"{organ_id[:64]!r} "
                                   "is not a configured agency")
        out.append(GrantConfig(principal, tuple(dict.fromkeys(values["agencies"]))))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Keys and trust


def load_signer(agency: AgencyConfig) -> Signer:
    """One agency's key and certificate (raises the signature module's EdxmlError)."""
    from edxml.signature import Signer

    password = agency.password.reveal() if agency.password else None
    if agency.pkcs12 is not None:
        return Signer.from_pkcs12(agency.pkcs12, password)
    assert agency.key is not None and agency.cert is not None
    return Signer.from_pem(agency.key, agency.cert, password, chain_path=agency.chain)


def load_signers(config: GatewayConfig,
                 only: Collection[str] | None = None) -> dict[str, Signer]:
    """Load every agency's signing key and certificate: OrganId -> Signer.

    All agencies are tried; if any fails, one `ConfigError` (`config.file`) lists each failure
    with the agency, so an operator fixes them in one go.
    """
    from edxml.errors import EdxmlError

    signers: dict[str, Signer] = {}
    failures: list[str] = []
    for index, agency in enumerate(config.agencies):
        if only is not None and agency.organ_id not in only:
            continue
        try:
            signer = load_signer(agency)
        except EdxmlError as exc:
            failures.append(f"agencies[{index}] ({agency.organ_id}, {agency.name}): "
                            f"{exc.reason}: {exc.message}")
            continue
        signers[agency.organ_id] = signer
    if failures:
        raise ConfigError("config.file", "signing keys could not be loaded: "
                          + "; ".join(failures), where="agencies")
    return signers


def load_trust(config: GatewayConfig) -> TrustStore:
    """The trust store for received signatures ([inbound] trust_dir and crl_files)."""
    from edxml.errors import EdxmlError
    from edxml.trust import TrustStore

    try:
        store = TrustStore.from_paths(config.inbound.trust_dir,
                                      crl_files=list(config.inbound.crl_files))
    except EdxmlError as exc:
        raise ConfigError("config.file", f"inbound.trust_dir / crl_files: {exc.message}",
                          where="inbound.trust_dir") from None
    if not store.roots:
        raise ConfigError("config.invalid", f"inbound.trust_dir: no self-signed root "
                          f"certificate found in {config.inbound.trust_dir}",
                          where="inbound.trust_dir")
    return store


__all__ = ["AGENCY_KEYS", "AGENCY_TOPICS", "DEFAULT_TOPICS", "GRANT_KEYS", "GrantConfig",
           "PER_AGENCY_TOPICS", "ENV_PREFIX", "REASONS", "SECTIONS",
           "SIGNATURE_POLICIES", "AgencyConfig", "AxisSection", "ConfigError", "GatewayConfig",
           "GatewaySection", "HttpSection", "InboundSection", "KafkaSection", "Key",
           "LogSection", "RetrySection", "Secret", "StoreSection", "TopicsSection",
           "load_config", "load_signers", "load_trust"]
