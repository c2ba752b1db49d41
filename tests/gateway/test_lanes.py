"""The lane runner's batches: what queued up goes to the batch handler in order, at most
`max_batch` at a time, and offsets are committed only past finished batches.

The runner's consumer side (pause, resume, assignment, commit) is stood in for by a recorder:
what is tested is the runner's scheduling; records reaching it from a real broker are tested
end to end (test_e2e.py, the fault suite).
"""

from __future__ import annotations

import asyncio

from connectors.cloudevents import KafkaRecord
from connectors.kafka import TopicPartition
from gateway.lanes import LaneRunner

TOPIC = "edoc.outbound.documents"


class Recorder:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def record(offset: int, agency: str, partition: int = 0) -> KafkaRecord:
    return KafkaRecord(key=b"k", value=b"{}", headers=(("ce_agency", agency.encode()),),
                       topic=TOPIC, partition=partition, offset=offset)


def lane_of(r: KafkaRecord) -> str:
    return (r.header("ce_agency") or b"").decode()


async def test_queued_records_go_to_the_batch_handler_in_order_and_bounded() -> None:
    consumer = Recorder()
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def one(r: KafkaRecord) -> None:
        batches.append([r.offset])
        await gate.wait()

    async def many(rs: list[KafkaRecord]) -> None:
        batches.append([r.offset for r in rs])

    runner = LaneRunner(consumer, one, lane_of=lane_of, batch_handler=many, max_batch=3)
    runner.submit(record(0, "A"))
    await asyncio.sleep(0.01)
    for offset in range(1, 8):
        runner.submit(record(offset, "A"))
    await asyncio.sleep(0.01)
    # The first record found the lane idle and went alone; the rest queued behind it.
    assert batches == [[0]]
    gate.set()
    await asyncio.sleep(0.01)
    assert batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    await runner.commit()
    assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 8}


async def test_an_unfinished_batch_holds_the_commit_below_its_first_record() -> None:
    consumer = Recorder()
    release = asyncio.Event()

    async def one(r: KafkaRecord) -> None:
        if r.offset == 0:
            return
        await release.wait()

    async def many(rs: list[KafkaRecord]) -> None:
        await release.wait()

    runner = LaneRunner(consumer, one, lane_of=lane_of, batch_handler=many, max_batch=8)
    runner.submit(record(0, "A"))
    await asyncio.sleep(0.01)
    for offset in range(1, 5):
        runner.submit(record(offset, "A"))
    runner.submit(record(5, "B"))           # another lane of the same partition
    await asyncio.sleep(0.01)
    await runner.commit()
    assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 1}
    release.set()
    await asyncio.sleep(0.01)
    await runner.commit()
    assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 6}


async def test_without_a_batch_handler_records_go_one_by_one() -> None:
    consumer = Recorder()
    seen: list[int] = []

    async def one(r: KafkaRecord) -> None:
        seen.append(r.offset)
        await asyncio.sleep(0)

    runner = LaneRunner(consumer, one, lane_of=lane_of, max_batch=8)
    for offset in range(5):
        runner.submit(record(offset, "A"))
    await asyncio.sleep(0.05)
    assert seen == [0, 1, 2, 3, 4]


async def test_batches_finishing_one_after_another_share_a_commit_request() -> None:
    consumer = Recorder()

    async def one(r: KafkaRecord) -> None:
        await asyncio.sleep(0.005)

    runner = LaneRunner(consumer, one, lane_of=lane_of, commit_interval=0.5,
                        min_commit_gap=0.2)
    committing = asyncio.create_task(runner.commit_loop())
    try:
        for offset in range(40):       # 40 records finishing over about 0.2 s
            runner.submit(record(offset, "A"))
        await asyncio.sleep(0.6)
        # Not one request per finished record: at most one per gap, the last one complete.
        assert 1 <= len(consumer.commits) <= 4
        assert consumer.commits[-1] == {TopicPartition(TOPIC, 0): 40}
        marks = [c[TopicPartition(TOPIC, 0)] for c in consumer.commits]
        assert marks == sorted(marks)
    finally:
        await runner.stop(1)
        committing.cancel()
