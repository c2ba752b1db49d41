"""The agency examples (examples/agency/python) make events the gateway accepts, and publish
them so that the gateway's own decoding reads them back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from connectors.cloudevents import CloudEvent
from connectors.kafka import read_topic
from gateway import conformance, events
from tests.deploy.conftest import REPO

EXAMPLES = REPO / "examples" / "agency" / "python"
sys.path.insert(0, str(EXAMPLES))
import edoc_events as ev  # noqa: E402

H55, H55_02 = "000.00.00.H55", "000.00.02.H55"
ARRIVED = json.loads(next(
    block for block in (REPO / "docs" / "events.md").read_text(encoding="utf-8")
    .split("<!-- example: vn.gov.edoc.document.arrived.v1 -->")[1].split("```")
    if block.startswith("json"))[4:])


def sample_document(tmp_path: Path) -> ev.Event:
    pdf = tmp_path / "1234-UBND-VP.pdf"
    pdf.write_bytes(b"%PDF-1.4 cong van")
    return ev.document_send(sender=(H55, "UBND tỉnh Thái Nguyên"),
                            recipients=[(H55_02, "Sở Nội vụ")], number="1234",
                            notation="UBND-VP", subject="V/v thử nghiệm", place="Thái Nguyên",
                            attachments=[ev.attachment(pdf)])


def test_example_document_passes_the_conformance_check_with_its_files(tmp_path):
    event = sample_document(tmp_path)
    assert ev.validate(event.type, event.data) == []
    raw = json.dumps(event.structured(), ensure_ascii=False).encode()
    result = conformance.check_line(raw, line=1, agencies=[H55], check_files=True)
    assert result.ok, result.error
    assert result.warnings == ()
    assert result.document_id == event.key


def test_example_receipt_answers_an_arrived_document(tmp_path):
    header = ARRIVED["package"]["message_header"]
    receipt = ev.receipt_send(sender=ARRIVED["recipient"], document=header, status_code="03",
                              description="Đã tiếp nhận", staff="Trần Thị B")
    raw = json.dumps(receipt.structured(), ensure_ascii=False).encode()
    result = conformance.check_line(raw, line=1, agencies=[ARRIVED["recipient"]])
    assert result.ok, result.error
    assert result.recipients == (header["from"]["organ_id"],)
    assert receipt.key == header["document_id"]


def test_example_validation_names_the_path_of_a_schema_error(tmp_path):
    event = sample_document(tmp_path)
    del event.data["message_header"]["subject"]
    problems = ev.validate(event.type, event.data)
    assert problems and problems[0].startswith("$.message_header:")
    assert "subject" in problems[0]


@pytest.mark.kafka
async def test_example_publish_is_read_back_by_the_gateway_decoder(tmp_path, kafka_settings,
                                                                   fresh_topic):
    from aiokafka import AIOKafkaProducer

    event = sample_document(tmp_path)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers,
                                enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await ev.publish(producer, event, fresh_topic)
    finally:
        await producer.stop()
    records = await read_topic(kafka_settings, fresh_topic, idle_timeout_s=5)
    assert len(records) == 1
    record = records[0]
    assert record.key == event.key.encode()
    decoded = CloudEvent.from_record(record)
    item = events.parse_incoming(decoded, agencies=[H55])
    assert (item.event_id, item.document_id, item.recipients) == (event.id, event.key, (H55_02,))
    # The example's own decoder reads the same record.
    received = ev.decode(record)
    assert (received.id, received.type, received.agency) == (event.id, events.DOCUMENT_SEND, H55)


def test_example_refuses_to_publish_an_invalid_event(tmp_path):
    import asyncio

    event = sample_document(tmp_path)
    event.data["secrecy"] = "unknown"

    class NoProducer:
        async def send_and_wait(self, *args, **kwargs):
            raise AssertionError("must not be called")

    with pytest.raises(ValueError, match="does not match its schema"):
        asyncio.run(ev.publish(NoProducer(), event))


TYPESCRIPT = REPO / "examples" / "agency" / "typescript"


@pytest.fixture(scope="module")
def typescript_build() -> Path:
    """The TypeScript example installed from its lockfile (`npm ci`) and compiled."""
    import shutil
    import subprocess

    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed for the TypeScript example")
    assert (TYPESCRIPT / "package-lock.json").is_file(), "the example must ship its lockfile"
    for command in ([npm, "ci", "--no-audit", "--no-fund", "--silent"],
                    [str(TYPESCRIPT / "node_modules" / ".bin" / "tsc"), "-p", "."]):
        done = subprocess.run(command, cwd=TYPESCRIPT, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0 and command[1] == "ci":
            pytest.skip(f"npm ci failed (registry unreachable?): {done.stderr[-400:]}")
        assert done.returncode == 0, done.stdout + done.stderr
    return TYPESCRIPT / "dist"


@pytest.mark.kafka
async def test_typescript_example_publishes_to_the_given_topic_and_the_gateway_reads_it(
        typescript_build, tmp_path, kafka_settings, fresh_topic):
    import asyncio

    pdf = tmp_path / "1234-UBND-VP.pdf"
    pdf.write_bytes(b"%PDF-1.4 cong van")
    proc = await asyncio.create_subprocess_exec(
        "node", str(typescript_build / "producer.js"), "--bootstrap",
        kafka_settings.bootstrap_servers, "--topic", fresh_topic, "--sender", H55,
        "--recipient", H55_02, "--file", str(pdf), "--number", "1234", "--notation",
        "UBND-VP", "--subject", "V/v thử nghiệm",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out, err)
    printed = dict(part.split("=", 1) for part in out.decode().split())
    records = await read_topic(kafka_settings, fresh_topic, idle_timeout_s=5)
    assert len(records) == 1
    decoded = CloudEvent.from_record(records[0])
    item = events.parse_incoming(decoded, agencies=[H55])
    assert (item.event_id, item.document_id, item.recipients) == \
        (printed["id"], printed["document_id"], (H55_02,))
    assert records[0].key == printed["document_id"].encode()
