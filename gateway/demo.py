"""`edoc-gateway demo`: the quickstart, one command on a fresh machine.

Starts a local Kafka broker (or uses the cluster in KAFKA_BOOTSTRAP_SERVERS), a test PKI, the
axis SIMULATOR and one gateway per province (gateway.lab), then plays both agencies' software:
UBND tỉnh Thái Nguyên (000.00.00.H55) sends a document to UBND tỉnh Nghệ An (000.00.00.H41):
the PDF it signed (the digitised copy) and the DOCX it was made from (the original, Điều 3.6),
with the rules on: Thái Nguyên refuses to send a PDF it has not signed or a document without
its original, Nghệ An quarantines a document whose PDF the sender has not signed. The
timeline shows who signed the PDF as Nghệ An sees it. Nghệ An's software waits for it and answers with receipts 01 (đã
đến), 03 (tiếp nhận) and 06 (hoàn thành), which flow back to Thái Nguyên. Every step is
printed as it happens. The demo then shows where everything is and keeps running until Ctrl-C
(or exits at once with --no-wait), stopping the gateways, the simulator and the broker it
started.

Everything lives under --dir (default var/demo): kafka/ (broker state and log), pki/,
axis-sim.db and axis-sim.log, and per province h55/ and h41/ (gateway.toml, axis-secret,
gateway.log, store/, inbox/). Each run starts from an empty directory.

Exit codes: 0 done (or stopped with Ctrl-C while waiting), 1 a step failed, 2 the directory
is not one the demo may wipe, or unsupported Kafka settings; 130 interrupted before the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parent.parent
LOCALKAFKA = REPO / "deploy" / "kafka" / "localkafka.py"
MARKER = ".edoc-gateway-demo"
STATE_FILE = "demo-state.json"

SENDER = "000.00.00.H55"
RECIPIENT = "000.00.00.H41"
RECIPIENT_NAME = "UBND tỉnh Nghệ An"
NUMBER, NOTATION = "101", "UBND-VP"
SUBJECT = ("V/v phối hợp triển khai liên thông văn bản điện tử giữa UBND tỉnh "
           "Thái Nguyên và UBND tỉnh Nghệ An")
RECEIPTS = (("01", "Đã đến"), ("03", "Tiếp nhận"), ("06", "Hoàn thành"))
# The signed-attachment rules, switched on per agency as an operator would (docs/signatures.md).
ATTACHMENT_RULES = {
    "H55": {"attachments": {"refuse_unsigned": [SENDER], "original_digitised_require": [SENDER]}},
    "H41": {"attachments": {"issuer_require": [SENDER]}},
}
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
RECEIPT_PAUSE_SECONDS = 1.5
STEP_TIMEOUT_SECONDS = 90.0
READY_TIMEOUT_SECONDS = 90.0

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class DemoError(Exception):
    """A step failed: which one, why, and the log to read."""

    def __init__(self, step: str, message: str, log: Path | None = None,
                 exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.log = log
        self.exit_code = exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default="var/demo",
                        help="working directory, emptied first (default: var/demo)")
    parser.add_argument("--no-wait", action="store_true",
                        help="stop everything and exit once the timeline is complete")


# --- small pieces -------------------------------------------------------------------------------


def _show(path: Path | str) -> str:
    """A path as short as it can be while still working from the current directory."""
    p = Path(path)
    with contextlib.suppress(ValueError):
        rel = p.resolve().relative_to(Path.cwd().resolve())
        return str(rel) if str(rel) != "." else "."
    return str(p)


def _command() -> str:
    """How to type `edoc-gateway` here: plain when it is on PATH, else the path it ran from
    (`.venv/bin/edoc-gateway` after `make demo`), so the printed commands can be pasted."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "edoc-gateway":
        return "edoc-gateway"
    on_path = shutil.which("edoc-gateway")
    if on_path is not None and Path(on_path).resolve() == argv0.resolve():
        return "edoc-gateway"
    shown = _show(argv0)
    return shown if "/" in shown else f"./{shown}"


def _uri_path(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


def _tail(path: Path | None, lines: int = 12) -> str:
    if path is None or not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line[:300]}" for line in text)


def _ascii(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def sample_pdf(lines: list[str]) -> bytes:
    """A small valid one-page PDF showing `lines` (Helvetica, so diacritics are dropped)."""
    def escape(s: str) -> str:
        return _ascii(s).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 13 Tf", "16 TL", "72 770 Td"]
    for i, line in enumerate(lines):
        ops.append(f"({escape(line)}) Tj" if i == 0 else f"T* ({escape(line)}) Tj")
    ops.append("ET")
    stream = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
         b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref))
    return bytes(out)


def sample_docx(lines: list[str]) -> bytes:
    """A minimal valid DOCX (WordprocessingML in a ZIP) with one paragraph per line."""
    import io
    import zipfile
    from xml.sax.saxutils import escape

    rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    paragraphs = "".join(f"<w:p><w:r><w:t xml:space=\"preserve\">{escape(line)}</w:t></w:r></w:p>"
                         for line in lines)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
                   f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
                   f'<Override PartName="/word/document.xml" ContentType="{DOCX_TYPE}.main+xml"/>'
                   '</Types>')
        z.writestr("_rels/.rels",
                   f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships '
                   f'xmlns="{rels}"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                   'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
                   '</Relationships>')
        z.writestr("word/document.xml",
                   '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w='
                   '"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
                   f'{paragraphs}</w:body></w:document>')
    return out.getvalue()


def _load_localkafka() -> Any:
    from gateway.lab import load_localkafka

    try:
        return load_localkafka()
    except FileNotFoundError:
        raise DemoError("kafka", f"{LOCALKAFKA} is not here (installed without the source "
                        "tree?); set KAFKA_BOOTSTRAP_SERVERS to a broker to use instead",
                        exit_code=EXIT_USAGE) from None


def _log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a gateway (other lines, e.g. a traceback, are skipped)."""
    out = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stop_pid(pid: int, marker: str, timeout: float = 30.0) -> bool:
    """SIGTERM (then SIGKILL) `pid` if it is alive and its command line mentions `marker`."""
    if not marker or marker.encode() not in _cmdline(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while marker.encode() in _cmdline(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if marker.encode() in _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


# --- the timeline -------------------------------------------------------------------------------


class Timeline:
    """Lines of `time  +elapsed  who  step  detail`, printed as things happen."""

    WHO = 12
    STEP = 19

    def __init__(self, out: Any = None) -> None:
        self.out = out or sys.stdout
        self.started = time.monotonic()

    def line(self, who: str, step: str, detail: str = "", *more: str) -> None:
        now = datetime.now()
        elapsed = time.monotonic() - self.started
        head = f"{now:%H:%M:%S}.{now.microsecond // 1000:03d} {elapsed:+7.1f}s  "
        print(f"{head}{who:<{self.WHO}} {step:<{self.STEP}} {detail}".rstrip(), file=self.out,
              flush=True)
        pad = " " * (len(head) + self.WHO + self.STEP + 2)
        for extra in more:
            print(f"{pad}{extra}", file=self.out, flush=True)

    def text(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


@dataclass
class Seen:
    province: Any
    kind: str          # delivery, inbound_documents, inbound_receipts, deadletter
    event: Any


@dataclass
class Watcher:
    """Reads what the gateways publish for the agencies and tells the demo (and the reader)."""

    settings: Any
    topics: dict[str, tuple[Any, str]]          # topic -> (province, kind)
    describe: Callable[[Seen], None]
    health: Callable[[], None] = lambda: None   # raises DemoError when a gateway died
    seen: list[Seen] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    consumer: Any = None
    error: BaseException | None = None

    async def start(self) -> None:
        from connectors.kafka import EventConsumer

        self.consumer = EventConsumer(self.settings, sorted(self.topics),
                                      group_id=f"edoc-demo-watch-{uuid.uuid4().hex[:8]}",
                                      auto_offset_reset="earliest")
        await self.consumer.start()

    async def run(self) -> None:
        from connectors.cloudevents import CloudEvent

        try:
            while True:
                for record in await self.consumer.poll(timeout_ms=200):
                    try:
                        event = CloudEvent.from_record(record)
                    except Exception:  # noqa: BLE001 - not an event: nothing for the timeline
                        continue
                    province, kind = self.topics[record.topic]
                    item = Seen(province, kind, event)
                    self.seen.append(item)
                    self.describe(item)
                    self.changed.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - waiters report it
            self.error = exc
            self.changed.set()

    async def stop(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()

    async def wait(self, predicate: Callable[[Seen], bool], *, count: int = 1, step: str,
                   log: Path | None, timeout: float = STEP_TIMEOUT_SECONDS,
                   failed: Callable[[Seen], str | None] = lambda s: None) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while True:
            self.health()
            for item in self.seen:
                problem = failed(item)
                if problem:
                    raise DemoError(step, problem, log)
            found = [item for item in self.seen if predicate(item)]
            if len(found) >= count:
                return found
            if self.error is not None:
                raise DemoError(step, f"reading Kafka failed: {self.error!r}", log)
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(step, f"nothing after {timeout:.0f} s (found {len(found)} of "
                                f"{count})", log)
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


# --- the demo -----------------------------------------------------------------------------------


class Demo:
    def __init__(self, directory: Path, *, wait: bool = True, out: Any = None) -> None:
        self.dir = Path(os.path.abspath(directory))
        self.wait_for_ctrl_c = wait
        self.tl = Timeline(out)
        self.kafka: Any = None            # the LocalKafka we started, if any
        self.bootstrap = ""
        self.lab: Any = None
        self.gateways: dict[str, Any] = {}   # province code -> GatewayProcess
        self.http: dict[str, str] = {}
        self.consoles: dict[str, str] = {}
        self.labels: dict[str, str] = {}     # event id -> what it is, for the timeline
        self.sent: dict[str, Any] = {}
        self.archives: dict[str, Path] = {}
        self.stop_requested: asyncio.Event | None = None

    # -- the whole run ----------------------------------------------------------------------

    def run(self) -> int:
        step = "setup"
        try:
            step = "prepare the directory"
            self.prepare_dir()
            step = "start Kafka"
            self.start_kafka()
            step = "start the lab"
            self.start_lab()
            return asyncio.run(self.live())
        except DemoError as exc:
            self.report_failure(exc)
            return exc.exit_code
        except KeyboardInterrupt:
            self.tl.text(f"\ninterrupted during: {step}")
            return EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - every failure gets the same clear report
            self.report_failure(DemoError(step, f"{type(exc).__name__}: {exc}"))
            return EXIT_FAILED
        finally:
            self.shutdown()

    def report_failure(self, exc: DemoError) -> None:
        self.tl.text("")
        self.tl.text(f"demo failed at step '{exc.step}': {exc.message}")
        if exc.log is not None:
            self.tl.text(f"  log: {_show(exc.log)} (last lines below)")
            tail = _tail(exc.log)
            if tail:
                self.tl.text(tail)
        self.tl.text(f"  everything the demo wrote is under {_show(self.dir)}")

    # -- setup ------------------------------------------------------------------------------

    def prepare_dir(self) -> None:
        """Stop what a previous run left running, then empty the directory."""
        d = self.dir
        if d.exists() and not d.is_dir():
            raise DemoError("prepare the directory", f"{d} is not a directory",
                            exit_code=EXIT_USAGE)
        if d.is_dir() and any(d.iterdir()) and not (d / MARKER).is_file():
            raise DemoError("prepare the directory", f"{d} is not empty and was not made by "
                            "the demo; give an empty or new --dir", exit_code=EXIT_USAGE)
        if d.is_dir():
            self.stop_recorded()
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        d.mkdir(parents=True, exist_ok=True)
        (d / MARKER).write_text("This directory belongs to `edoc-gateway demo`; each run "
                                "empties it.\n", encoding="utf-8")
        self.tl.line("setup", "directory", f"{_show(d)} (emptied for a fresh run)")

    def stop_recorded(self) -> None:
        state_path = self.dir / STATE_FILE
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(state_path.read_text(encoding="utf-8"))
            for entry in state.get("processes", ()):
                if _stop_pid(int(entry["pid"]), str(entry.get("marker", ""))):
                    self.tl.line("setup", "previous run", f"stopped {entry.get('what')} "
                                 f"(pid {entry['pid']})")
        kafka_dir = self.dir / "kafka"
        if (kafka_dir / "kafka.pid").is_file() and LOCALKAFKA.is_file():
            broker = _load_localkafka().running(kafka_dir)
            if broker is not None:
                broker.stop()
                self.tl.line("setup", "previous run", f"stopped its Kafka broker "
                             f"(pid {broker.pid})")

    def record(self) -> None:
        # In the order a later run stops them: gateways before the simulator.
        processes = [{"what": f"gateway {code}", "pid": gw.popen.pid, "marker": str(gw.config)}
                     for code, gw in self.gateways.items()]
        if self.lab is not None and self.lab.simulator is not None:
            processes.append({"what": "axis simulator", "pid": self.lab.simulator.pid,
                              "marker": str(self.dir / "axis-sim.db")})
        state = {"processes": processes, "bootstrap": self.bootstrap,
                 "kafka_state_dir": str(self.dir / "kafka") if self.kafka else None}
        (self.dir / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")

    def start_kafka(self) -> None:
        env_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if env_bootstrap:
            protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper()
            if protocol not in ("", "PLAINTEXT"):
                raise DemoError("start Kafka", f"the demo talks PLAINTEXT to Kafka; "
                                f"KAFKA_SECURITY_PROTOCOL is {protocol}. Unset "
                                "KAFKA_BOOTSTRAP_SERVERS to use a local broker",
                                exit_code=EXIT_USAGE)
            self.bootstrap = env_bootstrap
            self.probe_kafka()
            self.tl.line("setup", "kafka", f"using the cluster at {env_bootstrap} "
                         "(KAFKA_BOOTSTRAP_SERVERS); topics get a per-run suffix")
            return
        localkafka = _load_localkafka()
        self.tl.line("setup", "kafka", "starting a local broker (the first run fetches Apache "
                     "Kafka from Maven Central into ~/.m2)")
        began = time.monotonic()
        state = self.dir / "kafka"
        try:
            localkafka.fetch()
            # Its own session: Ctrl-C reaches the demo, which stops the gateways before it.
            # SCRAM users and ACLs on, as in production: each agency's software logs in as
            # itself and can use its own topics only (a state directory from before is
            # formatted again).
            from gateway.lab import LAB_SUPER_USERS, lab_scram_users

            users, supers = lab_scram_users(), LAB_SUPER_USERS
            try:
                self.kafka = localkafka.start_local_kafka(state, detach=True, scram_users=users,
                                                          super_users=supers)
            except localkafka.LocalKafkaError:
                self.kafka = localkafka.start_local_kafka(state, detach=True, fresh=True,
                                                          scram_users=users,
                                                          super_users=supers)
        except localkafka.LocalKafkaError as exc:
            raise DemoError("start Kafka", str(exc), state / "kafka.log") from None
        self.bootstrap = self.kafka.bootstrap
        self.record()
        self.tl.line("setup", "kafka", f"broker ready at {self.bootstrap} "
                     f"({time.monotonic() - began:.1f} s; log {_show(state / 'kafka.log')})")
        if self.kafka.sasl_bootstrap:
            self.tl.line("setup", "kafka", f"SCRAM listener {self.kafka.sasl_bootstrap}: the "
                         "gateways log in as 'gateway', each agency as its OrganId; ACLs let "
                         "an agency use only its own topics")

    def probe_kafka(self) -> None:
        """Fail at once, not after the gateways' start timeout, when no broker answers."""
        if not LOCALKAFKA.is_file():
            return
        localkafka = _load_localkafka()
        errors = []
        for address in self.bootstrap.split(","):
            try:
                if localkafka.broker_count(address.strip(), timeout=5.0) >= 1:
                    return
                errors.append(f"{address}: no live broker")
            except Exception as exc:  # noqa: BLE001 - refused, reset, not Kafka at all
                errors.append(f"{address}: {exc}")
        raise DemoError("reach Kafka", f"no broker answers at {self.bootstrap} "
                        f"(KAFKA_BOOTSTRAP_SERVERS): {'; '.join(errors)}")

    def start_lab(self) -> None:
        from gateway.lab import DEMO_PROVINCES, Lab

        self.lab = Lab(self.dir, self.bootstrap, gateway_overrides=ATTACHMENT_RULES,
                       broker=self.kafka)
        try:
            self.lab.start()
        except RuntimeError as exc:
            raise DemoError("start the axis simulator", str(exc),
                            self.dir / "axis-sim.log") from None
        self.record()
        agencies = sum(len(p.agencies) for p in DEMO_PROVINCES)
        self.tl.line("setup", "test PKI", f"root CA, issuing CA and {agencies} agency "
                     f"certificates in {_show(self.lab.pki.directory)} (not secret: trials "
                     "only)")
        sim = self.lab.simulator
        self.tl.line("setup", "axis simulator", f"{sim.url} (admin {sim.admin_url}/; log "
                     f"{_show(self.dir / 'axis-sim.log')})")
        for province in DEMO_PROVINCES:
            self.gateways[province.code] = self.lab.start_gateway(province, name="gateway")
        self.record()
        self.wait_ready()

    def wait_ready(self) -> None:
        pending = dict(self.gateways)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while pending:
            for code, gw in list(pending.items()):
                events = _log_events(gw.log)
                for entry in events:
                    if entry.get("event") == "gateway.starting" and entry.get("http"):
                        self.http[code] = str(entry["http"]).rstrip("/")
                        if entry.get("console"):
                            self.consoles[code] = str(entry["console"])
                if any(e.get("event") == "gateway.ready" for e in events):
                    del pending[code]
                    p = gw.province
                    self.tl.line("setup", f"gateway {p.code}",
                                 f"{p.name}: ready for {', '.join(a for a, _ in p.agencies)}; "
                                 f"metrics {self.http.get(code, '?')}/metrics",
                                 f"config {_show(gw.config)}, log {_show(gw.log)}")
                elif not gw.alive():
                    raise DemoError(f"start the {gw.province.name} gateway", f"it exited with "
                                    f"code {gw.popen.returncode}", gw.log)
            if pending and time.monotonic() > deadline:
                code, gw = next(iter(pending.items()))
                raise DemoError(f"start the {gw.province.name} gateway", f"not ready after "
                                f"{READY_TIMEOUT_SECONDS:.0f} s", gw.log)
            time.sleep(0.2)

    # -- the exchange -----------------------------------------------------------------------

    async def live(self) -> int:
        self.stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_requested.set)
        watcher = self.make_watcher()
        await watcher.start()
        reader = asyncio.create_task(watcher.run())
        try:
            exchange = asyncio.create_task(self.exchange(watcher))
            stop = asyncio.create_task(self.stop_requested.wait())
            await asyncio.wait([exchange, stop], return_when=asyncio.FIRST_COMPLETED)
            if not exchange.done():
                exchange.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exchange
                self.tl.text("\ninterrupted before the timeline was complete")
                return EXIT_INTERRUPTED
            stop.cancel()
            exchange.result()  # a DemoError goes up to run()
            await self.audit_summary()
            await self.trace_summary()
            self.where()
            if not self.wait_for_ctrl_c:
                return EXIT_OK
            self.tl.text("\nRunning. Press Ctrl-C to stop the gateways, the simulator and the "
                         "broker.")
            return await self.idle()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await watcher.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def idle(self) -> int:
        assert self.stop_requested is not None
        while not self.stop_requested.is_set():
            self.health()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), 1.0)
        self.tl.text("")
        return EXIT_OK

    def make_watcher(self) -> Watcher:
        from connectors.kafka import KafkaSettings
        from gateway.lab import DEMO_PROVINCES

        topics: dict[str, tuple[Any, str]] = {}
        for province in DEMO_PROVINCES:
            for organ_id, _ in province.agencies:
                names = self.lab.topics(province, organ_id)
                for kind in ("delivery", "inbound_documents", "inbound_receipts", "deadletter"):
                    topics[names[kind]] = (province, kind)
        return Watcher(KafkaSettings(bootstrap_servers=self.bootstrap), topics, self.describe,
                       self.health)

    def health(self) -> None:
        for gw in self.gateways.values():
            if not gw.alive():
                raise DemoError(f"keep the {gw.province.name} gateway running",
                                f"it exited with code {gw.popen.returncode}", gw.log)

    def describe(self, item: Seen) -> None:
        """One timeline entry for something a gateway published."""
        from gateway import events

        e, who, data = item.event, item.province.name, item.event.data or {}
        if item.kind == "delivery":
            what = self.labels.get(str(data.get("event_id")), data.get("flow", "?"))
            if e.type == events.DELIVERY_ACCEPTED:
                attempts = data.get("attempts") or 1
                self.tl.line(who, "delivery.accepted",
                             f"{what}: signed and sent, axis DocId {data.get('axis_doc_id')}"
                             + (f" ({attempts} attempts)" if attempts != 1 else ""),
                             f"package sha256 {data.get('package_sha256')}")
                if data.get("package_sha256") and item.province.code in self.gateways:
                    self.archives.setdefault(f"sent {what}", self.archive_path(
                        item.province, str(data["package_sha256"])))
            else:
                self.tl.line(who, "delivery.failed", f"{what}: {data.get('reason')}: "
                             f"{data.get('message')}")
        elif item.kind == "inbound_documents":
            header = (data.get("package") or {}).get("message_header") or {}
            sig = data.get("signature") or {}
            signer = (sig.get("signer") or {}).get("subject", "no signer")
            more = [f"subject: {header.get('subject')}",
                    f"signature {sig.get('status')}"
                    + (f" ({sig.get('reason')}: {sig.get('message')})" if sig.get("reason")
                       else "") + f"; signer {signer}"]
            more += [self.attachment_check(a) for a in data.get("attachments") or ()]
            more += pdf_signature_lines(data.get("attachment_signatures"))
            if data.get("package_uri"):
                self.archives.setdefault("received document", _uri_path(data["package_uri"]))
            self.tl.line(who, "document.arrived",
                         f"axis DocId {data.get('axis_doc_id')} for {data.get('recipient')} "
                         f"from {(header.get('from') or {}).get('organ_id')}: "
                         f"{(header.get('code') or {}).get('code_number')}/"
                         f"{(header.get('code') or {}).get('code_notation')}", *more)
        elif item.kind == "inbound_receipts":
            header = data.get("message_header") or {}
            sig = data.get("signature") or {}
            self.tl.line(who, f"receipt.arrived {header.get('status_code')}",
                         f"{header.get('description')} — from "
                         f"{(header.get('from') or {}).get('organ_id')}, axis DocId "
                         f"{data.get('axis_doc_id')}, signature {sig.get('status')}")
        elif item.kind == "deadletter":
            self.tl.line(who, "dead letter", f"{data.get('reason')}: {data.get('message')}")

    def attachment_check(self, att: dict[str, Any]) -> str:
        name = att.get("attachment_name")
        if att.get("error"):
            return f"attachment {name}: {att['error'].get('reason')}: {att['error'].get('message')}"
        sent = self.sent.get(str(name))
        digest = str(att.get("sha256"))
        if sent is None:
            verdict = "not one the demo sent"
        elif digest == sent["sha256"]:
            try:
                stored = hashlib.sha256(_uri_path(str(att["uri"])).read_bytes()).hexdigest()
            except OSError as exc:
                stored = f"unreadable ({exc.strerror})"
            verdict = ("sha256 matches the file sent; the stored copy re-hashes the same"
                       if stored == digest else f"sha256 matches the file sent, but the stored "
                       f"copy hashes to {stored}")
        else:
            verdict = f"sha256 {digest} differs from the file sent ({sent['sha256']})"
        return (f"attachment {name} ({att.get('size')} bytes, {att.get('detected_type')}): "
                f"{verdict}")

    def archive_path(self, province: Any, sha256: str) -> Path:
        from connectors.store import FileStore

        return FileStore(self.lab.province_dir(province) / "store").path_for("archive", sha256)

    async def exchange(self, watcher: Watcher) -> None:
        from gateway import events
        from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient

        thai_nguyen = AgencyClient(self.lab, THAI_NGUYEN, SENDER)
        nghe_an = AgencyClient(self.lab, NGHE_AN, RECIPIENT)
        tn_log, na_log = self.gateways["H55"].log, self.gateways["H41"].log

        today = date.today()
        name = f"cong-van-{NUMBER}-{NOTATION}.pdf"
        unsigned_pdf = sample_pdf([
            "UY BAN NHAN DAN TINH THAI NGUYEN", "",
            f"So: {NUMBER}/{NOTATION}        Thai Nguyen, ngay {today:%d/%m/%Y}", "",
            _ascii(SUBJECT[:60]), _ascii(SUBJECT[60:]), "",
            "Kinh gui: UBND tinh Nghe An", "",
            "Van ban thu nghiem cua edoc-gateway demo (truc lien thong mo phong).",
        ])
        # The agency signs its PDF before sending it, as its document software does.
        from edxml.pdfmake import sign_pdf

        cred = self.lab.pki.material.agencies[SENDER]
        pdf = await asyncio.to_thread(sign_pdf, unsigned_pdf, cred.key, cred.certificate, cred.chain,
                                      reason=f"Ban hanh {NUMBER}/{NOTATION}")
        assert pdf is not None
        docx_name = f"cong-van-{NUMBER}-{NOTATION}.docx"
        docx = sample_docx(["ỦY BAN NHÂN DÂN TỈNH THÁI NGUYÊN", f"Số: {NUMBER}/{NOTATION}", SUBJECT])
        attachment = {**thai_nguyen.attachment(name, pdf), "role": "digitised",
                      "description": "Bản ký số"}
        original = {**thai_nguyen.attachment(docx_name, docx, DOCX_TYPE), "role": "original",
                    "description": "Tệp gốc"}
        self.sent[name] = attachment
        self.sent[docx_name] = original
        doc = thai_nguyen.document(to=[(RECIPIENT, RECIPIENT_NAME)], number=NUMBER,
                                   notation=NOTATION, subject=SUBJECT,
                                   attachments=[attachment, original], when=today)
        key = doc["message_header"]["document_id"]
        doc_id = str(uuid.uuid4())
        self.labels[doc_id] = f"document {NUMBER}/{NOTATION}"

        def ours_failed(item: Seen) -> str | None:
            data = item.event.data or {}
            if item.kind == "deadletter":
                return f"a dead letter in {item.province.name}: {data.get('reason')}: " \
                       f"{data.get('message')}"
            if item.event.type == events.DELIVERY_FAILED and \
                    str(data.get("event_id")) in self.labels:
                return (f"{self.labels[str(data['event_id'])]} was refused: "
                        f"{data.get('reason')}: {data.get('message')}")
            return None

        self.tl.text("")
        await thai_nguyen.publish(events.DOCUMENT_SEND, doc, key=key, event_id=doc_id)
        self.tl.line(THAI_NGUYEN.name, "document.send",
                     f"{NUMBER}/{NOTATION} to {RECIPIENT} {RECIPIENT_NAME}",
                     f"DocumentId {key}",
                     f"attachment {name} (digitised, signed by {SENDER}): {len(pdf)} bytes, "
                     f"sha256 {attachment['sha256']}",
                     f"attachment {docx_name} (original): {len(docx)} bytes, "
                     f"sha256 {original['sha256']}")
        await watcher.wait(lambda s: s.kind == "delivery" and
                           (s.event.data or {}).get("event_id") == doc_id,
                           step="send the document (Thái Nguyên gateway → axis)", log=tn_log,
                           failed=ours_failed)
        (arrived,) = await watcher.wait(
            lambda s: s.kind == "inbound_documents" and s.province is NGHE_AN and
            ((s.event.data or {}).get("package") or {}).get("message_header", {})
            .get("document_id") == key,
            step="receive the document (axis → Nghệ An gateway)", log=na_log,
            failed=ours_failed)
        data = arrived.event.data
        if data["signature"]["status"] != "valid":
            raise DemoError("receive the document", f"signature {data['signature']}", na_log)
        for att in data["attachments"]:
            if att.get("sha256") != self.sent.get(str(att.get("attachment_name")), {}).get("sha256"):
                raise DemoError("receive the document", f"attachment {att} does not match "
                                "the file sent", na_log)
        signed = (data.get("attachment_signatures") or {}).get("attachments") or [{}]
        if not any(s.get("verdict") == "valid" and (s.get("signer") or {}).get("organ_id") == SENDER
                   for s in signed[0].get("signatures") or ()):
            raise DemoError("receive the document", f"the PDF's signature: {signed[0]}", na_log)

        receipt_ids = []
        for code, text in RECEIPTS:
            await asyncio.sleep(RECEIPT_PAUSE_SECONDS)
            receipt_id = str(uuid.uuid4())
            self.labels[receipt_id] = f"receipt {code}"
            receipt_ids.append(receipt_id)
            await nghe_an.publish(events.RECEIPT_SEND,
                                  nghe_an.receipt(document=doc, code=code, description=text),
                                  key=key, event_id=receipt_id)
            self.tl.line(NGHE_AN.name, f"receipt.send {code}", f"{text} (for {key})")
        await watcher.wait(lambda s: s.kind == "delivery" and s.province is NGHE_AN and
                           (s.event.data or {}).get("event_id") in receipt_ids,
                           count=len(RECEIPTS),
                           step="send the receipts (Nghệ An gateway → axis)", log=na_log,
                           failed=ours_failed)
        await watcher.wait(
            lambda s: s.kind == "inbound_receipts" and s.province is THAI_NGUYEN and
            ((s.event.data or {}).get("message_header") or {}).get("response_for", {})
            .get("document_id") == key,
            count=len(RECEIPTS), step="receive the receipts (axis → Thái Nguyên gateway)",
            log=tn_log, failed=ours_failed)
        self.tl.line("done", "timeline", f"document {NUMBER}/{NOTATION} delivered; receipts "
                     f"{' → '.join(c for c, _ in RECEIPTS)} back at {THAI_NGUYEN.name}")

    async def audit_summary(self) -> None:
        from connectors.kafka import KafkaSettings
        from gateway.audit import verify_topic
        from gateway.lab import DEMO_PROVINCES

        settings = KafkaSettings(bootstrap_servers=self.bootstrap)
        for province in DEMO_PROVINCES:
            try:
                report = await verify_topic(settings, self.lab.topics(province)["audit"],
                                            idle_timeout_s=10)
            except Exception as exc:  # noqa: BLE001 - a summary line, not a step
                self.tl.line(province.name, "audit", f"could not read the audit topic: {exc}")
                continue
            state = "every hash chain intact" if report.ok else \
                f"BROKEN: {report.broken.as_dict() if report.broken else ''}"
            self.tl.line(province.name, "audit", f"{report.records} records in "
                         f"{_plural(report.chains, 'chain')}: {state}")

    def trace_paths(self) -> tuple[list[Path], Path]:
        from gateway.lab import DEMO_PROVINCES

        return ([self.gateways[p.code].config for p in DEMO_PROVINCES],
                self.dir / "trace-index.sqlite")

    async def trace_summary(self) -> None:
        """What `edoc-gateway trace` answers about the demo document, across both provinces."""
        from connectors.kafka import KafkaSettings
        from gateway.config import load_config
        from gateway.ops.index import TopicSource, TraceIndex
        from gateway.ops.trace import trace

        configs, index_path = self.trace_paths()
        index = TraceIndex(index_path)
        try:
            sources = [TopicSource.from_config(load_config(path, os.environ))
                       for path in configs]
            await index.update(KafkaSettings(bootstrap_servers=self.bootstrap), sources,
                               idle_timeout_s=10)
            result = trace(index, f"{NUMBER}/{NOTATION}")
        except Exception as exc:  # noqa: BLE001 - a summary, not a step
            self.tl.line("trace", f"{NUMBER}/{NOTATION}", f"could not trace: {exc}")
            return
        finally:
            index.close()
        self.tl.text("")
        self.tl.text(f"$ edoc-gateway trace {NUMBER}/{NOTATION} --config … --config …")
        self.tl.text(result.text())

    def where(self) -> None:
        from gateway.lab import DEMO_PROVINCES

        t = self.tl.text
        pki = self.lab.pki
        t("")
        t(f"Everything is under {_show(self.dir)}:")
        if self.kafka is not None:
            t(f"  Kafka broker     {self.bootstrap}   log "
              f"{_show(self.dir / 'kafka' / 'kafka.log')}")
        else:
            t(f"  Kafka            {self.bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
        sim = self.lab.simulator
        t(f"  axis simulator   {sim.url}   log {_show(self.dir / 'axis-sim.log')}")
        t(f"                   admin: {sim.admin_url}/ (mailboxes, counters, requests, faults)")
        t(f"  test PKI         {_show(pki.directory)}   trust store {_show(pki.trust_dir)}, "
          f"CRL {_show(pki.crl)}")
        for province in DEMO_PROVINCES:
            gw = self.gateways[province.code]
            base = self.lab.province_dir(province)
            t(f"  {province.name:<16} config {_show(gw.config)}   log {_show(gw.log)}")
            t(f"  {'':<16} store  {_show(base / 'store')}   metrics "
              f"{self.http.get(province.code, '?')}/metrics")
            t(f"  {'':<16} topics {self.lab.topics(province)['outbound_documents']} … "
              "(one set per agency)")
            if province.code in self.consoles:
                t(f"  {'':<16} status console {self.consoles[province.code]}  (open in a "
                  "browser: search, receipts awaited, dead letters, certificates)")
        t("")
        t("Look closer (while the demo runs):")
        cmd = _command()
        received = self.archives.get("received document")
        if received is not None:
            t(f"  {cmd} inspect {_show(received)} --trust {_show(pki.trust_dir)}")
        for label, path in self.archives.items():
            if label.startswith("sent document"):
                t(f"  {cmd} verify {_show(path)} --trust {_show(pki.trust_dir)} "
                  f"--crl {_show(pki.crl)}")
        for province in DEMO_PROVINCES:
            t(f"  {cmd} audit verify --config {_show(self.gateways[province.code].config)}")
        configs, index_path = self.trace_paths()
        t(f"  {cmd} trace {NUMBER}/{NOTATION} "
          + " ".join(f"--config {_show(c)}" for c in configs) + f" --index {_show(index_path)}")
        t(f"  {cmd} run --config {_show(self.gateways['H41'].config)} --check")
        t(f"  curl -s {self.http.get('H41', '?')}/readyz")
        t(f"  curl -s {self.http.get('H41', '?')}/metrics | grep '^edoc_'")
        t(f"  curl -s {sim.admin_url}/mailboxes")

    # -- stopping ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Gateways first (they finish and commit while Kafka is up), then the simulator, then
        the broker if the demo started it."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stopped = []
            for gw in self.gateways.values():
                if gw.alive():
                    gw.popen.send_signal(signal.SIGTERM)
            for code, gw in self.gateways.items():
                # Each already has its SIGTERM: a second one, arriving after the gateway has
                # stopped and restored the default handler, would kill it mid-exit.
                try:
                    code_ = gw.popen.wait(30)
                except subprocess.TimeoutExpired:
                    code_ = gw.terminate(timeout=5)
                stopped.append(f"gateway {code} (exit {code_})")
            if self.lab is not None and self.lab.simulator is not None:
                self.lab.simulator.stop()
                self.lab.simulator = None
                stopped.append("axis simulator")
            if self.kafka is not None:
                self.kafka.stop()
                self.kafka = None
                stopped.append("Kafka broker")
            with contextlib.suppress(OSError):
                (self.dir / STATE_FILE).unlink()
            if stopped:
                self.tl.text(f"stopped: {', '.join(stopped)}. Logs, configuration, store and "
                             f"PKI stay in {_show(self.dir)}.")
        finally:
            signal.signal(signal.SIGINT, previous)


def pdf_signature_lines(summary: dict[str, Any] | None) -> list[str]:
    """Timeline lines: who signed each PDF attachment, as the receiving gateway judged it."""
    lines = []
    for att in (summary or {}).get("attachments") or ():
        role = f" ({att['role']})" if att.get("role") else ""
        if "status" not in att:
            continue
        if att["status"] != "signed":
            lines.append(f"pdf {att['attachment_name']}{role}: {att['status']}"
                         + (f" ({att.get('reason')})" if att.get("reason") else ""))
            continue
        for s in att.get("signatures") or ():
            signer = s.get("signer") or {}
            lines.append(f"pdf {att['attachment_name']}{role}: signed by "
                         f"{signer.get('common_name') or signer.get('subject')} "
                         f"[{signer.get('organ_id') or 'no UID'}] at {s.get('signing_time')}: "
                         f"{s['verdict']}, covers {str(s.get('coverage')).replace('_', ' ')}")
    issuer = (summary or {}).get("issuer")
    if issuer:
        lines.append(f"issuer rule ({issuer['policy']}): "
                     + ("the sender signed its PDF" if issuer["ok"] else issuer.get("message", "")))
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def main(args: argparse.Namespace) -> int:
    return Demo(Path(args.dir), wait=not getattr(args, "no_wait", False)).run()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m gateway.demo",
                                      description=__doc__.split("\n")[0])
    add_arguments(_parser)
    from gateway.logs import configure_logging

    configure_logging("auto", "warning")
    sys.exit(main(_parser.parse_args()))
