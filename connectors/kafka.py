"""Talk to Kafka: settings, an idempotent event producer, a manual-commit consumer, topic admin.

aiokafka stays inside this module: callers get `KafkaRecord`s and `RecordPosition`s, and every
aiokafka exception is translated at this boundary into `KafkaConnectorError` with a stable
reason (`REASONS`) and a `transient` flag for the retry policy. Records are handed out as raw
bytes, never deserialised here, so no record content can make the consumer itself fail;
`connectors.cloudevents.CloudEvent.from_record` reads them.

    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9092")   # or KafkaSettings.from_env()
    await ensure_topics(settings, [TopicSpec("edoc.audit", config={"cleanup.policy": "compact"})])
    async with EventProducer(settings) as producer:
        await producer.publish("edoc.outbound", event, key=document_id)
    async with EventConsumer(settings, ["edoc.outbound"], group_id="edoc-gateway") as consumer:
        records = await consumer.poll()
        ...                                       # handle, then
        await consumer.commit_processed(records)  # commit only what is done
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import TopicPartition

from connectors.cloudevents import CloudEvent, KafkaRecord
from edxml.errors import GatewayError

log = structlog.get_logger(__name__)

REASONS: dict[str, str] = {
    "kafka.config": "the Kafka settings are incomplete or inconsistent (e.g. SASL without a "
                    "username); fix the configuration",
    "kafka.unavailable": "the brokers could not be reached or did not answer in time, or a "
                         "partition had no leader; retried with backoff",
    "kafka.auth": "authentication or authorisation failed (SASL credentials, TLS, ACLs)",
    "kafka.topic": "a topic is missing, or exists with fewer partitions or other settings "
                   "than required",
    "kafka.rejected": "the broker refused a request for good (record too large, invalid "
                      "topic config, policy violation)",
    "kafka.commit.rebalanced": "offsets could not be committed because the partitions were "
                               "reassigned; their records will be delivered to the new owner",
    "kafka.fenced": "another instance with the same transactional id took over; this producer "
                    "must stop",
    "kafka.error": "any other error reported by the Kafka client",
}

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaConnectorError(GatewayError):
    """Kafka could not do what was asked; `transient` says whether trying again may help."""


_AUTH_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.AuthenticationFailedError, kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.SaslAuthenticationFailed, kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError, kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError, kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
)
_REJECTED_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.RecordTooLargeError, kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError, kafka_errors.InvalidTopicError,
    kafka_errors.InvalidConfigurationError, kafka_errors.PolicyViolationError,
    kafka_errors.InvalidPartitionsError, kafka_errors.InvalidReplicationFactorError,
    kafka_errors.CorruptRecordException,
)
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError,
    kafka_errors.NoBrokersAvailable, kafka_errors.NodeNotReadyError,
    kafka_errors.KafkaUnavailableError, kafka_errors.RequestTimedOutError,
    kafka_errors.BrokerNotAvailableError, asyncio.TimeoutError,
)


# What the client raises for broker/network trouble; anything else is a bug and propagates as is.
_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaError, kafka_errors.IllegalOperation, kafka_errors.ConsumerStoppedError,
    asyncio.TimeoutError, OSError,
)


def translate_error(exc: BaseException, operation: str) -> KafkaConnectorError:
    """Map an aiokafka exception to our error; the message never includes credentials."""
    name = type(exc).__name__
    detail = f"{operation}: {name}" + (f" ({exc})" if str(exc) else "")
    detail = detail[:500]
    if isinstance(exc, KafkaConnectorError):
        return exc
    if isinstance(exc, kafka_errors.ProducerFenced) or isinstance(
            exc, kafka_errors.InvalidProducerEpoch):
        return KafkaConnectorError("kafka.fenced", detail, transient=False)
    if isinstance(exc, (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError,
                        kafka_errors.RebalanceInProgressError,
                        kafka_errors.IllegalGenerationError, kafka_errors.UnknownMemberIdError)):
        return KafkaConnectorError("kafka.commit.rebalanced", detail, transient=False)
    if isinstance(exc, _AUTH_ERRORS):
        return KafkaConnectorError("kafka.auth", detail, transient=False)
    if isinstance(exc, _REJECTED_ERRORS):
        return KafkaConnectorError("kafka.rejected", detail, transient=False)
    if isinstance(exc, _UNAVAILABLE_ERRORS) or getattr(exc, "retriable", False):
        return KafkaConnectorError("kafka.unavailable", detail, transient=True)
    return KafkaConnectorError("kafka.error", detail, transient=False)


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the cluster. Built by the caller (config file); `from_env` for tools/tests."""

    bootstrap_servers: str
    client_id: str = "edoc-gateway"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    request_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        if not self.bootstrap_servers or not self.bootstrap_servers.strip():
            raise KafkaConnectorError("kafka.config", "bootstrap_servers is empty",
                                      where="bootstrap_servers")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise KafkaConnectorError("kafka.config", f"security_protocol must be one of "
                                      f"{', '.join(SECURITY_PROTOCOLS)}",
                                      where="security_protocol")
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaConnectorError("kafka.config", f"sasl_mechanism must be one of "
                                          f"{', '.join(SASL_MECHANISMS)} with "
                                          f"{self.security_protocol}", where="sasl_mechanism")
            if not self.sasl_username or not self.sasl_password:
                raise KafkaConnectorError("kafka.config", "SASL needs a username and a password",
                                          where="sasl_username")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise KafkaConnectorError("kafka.config", "a client certificate needs both "
                                      "ssl_certfile and ssl_keyfile", where="ssl_certfile")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 client_id: str = "edoc-gateway") -> KafkaSettings:
        """Settings from KAFKA_* variables (the one place this module reads the environment).

        KAFKA_BOOTSTRAP_SERVERS (required), KAFKA_CLIENT_ID, KAFKA_SECURITY_PROTOCOL,
        KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE,
        KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE.
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        bootstrap = get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is None:
            raise KafkaConnectorError("kafka.config", "KAFKA_BOOTSTRAP_SERVERS is not set",
                                      where="KAFKA_BOOTSTRAP_SERVERS")
        protocol = (get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        mechanism = get("KAFKA_SASL_MECHANISM")
        return cls(bootstrap_servers=bootstrap,
                   client_id=get("KAFKA_CLIENT_ID") or client_id,
                   security_protocol=protocol,
                   sasl_mechanism=mechanism.upper() if mechanism else None,
                   sasl_username=get("KAFKA_SASL_USERNAME"),
                   sasl_password=get("KAFKA_SASL_PASSWORD"),
                   ssl_cafile=get("KAFKA_SSL_CAFILE"),
                   ssl_certfile=get("KAFKA_SSL_CERTFILE"),
                   ssl_keyfile=get("KAFKA_SSL_KEYFILE"))

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka's producer, consumer and admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            try:
                kwargs["ssl_context"] = create_ssl_context(
                    cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
            except (OSError, ValueError) as exc:
                raise KafkaConnectorError("kafka.config", f"TLS files could not be loaded: "
                                          f"{type(exc).__name__}", where="ssl_cafile") from None
        if self.security_protocol.startswith("SASL_"):
            kwargs.update(sasl_mechanism=self.sasl_mechanism,
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password)
        return kwargs


# ---------------------------------------------------------------------------------------------
# Producing


@dataclass(frozen=True)
class RecordPosition:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class EventProducer:
    """Idempotent producer (acks=all, no duplicates on retry); optionally transactional.

    With `transactional_id`, sends must happen inside `async with producer.transaction():`,
    and input offsets can join the transaction (`send_offsets_to_transaction`) so that
    "output written" and "input committed" happen together or not at all.
    """

    def __init__(self, settings: KafkaSettings, *, linger_ms: int = 5,
                 transactional_id: str | None = None, max_request_size: int = 1_048_576,
                 compression_type: str | None = None) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self._producer = AIOKafkaProducer(
            **settings.client_kwargs(), acks="all", enable_idempotence=True,
            linger_ms=linger_ms, max_request_size=max_request_size,
            compression_type=compression_type, transactional_id=transactional_id)

    async def start(self) -> None:
        try:
            await self._producer.start()
        except _CLIENT_ERRORS as exc:
            await self._producer.stop()
            raise translate_error(exc, "producer start") from exc

    async def stop(self) -> None:
        """Flush what is pending, then close."""
        try:
            await self._producer.stop()
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "producer stop") from exc

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def publish(self, topic: str, event: CloudEvent, *, key: bytes | str | None = None,
                      partition: int | None = None) -> RecordPosition:
        """Send one event in binary mode and wait until the broker has stored it."""
        return await self.send_record(topic, event.to_record(key), partition=partition)

    async def send_record(self, topic: str, record: KafkaRecord, *,
                          partition: int | None = None) -> RecordPosition:
        """Send raw key/value/headers (e.g. an unreadable record going to dead letters)."""
        if record.key is None and record.value is None:
            raise KafkaConnectorError("kafka.rejected", f"send to {topic}: a record needs a key "
                                      "or a value", transient=False)
        try:
            meta = await self._producer.send_and_wait(
                topic, value=record.value, key=record.key, partition=partition,
                headers=list(record.headers) or None)
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, f"send to {topic}") from exc
        return RecordPosition(meta.topic, meta.partition, meta.offset,
                              meta.timestamp if meta.timestamp != -1 else None)

    async def enqueue_record(self, topic: str, record: KafkaRecord, *,
                             partition: int | None = None) -> asyncio.Future[Any]:
        """Put a record in the producer's queue; returns the future of its acknowledgement
        (await it with `acknowledged`).

        Records enqueued one after another to one partition are stored in that order (the
        producer is idempotent: the broker refuses a record whose predecessor it has not
        stored), so a caller can fix an order without waiting for each acknowledgement."""
        if record.key is None and record.value is None:
            raise KafkaConnectorError("kafka.rejected", f"send to {topic}: a record needs a key "
                                      "or a value", transient=False)
        try:
            return await self._producer.send(
                topic, value=record.value, key=record.key, partition=partition,
                headers=list(record.headers) or None)
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, f"send to {topic}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Commit what was sent in the block, or abort it if the block raises."""
        if self.transactional_id is None:
            raise KafkaConnectorError("kafka.config", "transactions need a transactional_id",
                                      where="transactional_id")
        try:
            async with self._producer.transaction():
                yield
        except kafka_errors.KafkaError as exc:
            raise translate_error(exc, "transaction") from exc

    async def send_offsets_to_transaction(self, offsets: Mapping[TopicPartition, int],
                                          group_id: str) -> None:
        """Make the consumer group's offsets part of the open transaction."""
        try:
            await self._producer.send_offsets_to_transaction(dict(offsets), group_id)
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "send offsets to transaction") from exc


# ---------------------------------------------------------------------------------------------
# Consuming

PartitionsHook = Callable[[frozenset[TopicPartition]], Awaitable[None]]


def _to_record(message: Any) -> KafkaRecord:
    return KafkaRecord(key=message.key, value=message.value,
                       headers=tuple((name, bytes(value or b"")) for name, value
                                     in (message.headers or ())),
                       topic=message.topic, partition=message.partition,
                       offset=message.offset, timestamp_ms=message.timestamp)


async def acknowledged(future: asyncio.Future[Any], topic: str) -> RecordPosition:
    """Wait for a record enqueued by `EventProducer.enqueue_record` to be stored."""
    try:
        meta = await future
    except _CLIENT_ERRORS as exc:
        raise translate_error(exc, f"send to {topic}") from exc
    return RecordPosition(meta.topic, meta.partition, meta.offset,
                          meta.timestamp if meta.timestamp != -1 else None)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, consumer: EventConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = frozenset(revoked)
        if not partitions:
            return
        log.info("kafka.partitions.revoked", group=self._consumer.group_id,
                 partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in partitions))
        if self._consumer.on_revoked is not None:
            await self._consumer.on_revoked(partitions)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = frozenset(assigned)
        if not partitions:
            return
        log.info("kafka.partitions.assigned", group=self._consumer.group_id,
                 partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in partitions))
        if self._consumer.on_assigned is not None:
            await self._consumer.on_assigned(partitions)


class EventConsumer:
    """Group consumer that commits only what the caller says is done (no auto-commit).

    `on_revoked` runs before partitions are taken away (finish or drop in-flight work for
    them, commit); `on_assigned` after new ones arrive. `max_poll_interval_ms` bounds the time
    between two polls before the group considers this member dead.
    """

    def __init__(self, settings: KafkaSettings, topics: Sequence[str], *, group_id: str,
                 isolation_level: str = "read_committed", auto_offset_reset: str = "earliest",
                 max_poll_interval_ms: int = 300_000, session_timeout_ms: int = 10_000,
                 heartbeat_interval_ms: int = 3_000, max_poll_records: int | None = 500,
                 group_instance_id: str | None = None,
                 on_assigned: PartitionsHook | None = None,
                 on_revoked: PartitionsHook | None = None,
                 rebalance_timeout_ms: int | None = None) -> None:
        if isolation_level not in ("read_committed", "read_uncommitted"):
            raise KafkaConnectorError("kafka.config", "isolation_level must be read_committed "
                                      "or read_uncommitted", where="isolation_level")
        self.settings = settings
        self.topics = tuple(topics)
        self.group_id = group_id
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self._consumer = AIOKafkaConsumer(
            **settings.client_kwargs(), group_id=group_id, group_instance_id=group_instance_id,
            enable_auto_commit=False, auto_offset_reset=auto_offset_reset,
            isolation_level=isolation_level, max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=heartbeat_interval_ms,
            max_poll_records=max_poll_records,
            # How long the group waits for members to finish `on_revoked`; aiokafka's default
            # (the session timeout) would hand partitions over while their work is still going.
            rebalance_timeout_ms=rebalance_timeout_ms or max_poll_interval_ms)

    async def start(self) -> None:
        self._consumer.subscribe(list(self.topics), listener=_Listener(self))
        try:
            await self._consumer.start()
        except _CLIENT_ERRORS as exc:
            await self._consumer.stop()
            raise translate_error(exc, "consumer start") from exc

    async def stop(self) -> None:
        """Leave the group without committing anything further."""
        try:
            await self._consumer.stop()
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "consumer stop") from exc

    async def __aenter__(self) -> EventConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[KafkaRecord]:
        """Records fetched so far (possibly none), in offset order within each partition."""
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "poll") from exc
        records: list[KafkaRecord] = []
        for tp in sorted(batches):
            records.extend(_to_record(message) for message in batches[tp])
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit per partition the offset of the next record to read (last done + 1)."""
        if not offsets:
            return
        try:
            await self._consumer.commit(dict(offsets))
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "commit") from exc

    async def commit_processed(self, records: Iterable[KafkaRecord]) -> dict[TopicPartition, int]:
        """Commit past the given records, partition by partition; returns what was committed."""
        offsets = next_offsets(records)
        await self.commit(offsets)
        return offsets

    async def committed(self, partition: TopicPartition) -> int | None:
        try:
            return await self._consumer.committed(partition)
        except _CLIENT_ERRORS as exc:
            raise translate_error(exc, "committed") from exc

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._consumer.assignment())

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read `partition` again from `offset` (e.g. to redo uncommitted work)."""
        self._consumer.seek(partition, offset)

    async def lag(self) -> dict[str, int]:
        """Per topic, records not yet consumed (high watermark - position), summed over the
        assigned partitions whose high watermark is known from a fetch."""
        out: dict[str, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except (kafka_errors.KafkaError, AssertionError, ValueError):
                continue  # the partition is being revoked
            out[tp.topic] = out.get(tp.topic, 0) + max(0, high - position)
        return out

    def pause(self, *partitions: TopicPartition) -> None:
        self._consumer.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._consumer.resume(*partitions)


def next_offsets(records: Iterable[KafkaRecord]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the highest given record: what to commit."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


# ---------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class TopicSpec:
    """A topic the gateway needs. `replication_factor=None`: min(3, number of brokers)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


def _normalise(value: str | None) -> str:
    # list-valued configs ("compact,delete") compare as sets
    return ",".join(sorted(part.strip() for part in (value or "").split(",")))


@asynccontextmanager
async def _admin(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        await client.start()
    except _CLIENT_ERRORS as exc:
        await client.close()
        raise translate_error(exc, "admin connect") from exc
    try:
        yield client
    except kafka_errors.KafkaError as exc:
        raise translate_error(exc, "admin") from exc
    finally:
        await client.close()


async def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec], *,
                        timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; check existing ones. Returns {name: "created" | "exists"}.

    Idempotent and safe to run from several instances at once. An existing topic with fewer
    partitions than asked, or a different value for a config key the spec names, raises
    `kafka.topic`: changing those silently would reorder keys or drop records, so it is left
    to an operator (`kafka-topics --alter`, `kafka-configs --alter`).
    """
    specs = list(specs)
    if not specs:
        return {}
    outcome: dict[str, str] = {}
    async with _admin(settings) as admin:
        cluster = await admin.describe_cluster()
        brokers = max(1, len(cluster.get("brokers") or ()))
        new_topics = [NewTopic(spec.name, spec.partitions,
                               spec.replication_factor or min(3, brokers),
                               topic_configs=dict(spec.config)) for spec in specs]
        response = await admin.create_topics(new_topics, timeout_ms=int(timeout_s * 1000))
        for topic, code, *rest in response.topic_errors:
            message = rest[0] if rest else None
            if code == 0:
                outcome[topic] = "created"
            elif code == kafka_errors.TopicAlreadyExistsError.errno:
                outcome[topic] = "exists"
            else:
                error = kafka_errors.for_code(code)(message or "")
                raise translate_error(error, f"create topic {topic}")
        await _wait_for_leaders(admin, specs, timeout_s)
        await _check_existing(admin, [s for s in specs if outcome.get(s.name) == "exists"])
    for name, result in outcome.items():
        log.info("kafka.topic.ensured", topic=name, outcome=result)
    return outcome


async def _wait_for_leaders(admin: AIOKafkaAdminClient, specs: list[TopicSpec],
                            timeout_s: float) -> None:
    # A freshly created topic appears in metadata a moment later; wait so the first send does not
    # fail on "unknown topic".
    deadline = time.monotonic() + timeout_s
    names = [spec.name for spec in specs]
    while True:
        described = await admin.describe_topics(names)
        pending = [t["topic"] for t in described
                   if t["error_code"] != 0 or not t["partitions"]
                   or any(p["leader"] < 0 for p in t["partitions"])]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise KafkaConnectorError("kafka.unavailable", f"topics {', '.join(pending)} have no "
                                      f"leader after {timeout_s:.0f} s", transient=True)
        await asyncio.sleep(0.05)


async def _check_existing(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    described = {t["topic"]: t for t in await admin.describe_topics([s.name for s in specs])}
    problems: list[str] = []
    for spec in specs:
        count = len(described[spec.name]["partitions"])
        if count < spec.partitions:
            problems.append(f"{spec.name} has {count} partitions, needs {spec.partitions}")
    wanted = [s for s in specs if s.config]
    if wanted:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name, {k: None for k in s.config})
             for s in wanted])
        actual: dict[str, dict[str, str | None]] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                actual[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"]
                    for entry in resource["config_entries"]}
        for spec in wanted:
            for key, value in spec.config.items():
                have = actual.get(spec.name, {}).get(key)
                if _normalise(have) != _normalise(value):
                    problems.append(f"{spec.name} has {key}={have}, needs {value}")
    if problems:
        raise KafkaConnectorError("kafka.topic", "; ".join(problems) + ". Change the topic with "
                                  "kafka-topics/kafka-configs --alter, or the gateway's topic "
                                  "settings.", transient=False)


async def delete_topics(settings: KafkaSettings, names: Iterable[str]) -> None:
    """Delete topics (missing ones are ignored). Used by tests and tools, never by the daemon."""
    names = list(names)
    if not names:
        return
    async with _admin(settings) as admin:
        response = await admin.delete_topics(names)
        for topic, code, *_ in response.topic_error_codes:
            if code not in (0, kafka_errors.UnknownTopicOrPartitionError.errno):
                raise translate_error(kafka_errors.for_code(code)(), f"delete topic {topic}")


# ---------------------------------------------------------------------------------------------
# ACLs (DescribeAcls / CreateAcls, which aiokafka's admin client does not wrap)

# Kafka's wire codes (org.apache.kafka.common.resource / .acl).
ACL_RESOURCE_TYPES = {"any": 1, "topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
ACL_PATTERN_TYPES = {"any": 1, "match": 2, "literal": 3, "prefixed": 4}
ACL_OPERATIONS = {"any": 1, "all": 2, "read": 3, "write": 4, "create": 5, "delete": 6,
                  "alter": 7, "describe": 8, "cluster_action": 9, "describe_configs": 10,
                  "alter_configs": 11, "idempotent_write": 12}
ACL_PERMISSIONS = {"any": 1, "deny": 2, "allow": 3}
_SECURITY_DISABLED = 54   # the broker has no authorizer


@dataclass(frozen=True)
class AclEntry:
    """One ACL binding, in Kafka's words lower-cased: `principal` may (`permission`) do
    `operation` on the `resource_type` named `name` (exactly, or every name starting with it
    when `pattern` is "prefixed"; the literal name "*" is every resource of that type)."""

    principal: str
    resource_type: str       # topic | group | cluster | transactional_id
    name: str
    pattern: str             # literal | prefixed
    operation: str           # read | write | describe | all | ...
    permission: str = "allow"
    host: str = "*"

    def covers(self, resource_type: str, name: str) -> bool:
        """Whether this binding's resource pattern matches the resource `name`."""
        if self.resource_type != resource_type:
            return False
        if self.pattern == "literal":
            return self.name in ("*", name)
        if self.pattern == "prefixed":
            return name.startswith(self.name)
        return False


def _code_name(table: Mapping[str, int], code: int) -> str:
    return next((name for name, c in table.items() if c == code), f"unknown({code})")


async def describe_acls(settings: KafkaSettings) -> list[AclEntry] | None:
    """Every ACL of the cluster; None when the broker has no authorizer (everyone may do
    everything). Needs DESCRIBE on the cluster."""
    from aiokafka.protocol.admin import DescribeAclsRequest

    async with _admin(settings) as admin:
        response = await admin._send_request(DescribeAclsRequest(
            resource_type=ACL_RESOURCE_TYPES["any"], resource_name=None,
            resource_pattern_type_filter=ACL_PATTERN_TYPES["any"], principal=None, host=None,
            operation=ACL_OPERATIONS["any"], permission_type=ACL_PERMISSIONS["any"]))
    if response.error_code == _SECURITY_DISABLED:
        return None
    if response.error_code:
        raise translate_error(kafka_errors.for_code(response.error_code)(), "describe ACLs")
    out: list[AclEntry] = []
    for resource_type, name, pattern, acls in response.resources:
        for principal, host, operation, permission in acls:
            out.append(AclEntry(principal, _code_name(ACL_RESOURCE_TYPES, resource_type), name,
                                _code_name(ACL_PATTERN_TYPES, pattern),
                                _code_name(ACL_OPERATIONS, operation),
                                _code_name(ACL_PERMISSIONS, permission), host))
    return out


async def create_acls(settings: KafkaSettings, entries: Iterable[AclEntry]) -> int:
    """Create ACL bindings (existing ones are kept: creating a binding twice is a no-op in
    Kafka). Needs ALTER on the cluster. Returns how many were sent."""
    from aiokafka.protocol.admin import CreateAclsRequest

    count = 0
    async with _admin(settings) as admin:
        for entry in entries:
            response = await admin._send_request(CreateAclsRequest(
                resource_type=ACL_RESOURCE_TYPES[entry.resource_type],
                resource_name=entry.name,
                resource_pattern_type_filter=ACL_PATTERN_TYPES[entry.pattern],
                principal=entry.principal, host=entry.host,
                operation=ACL_OPERATIONS[entry.operation],
                permission_type=ACL_PERMISSIONS[entry.permission]))
            for code, message in response.creation_responses:
                if code == _SECURITY_DISABLED:
                    raise KafkaConnectorError("kafka.rejected", "create ACLs: the broker has "
                                              "no authorizer", transient=False)
                if code:
                    raise translate_error(kafka_errors.for_code(code)(message or ""),
                                          f"create ACL for {entry.principal}")
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Reading a whole topic


async def iter_topic(settings: KafkaSettings, topic: str, *,
                     isolation_level: str = "read_committed",
                     idle_timeout_s: float = 30.0) -> AsyncIterator[KafkaRecord]:
    """Every record of `topic` from the beginning up to its end as of the call.

    Records come partition by partition in offset order as they are fetched (interleaved across
    partitions). No consumer group is joined and nothing is committed. Raises
    `kafka.unavailable` if no progress is made for `idle_timeout_s`, `kafka.topic` if the topic
    does not exist.
    """
    async with _admin(settings) as admin:
        [described] = await admin.describe_topics([topic])
    if described["error_code"] == kafka_errors.UnknownTopicOrPartitionError.errno:
        raise KafkaConnectorError("kafka.topic", f"topic {topic} does not exist",
                                  transient=False)
    if described["error_code"] != 0:
        raise translate_error(kafka_errors.for_code(described["error_code"])(),
                              f"read {topic}")
    partitions = [TopicPartition(topic, p["partition"])
                  for p in sorted(described["partitions"], key=lambda p: p["partition"])]
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), group_id=None,
                                enable_auto_commit=False, isolation_level=isolation_level,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
    except _CLIENT_ERRORS as exc:
        await consumer.stop()
        raise translate_error(exc, f"read {topic}") from exc
    try:
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.seek_to_beginning(*partitions)
        except kafka_errors.KafkaError as exc:
            raise translate_error(exc, f"read {topic}") from exc
        remaining = {tp for tp in partitions if ends[tp] > 0}
        last_progress = time.monotonic()
        while remaining:
            try:
                batches = await consumer.getmany(*remaining, timeout_ms=200)
                for tp in sorted(batches):
                    for message in batches[tp]:
                        if message.offset < ends[tp]:
                            yield _to_record(message)
                done = {tp for tp in remaining if await consumer.position(tp) >= ends[tp]}
            except kafka_errors.KafkaError as exc:
                raise translate_error(exc, f"read {topic}") from exc
            if batches or done:
                last_progress = time.monotonic()
                remaining -= done
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise KafkaConnectorError("kafka.unavailable", f"reading {topic} made no progress "
                                          f"for {idle_timeout_s:.0f} s", transient=True)
    finally:
        await consumer.stop()


async def read_topic(settings: KafkaSettings, topic: str, *,
                     isolation_level: str = "read_committed",
                     idle_timeout_s: float = 30.0) -> list[KafkaRecord]:
    """`iter_topic` collected, ordered by (partition, offset)."""
    records = [record async for record in iter_topic(settings, topic,
                                                     isolation_level=isolation_level,
                                                     idle_timeout_s=idle_timeout_s)]
    return sorted(records, key=lambda r: (r.partition, r.offset))


__all__ = ["AclEntry", "create_acls", "describe_acls", "EventConsumer", "EventProducer", "KafkaConnectorError", "KafkaSettings", "REASONS",
           "RecordPosition", "TopicPartition", "TopicSpec", "delete_topics", "ensure_topics",
           "iter_topic", "next_offsets", "read_topic", "translate_error"]
