"""Fixtures for the whole suite: one real Kafka broker per test run, fresh topics per test.

The broker starts the first time a test asks for it (so runs without Kafka tests pay nothing)
and stops when the run ends. With KAFKA_BOOTSTRAP_SERVERS set (CI that started the broker
already, or your own cluster, with the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_*
settings of docs/kafka.md) no broker is started and that cluster is used instead.

The local broker has authentication and authorization on (SCRAM users `gateway.lab.
lab_scram_users()`, StandardAuthorizer): `kafka_settings` use its PLAINTEXT listener, whose
anonymous principal is a super user (the harness's door); `kafka_broker` gives tests that need
real principals (the lab, the ACL tests) its SCRAM listener and the users' passwords.

Tests that use these fixtures are marked `kafka` automatically.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import KafkaConnectorError, KafkaSettings, TopicSpec, delete_topics, \
    ensure_topics
from gateway.lab import LAB_SUPER_USERS, lab_scram_users, load_localkafka

REPO = Path(__file__).resolve().parent.parent
KAFKA_FIXTURES = frozenset({"kafka_settings", "kafka_bootstrap", "topic_factory", "fresh_topic",
                            "kafka_broker"})




def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The run's local broker (localkafka.LocalKafka, SCRAM listener and ACLs on), or None
    when KAFKA_BOOTSTRAP_SERVERS names a cluster of your own."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        yield None
        return
    broker = load_localkafka().start_local_kafka(
        tmp_path_factory.mktemp("kafka"), scram_users=lab_scram_users(),
        super_users=LAB_SUPER_USERS)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: Any) -> KafkaSettings:
    """Settings for the run's broker: KAFKA_* from the environment, or the local broker."""
    if kafka_broker is None:
        return KafkaSettings.from_env(client_id="edoc-gateway-tests")
    return KafkaSettings(bootstrap_servers=kafka_broker.bootstrap, client_id="edoc-gateway-tests")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_settings: KafkaSettings) -> str:
    """The bootstrap address ("host:port[,host:port]") of the run's broker."""
    return kafka_settings.bootstrap_servers


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def topic_factory(kafka_settings: KafkaSettings) -> AsyncIterator[TopicFactory]:
    """`await topic_factory(prefix="test", partitions=1, config={...})` -> a new, empty topic.

    Names are unique per call, so tests never see each other's records; the topics are deleted
    when the test ends.
    """
    created: list[str] = []

    async def make(prefix: str = "test", *, partitions: int = 1,
                   config: Mapping[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        await ensure_topics(kafka_settings, [TopicSpec(name, partitions, config or {})])
        created.append(name)
        return name

    yield make
    try:
        await delete_topics(kafka_settings, created)
    except KafkaConnectorError:
        pass  # a broker that went away mid-test is that test's failure, not cleanup's


@pytest.fixture
async def fresh_topic(topic_factory: TopicFactory) -> str:
    """One new single-partition topic for this test."""
    return await topic_factory()
