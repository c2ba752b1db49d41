"""`edoc-gateway run --config F --check`: is this deployment ready to run?

Checks, in order, with one line each (`ok`, `warn` or `FAIL`, the check's name, a detail that
never contains a secret):

    config               the configuration file was read and checked (it already was, to get here)
    trust                the trust store for received signatures: roots, intermediates
    crl <issuer>         each CRL: its issuer is in the trust store, when it must be renewed
    agency <OrganId>     each agency's key and certificate: subject, validity, days left,
                         the key belongs to the certificate, the chain is trusted
    store                the store root is writable, the other allowed roots are readable
    http                 the /metrics listen address is free
    kafka                the brokers answer a metadata request (bounded by a few seconds)
    kafka.topics         which configured topics exist; missing ones are created by the daemon
                         at start, existing ones must have the partitions and settings it needs
    kafka.acls           who may write what (docs/security.md): FAIL when the broker has no
                         authorizer, or lets an agency principal (or everyone) write the
                         gateway's own topics or another agency's outbound topics without a
                         grant; warn for the shared topic layout and an unauthenticated gateway
    axis                 an authenticated call (countReceiveEdoc) succeeds
    axis.agencies        every configured agency is in the axis's directory

`check(config)` prints the lines and returns the exit code: 0 when nothing failed, 2 otherwise
(the command line's "usage or configuration problem"). `run_checks(config)` yields the results
for other callers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509

from edxml.errors import GatewayError
from gateway.config import ConfigError, GatewayConfig, load_signer, load_trust

OK, WARN, FAIL = "ok", "warn", "FAIL"

#: check name (prefix) -> what it looks at; the order is the order of the output.
CHECKS: dict[str, str] = {
    "config": "the configuration file was read and every key checked",
    "trust": "the trust store ([inbound] trust_dir) loads and has a self-signed root",
    "crl": "each CRL loads, is signed by a certificate of the trust store, and is not past its "
           "next update (a stale CRL makes every signer under its CA refused)",
    "agency": "each agency's key and certificate load, belong together, are valid now (warn "
              "under 30 days left) and chain to the trust store",
    "store": "the store root is writable and the allowed roots are readable",
    "http": "the /metrics, /healthz, /readyz listen address can be bound",
    "kafka": "the brokers answer a metadata request within a few seconds",
    "kafka.topics": "which configured topics exist (missing ones are created by the daemon at "
                    "start); existing ones have the partitions and settings the daemon needs",
    "kafka.acls": "the broker has an authorizer, and its ACLs let no agency principal write the "
                  "gateway's own topics or another agency's outbound topics; the topics are "
                  "per agency and the gateway authenticates",
    "axis": "an authenticated call to the axis (countReceiveEdoc) succeeds",
    "axis.agencies": "every configured agency is in the axis's agency directory",
}

EXPIRY_WARN_DAYS = 30
CRL_WARN_HOURS = 24
KAFKA_TIMEOUT_SECONDS = 5.0
AXIS_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str        # ok | warn | FAIL
    detail: str

    def line(self) -> str:
        # Two spaces at least around the name, which never contains two: easy to split.
        return f"{self.status:<4}  {self.name:<21}  {self.detail}"


def _error_text(exc: GatewayError) -> str:
    return f"{exc.reason}: {exc.message}"


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def _cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


# --- the checks ---------------------------------------------------------------------------------


def check_config(config: GatewayConfig) -> CheckResult:
    where = str(config.source) if config.source else "configuration"
    return CheckResult("config", OK, f"{where}: instance {config.gateway.instance_id}, systemid "
                       f"{config.axis.systemid}, {_plural(len(config.agencies), 'agency')}, "
                       f"signature policy {config.inbound.signature_policy}")


def check_trust(config: GatewayConfig) -> tuple[CheckResult, Any]:
    try:
        store = load_trust(config)
    except ConfigError as exc:
        return CheckResult("trust", FAIL, _error_text(exc)), None
    return CheckResult("trust", OK, f"{config.inbound.trust_dir}: "
                       f"{_plural(len(store.roots), 'root')}, "
                       f"{_plural(len(store.intermediates), 'intermediate')}"), store


def check_crls(config: GatewayConfig, store: Any, now: datetime) -> list[CheckResult]:
    if not config.inbound.crl_files:
        status = FAIL if config.inbound.require_crl else WARN
        return [CheckResult("crl", status, "no CRL files: revocation is not checked"
                            + (" and require_crl refuses every signer" if status == FAIL else ""))]
    certs = list(store.roots) + list(store.intermediates) if store is not None else []
    results = []
    for path in config.inbound.crl_files:
        try:
            data = Path(path).read_bytes()
            crl = (x509.load_pem_x509_crl(data) if b"-----BEGIN X509 CRL-----" in data
                   else x509.load_der_x509_crl(data))
        except (OSError, ValueError) as exc:
            results.append(CheckResult("crl", FAIL, f"{path}: cannot load: "
                                       f"{getattr(exc, 'strerror', None) or exc}"))
            continue
        name = f"crl {_cn(crl.issuer)}"
        signed = False
        for cert in certs:
            if cert.subject != crl.issuer:
                continue
            try:
                signed = bool(crl.is_signature_valid(cert.public_key()))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                signed = False
            if signed:
                break
        revoked = sum(1 for _ in crl)
        next_update = crl.next_update_utc
        when = (f"next update {next_update:%Y-%m-%d %H:%M}Z" if next_update is not None
                else "no next update")
        detail = f"{path.name}: {when}, {_plural(revoked, 'revoked certificate')}"
        if store is not None and not signed:
            results.append(CheckResult(name, WARN, f"{detail}; not signed by any certificate "
                                       "of the trust store, so it is ignored"))
        elif next_update is not None and next_update < now:
            results.append(CheckResult(name, FAIL, f"{detail}; stale: signatures under this CA "
                                       "are refused (edxml.signature.crl_stale) until it is "
                                       "renewed"))
        elif next_update is not None and \
                (next_update - now).total_seconds() < CRL_WARN_HOURS * 3600:
            hours = (next_update - now).total_seconds() / 3600
            results.append(CheckResult(name, WARN, f"{detail}; {hours:.0f} h left: renew it"))
        else:
            results.append(CheckResult(name, OK, detail))
    return results


def check_agencies(config: GatewayConfig, store: Any, now: datetime) -> list[CheckResult]:
    from edxml.errors import EdxmlError

    results = []
    for agency in config.agencies:
        name = f"agency {agency.organ_id}"
        try:
            signer = load_signer(agency)
        except EdxmlError as exc:
            where = f" ({exc.where})" if exc.where else ""
            results.append(CheckResult(name, FAIL, f"{_error_text(exc)}{where}"))
            continue
        cert = signer.certificate
        before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
        days = (after - now).total_seconds() / 86400
        detail = (f"{_cn(cert.subject)}, serial {cert.serial_number:x}, valid "
                  f"{before:%Y-%m-%d} to {after:%Y-%m-%d}")
        if now < before:
            results.append(CheckResult(name, FAIL, f"{detail}: not valid yet "
                                       f"(from {before:%Y-%m-%d %H:%M}Z)"))
            continue
        if now > after:
            results.append(CheckResult(name, FAIL, f"{detail}: expired {-days:.0f} days ago"))
            continue
        detail += f" ({days:.0f} days left)"
        if store is not None:
            verdict = store.check((cert, *signer.chain), now,
                                  require_crl=config.inbound.require_crl)
            if not verdict.ok:
                results.append(CheckResult(name, WARN, f"{detail}; receivers using this trust "
                                           f"store would refuse it: {verdict.reason}: "
                                           f"{verdict.message}"))
                continue
            detail += "; chain trusted"
        if days < EXPIRY_WARN_DAYS:
            results.append(CheckResult(name, WARN, f"{detail}: renew it before it expires"))
        else:
            results.append(CheckResult(name, OK, detail))
    return results


def check_store(config: GatewayConfig) -> CheckResult:
    from connectors.store import FileStore

    store = FileStore(config.store.root, allowed_roots=config.store.allowed_roots)
    try:
        store.check()
    except GatewayError as exc:
        return CheckResult("store", FAIL, _error_text(exc))
    unreadable = [str(p) for p in config.store.allowed_roots
                  if not os.access(p, os.R_OK | os.X_OK)]
    if unreadable:
        return CheckResult("store", FAIL, f"{config.store.root} writable; cannot read allowed "
                           f"root(s) {', '.join(unreadable)}")
    extra = (f"; {_plural(len(config.store.allowed_roots), 'allowed root')} readable"
             if config.store.allowed_roots else "")
    return CheckResult("store", OK, f"{config.store.root} writable{extra}")


def check_http(config: GatewayConfig) -> CheckResult:
    host, port = config.http.host, config.http.port
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if port == 0:
        return CheckResult("http", OK, f"{shown}: a free port is picked at start (logged in "
                           "gateway.starting)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return CheckResult("http", FAIL, f"{shown}: cannot resolve {host}: {exc.strerror or exc}")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return CheckResult("http", WARN, f"{shown}: cannot bind ({exc.strerror or exc}); "
                               "another instance on this host? The daemon would not start")
    return CheckResult("http", OK, f"{shown} is free")


async def _kafka_metadata(settings: Any, specs: list[Any]) -> tuple[dict[str, Any], list[str],
                                                                  list[str]]:
    """(cluster description, existing topic names, missing topic names); raises
    `KafkaConnectorError` (`kafka.topic` when an existing topic does not fit its spec)."""
    from connectors.kafka import _admin, _check_existing

    names = [spec.name for spec in specs]
    async with _admin(settings) as admin:
        cluster = await admin.describe_cluster()
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        existing = [n for n in names if described.get(n, {}).get("error_code") == 0]
        missing = [n for n in names if n not in existing]
        await _check_existing(admin, [s for s in specs if s.name in existing])
    return cluster, existing, missing


async def check_kafka(config: GatewayConfig, *,
                      timeout: float = KAFKA_TIMEOUT_SECONDS) -> list[CheckResult]:
    from connectors.kafka import KafkaConnectorError
    from gateway.daemon import topic_specs

    settings = config.kafka.settings()
    settings = dataclasses.replace(
        settings, request_timeout_ms=min(settings.request_timeout_ms, int(timeout * 1000)))
    specs = topic_specs(config)
    where = config.kafka.bootstrap_servers
    # The client logs each refused connection itself; the result line says it once.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        cluster, existing, missing = await asyncio.wait_for(
            _kafka_metadata(settings, specs), timeout + 1)
    except asyncio.TimeoutError:
        return [CheckResult("kafka", FAIL, f"{where}: kafka.unavailable: no answer within "
                            f"{timeout:.0f} s")]
    except KafkaConnectorError as exc:
        if exc.reason == "kafka.topic":
            return [CheckResult("kafka", OK, f"{where}: brokers answer"),
                    CheckResult("kafka.topics", FAIL, f"{_error_text(exc)} (the daemon would "
                                "refuse to start)")]
        return [CheckResult("kafka", FAIL, f"{where}: {_error_text(exc)}")]
    finally:
        quiet.setLevel(level)
    brokers = len(cluster.get("brokers") or ())
    results = [CheckResult("kafka", OK, f"{where}: {_plural(brokers, 'broker')}, cluster "
                           f"{cluster.get('cluster_id')}")]
    acl_result = await check_acls(config, settings, timeout)
    if missing:
        results.append(CheckResult("kafka.topics", OK, f"{len(existing)} of {len(specs)} exist; "
                                   f"missing (the daemon creates them at start): "
                                   f"{', '.join(missing)}"))
    else:
        results.append(CheckResult("kafka.topics", OK, f"all {len(specs)} exist with the "
                                   "partitions and settings the daemon needs"))
    results.append(acl_result)
    return results


async def check_acls(config: GatewayConfig, settings: Any, timeout: float) -> CheckResult:
    """Who may write what, from the broker's ACLs (DescribeAcls) and the configuration."""
    from connectors.kafka import KafkaConnectorError, describe_acls
    from gateway.acl import findings, layout_findings

    try:
        acls = await asyncio.wait_for(describe_acls(settings), timeout + 1)
    except asyncio.TimeoutError:
        return CheckResult("kafka.acls", FAIL, "DescribeAcls: no answer in time")
    except KafkaConnectorError as exc:
        return CheckResult("kafka.acls", FAIL, f"cannot read the ACLs ({_error_text(exc)}); "
                           "the gateway's principal needs DESCRIBE on the cluster (a super user)")
    broker = findings(config, acls)
    layout = layout_findings(config)
    if broker:
        return CheckResult("kafka.acls", FAIL, "; ".join(broker + layout))
    if layout:
        return CheckResult("kafka.acls", WARN, "; ".join(layout))
    assert acls is not None
    return CheckResult("kafka.acls", OK, f"authorizer on, {_plural(len(acls), 'ACL binding')}; "
                       "no agency principal may write the gateway's topics or another "
                       "agency's")


async def check_axis(config: GatewayConfig, *,
                     timeout: float = AXIS_TIMEOUT_SECONDS) -> list[CheckResult]:
    from connectors.axis.client import AxisClient

    base = config.axis.client_config()
    client_config = dataclasses.replace(
        base, connect_timeout=min(base.connect_timeout, timeout),
        read_timeout=min(base.read_timeout, timeout),
        total_timeout=min(base.total_timeout or timeout, timeout))
    where = f"{config.axis.endpoint} as {config.axis.systemid}"
    async with AxisClient(client_config) as axis:
        try:
            waiting = await asyncio.wait_for(axis.count_receive_edoc(), timeout + 1)
        except asyncio.TimeoutError:
            return [CheckResult("axis", FAIL, f"{where}: axis.timeout: no answer within "
                                f"{timeout:.0f} s")]
        except GatewayError as exc:
            return [CheckResult("axis", FAIL, f"{where}: {_error_text(exc)}")]
        results = [CheckResult("axis", OK, f"{where}: authenticated; "
                               f"{_plural(waiting, 'document')} waiting to be fetched")]
        try:
            agencies = await asyncio.wait_for(axis.get_agencies_list(), timeout + 1)
        except (GatewayError, asyncio.TimeoutError) as exc:
            text = _error_text(exc) if isinstance(exc, GatewayError) else "no answer in time"
            results.append(CheckResult("axis.agencies", WARN, f"cannot read the directory "
                                       f"({text}); the daemon sends without the unknown-"
                                       "recipient check"))
            return results
    known = {a.code for a in agencies}
    unknown = [a.organ_id for a in config.agencies if a.organ_id not in known]
    if unknown:
        results.append(CheckResult("axis.agencies", WARN, f"not in the axis's directory of "
                                   f"{len(known)}: {', '.join(unknown)} (documents to them "
                                   "cannot arrive)"))
    else:
        ours = (config.agencies[0].organ_id if len(config.agencies) == 1
                else f"all {len(config.agencies)} agencies")
        results.append(CheckResult("axis.agencies", OK, f"{ours} in the axis's directory "
                                   f"({_plural(len(known), 'agency')})"))
    return results


# --- running them -------------------------------------------------------------------------------


async def run_checks(config: GatewayConfig, *, now: datetime | None = None,
                     kafka_timeout: float = KAFKA_TIMEOUT_SECONDS,
                     axis_timeout: float = AXIS_TIMEOUT_SECONDS) -> AsyncIterator[CheckResult]:
    """Every check's result, as soon as it is known."""
    now = now or datetime.now(timezone.utc)
    yield check_config(config)
    trust_result, store = check_trust(config)
    yield trust_result
    for result in check_crls(config, store, now):
        yield result
    for result in check_agencies(config, store, now):
        yield result
    yield check_store(config)
    yield check_http(config)
    for result in await check_kafka(config, timeout=kafka_timeout):
        yield result
    for result in await check_axis(config, timeout=axis_timeout):
        yield result


def _secrets(config: GatewayConfig) -> list[str]:
    values = [config.axis.secret.reveal()]
    if config.kafka.sasl_password is not None:
        values.append(config.kafka.sasl_password.reveal())
    values += [a.password.reveal() for a in config.agencies if a.password is not None]
    return [v for v in values if len(v) >= 4]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text


async def check(config: GatewayConfig, *, out: TextIO | None = None,
                now: datetime | None = None) -> int:
    """Print one line per check; 0 when nothing failed, 2 otherwise."""
    out = out or sys.stdout
    secrets = _secrets(config)
    counts = {OK: 0, WARN: 0, FAIL: 0}
    async for result in run_checks(config, now=now):
        counts[result.status] += 1
        print(_scrub(result.line(), secrets), file=out, flush=True)
    failed = counts[FAIL]
    print(f"{counts[OK]} ok, {_plural(counts[WARN], 'warning')}, {failed} failed"
          + (": fix the FAIL lines before starting the gateway" if failed else ""),
          file=out, flush=True)
    return 0 if failed == 0 else 2


__all__ = ["AXIS_TIMEOUT_SECONDS", "CHECKS", "CheckResult", "EXPIRY_WARN_DAYS", "FAIL",
           "KAFKA_TIMEOUT_SECONDS", "OK", "WARN", "check", "check_agencies", "check_axis",
           "check_acls", "check_config", "check_crls", "check_http", "check_kafka", "check_store",
           "check_trust", "run_checks"]
