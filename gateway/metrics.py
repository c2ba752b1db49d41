"""Every Prometheus metric of the gateway, in one typed list.

`METRICS` is the list (name, kind, help, labels, buckets); `GatewayMetrics(registry)` creates
them on the caller's `CollectorRegistry` (nothing is registered at import time, so tests and
several daemons in one process do not collide). Names follow the Prometheus conventions: prefix
`edoc_gateway_`, base units in the name (`_seconds`), counters end in `_total`. Labels take
values from small fixed sets (`flow`, `outcome`, `reason`, `operation`, `topic`); `agency` is
used only for the certificate gauge, whose agencies come from the configuration.

Reason labels go through `bounded_reason`, which maps any reason that is not a known code of
one of the modules' `REASONS` tables to `other`, so a bug or a hostile input cannot create
unbounded series.

See docs/operations-metrics.md for what each metric means and how to alert on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, Info,
                               PlatformCollector, ProcessCollector, disable_created_metrics)

PREFIX = "edoc_gateway_"
OTHER_REASON = "other"
NO_REASON = "none"

Kind = Literal["counter", "gauge", "histogram", "info"]

# Seconds from an agency's event to the axis's answer: seconds normally, up to hours when the
# axis is down and the record waits in retries.
_END_TO_END_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 14400)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_CPU_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: `name` is the name as exposed (`..._total` for counters, `..._info` for
    the info metric)."""

    attribute: str
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    @property
    def sample_names(self) -> tuple[str, ...]:
        """The series names a query can use (`_created` series left out)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("messages", "edoc_gateway_messages_total", "counter",
               "Messages finished, by flow, outcome (ok, failed, refused, quarantined, ...) and "
               "reason code (none when ok).", ("flow", "outcome", "reason")),
    MetricSpec("agency_messages", "edoc_gateway_agency_messages_total", "counter",
               "Messages finished per configured agency (the sender for outbound flows, the "
               "recipient for inbound), by flow and outcome; other values count as 'other'.",
               ("agency", "flow", "outcome")),
    MetricSpec("event_to_axis_seconds", "edoc_gateway_event_to_axis_seconds", "histogram",
               "Outbound: seconds from the agency's event (ce_time) to the axis accepting the "
               "package.", ("flow",), _END_TO_END_BUCKETS),
    MetricSpec("axis_to_kafka_seconds", "edoc_gateway_axis_to_kafka_seconds", "histogram",
               "Inbound: seconds from the message appearing in the axis list to its event "
               "being stored in Kafka.", ("flow",), _END_TO_END_BUCKETS),
    MetricSpec("retries", "edoc_gateway_retries_total", "counter",
               "Retries of a transient failure, by flow and reason code.", ("flow", "reason")),
    MetricSpec("dead_letters", "edoc_gateway_dead_letters_total", "counter",
               "Records written to the dead-letter topic, by flow and reason code.",
               ("flow", "reason")),
    MetricSpec("internal_errors", "edoc_gateway_internal_errors_total", "counter",
               "Records whose handling raised an unexpected exception (a bug, never an input "
               "problem); each ended as a dead letter with reason internal.error, by flow.",
               ("flow",)),
    MetricSpec("in_flight", "edoc_gateway_messages_in_flight", "gauge",
               "Messages taken in and not yet finished, by flow.", ("flow",)),
    MetricSpec("axis_request_seconds", "edoc_gateway_axis_request_seconds", "histogram",
               "Axis API calls: seconds per call, by operation (sendEdoc, getEdoc, ...) and "
               "outcome (ok or the reason code).", ("operation", "outcome"), _REQUEST_BUCKETS),
    MetricSpec("oldest_unreceipted_seconds", "edoc_gateway_oldest_unreceipted_seconds", "gauge",
               "Age in seconds of the oldest document sent by this gateway that has no "
               "receipt (status) from its recipient yet; 0 when there is none."),
    MetricSpec("certificate_not_after", "edoc_gateway_certificate_not_after_timestamp_seconds",
               "gauge", "Each agency's signing certificate: its notAfter (expiry) as a Unix "
               "timestamp; alert on `... - time()`.", ("agency",)),
    MetricSpec("crl_next_update", "edoc_gateway_crl_next_update_timestamp_seconds", "gauge",
               "Each configured CRL file (by file name): its nextUpdate as a Unix timestamp; a "
               "value in the past means the CRL is stale and revocations may be missed.",
               ("crl",)),
    MetricSpec("audit_records", "edoc_gateway_audit_records_total", "counter",
               "Audit records acknowledged by Kafka, by flow.", ("flow",)),
    MetricSpec("inbound_polls", "edoc_gateway_inbound_polls_total", "counter",
               "Polls of the axis's received lists, by kind (edoc, status) and outcome (ok or "
               "the reason code).", ("kind", "outcome")),
    MetricSpec("package_seconds", "edoc_gateway_package_seconds", "histogram",
               "CPU work on packages: seconds per build, sign or verify.", ("operation",),
               _CPU_BUCKETS),
    MetricSpec("consumer_lag", "edoc_gateway_consumer_lag", "gauge",
               "Records on the input topic not yet processed by this instance's consumer "
               "group (sum over its assigned partitions), by topic.", ("topic",)),
    MetricSpec("worker_pool_recreated", "edoc_gateway_worker_pool_recreated_total", "counter",
               "Times the worker process pool was recreated after a worker died (signal, OOM "
               "killer, crash)."),
    MetricSpec("up", "edoc_gateway_up", "gauge",
               "1 while the daemon runs (set at start, 0 at shutdown)."),
    MetricSpec("build", "edoc_gateway_build_info", "info",
               "Version of the running gateway (value always 1).", ("version", "python")),
)

#: Names as exposed (the `# TYPE` names of the text format): what a query or dashboard names,
#: with `_bucket`/`_sum`/`_count` added for histograms.
METRIC_NAMES: tuple[str, ...] = tuple(spec.name for spec in METRICS)

#: Every series name a query can use.
SAMPLE_NAMES: frozenset[str] = frozenset(name for spec in METRICS for name in spec.sample_names)

#: Label values of `outcome` on messages_total.
OUTCOMES = ("ok", "failed", "refused", "quarantined", "dead-lettered")

#: Modules whose `REASONS` tables are the known reason codes: the layers below the pipelines.
#: The daemon adds its pipeline modules with `known_reasons(extra)` (importing them from here
#: would make this module depend on the whole daemon). A module with a new `REASONS` table
#: belongs here or there, or its reasons are counted as `other`.
REASON_MODULES: tuple[str, ...] = (
    "edxml.xmlsafe", "edxml.reader", "edxml.writer", "edxml.jsonform", "edxml.values",
    "edxml.text", "edxml.signature", "edxml.trust",
    "connectors.cloudevents", "connectors.kafka", "connectors.store", "connectors.axis.errors",
    "gateway.config", "gateway.audit", "gateway.dlq",
)


def reasons_of(modules: Iterable[str]) -> frozenset[str]:
    """The reason codes in the modules' `REASONS` tables (keys of a dict, or a sequence).

    A module that is not installed is skipped (an optional part); one that is installed must
    have a `REASONS` table.
    """
    known: set[str] = set()
    for name in modules:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        table = getattr(module, "REASONS")
        known.update(str(code) for code in table)
    return frozenset(known)


@lru_cache(maxsize=8)
def known_reasons(extra_modules: tuple[str, ...] = ()) -> frozenset[str]:
    """Reason codes of `REASON_MODULES` and `extra_modules` (imported on first use).

    The daemon: `GatewayMetrics(registry, reasons=known_reasons(("gateway.outbound", ...)))`.
    """
    return reasons_of(REASON_MODULES + tuple(extra_modules))


def bounded_reason(reason: str | None, known: Collection[str] | None = None) -> str:
    """`reason` if it is a known code, `none` for no reason, `other` for anything else."""
    if reason is None or reason == "":
        return NO_REASON
    if known is None:
        known = known_reasons()
    return reason if reason in known else OTHER_REASON


class GatewayMetrics:
    """The metrics of one daemon, registered on `registry`.

    Attributes are the prometheus-client objects (one per `METRICS` entry); the helper methods
    bound the reason label.
    """

    messages: Counter
    event_to_axis_seconds: Histogram
    axis_to_kafka_seconds: Histogram
    retries: Counter
    dead_letters: Counter
    internal_errors: Counter
    in_flight: Gauge
    axis_request_seconds: Histogram
    oldest_unreceipted_seconds: Gauge
    certificate_not_after: Gauge
    crl_next_update: Gauge
    audit_records: Counter
    inbound_polls: Counter
    package_seconds: Histogram
    consumer_lag: Gauge
    agency_messages: Counter
    up: Gauge
    build: Info

    def __init__(self, registry: CollectorRegistry, *, version: str | None = None,
                 reasons: Collection[str] | None = None,
                 agencies: Collection[str] = (), runtime: bool = True) -> None:
        self.registry = registry
        self._reasons = frozenset(reasons) if reasons is not None else None
        self._agencies = frozenset(agencies)
        # `_created` series double the counters and histograms and no dashboard reads them.
        disable_created_metrics()
        for spec in METRICS:
            setattr(self, spec.attribute, _create(spec, registry))
        if runtime:
            # process_* (CPU, memory, file descriptors), python_info and python_gc_*.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.build.info({"version": version or _version(), "python": platform.python_version()})
        # Present at 0 from the start, so the alert on its increase sees the first one.
        for flow in ("document", "receipt"):
            self.internal_errors.labels(flow=flow)

    def reason(self, reason: str | None) -> str:
        return bounded_reason(reason, self._reasons)

    def message(self, flow: str, outcome: str, reason: str | None = None, *,
                agency: str | None = None) -> None:
        """Count one finished message (and, when known, for its agency: a label bounded by the
        configured agency list)."""
        self.messages.labels(flow=flow, outcome=outcome, reason=self.reason(reason)).inc()
        if agency is not None:
            label = agency if agency in self._agencies else "other"
            self.agency_messages.labels(agency=label, flow=flow, outcome=outcome).inc()

    def retry(self, flow: str, reason: str | None) -> None:
        self.retries.labels(flow=flow, reason=self.reason(reason)).inc()

    def dead_letter(self, flow: str, reason: str | None) -> None:
        self.dead_letters.labels(flow=flow, reason=self.reason(reason)).inc()

    def axis_request(self, operation: str, seconds: float, reason: str | None = None) -> None:
        """One axis call; `reason` None means it succeeded."""
        outcome = "ok" if reason is None else self.reason(reason)
        self.axis_request_seconds.labels(operation=operation, outcome=outcome).observe(seconds)

    def inbound_poll(self, kind: str, reason: str | None = None) -> None:
        """One poll of the axis's received list (`kind` edoc or status); None: it worked."""
        outcome = "ok" if reason is None else self.reason(reason)
        self.inbound_polls.labels(kind=kind, outcome=outcome).inc()


def _create(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram | Info:
    if spec.kind == "counter":
        return Counter(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "histogram":
        assert spec.buckets is not None
        return Histogram(spec.name, spec.help, spec.labels, registry=registry,
                         buckets=spec.buckets)
    # prometheus-client adds the _info suffix itself
    return Info(spec.name.removesuffix("_info"), spec.help, registry=registry)


def _version() -> str:
    from gateway.ops.version import gateway_version

    return gateway_version()


__all__ = ["GatewayMetrics", "METRICS", "METRIC_NAMES", "MetricSpec", "NO_REASON",
           "OTHER_REASON", "OUTCOMES", "PREFIX", "REASON_MODULES", "SAMPLE_NAMES",
           "bounded_reason", "known_reasons", "reasons_of"]
