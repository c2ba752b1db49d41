"""`edoc-gateway run --check` against a real broker, the real axis simulator and a test PKI."""

from __future__ import annotations

import io
import json
import re
import secrets
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.axis.simulator.process import start_simulator_process
from connectors.kafka import TopicSpec, delete_topics, ensure_topics
from edxml.pki import init_test_pki
from gateway.check import check
from gateway.config import DEFAULT_TOPICS, PER_AGENCY_TOPICS, load_config

SYSTEMID = "00.55.W00"
AGENCY = "000.00.00.H55"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return init_test_pki(tmp_path_factory.mktemp("pki"),
                         agencies=[(AGENCY, "UBND tỉnh Thái Nguyên")])


@pytest.fixture(scope="module")
def axis(tmp_path_factory):
    secret = secrets.token_hex(16)
    work = tmp_path_factory.mktemp("axis")
    sim = start_simulator_process(db=work / "axis.db", clients={SYSTEMID: secret},
                                  log_path=work / "axis.log")
    yield sim.url, secret
    sim.stop()


def _toml(value):
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def write_config(directory: Path, *, bootstrap: str, endpoint: str, secret: str, key: Path,
                 cert: Path, crl_files: list[Path], trust_dir: Path) -> Path:
    """A complete gateway.toml for one agency; topics get a suffix of their own."""
    store = directory / "store"
    store.mkdir(exist_ok=True)
    (directory / "axis-secret").write_text(secret)
    suffix = uuid.uuid4().hex[:8]
    sections = {
        "gateway": {"instance_id": "check-test"},
        "http": {"listen": "127.0.0.1:0"},
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {name: f"{PER_AGENCY_TOPICS.get(name, topic)}.{suffix}"
                   for name, topic in DEFAULT_TOPICS.items()},
        "axis": {"endpoint": endpoint, "systemid": SYSTEMID,
                 "secret_file": directory / "axis-secret"},
        "inbound": {"trust_dir": trust_dir, "crl_files": crl_files,
                    "signature_policy": "require-valid"},
        "store": {"root": store},
    }
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    lines += ["[[agencies]]", f"organ_id = {_toml(AGENCY)}", 'name = "UBND tỉnh Thái Nguyên"',
              f"key = {_toml(key)}", f"cert = {_toml(cert)}"]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path, pki, axis, kafka_bootstrap):
    endpoint, secret = axis

    def make(**overrides):
        values = {"bootstrap": kafka_bootstrap, "endpoint": endpoint, "secret": secret,
                  "key": pki.agencies[AGENCY].key, "cert": pki.agencies[AGENCY].cert,
                  "crl_files": [pki.crl], "trust_dir": pki.trust_dir}
        values.update(overrides)
        return load_config(write_config(tmp_path, **values), {})

    return make


async def run_check(config, **kwargs):
    """(exit code, {check name: its line}, the whole output)."""
    out = io.StringIO()
    code = await check(config, out=out, **kwargs)
    lines = out.getvalue().splitlines()
    by_name = {re.split(r"\s{2,}", line, maxsplit=2)[1]: line for line in lines[:-1]}
    return code, by_name, out.getvalue()


def _status(line: str) -> str:
    return line.split()[0]


async def test_a_ready_deployment_passes_every_check_and_exits_0(make_config, axis):
    code, lines, text = await run_check(make_config())
    assert code == 0, text
    for name in ("config", "trust", "agency 000.00.00.H55", "store", "http", "kafka",
                 "kafka.topics", "axis", "axis.agencies"):
        assert _status(lines[name]) == "ok", text
    assert any(name.startswith("crl ") and _status(line) == "ok" for name, line in lines.items())
    assert "chain trusted" in lines["agency 000.00.00.H55"]
    assert "1 broker" in lines["kafka"]
    # Nothing exists yet: that is fine, the daemon creates the topics at start.
    assert "missing (the daemon creates them at start)" in lines["kafka.topics"]
    assert "authenticated" in lines["axis"]
    assert text.splitlines()[-1].endswith("0 failed")
    assert axis[1] not in text


async def test_topics_that_exist_are_counted_and_missing_ones_named(make_config,
                                                                    kafka_settings):
    config = make_config()
    delivery = config.topics.delivery_topic(AGENCY)
    await ensure_topics(kafka_settings, [TopicSpec(delivery, partitions=6)])
    try:
        code, lines, text = await run_check(config)
    finally:
        await delete_topics(kafka_settings, [delivery])
    assert code == 0, text
    from gateway.daemon import topic_specs

    assert f"1 of {len(topic_specs(config))} exist" in lines["kafka.topics"]
    assert delivery not in lines["kafka.topics"]
    assert config.topics.audit in lines["kafka.topics"]


async def test_an_existing_topic_the_daemon_would_refuse_fails(make_config, kafka_settings):
    config = make_config()
    outbound = config.topics.outbound_topic("documents", AGENCY)
    await ensure_topics(kafka_settings, [TopicSpec(outbound, partitions=1)])
    try:
        code, lines, text = await run_check(config)
    finally:
        await delete_topics(kafka_settings, [outbound])
    assert code == 2, text
    assert _status(lines["kafka.topics"]) == "FAIL"
    assert "kafka.topic" in lines["kafka.topics"]
    assert f"{outbound} has 1 partitions, needs 3" in lines["kafka.topics"]


async def test_a_wrong_axis_secret_fails_as_axis_auth(make_config):
    wrong = secrets.token_hex(16)
    code, lines, text = await run_check(make_config(secret=wrong))
    assert code == 2
    assert _status(lines["axis"]) == "FAIL"
    assert "axis.auth" in lines["axis"]
    assert "axis.agencies" not in lines  # nothing more is asked of an axis that refused us
    assert wrong not in text


async def test_an_expired_agency_certificate_fails(make_config, pki):
    code, lines, text = await run_check(make_config(key=pki.expired.key, cert=pki.expired.cert))
    assert code == 2, text
    assert _status(lines["agency 000.00.00.H55"]) == "FAIL"
    assert "expired" in lines["agency 000.00.00.H55"]
    # The other checks still ran.
    assert _status(lines["kafka"]) == "ok" and _status(lines["axis"]) == "ok"


async def test_a_key_that_does_not_belong_to_the_certificate_fails(make_config, pki):
    code, lines, _ = await run_check(make_config(key=pki.revoked.key))
    assert code == 2
    assert _status(lines["agency 000.00.00.H55"]) == "FAIL"
    assert "edxml.signature.key_mismatch" in lines["agency 000.00.00.H55"]


async def test_a_certificate_expiring_within_30_days_is_a_warning(make_config):
    # Seen from 715 days on, the agency certificate (valid 730 days) has about 15 days left.
    later = datetime.now(timezone.utc) + timedelta(days=715)
    code, lines, text = await run_check(make_config(crl_files=[]), now=later)
    assert code == 0, text
    assert _status(lines["agency 000.00.00.H55"]) == "warn"
    assert "days left" in lines["agency 000.00.00.H55"]
    assert _status(lines["crl"]) == "warn"  # no CRL at all: revocation is not checked


async def test_a_crl_past_its_next_update_fails(make_config):
    later = datetime.now(timezone.utc) + timedelta(days=8)  # the test CRL is good for 7 days
    code, lines, _ = await run_check(make_config(), now=later)
    assert code == 2
    (crl_line,) = [line for name, line in lines.items() if name.startswith("crl ")]
    assert _status(crl_line) == "FAIL" and "stale" in crl_line


async def test_unreachable_kafka_fails_and_the_other_checks_still_run(make_config):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, lines, _ = await run_check(make_config(bootstrap=f"127.0.0.1:{port}"))
    assert code == 2
    assert _status(lines["kafka"]) == "FAIL"
    assert "kafka.unavailable" in lines["kafka"]
    assert _status(lines["axis"]) == "ok"


def test_the_command_line_prints_the_checks_and_exits_2_on_a_failure(make_config, pki, axis):
    for overrides, expected in (({}, 0), ({"key": pki.expired.key, "cert": pki.expired.cert}, 2)):
        config = make_config(**overrides)
        done = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config",
                               str(config.source), "--check"], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == expected, done.stdout + done.stderr
        assert re.search(r"^ok +kafka +", done.stdout, re.MULTILINE)
        assert axis[1] not in done.stdout + done.stderr


async def test_the_acl_check_names_an_agency_that_may_write_the_gateways_topics(
        make_config, kafka_settings, kafka_broker):
    from connectors.kafka import AclEntry, create_acls

    config = make_config()
    code, lines, text = await run_check(config)
    if kafka_broker is None:
        pytest.skip("needs the local broker with its authorizer on")
    # Authorizer on, nothing wrong in the ACLs; the test connects unauthenticated: a warning.
    assert _status(lines["kafka.acls"]) == "warn", text
    assert "security_protocol = PLAINTEXT" in lines["kafka.acls"]
    await create_acls(kafka_settings, [AclEntry(f"User:{AGENCY}", "topic", config.topics.audit,
                                                "literal", "write")])
    code, lines, text = await run_check(config)
    assert code == 2, text
    assert _status(lines["kafka.acls"]) == "FAIL"
    assert f"User:{AGENCY} may write the gateway's audit topic {config.topics.audit}" in \
        lines["kafka.acls"]
