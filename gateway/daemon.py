"""The daemon: configuration → connectors → pipelines, and a clean start and stop.

`run_daemon` builds everything from one `GatewayConfig`, serves /metrics, /healthz and /readyz,
runs the outbound consumer (lanes, ledger) and the inbound poller (under the poller lease), and
on SIGTERM stops taking work, lets in-flight work finish within the grace period, commits what is
done and exits 0. Work that did not finish is left uncommitted and is picked up again by the
next owner of its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from connectors.axis.client import AxisClient
from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import (EventConsumer, EventProducer, KafkaConnectorError, TopicSpec,
                              ensure_topics)
from connectors.store import FileStore
from edxml.errors import GatewayError
from gateway import events
from gateway.audit import AuditLog, producer_sender
from gateway.config import GatewayConfig, load_signers
from gateway.http import HealthState, start_http_server
from gateway.inbound import InboundPoller, PollerLease
from gateway.lanes import LaneRunner
from gateway.ledger import Ledger
from gateway.metrics import GatewayMetrics, known_reasons
from gateway.ops.console import console_for, keep_index_fresh
from gateway.ops.index import TopicSource
from gateway.tracing import OFF, Tracing
from gateway.outbound import OutboundPipeline, RetryPolicy
from gateway.senders import SigningSenders
from gateway.work import KeySpec, WorkerDied, WorkerPool, WorkerSetup

log = structlog.get_logger(__name__)

PER_AGENCY_PARTITIONS = 3

PIPELINE_REASON_MODULES = ("gateway.outbound", "gateway.inbound", "gateway.events",
                           "gateway.admission", "gateway.work",
                           "connectors.store", "connectors.cloudevents")


class InstrumentedAxis:
    """The axis client with every call timed and counted by operation and outcome."""

    _OPERATIONS = {
        "send_edoc": "sendEdoc", "get_received_edoc_list": "getReceivedEdocList",
        "get_edoc": "getEdoc", "download_edoc": "downloadEdoc", "update_status": "updateStatus",
        "get_sent_edoc_list": "getSentEdocList", "get_agencies_list": "getAgenciesList",
        "get_agencies_list_qd20": "getAgenciesListQD20", "count_receive_edoc": "countReceiveEdoc",
        "count_receive_status": "countReceiveStatus", "register_agency": "registerAgency",
        "delete_agency": "deleteAgency",
    }

    def __init__(self, inner: Any, metrics: GatewayMetrics, tracing: Tracing = OFF) -> None:
        self._inner = inner
        self._metrics = metrics
        self._tracing = tracing

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        operation = self._OPERATIONS.get(name)
        if operation is None:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                with self._tracing.span(f"axis.{operation}"):
                    result = await target(*args, **kwargs)
            except GatewayError as exc:
                self._metrics.axis_request(operation, time.monotonic() - started, exc.reason)
                raise
            self._metrics.axis_request(operation, time.monotonic() - started)
            return result

        return call


@dataclass
class Context:
    """What the pipelines share; built once by `run_daemon` (or by tests)."""

    config: GatewayConfig
    producer: EventProducer
    axis: Any
    store: FileStore
    ledger: Ledger
    pool: Any
    audit: AuditLog
    metrics: GatewayMetrics
    stopping: asyncio.Event
    retry: RetryPolicy
    known_recipient: Callable[[str], bool] | None = None
    sent_unreceipted: dict[str, float] = field(default_factory=dict)
    runner: LaneRunner | None = None
    tracing: Tracing = OFF

    def owns(self, record: KafkaRecord) -> bool:
        """Whether this instance still holds the record's partition (fencing before a send)."""
        return self.runner is None or self.runner.owns(record)

    @property
    def instance_id(self) -> str:
        return self.config.gateway.instance_id

    @property
    def source(self) -> str:
        return events.gateway_source(self.config.axis.systemid)

    @property
    def agencies(self) -> frozenset[str]:
        return self.config.agency_ids

    async def publish_event(self, topic: str, event: CloudEvent, *, key: bytes | str | None) -> None:
        # The agency's trace goes on in the event (CloudEvents `traceparent`), when tracing is on.
        with self.tracing.span("edoc.publish", topic=topic, event_type=event.type):
            await self.producer.publish(topic, self.tracing.stamp(event), key=key)

    async def publish_retrying(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """Keep trying to record something in Kafka: an outcome not recorded is not done.

        Gives up only when the daemon stops; the record then stays uncommitted.
        """
        delay = 0.2
        while True:
            try:
                return await send()
            except KafkaConnectorError as exc:
                if not exc.transient or self.stopping.is_set():
                    raise
                log.warning("kafka.retry", reason=exc.reason, error=exc.message, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def audit_record(self, **fields: Any) -> None:
        # A record that fails to send stays pending in the chain and goes out, unchanged, before
        # the next one; the work is not held up by it.
        try:
            await self.audit.record(**fields)
        except GatewayError as exc:
            log.warning("audit.deferred", reason=exc.reason, error=exc.message)


def topic_specs(config: GatewayConfig) -> list[TopicSpec]:
    t = config.topics
    # A topic per agency carries one agency's traffic: 3 partitions are enough for it and keep
    # a province of hundreds of agencies to a few thousand partitions; shared topics get 6.
    def partitions(template: str) -> int:
        return PER_AGENCY_PARTITIONS if "{agency}" in template else 6

    specs = [TopicSpec(topic, partitions=partitions(getattr(t, f"outbound_{kind}")))
             for topic, (kind, _) in config.outbound_topics().items()]
    specs += [TopicSpec(topic, partitions=partitions(t.delivery))
              for topic in config.delivery_topics()]
    specs += [TopicSpec(t.audit, partitions=3),
             TopicSpec(t.deadletter, partitions=1),
             TopicSpec(t.ledger, partitions=6, config={"cleanup.policy": "compact"}),
             TopicSpec(t.poller, partitions=1),
             TopicSpec(t.senders, partitions=1, config={"cleanup.policy": "compact"})]
    for topic, kind in config.inbound_topics().items():
        specs.append(TopicSpec(topic, partitions=partitions(getattr(t, f"inbound_{kind}"))))
    return specs


def _lane_of(record: KafkaRecord) -> str:
    agency = record.header("ce_agency")
    if agency:
        return agency.decode("utf-8", "replace")
    return (record.key or b"").decode("utf-8", "replace")


def file_store(config: GatewayConfig) -> FileStore:
    """The store as the pipelines use it: each agency reads only beneath its own attachment
    roots, and no reference can reach a file that holds a key or a secret."""
    return FileStore(config.store.root, agency_roots=config.attachment_roots(),
                     secret_files=config.secret_files)


def worker_setup(config: GatewayConfig) -> WorkerSetup:
    keys = tuple(KeySpec(a.organ_id, key=str(a.key) if a.key else None,
                         cert=str(a.cert) if a.cert else None,
                         chain=str(a.chain) if a.chain else None,
                         pkcs12=str(a.pkcs12) if a.pkcs12 else None,
                         password=a.password.reveal() if a.password else None)
                 for a in config.agencies)
    inbound = config.inbound
    return WorkerSetup(keys=keys, trust_paths=(str(inbound.trust_dir),),
                       crl_files=tuple(str(p) for p in inbound.crl_files),
                       allow_sha1=inbound.allow_sha1,
                       max_attachment_bytes=inbound.max_attachment_bytes,
                       legacy_sha1_senders=inbound.legacy_sha1_senders,
                       certificate_organ_ids=tuple(inbound.certificate_organ_id_map().items()),
                       require_crl=inbound.require_crl,
                       memory_limit_bytes=config.gateway.worker_memory_bytes or None)


async def _directory(axis: Any) -> Callable[[str], bool] | None:
    """Which agencies the axis knows (both identifier forms), for the unknown-recipient check."""
    try:
        agencies = await axis.get_agencies_list()
        qd20 = await axis.get_agencies_list_qd20()
    except GatewayError as exc:
        log.warning("axis.directory_unavailable", reason=exc.reason, error=exc.message)
        return None
    known = {a.code for a in agencies} | {a.code for a in qd20} | {a.code102 for a in qd20}
    known.discard("")
    return known.__contains__


async def run_daemon(config: GatewayConfig, *, stop: asyncio.Event | None = None,
                     install_signals: bool = True, tracing: Tracing | None = None) -> int:
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)

    if tracing is None:
        import os

        from gateway.ops.version import gateway_version

        tracing = Tracing.from_env(os.environ, instance=config.gateway.instance_id,
                                   version=gateway_version())
    # The event schemas compiled now, not by the first event of each kind.
    events.prepare_validators()
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, reasons=known_reasons(PIPELINE_REASON_MODULES),
                             agencies=config.agency_ids)
    health = HealthState(("kafka", "axis", "keys", "workers"))
    console = console_for(config, health)
    http = await start_http_server(registry, health, host=config.http.host, port=config.http.port,
                                   setup=console.setup if console is not None else None)
    log.info("gateway.starting", instance=config.gateway.instance_id, http=http.url,
             console=f"{http.url}/" if console is not None else None,
             agencies=sorted(config.agency_ids), systemid=config.axis.systemid)

    signers = await asyncio.to_thread(load_signers, config)
    for organ_id, signer in signers.items():
        metrics.certificate_not_after.labels(organ_id).set(
            signer.certificate.not_valid_after_utc.timestamp())
    crl_gauges(config, metrics)
    if console is not None:
        console.state.certificates = {organ_id: signer.certificate.not_valid_after_utc
                                      for organ_id, signer in signers.items()}
    health.set_ok("keys")

    settings = config.kafka.settings()
    while True:
        try:
            await ensure_topics(settings, topic_specs(config))
            break
        except KafkaConnectorError as exc:
            if not exc.transient or stopping.is_set():
                raise
            health.set_failed("kafka", exc.reason)
            log.warning("gateway.kafka_unavailable", error=exc.message)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), 2)
    # No linger: every outcome is awaited before a record counts as done, so waiting to fill a
    # batch only adds latency (concurrent sends are still batched).
    producer = EventProducer(settings, linger_ms=0)
    await producer.start()
    health.set_ok("kafka")

    audit = AuditLog(config.gateway.instance_id, producer_sender(producer, config.topics.audit),
                     source=events.gateway_source(config.axis.systemid), metrics=metrics)

    async def ledger_send(key: bytes, value: bytes) -> None:
        await producer.send_record(config.topics.ledger, KafkaRecord(key=key, value=value))

    ledger = Ledger(settings, config.topics.ledger, ledger_send)
    pool = WorkerPool(worker_setup(config), config.gateway.workers)
    health.set_ok("workers")
    axis = InstrumentedAxis(AxisClient(config.axis.client_config()), metrics, tracing)
    store = file_store(config)
    r = config.retry
    ctx = Context(config=config, producer=producer, axis=axis, store=store, ledger=ledger,
                  pool=pool, audit=audit, metrics=metrics, stopping=stopping,
                  retry=RetryPolicy(r.max_attempts, r.initial_seconds, r.max_seconds,
                                    r.total_seconds), tracing=tracing)
    ctx.known_recipient = await _directory(axis)
    await ctx.audit_record(flow="gateway", step="started", outcome="ok")

    outbound = OutboundPipeline(ctx=ctx)
    grace = config.gateway.shutdown_grace_seconds
    runner: LaneRunner | None = None

    async def on_assigned(partitions: frozenset[Any]) -> None:
        ledger.invalidate()
        if await ledger.load(stopping):
            log.info("gateway.ledger_loaded", entries=len(ledger))

    async def on_revoked(partitions: frozenset[Any]) -> None:
        ledger.invalidate()
        if runner is not None:
            await runner.release(partitions, grace)

    # Every agency's outbound topics (one pair per agency in the per-agency layout): the topic a
    # record came from says which agency sent it.
    consumer = EventConsumer(settings, sorted(config.outbound_topics()),
                             group_id=config.kafka.group_id, on_assigned=on_assigned,
                             on_revoked=on_revoked, **config.kafka.consumer_options())
    # Batches of a lane's queued records (one acknowledged Kafka round for their intents, one
    # for their outcomes); one by one when tracing, so that each record has its own span.
    runner = LaneRunner(consumer, tracing.wrap(outbound.handle), lane_of=_lane_of,
                        batch_handler=outbound.handle_batch,
                        max_batch=1 if tracing.enabled else config.gateway.batch)
    ctx.runner = runner
    await consumer.start()

    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_consume(consumer, runner, stopping), name="consume"),
        asyncio.create_task(runner.commit_loop(), name="commit"),
        asyncio.create_task(_watch(ctx, health, runner, consumer), name="watch"),
        asyncio.create_task(watch_workers(pool, health, metrics), name="workers"),
    ]
    if console is not None:
        tasks.append(asyncio.create_task(keep_index_fresh(
            console.state, settings, [TopicSource.from_config(config)], stopping),
            name="console-index"))
    lease = None
    if config.axis.poll:
        lease = PollerLease(settings, config.topics.poller,
                            f"{config.kafka.group_id}.poller.{config.axis.systemid}",
                            session_timeout_ms=int(config.kafka.session_timeout_seconds * 1000))
        await lease.start()
        async def senders_send(key: bytes, value: bytes) -> None:
            await producer.send_record(config.topics.senders, KafkaRecord(key=key, value=value))

        senders = SigningSenders(settings, config.topics.senders, senders_send)
        tasks.append(asyncio.create_task(
            InboundPoller(ctx=ctx, senders=senders).run(lease, stopping), name="inbound"))
    metrics.up.set(1)
    log.info("gateway.ready")

    exit_code = 0
    stop_wait = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stop_wait and task.exception() is not None:
            log.error("gateway.task_failed", task=task.get_name(), error=repr(task.exception()))
            exit_code = 1
    stopping.set()
    log.info("gateway.stopping", in_flight=runner.in_flight)
    metrics.up.set(0)
    with contextlib.suppress(Exception):
        await runner.stop(grace)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stop_wait.cancel()
    if lease is not None:
        with contextlib.suppress(Exception):
            await lease.stop()
    with contextlib.suppress(Exception):
        await consumer.stop()
    with contextlib.suppress(Exception):
        await audit.close()
    with contextlib.suppress(Exception):
        await producer.stop()
    pool.shutdown(wait=True, cancel_futures=True)
    with contextlib.suppress(Exception):
        await axis.aclose()
    await http.stop()
    with contextlib.suppress(Exception):
        tracing.shutdown()
    log.info("gateway.stopped", exit_code=exit_code)
    return exit_code


async def _consume(consumer: EventConsumer, runner: LaneRunner, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            records = await consumer.poll(timeout_ms=500)
        except KafkaConnectorError as exc:
            if not exc.transient:
                raise
            log.warning("gateway.poll_failed", reason=exc.reason, error=exc.message)
            await asyncio.sleep(1)
            continue
        for record in records:
            runner.submit(record)
        failed = runner.failed_lanes()
        if failed:
            raise RuntimeError(f"a lane failed: {failed[0]!r}")


async def watch_workers(pool: WorkerPool, health: HealthState, metrics: GatewayMetrics, *,
                        interval: float = 1.0, probe_every: int = 10) -> None:
    """Readiness of the worker pool; raises (and so stops the daemon, exit 1, for its
    supervisor to restart it) once the pool cannot be recreated.

    A dead worker makes the pool broken until it is replaced: not ready meanwhile. A trivial
    task is sent through the pool every `probe_every` rounds, so that workers unable to start
    are found even when no package is waiting.
    """
    import os

    loop = asyncio.get_running_loop()
    seen = 0
    probe: asyncio.Future[Any] | None = None
    rounds = probed = 0
    while True:
        if probe is not None and probe.done():
            if not probe.cancelled() and isinstance(probe.exception(), WorkerDied):
                log.warning("gateway.worker_probe_failed", error=str(probe.exception()))
            probe = None
        if pool.broken:
            health.set_failed("workers", "a worker process died; the pool is being recreated")
        if not pool.heal():
            health.set_failed("workers", pool.failed or "the worker pool failed")
            raise RuntimeError(f"worker pool: {pool.failed}")
        if pool.recreated != seen:
            metrics.worker_pool_recreated.inc(pool.recreated - seen)
            seen = pool.recreated
        if not pool.broken:
            health.set_ok("workers")
        # Probe now and then, and at once after the pool was recreated.
        if probe is None and (rounds % probe_every == 0 or probed != pool.recreated):
            probed = pool.recreated
            try:
                probe = loop.run_in_executor(pool, os.getpid)
            except WorkerDied:
                probe = None
        rounds += 1
        await asyncio.sleep(interval)


async def _watch(ctx: Context, health: HealthState, runner: LaneRunner,
                 consumer: EventConsumer) -> None:
    """Readiness and gauges: axis reachable, in-flight work, consumer lag."""
    while True:
        try:
            await ctx.axis.count_receive_edoc()
            health.set_ok("axis")
        except GatewayError as exc:
            health.set_failed("axis", exc.reason)
        ctx.metrics.in_flight.labels("outbound").set(runner.in_flight)
        oldest = min(ctx.sent_unreceipted.values(), default=None)
        ctx.metrics.oldest_unreceipted_seconds.set(0 if oldest is None else time.time() - oldest)
        for topic, lag in (await consumer.lag()).items():
            ctx.metrics.consumer_lag.labels(topic).set(lag)
        await asyncio.sleep(10)


def crl_gauges(config: GatewayConfig, metrics: GatewayMetrics) -> None:
    """nextUpdate of each configured CRL file; an unreadable file is logged, not fatal (the
    trust store reports it when it is used)."""
    from cryptography import x509

    for path in config.inbound.crl_files:
        try:
            data = path.read_bytes()
            crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data[:100] \
                else x509.load_der_x509_crl(data)
        except (OSError, ValueError) as exc:
            log.warning("gateway.crl_unreadable", crl=path.name, error=str(exc)[:200])
            continue
        if crl.next_update_utc is not None:
            metrics.crl_next_update.labels(path.name).set(crl.next_update_utc.timestamp())


def default_instance_id() -> str:
    import os

    return f"{socket.gethostname()}-{os.getpid()}"
