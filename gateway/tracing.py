"""OpenTelemetry spans for a document's path, carried in the CloudEvents `traceparent` extension.

    agency event (ce_traceparent) ──► edoc.consume ─┬─ edoc.build_sign
                                                    ├─ axis.sendEdoc (+ the aiohttp client span)
                                                    └─ edoc.publish ──► delivery event (ce_traceparent)

A record's `ce_traceparent`/`ce_tracestate` headers (the CloudEvents distributed-tracing
extension in Kafka binary mode) are the parent of `edoc.consume`; every event the gateway
publishes while handling it carries the current span as its own `traceparent`, so the agency's
trace goes on in its consumer.

Off unless an OTLP endpoint is configured with the standard variables
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none` force it off). Off costs nothing: OpenTelemetry is not even
imported, `span` returns one shared no-op context manager and `wrap` returns the handler itself.
The packages come with the `tracing` extra (`pip install 'edoc-gateway[tracing]'`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

_NULL = contextlib.nullcontext()

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"


class Tracing:
    """The gateway's tracer, or nothing (`OFF`)."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, instance: str, version: str) -> Tracing:
        """Tracing exported by OTLP/HTTP when the environment names an endpoint; else `OFF`."""
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true" \
                or env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
            return OFF
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "edoc-gateway"),
                                    "service.instance.id": instance,
                                    "service.version": version})
        provider = TracerProvider(resource=resource)
        # The exporter reads the endpoint, headers and timeouts from the same variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        with contextlib.suppress(ImportError):
            # Each axis HTTP call as a client span under the step that made it.
            from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

            AioHttpClientInstrumentor().instrument(tracer_provider=provider)
        return cls(provider.get_tracer("edoc-gateway", version), provider)

    def span(self, name: str, *, record: Any = None, **attributes: Any) -> Any:
        """A context manager: a span named `name` under the current one, or, given a Kafka
        `record`, under the trace its `ce_traceparent` header carries."""
        if self._tracer is None:
            return _NULL
        from opentelemetry.trace import SpanKind

        context = None
        kind = SpanKind.INTERNAL
        if record is not None:
            from opentelemetry.trace.propagation.tracecontext import \
                TraceContextTextMapPropagator

            carrier = {}
            for header, field in (("ce_traceparent", TRACEPARENT), ("ce_tracestate", TRACESTATE)):
                value = record.header(header)
                if value:
                    carrier[field] = value.decode("ascii", "replace")
            context = TraceContextTextMapPropagator().extract(carrier)
            kind = SpanKind.CONSUMER
            attributes = {"messaging.system": "kafka", "messaging.destination.name":
                          record.topic, "messaging.kafka.partition": record.partition,
                          "messaging.kafka.offset": record.offset, **attributes}
        clean = {k: v for k, v in attributes.items() if isinstance(v, (str, int, float, bool))}
        return self._tracer.start_as_current_span(name, context=context, kind=kind,
                                                  attributes=clean)

    def wrap(self, handle: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """`handle(record)` inside an `edoc.consume` span continuing the record's trace."""
        if self._tracer is None:
            return handle

        async def traced(record: Any) -> None:
            with self.span("edoc.consume", record=record):
                await handle(record)

        return traced

    def stamp(self, event: Any) -> Any:
        """`event` (a CloudEvent) with the current span as its `traceparent` extension."""
        if self._tracer is None:
            return event
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        if TRACEPARENT not in carrier:
            return event
        extensions = {**event.extensions, **carrier}
        return dataclasses.replace(event, extensions=extensions)

    def shutdown(self) -> None:
        """Export what is pending (at a graceful stop)."""
        if self._provider is not None:
            self._provider.shutdown()


OFF = Tracing()


def step(ctx: Any, name: str, **attributes: Any) -> Any:
    """`with step(ctx, "edoc.build_sign"):` in a pipeline: a span when the daemon's context
    traces, else nothing."""
    tracing = getattr(ctx, "tracing", OFF)
    return tracing.span(name, **attributes)


__all__ = ["OFF", "Tracing", "step"]
