"""Tracing: off costs nothing; on, a document's path is a trace continued from the agency's
`ce_traceparent`, exported by OTLP/HTTP (a real gateway process, the real broker, the axis
simulator, and an OTLP receiver over HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from aiohttp import web

from connectors.cloudevents import CloudEvent, KafkaRecord
from connectors.kafka import EventProducer
from gateway import events
from gateway.tracing import OFF, Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _event() -> CloudEvent:
    return CloudEvent(id="e1", source="urn:x", type=events.DELIVERY_ACCEPTED, data={"a": 1},
                      time=datetime.now(timezone.utc))


def test_off_is_free_and_changes_nothing() -> None:
    assert not OFF.enabled
    assert OFF.span("a") is OFF.span("b", record=object())  # one shared no-op
    handle = lambda record: None  # noqa: E731
    assert OFF.wrap(handle) is handle
    event = _event()
    assert OFF.stamp(event) is event


def test_off_without_an_endpoint_or_when_disabled() -> None:
    assert Tracing.from_env({}, instance="gw", version="1") is OFF
    assert Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                             "OTEL_SDK_DISABLED": "true"}, instance="gw", version="1") is OFF
    assert Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                             "OTEL_TRACES_EXPORTER": "none"}, instance="gw", version="1") is OFF


def test_a_record_s_traceparent_is_the_parent_and_events_carry_the_span_on() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("test"))
    record = KafkaRecord(b"k", b"{}", (("ce_traceparent", PARENT.encode()),), topic="t",
                         partition=0, offset=7)
    with tracing.span("edoc.consume", record=record):
        with tracing.span("edoc.publish"):
            stamped = tracing.stamp(_event())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert format(spans["edoc.consume"].context.trace_id, "032x") == TRACE_ID
    assert format(spans["edoc.consume"].parent.span_id, "016x") == "00f067aa0ba902b7"
    assert spans["edoc.publish"].parent.span_id == spans["edoc.consume"].context.span_id
    traceparent = stamped.extensions["traceparent"]
    assert traceparent.split("-")[1] == TRACE_ID
    assert traceparent.split("-")[2] == format(spans["edoc.publish"].context.span_id, "016x")
    assert stamped.to_record(b"k").header("ce_traceparent") == traceparent.encode()


@pytest.fixture
async def otlp_receiver():
    """An OTLP/HTTP trace receiver: decodes each export request and keeps the spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import \
        ExportTraceServiceRequest

    spans: list[tuple[str, str, str]] = []  # (name, trace id, service.instance.id)

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    spans.append((span.name, span.trace_id.hex(),
                                  attrs.get("service.instance.id", "")))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", spans
    finally:
        await runner.cleanup()


@pytest.mark.kafka
async def test_a_document_s_path_is_one_trace_from_the_agency_s_traceparent(
        kafka_bootstrap, tmp_path, monkeypatch, otlp_receiver):
    from gateway.lab import THAI_NGUYEN, AgencyClient, Lab

    endpoint, spans = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    lab = Lab(tmp_path / "lab", kafka_bootstrap)
    lab.start()
    try:
        lab.start_gateway(THAI_NGUYEN)
        tn = AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")
        doc = tn.document(to=[("000.00.00.H41", "UBND tỉnh Nghệ An")], number="501",
                          notation="UBND-VP", subject="V/v theo dõi vết",
                          attachments=[tn.attachment("a.pdf", b"%PDF-1.4\n%%EOF\n")])
        key = doc["message_header"]["document_id"]
        event = CloudEvent(id=str(uuid.uuid4()), source=tn.source, type=events.DOCUMENT_SEND,
                           data=doc, time=datetime.now(timezone.utc), subject=key,
                           extensions={"agency": "000.00.00.H55", "traceparent": PARENT})
        async with EventProducer(tn.settings) as producer:
            await producer.publish(tn.topics["outbound_documents"], event, key=key)
        (delivery,) = await tn.wait_for("delivery", lambda e: (e.data or {}).get("event_id")
                                        == event.id)
        assert delivery.type == events.DELIVERY_ACCEPTED
        assert delivery.extensions["traceparent"].split("-")[1] == TRACE_ID

        wanted = {"edoc.consume", "edoc.build_sign", "axis.sendEdoc", "edoc.publish"}
        for _ in range(200):  # the batch processor exports every 200 ms
            names = {name for name, trace, _ in spans if trace == TRACE_ID}
            if wanted <= names:
                break
            await asyncio.sleep(0.1)
        assert wanted <= names, sorted(set(spans))
    finally:
        lab.stop()
