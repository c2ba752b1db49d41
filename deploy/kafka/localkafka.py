#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker (KRaft, broker+controller) on loopback.

The broker is Apache Kafka itself, taken from Maven Central through Maven (`pom.xml` beside
this file): the first run resolves the jars into the local Maven repository (~/.m2); later
runs resolve offline (`mvn -o`) and need no network. Used by the test suite, by CI and by the
quickstart; production runs against a real cluster instead (docs/kafka.md).

    python deploy/kafka/localkafka.py fetch                 # resolve the jars once
    python deploy/kafka/localkafka.py start --state-dir D   # background; prints bootstrap
    python deploy/kafka/localkafka.py stop --state-dir D
    python deploy/kafka/localkafka.py run [--port 9092]     # foreground until Ctrl-C
    python deploy/kafka/localkafka.py start --scram-user admin --scram-user gateway \
        --scram-user 000.00.00.H55 ...                      # with authentication and ACLs on

From Python (import this file by path; it needs only the standard library):

    kafka = start_local_kafka(state_dir)      # -> LocalKafka(bootstrap="127.0.0.1:PORT", ...)
    ...
    kafka.stop()

State directory layout: server.properties, log4j2.properties, data/ (the log dirs),
kafka.log (broker log), kafka.out (JVM stdout/stderr), kafka.pid, bootstrap; with SCRAM users
also sasl-bootstrap and scram-users.json (the users' generated passwords, mode 0600).

**Authentication and authorization.** `scram_users` (names; passwords are generated) turns on
a second listener, SASL_PLAINTEXT with SCRAM-SHA-256/512, whose users are created when the
storage is formatted (`kafka-storage format --add-scram`, KIP-900: KRaft has no other place to
hold them before the broker runs), and Kafka's StandardAuthorizer with
`allow.everyone.if.no.acl.found=false`: on that listener a user may do only what an ACL allows,
except the `super_users`. The PLAINTEXT listener stays, on loopback, as the lab's own door for
the test harness and admin tools: its anonymous principal (and the controller's) is a super user.
A production cluster has no such listener (docs/security.md).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_KAFKA_VERSION = "4.3.1"
DEFAULT_HEAP = "512m"
HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"

_BROKER_CONFIG = """\
# Single-node KRaft broker+controller for development and tests (written by localkafka.py).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
# Topics are created explicitly by the gateway and the tests, as on a managed cluster.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A new consumer group starts at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
log.retention.hours=168
"""

_LOG4J2_CONFIG = """\
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
"""


_SECURITY_CONFIG = """\
# Authentication (SASL/SCRAM on its own listener) and authorization (ACLs).
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users={super_users}
"""

SCRAM_MECHANISM = "SCRAM-SHA-512"


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


# ---------------------------------------------------------------------------------------------
# Fetching the jars


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edoc-gateway"


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH; install Maven 3 and a JDK 17+")
    return mvn


def fetch(kafka_version: str = DEFAULT_KAFKA_VERSION, *, quiet: bool = True) -> list[Path]:
    """Resolve Kafka's jars into ~/.m2 (network only the first time) and return the classpath.

    The resolved classpath is remembered in ~/.cache/edoc-gateway so that a start needs no
    Maven run at all while every jar is still in the local repository.
    """
    pom_digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cached = _cache_dir() / f"kafka-{kafka_version}-{pom_digest}.classpath"
    if cached.is_file():
        jars = [Path(p) for p in cached.read_text().split(os.pathsep) if p]
        if jars and all(j.is_file() for j in jars):
            return jars
    cached.parent.mkdir(parents=True, exist_ok=True)
    out = cached.with_suffix(f".tmp{os.getpid()}")
    base = [_mvn(), "-B", "-f", str(POM), f"-Dkafka.version={kafka_version}",
            "dependency:build-classpath", f"-Dmdep.outputFile={out}",
            "-Dmdep.includeScope=runtime"]
    if quiet:
        base.insert(2, "-q")
    # Offline first: a populated ~/.m2 must be enough, so CI and laptops work without network.
    offline = subprocess.run([base[0], "-o", *base[1:]], capture_output=True, text=True)
    if offline.returncode != 0:
        online = subprocess.run(base, capture_output=True, text=True)
        if online.returncode != 0:
            raise LocalKafkaError(
                f"mvn could not resolve org.apache.kafka:kafka_2.13:{kafka_version}:\n"
                + (online.stdout + online.stderr)[-3000:])
    os.replace(out, cached)
    jars = [Path(p) for p in cached.read_text().split(os.pathsep) if p]
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise LocalKafkaError(f"resolved classpath has no kafka_2.13 jar: {cached}")
    return jars


# ---------------------------------------------------------------------------------------------
# Readiness: a Metadata request over a plain socket (no client library needed)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999   # Linux's default; elsewhere only a guess


def _free_port(host: str) -> int:
    """A free port below the ephemeral range. A port the kernel hands out (bind to 0) is one
    it also gives to outgoing connections: while a broker is stopped, any client socket may take
    it, and the broker cannot start again on the ports its formatted state keeps."""
    low, _high = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), max(1025, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def broker_count(bootstrap: str, timeout: float = 2.0) -> int:
    """Number of live (unfenced) brokers the node at `bootstrap` reports in a Metadata v4 reply.

    Metadata v4 is the oldest version Kafka 4 still serves and is served by every 2.x/3.x
    broker too. A KRaft broker lists itself only once the controller has unfenced it, which is
    also when it accepts topic creation, so "count >= 1" means "ready for clients".
    """
    host, _, port = bootstrap.rpartition(":")
    client_id = b"localkafka"
    # header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
    # body v4: topics=null (-1: all), allow_auto_topic_creation=false
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        reply = _read_exact(sock, size)
    correlation_id, _throttle, brokers = struct.unpack(">iii", reply[:12])
    if correlation_id != 7:
        raise ConnectionError("unexpected correlation id in Metadata reply")
    return brokers


def wait_until_ready(bootstrap: str, timeout: float = 60.0,
                     process: subprocess.Popen | None = None, log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LocalKafkaError(f"the broker exited with status {process.returncode} while "
                                  f"starting{_log_tail(log_file)}")
        try:
            if broker_count(bootstrap) >= 1:
                return
        except (OSError, struct.error) as exc:
            last_error = exc
        time.sleep(0.1)
    raise LocalKafkaError(f"the broker at {bootstrap} did not become ready within {timeout:.0f} s "
                          f"(last error: {last_error}){_log_tail(log_file)}")


def _log_tail(log_file: Path | None, lines: int = 25) -> str:
    if log_file is None or not log_file.is_file():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(tail)


# ---------------------------------------------------------------------------------------------
# The broker process


@dataclass
class LocalKafka:
    """A running local broker. `stop()` ends it (SIGTERM, wait, then SIGKILL)."""

    state_dir: Path
    bootstrap: str
    pid: int
    _process: subprocess.Popen | None = field(default=None, repr=False)
    sasl_bootstrap: str | None = None       # the SASL_PLAINTEXT (SCRAM) listener, if on
    scram_users: dict[str, str] = field(default_factory=dict, repr=False)   # name -> password

    def client_settings(self, user: str | None = None) -> dict[str, str]:
        """KAFKA_* settings (docs/kafka.md) for `user` on the SCRAM listener, or for the
        PLAINTEXT listener when `user` is None."""
        if user is None:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.sasl_bootstrap is None or user not in self.scram_users:
            raise LocalKafkaError(f"no SCRAM user {user!r} on this broker")
        return {"KAFKA_BOOTSTRAP_SERVERS": self.sasl_bootstrap,
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM, "KAFKA_SASL_USERNAME": user,
                "KAFKA_SASL_PASSWORD": self.scram_users[user]}

    def stop(self, timeout: float = 30.0) -> None:
        _terminate(self.pid, self._process, timeout)
        for name in ("kafka.pid", "bootstrap", "sasl-bootstrap"):
            (self.state_dir / name).unlink(missing_ok=True)

    def __enter__(self) -> LocalKafka:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _terminate(pid: int, process: subprocess.Popen | None, timeout: float) -> None:
    def alive() -> bool:
        if process is not None:
            return process.poll() is None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not _is_zombie(pid)

    if not alive():
        return
    try:
        os.kill(pid, signal.SIGTERM)  # Kafka's shutdown hook: controlled shutdown, clean logs
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive():
        os.kill(pid, signal.SIGKILL)
        if process is not None:
            process.wait(10)
        else:
            while alive():
                time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _is_our_broker(pid: int, state_dir: Path) -> bool:
    """True when `pid` is alive and is the broker of this state directory (pids get reused)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if _is_zombie(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # not Linux: trust the pid file
        return True
    args = cmdline.read_bytes().split(b"\0")
    return b"kafka.Kafka" in args and str(state_dir / "server.properties").encode() in args


def _cluster_id() -> str:
    # Kafka's Uuid text form: URL-safe base64 of 16 random bytes without padding; Kafka avoids
    # ids starting with '-' because the command line would take them for an option.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError("java is not on PATH (Kafka 4 needs Java 17 or newer)")
    return java


def _read_ports(config: Path) -> tuple[int, int]:
    port = controller_port = 0
    for line in config.read_text().splitlines():
        if line.startswith("advertised.listeners="):
            port = int(line.split(",")[0].rsplit(":", 1)[1])
        elif line.startswith("controller.quorum.bootstrap.servers="):
            controller_port = int(line.rsplit(":", 1)[1])
    return port, controller_port


def running(state_dir: str | os.PathLike[str]) -> LocalKafka | None:
    """The broker already running for this state directory, if any."""
    state = Path(state_dir).resolve()
    try:
        pid = int((state / "kafka.pid").read_text().strip())
        bootstrap = (state / "bootstrap").read_text().strip()
    except (OSError, ValueError):
        return None
    if not _is_our_broker(pid, state):
        return None
    sasl_bootstrap, users = _read_security(state)
    return LocalKafka(state, bootstrap, pid, sasl_bootstrap=sasl_bootstrap, scram_users=users)


def _read_security(state: Path) -> tuple[str | None, dict[str, str]]:
    import json

    config = state / "server.properties"
    sasl = None
    if config.is_file():
        for line in config.read_text().splitlines():
            if line.startswith("advertised.listeners="):
                for listener in line.split("=", 1)[1].split(","):
                    if listener.startswith("SASL_PLAINTEXT://"):
                        sasl = listener.removeprefix("SASL_PLAINTEXT://")
    users_file = state / "scram-users.json"
    users = json.loads(users_file.read_text()) if users_file.is_file() else {}
    return sasl, users


def start_local_kafka(state_dir: str | os.PathLike[str], *, port: int = 0,
                      controller_port: int = 0, host: str = "127.0.0.1",
                      kafka_version: str = DEFAULT_KAFKA_VERSION, heap: str = DEFAULT_HEAP,
                      timeout: float = 90.0, detach: bool = False,
                      fresh: bool = False, scram_users: Iterable[str] = (),
                      super_users: Iterable[str] = ()) -> LocalKafka:
    """Start (or reuse) the broker whose state lives in `state_dir`; return once it serves.

    port/controller_port 0 picks free ports the first time; a formatted state directory keeps
    its ports and data across restarts (`fresh=True` wipes it first). `detach=True` puts the
    JVM in its own session so it outlives this process (the `start` command); otherwise it
    shares this process group, so Ctrl-C or the end of a test run also reaches it.

    `scram_users` turns authentication and authorization on (see the module docstring); the
    users get random passwords (`LocalKafka.scram_users`); `super_users` are names among them
    that ACLs do not restrict (the gateway, an administrator). Users are created when the state
    directory is formatted: asking for users a formatted directory lacks needs `fresh=True`.
    """
    state = Path(state_dir).resolve()
    already = running(state)
    if already is not None and not fresh:
        missing = [u for u in scram_users if u not in already.scram_users]
        if missing:
            raise LocalKafkaError(f"the broker running for {state} lacks the SCRAM users "
                                  f"{', '.join(missing)}; use --fresh to start over")
        return already
    if already is not None:
        already.stop()
    if fresh and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    config = state / "server.properties"
    data_dir = state / "data"
    log_file = state / "kafka.log"
    classpath = os.pathsep.join(str(j) for j in fetch(kafka_version))
    java = _java()

    users = list(dict.fromkeys(scram_users))
    supers = list(dict.fromkeys(super_users))
    if any(u not in users for u in supers):
        raise LocalKafkaError("every super user must also be one of the SCRAM users")
    formatted = (data_dir / "meta.properties").is_file() and config.is_file()
    if formatted:
        stored, stored_controller = _read_ports(config)
        if port and port != stored:
            raise LocalKafkaError(f"{state} was formatted for port {stored}, not {port}; "
                                  "use --fresh to start over")
        have = _read_security(state)[1]
        missing = [u for u in users if u not in have]
        if missing:
            raise LocalKafkaError(f"{state} was formatted without the SCRAM users "
                                  f"{', '.join(missing)}; use --fresh to start over")
        port, controller_port = stored, stored_controller
    else:
        if data_dir.exists():
            shutil.rmtree(data_dir)
        port = port or _free_port(host)
        controller_port = controller_port or _free_port(host)
        while controller_port == port:
            controller_port = _free_port(host)
        text = _BROKER_CONFIG.format(host=host, port=port, controller_port=controller_port,
                                     data_dir=data_dir)
        scram_args: list[str] = []
        if users:
            sasl_port = _free_port(host)
            while sasl_port in (port, controller_port):
                sasl_port = _free_port(host)
            text = _secure_listeners(text, host, port, sasl_port, controller_port)
            text += _SECURITY_CONFIG.format(super_users=";".join(
                ["User:ANONYMOUS", *(f"User:{u}" for u in supers)]))
            passwords = _write_users(state, users)
            for user, password in passwords.items():
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    scram_args += ["--add-scram",
                                   f"{mechanism}=[name={user},password={password}]"]
        config.write_text(text)
        fmt = subprocess.run(
            [java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
             "--standalone", "--cluster-id", _cluster_id(), "--config", str(config),
             *scram_args],
            capture_output=True, text=True)
        if fmt.returncode != 0:
            raise LocalKafkaError("kafka-storage format failed:\n"
                                  + (fmt.stdout + fmt.stderr)[-3000:])
    log4j = state / "log4j2.properties"
    log4j.write_text(_LOG4J2_CONFIG.format(log_file=log_file))

    cmd = [java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseSerialGC", "-XX:-UsePerfData",
           "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
           "-Dkafka.logs.dir=" + str(state), "-cp", classpath, "kafka.Kafka", str(config)]
    with open(state / "kafka.out", "ab") as out:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   cwd=state, start_new_session=detach)
    bootstrap = f"{host}:{port}"
    sasl_bootstrap, passwords = _read_security(state)
    kafka = LocalKafka(state, bootstrap, process.pid, process, sasl_bootstrap=sasl_bootstrap,
                       scram_users=passwords)
    try:
        wait_until_ready(bootstrap, timeout, process, log_file)
    except BaseException:
        kafka.stop(timeout=10)
        raise
    (state / "kafka.pid").write_text(f"{process.pid}\n")
    (state / "bootstrap").write_text(f"{bootstrap}\n")
    return kafka


def _secure_listeners(text: str, host: str, port: int, sasl_port: int,
                      controller_port: int) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("listeners="):
            line = (f"listeners=PLAINTEXT://{host}:{port},SASL_PLAINTEXT://{host}:{sasl_port},"
                    f"CONTROLLER://{host}:{controller_port}")
        elif line.startswith("advertised.listeners="):
            line = f"advertised.listeners=PLAINTEXT://{host}:{port},SASL_PLAINTEXT://{host}:{sasl_port}"
        elif line.startswith("listener.security.protocol.map="):
            line = ("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,"
                    "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT")
        out.append(line)
    return "\n".join(out) + "\n"


def _write_users(state: Path, users: list[str]) -> dict[str, str]:
    """Random passwords for the SCRAM users, kept in the state directory (0600)."""
    import json
    import secrets

    for user in users:
        if not user or any(c in user for c in ",=[] \t\n"):
            raise LocalKafkaError(f"SCRAM user name {user!r} cannot be used")
    passwords = {user: secrets.token_urlsafe(18) for user in users}
    path = state / "scram-users.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f, indent=1)
    return passwords


def stop_local_kafka(state_dir: str | os.PathLike[str], timeout: float = 30.0) -> bool:
    """Stop the broker of `state_dir`; False when none was running."""
    kafka = running(state_dir)
    if kafka is None:
        return False
    kafka.stop(timeout)
    return True


# ---------------------------------------------------------------------------------------------
# Command line


def _default_state_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "edoc-gateway-kafka")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, *, state: bool = True) -> None:
        p.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION,
                       help=f"Apache Kafka version from Maven Central (default {DEFAULT_KAFKA_VERSION})")
        if state:
            p.add_argument("--state-dir", default=_default_state_dir(),
                           help="config, data and logs of the broker (default: %(default)s)")

    p_fetch = sub.add_parser("fetch", help="resolve the Kafka jars into ~/.m2 and print the classpath")
    common(p_fetch, state=False)
    for name, text in (("start", "start in the background, print the bootstrap address"),
                       ("run", "run in the foreground until Ctrl-C or SIGTERM")):
        p = sub.add_parser(name, help=text)
        common(p)
        p.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
        p.add_argument("--heap", default=DEFAULT_HEAP, help="JVM -Xmx (default %(default)s)")
        p.add_argument("--fresh", action="store_true", help="wipe the state directory first")
        p.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
        p.add_argument("--scram-user", action="append", default=[], metavar="NAME",
                       help="a SCRAM user (repeat); turns on the SASL listener and ACLs")
        p.add_argument("--super-user", action="append", default=[], metavar="NAME",
                       help="a SCRAM user that ACLs do not restrict (repeat)")
    p_stop = sub.add_parser("stop", help="stop the broker of a state directory")
    p_stop.add_argument("--state-dir", default=_default_state_dir())
    p_stop.add_argument("--timeout", type=float, default=30.0)
    p_status = sub.add_parser("status", help="print the bootstrap address if running (exit 1 if not)")
    p_status.add_argument("--state-dir", default=_default_state_dir())
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            began = time.monotonic()
            jars = fetch(args.kafka_version)
            print(os.pathsep.join(str(j) for j in jars))
            print(f"{len(jars)} jars for Kafka {args.kafka_version} "
                  f"in {time.monotonic() - began:.1f} s", file=sys.stderr)
            return 0
        if args.command == "stop":
            stopped = stop_local_kafka(args.state_dir, args.timeout)
            print("stopped" if stopped else "not running", file=sys.stderr)
            return 0
        if args.command == "status":
            kafka = running(args.state_dir)
            if kafka is None:
                return 1
            print(kafka.bootstrap)
            return 0
        began = time.monotonic()
        kafka = start_local_kafka(args.state_dir, port=args.port, kafka_version=args.kafka_version,
                                  heap=args.heap, timeout=args.timeout, fresh=args.fresh,
                                  detach=args.command == "start",
                                  scram_users=[*args.scram_user, *args.super_user],
                                  super_users=args.super_user)
        print(kafka.bootstrap, flush=True)
        if kafka.sasl_bootstrap:
            print(f"SCRAM ({SCRAM_MECHANISM}) listener {kafka.sasl_bootstrap}; passwords in "
                  f"{kafka.state_dir / 'scram-users.json'}", file=sys.stderr)
        print(f"Kafka {args.kafka_version} ready at {kafka.bootstrap} (pid {kafka.pid}, "
              f"state {kafka.state_dir}) in {time.monotonic() - began:.1f} s", file=sys.stderr)
        if args.command == "start":
            return 0
        stop_requested = False

        def on_signal(signum: int, frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop_requested and kafka._process is not None and kafka._process.poll() is None:
            time.sleep(0.2)
        kafka.stop()
        return 0
    except LocalKafkaError as exc:
        print(f"localkafka: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
