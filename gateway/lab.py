"""A lab on one machine: the axis simulator and one gateway per province, over real Kafka.

Used by the quickstart (`edoc-gateway demo`) and the end-to-end tests. Each province is its own
deployment, as in real life: its own axis systemid, agencies, signing keys, store and topics
(prefixed with the province code so two provinces can share one lab broker). Gateways run as
separate processes (`edoc-gateway run --config ...`), so they can be killed like real ones.

The agencies' software is played by `AgencyClient`: it publishes events the way a vendor's
producer would and reads what the gateway publishes back.

Topics are per agency (`h55.edoc.outbound.{agency}.documents.<run>` ...). Given a broker with
SCRAM users (`deploy/kafka/localkafka.py`, `LAB_SCRAM_USERS`), the lab runs as production
does: the gateways log in as the super user `gateway`, each agency's client as its own OrganId,
and the ACLs of `gateway.acl.plan` are created at start, so an agency can use its own topics
only. Without one, everything goes over the broker's PLAINTEXT listener.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from connectors.axis.simulator.process import SimulatorProcess, start_simulator_process
from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer, KafkaSettings, read_topic
from edxml.pki import init_test_pki
from gateway import events


LOCALKAFKA = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "localkafka.py"


def load_localkafka() -> Any:
    """`deploy/kafka/localkafka.py` of the source tree (the lab's broker), imported by path:
    deploy/ is not a package. FileNotFoundError when installed without the source tree."""
    import importlib.util
    import sys

    if "localkafka" in sys.modules:
        return sys.modules["localkafka"]
    if not LOCALKAFKA.is_file():
        raise FileNotFoundError(LOCALKAFKA)
    spec = importlib.util.spec_from_file_location("localkafka", LOCALKAFKA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localkafka"] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Province:
    code: str                                # H55
    name: str
    systemid: str                            # the provincial node's axis client id
    agencies: tuple[tuple[str, str], ...]    # (OrganId, name)

    @property
    def prefix(self) -> str:
        return self.code.lower()


THAI_NGUYEN = Province("H55", "Thái Nguyên", "00.55.W00",
                       (("000.00.00.H55", "UBND tỉnh Thái Nguyên"),
                        ("000.00.02.H55", "Sở Nội vụ tỉnh Thái Nguyên")))
NGHE_AN = Province("H41", "Nghệ An", "00.41.W00", (("000.00.00.H41", "UBND tỉnh Nghệ An"),))
DEMO_PROVINCES = (THAI_NGUYEN, NGHE_AN)


# The SCRAM users a lab broker needs: an administrator, the gateways' own user (both super
# users, whom ACLs do not restrict) and one user per demo agency, named by its OrganId.
LAB_SUPER_USERS = ("admin", "gateway")


def lab_scram_users() -> tuple[str, ...]:
    return (*LAB_SUPER_USERS, *(organ_id for p in DEMO_PROVINCES for organ_id, _ in p.agencies))


def topics_for(province: Province) -> dict[str, str]:
    """Topic names of a province's gateway; the agency topics are templates with {agency}."""
    p = province.prefix
    return {name: f"{p}.{topic}" for name, topic in (
        ("outbound_documents", "edoc.outbound.{agency}.documents"),
        ("outbound_receipts", "edoc.outbound.{agency}.receipts"),
        ("delivery", "edoc.delivery.{agency}"),
        ("inbound_documents", "edoc.inbound.{agency}.documents"),
        ("inbound_receipts", "edoc.inbound.{agency}.receipts"),
        ("audit", "edoc.audit"),
        ("deadletter", "edoc.deadletter"),
        ("ledger", "edoc.gateway.ledger"),
        ("poller", "edoc.gateway.poller"),
        ("senders", "edoc.gateway.senders"))}


AGENCY_TOPIC_KEYS = ("outbound_documents", "outbound_receipts", "delivery", "inbound_documents",
                     "inbound_receipts")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


@dataclass
class GatewayProcess:
    province: Province
    config: Path
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 30) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.alive():
            self.popen.kill()
        self.popen.wait()


@dataclass
class Lab:
    workdir: Path
    bootstrap: str
    provinces: tuple[Province, ...] = DEMO_PROVINCES
    gateway_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    simulator: SimulatorProcess | None = None
    gateways: list[GatewayProcess] = field(default_factory=list)
    secrets_: dict[str, str] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # A localkafka.LocalKafka with SCRAM users (LAB_SCRAM_USERS): authentication and ACLs on.
    broker: Any = None

    @property
    def secured(self) -> bool:
        return self.broker is not None and bool(getattr(self.broker, "sasl_bootstrap", None))

    def kafka_settings(self, user: str | None = None) -> KafkaSettings:
        """Settings for `user` on the SCRAM listener (secured lab), else the plain listener."""
        if not self.secured or user is None:
            return KafkaSettings(bootstrap_servers=self.bootstrap)
        return KafkaSettings.from_env(self.broker.client_settings(user))

    # -- setup ------------------------------------------------------------------------------

    def start(self, *, simulator_args: tuple[str, ...] = ()) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        agencies = [a for p in self.provinces for a in p.agencies]
        self.pki = init_test_pki(self.workdir / "pki", agencies=agencies)
        self.secrets_ = {p.systemid: secrets.token_hex(16) for p in self.provinces}
        self.simulator = start_simulator_process(
            db=self.workdir / "axis-sim.db", clients=self.secrets_,
            # The axis is run by Văn phòng Chính phủ; its hop is stamped with that OrganId.
            extra_args=("--timestamp-window", "300", "--trace-organ-id", "000.00.00.G22",
                        *simulator_args),
            log_path=self.workdir / "axis-sim.log")
        for province in self.provinces:
            self.write_config(province)
        self.ensure_acls()

    def ensure_acls(self) -> None:
        """Create the topics and, if secured, the ACLs of the current configurations (after
        `write_config`), as an operator does when onboarding agencies: agency software can then
        publish before a gateway has started."""
        _run_blocking(self.apply_acls())

    async def apply_acls(self) -> None:
        """The topics and ACLs each province's configuration calls for (`edoc-gateway acl
        apply`)."""
        from connectors.kafka import create_acls, ensure_topics
        from gateway.acl import plan
        from gateway.config import load_config
        from gateway.daemon import topic_specs

        for province in self.provinces:
            config = load_config(self.province_dir(province) / "gateway.toml", os.environ)
            await ensure_topics(self.kafka_settings(), topic_specs(config))
            if self.secured:
                await create_acls(self.kafka_settings("admin"), plan(config))

    def province_dir(self, province: Province) -> Path:
        return self.workdir / province.prefix

    def inbox(self, province: Province, organ_id: str | None = None) -> Path:
        """Where that province's agency software drops files to send (a shared volume); with
        `organ_id`, that agency's own subdirectory, the only place its references may point."""
        inbox = self.province_dir(province) / "inbox"
        return inbox if organ_id is None else inbox / organ_id

    def write_config(self, province: Province) -> Path:
        base = self.province_dir(province)
        (base / "store").mkdir(parents=True, exist_ok=True)
        self.inbox(province).mkdir(parents=True, exist_ok=True)
        for organ_id, _name in province.agencies:
            self.inbox(province, organ_id).mkdir(exist_ok=True)
        overrides = self.gateway_overrides.get(province.code, {})
        sections: dict[str, dict[str, Any]] = {
            "gateway": {"workers": 1, "shutdown_grace_seconds": 10},
            "http": {"listen": "127.0.0.1:0"},
            "log": {"format": "json", "level": "info"},
            "kafka": {"bootstrap_servers": self.bootstrap,
                      "group_id": f"{province.prefix}-gateway-{self.run_id}",
                      "session_timeout_seconds": 6, "max_poll_interval_seconds": 60,
                      **self._kafka_login(base)},
            "topics": {k: f"{v}.{self.run_id}" for k, v in topics_for(province).items()},
            "axis": {"endpoint": self.simulator.url if self.simulator else "",
                     "systemid": province.systemid,
                     "secret_file": str(base / "axis-secret"),
                     "poll_interval_seconds": 0.5, "timeout_seconds": 10,
                     "connect_timeout_seconds": 2, "read_timeout_seconds": 8},
            # The time budget governs, not the attempt count: an outage of a few minutes is
            # waited out, as in production (900 s there).
            "retry": {"max_attempts": 1000, "initial_seconds": 0.05, "max_seconds": 1,
                      "total_seconds": 300},
            "inbound": {"trust_dir": str(self.pki.trust_dir), "crl_files": [str(self.pki.crl)],
                        "signature_policy": "require-valid"},
            "store": {"root": str(base / "store"), "allowed_roots": [str(self.inbox(province))]},
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in values.items())
            lines.append("")
        for organ_id, name in province.agencies:
            files = self.pki.agencies[organ_id]
            lines += ["[[agencies]]", f"organ_id = {_toml(organ_id)}", f"name = {_toml(name)}",
                      f"key = {_toml(files.key)}", f"cert = {_toml(files.cert)}", ""]
        secret_file = base / "axis-secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secrets_[province.systemid])
        path = base / "gateway.toml"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    def _kafka_login(self, base: Path) -> dict[str, Any]:
        if not self.secured:
            return {}
        password = base / "kafka-password"
        fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.broker.scram_users["gateway"])
        return {"bootstrap_servers": self.broker.sasl_bootstrap,
                "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "gateway", "sasl_password_file": str(password)}

    def topics(self, province: Province, agency: str | None = None) -> dict[str, str]:
        """The province's topic names; the agency topics as templates, or for `agency`."""
        names = {k: f"{v}.{self.run_id}" for k, v in topics_for(province).items()}
        if agency is not None:
            names = {k: v.replace("{agency}", agency) for k, v in names.items()}
        return names

    def start_gateway(self, province: Province, *, name: str | None = None) -> GatewayProcess:
        base = self.province_dir(province)
        name = name or f"gw{len(self.gateways) + 1}"
        log = base / f"{name}.log"
        env = dict(os.environ, EDOC_GATEWAY__GATEWAY__INSTANCE_ID=f"{province.prefix}-{name}")
        popen = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(base / "gateway.toml")],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)
        gw = GatewayProcess(province, base / "gateway.toml", popen, log)
        self.gateways.append(gw)
        return gw

    def stop(self) -> None:
        for gw in self.gateways:
            gw.terminate()
        if self.simulator is not None:
            self.simulator.stop()

    # -- simulator admin --------------------------------------------------------------------

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        import aiohttp

        assert self.simulator is not None
        async with aiohttp.ClientSession() as session:
            async with session.request(method, _admin_url(self.simulator.url, path),
                                       json=body) as resp:
                text = await resp.text()
                return json.loads(text) if text.strip().startswith(("{", "[")) else text


def _run_blocking(coro: Any) -> Any:
    """Run a coroutine to its end from synchronous code, even inside a running event loop
    (the fault scenarios start labs from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _admin_url(url: str, path: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{path}"


class AgencyClient:
    """What an agency's document software does over Kafka, for one province's gateway."""

    def __init__(self, lab: Lab, province: Province, organ_id: str) -> None:
        self.lab = lab
        self.province = province
        self.organ_id = organ_id
        self.topics = lab.topics(province, organ_id)
        # Its own principal on a secured lab broker: it can use its own topics only.
        self.settings = lab.kafka_settings(organ_id)
        self.source = f"urn:qlvb:{organ_id}"

    def attachment(self, name: str, content: bytes, content_type: str = "application/pdf",
                   content_id: str | None = None) -> dict[str, Any]:
        path = self.lab.inbox(self.province, self.organ_id) / f"{uuid.uuid4().hex}-{name}"
        path.write_bytes(content)
        return {"content_id": content_id or uuid.uuid4().hex[:8], "attachment_name": name,
                "content_type": content_type, "uri": path.as_uri(),
                "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}

    def document(self, *, to: list[tuple[str, str]], number: str, notation: str, subject: str,
                 attachments: list[dict[str, Any]], business: dict[str, Any] | None = None,
                 secrecy: str = "none", when: date | None = None) -> dict[str, Any]:
        when = when or date.today()
        header = {
            "from": {"organ_id": self.organ_id, "organ_name": dict(self.province.agencies)
                     .get(self.organ_id, self.organ_id)},
            "to": [{"organ_id": o, "organ_name": n} for o, n in to],
            "document_id": f"{self.organ_id},{when:%Y/%m/%d},{number}/{notation}",
            "code": {"code_number": number, "code_notation": notation},
            "promulgation_info": {"place": self.province.name, "promulgation_date": when.isoformat()},
            "document_type": {"type": 1, "type_detail": 0, "type_name": "Công văn"},
            "subject": subject,
        }
        data: dict[str, Any] = {"message_header": header, "attachments": attachments,
                                "secrecy": secrecy}
        if business is not None:
            data["business"] = business
        return data

    def receipt(self, *, document: dict[str, Any], code: str, description: str) -> dict[str, Any]:
        mh = document["message_header"]
        return {"message_header": {
            "from": {"organ_id": self.organ_id},
            "response_for": {"organ_id": mh["from"]["organ_id"],
                             "code": f"{mh['code']['code_number']}/{mh['code']['code_notation']}",
                             "promulgation_date": mh["promulgation_info"]["promulgation_date"],
                             "document_id": mh["document_id"]},
            "staff_info": {"department": "Văn thư", "staff": "Nguyễn Thị Lan"},
            "status_code": code,
            "description": description,
        }}

    async def publish(self, event_type: str, data: Any, *, key: str, event_id: str | None = None,
                      raw_value: bytes | None = None, ce_agency: str | None = None) -> str:
        event_id = event_id or str(uuid.uuid4())
        topic = self.topics["outbound_receipts" if event_type == events.RECEIPT_SEND
                            else "outbound_documents"]
        async with EventProducer(self.settings) as producer:
            if raw_value is not None:
                event = CloudEvent(id=event_id, source=self.source, type=event_type,
                                   time=datetime.now(timezone.utc),
                                   extensions={"agency": ce_agency or self.organ_id})
                record = event.to_record(key=key.encode())
                record = KafkaRecord(record.key, raw_value, record.headers)
                await producer.send_record(topic, record)
            else:
                event = CloudEvent(id=event_id, source=self.source, type=event_type, data=data,
                                   time=datetime.now(timezone.utc), subject=key,
                                   extensions={"agency": ce_agency or self.organ_id})
                await producer.publish(topic, event, key=key)
        return event_id

    async def read(self, name: str) -> list[CloudEvent]:
        # The gateway's own topics (audit, dead letters) are not the agency's to read: the
        # operator's view reads them.
        settings = self.settings if name in AGENCY_TOPIC_KEYS else self.lab.kafka_settings()
        records = await read_topic(settings, self.topics[name], idle_timeout_s=10)
        out = []
        for record in records:
            try:
                out.append(CloudEvent.from_record(record))
            except Exception:  # noqa: BLE001 - a test reads whatever is there
                continue
        return out

    async def wait_for(self, name: str, predicate: Any, *, count: int = 1,
                       timeout: float = 60) -> list[CloudEvent]:
        """Events on a topic matching `predicate`, once at least `count` exist."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = [e for e in await self.read(name) if predicate(e)]
            except Exception:  # noqa: BLE001 - topic not created yet
                found = []
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {count} event(s) on {name}; "
                                   f"found {len(found)}")
            await asyncio.sleep(0.5)
