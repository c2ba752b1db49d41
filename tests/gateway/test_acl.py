"""Agency identity on a real broker with SCRAM authentication and ACLs on.

The ACLs come from `gateway.acl.plan` of a configuration with two agencies of one province; each
agency's software logs in as its own SCRAM user. Agency B's principal must be refused writing
A's outbound topic, reading A's inbound topic and writing the gateway's own topics; A may use its
own. `run --check`'s findings come from the same broker's DescribeAcls.
"""

from __future__ import annotations

import asyncio

import uuid
from pathlib import Path

import pytest

from connectors.cloudevents import KafkaRecord
from connectors.kafka import (AclEntry, EventProducer, KafkaConnectorError, KafkaSettings,
                              TopicSpec, create_acls, delete_topics, describe_acls,
                              ensure_topics, read_topic)
from gateway.acl import commands, findings, layout_findings, plan
from gateway.config import GatewayConfig, load_config

A, B = "000.00.00.H55", "000.00.02.H55"


def _config(tmp_path: Path, suffix: str, *, per_agency: bool = True, extra: str = "") -> GatewayConfig:
    for d in ("trust", "store", "keys"):
        (tmp_path / d).mkdir(exist_ok=True)
    for f in ("keys/k.pem", "keys/c.pem"):
        (tmp_path / f).write_text("placeholder\n")
    templates = {"outbound_documents": "edoc.outbound.{agency}.documents",
                 "outbound_receipts": "edoc.outbound.{agency}.receipts",
                 "delivery": "edoc.delivery.{agency}",
                 "inbound_documents": "edoc.inbound.{agency}.documents",
                 "inbound_receipts": "edoc.inbound.{agency}.receipts",
                 "audit": "edoc.audit", "deadletter": "edoc.deadletter",
                 "ledger": "edoc.gateway.ledger", "poller": "edoc.gateway.poller"}
    if not per_agency:
        templates = {k: v.replace(".{agency}", "") for k, v in templates.items()}
    topics = "\n".join(f'{k} = "{v}.{suffix}"' for k, v in templates.items())
    agencies = "".join(f'\n[[agencies]]\norgan_id = "{o}"\nname = "{o}"\nkey = "keys/k.pem"\n'
                       f'cert = "keys/c.pem"\n' for o in (A, B))
    text = (f'[kafka]\nbootstrap_servers = "127.0.0.1:9"\n'
            f'[topics]\nper_agency = {"true" if per_agency else "false"}\n{topics}\n'
            '[axis]\nendpoint = "http://127.0.0.1:9/a"\nsystemid = "00.55.W00"\n'
            'secret_env = "S"\n[inbound]\ntrust_dir = "trust"\n[store]\nroot = "store"\n'
            + agencies + extra)
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {"S": "secret"})


def test_the_plan_gives_each_principal_its_own_topics_only(tmp_path: Path) -> None:
    config = _config(tmp_path, "x", extra='\n[[grants]]\nprincipal = "User:vendor-x"\n'
                                          f'agencies = ["{A}", "{B}"]\n')
    entries = plan(config)
    mine = {(e.resource_type, e.name, e.pattern, e.operation)
            for e in entries if e.principal == f"User:{A}"}
    assert mine == {("topic", f"edoc.outbound.{A}.", "prefixed", "write"),
                    ("topic", f"edoc.inbound.{A}.", "prefixed", "read"),
                    ("topic", f"edoc.delivery.{A}.", "prefixed", "read"),
                    ("group", f"{A}.", "prefixed", "read")}
    vendor = {e.name for e in entries if e.principal == "User:vendor-x" and e.operation == "write"}
    assert vendor == {f"edoc.outbound.{A}.", f"edoc.outbound.{B}."}
    # Nothing in the plan reaches the gateway's own topics.
    for entry in entries:
        for own in (config.topics.ledger, config.topics.audit, config.topics.deadletter):
            assert not entry.covers("topic", own)
    text = "\n".join(commands(config))
    assert ("kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add "
            f"--allow-principal User:{A} --operation Write --topic edoc.outbound.{A}. "
            "--resource-pattern-type prefixed") in text
    assert f"--entity-name {B} --add-config 'SCRAM-SHA-512=[password=" in text


def test_findings_name_what_lets_one_agency_act_for_another(tmp_path: Path) -> None:
    config = _config(tmp_path, "x")
    assert findings(config, plan(config)) == []
    assert "no authorizer" in findings(config, None)[0]
    bad = [AclEntry(f"User:{B}", "topic", "edoc.", "prefixed", "write"),
           AclEntry("User:*", "topic", "*", "literal", "all")]
    found = " | ".join(findings(config, bad))
    assert f"User:{B} may write the gateway's ledger topic" in found
    assert f"User:{B} may write {A}'s outbound topic" in found
    assert "every principal (User:*) may write the gateway's audit topic" in found
    assert "per_agency = false" in layout_findings(_config(tmp_path, "y", per_agency=False))[0]


@pytest.fixture
async def secured(kafka_broker, kafka_settings, tmp_path):
    if kafka_broker is None or not kafka_broker.sasl_bootstrap:
        pytest.skip("needs the local broker with SCRAM users (KAFKA_BOOTSTRAP_SERVERS is set)")
    config = _config(tmp_path, uuid.uuid4().hex[:8])
    topics = [*config.outbound_topics(), *config.delivery_topics(), *config.inbound_topics(),
              config.topics.ledger, config.topics.audit]
    await ensure_topics(kafka_settings, [TopicSpec(t, 1) for t in topics])
    admin = KafkaSettings.from_env(kafka_broker.client_settings("admin"))
    await create_acls(admin, plan(config))

    def login(user: str) -> KafkaSettings:
        return KafkaSettings.from_env(kafka_broker.client_settings(user))

    yield config, login, admin
    await delete_topics(kafka_settings, topics)


async def _write(settings: KafkaSettings, topic: str) -> None:
    async with EventProducer(settings) as producer:
        await producer.send_record(topic, KafkaRecord(b"k", b"{}"))


async def test_agency_b_cannot_write_a_topic_or_read_a_inbound_on_the_real_broker(secured) -> None:
    config, login, _ = secured
    t = config.topics
    a, b = login(A), login(B)
    # Each writes and reads its own.
    await _write(a, t.outbound_topic("documents", A))
    await _write(b, t.outbound_topic("receipts", B))
    await _write(a, t.outbound_topic("receipts", A))
    assert await read_topic(a, t.inbound_topic("documents", A), idle_timeout_s=2) == []
    # B in A's name, B reading A's mail, B writing the gateway's own topics: refused.
    for topic in (t.outbound_topic("documents", A), t.outbound_topic("receipts", A),
                  t.ledger, t.audit, t.delivery_topic(A)):
        with pytest.raises(KafkaConnectorError) as refused:
            await _write(b, topic)
        assert refused.value.reason == "kafka.auth", topic
    for topic in (t.inbound_topic("documents", A), t.inbound_topic("receipts", A),
                  t.delivery_topic(A)):
        with pytest.raises(KafkaConnectorError) as refused:
            await read_topic(b, topic, idle_timeout_s=2)
        assert refused.value.reason == "kafka.auth", topic


async def test_the_broker_acls_pass_the_check_until_an_agency_may_write_the_ledger(secured) -> None:
    config, _, admin = secured
    acls = await describe_acls(admin)
    assert acls is not None                       # an authorizer is on
    assert set(plan(config)) <= set(acls)
    assert findings(config, acls) == []
    # An operator's slip: B may write everything under the gateway's ledger name.
    await create_acls(admin, [AclEntry(f"User:{B}", "topic", config.topics.ledger, "literal",
                                       "write")])
    # The broker answers DescribeAcls from its copy of the cluster metadata, which takes the
    # new binding a moment after CreateAcls returned (seen under load): ask until it is there.
    found: list[str] = []
    for _ in range(60):
        found = findings(config, await describe_acls(admin))
        if found:
            break
        await asyncio.sleep(0.25)
    assert found and f"User:{B} may write the gateway's ledger topic" in found[0]
