"""Run consumed records concurrently by lane and commit only what is finished, in order.

A lane is (partition, agency): records of one lane are handled one after another (so one
document's events keep their order), or, with a batch handler, in batches of what queued up
while the previous batch was worked on (the handler keeps their order); different lanes run
side by side (so one agency waiting
out an axis failure does not hold up another's). Per partition, the committed offset never
passes a record that is still being handled: it is the lowest unfinished offset, or one past the
last record when all are done. A partition with too much in flight is paused rather than
re-polled, which is the backpressure signal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from connectors.cloudevents import KafkaRecord
from connectors.kafka import EventConsumer, TopicPartition

log = structlog.get_logger(__name__)

Handler = Callable[[KafkaRecord], Awaitable[None]]
BatchHandler = Callable[[list[KafkaRecord]], Awaitable[None]]


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    highest: int = -1           # highest offset handed to a lane
    committed: int | None = None
    paused: bool = False

    def watermark(self) -> int | None:
        """The offset to commit: the lowest unfinished one, or one past the last handled."""
        if self.pending:
            return min(self.pending)
        return self.highest + 1 if self.highest >= 0 else None


class Abandoned(Exception):
    """The record's partition was taken away: stop without an outcome; the new owner does it."""


class LaneRunner:
    def __init__(self, consumer: EventConsumer, handler: Handler, *,
                 lane_of: Callable[[KafkaRecord], str], max_in_flight: int = 200,
                 commit_interval: float = 0.5, batch_handler: BatchHandler | None = None,
                 max_batch: int = 1, min_commit_gap: float = 0.1) -> None:
        self._consumer = consumer
        self._handler = handler
        # With a batch handler, a lane hands it what has queued up (up to max_batch records,
        # in order) in one call: records arriving while a batch is worked on form the next one.
        self._batch_handler = batch_handler if max_batch > 1 else None
        self._max_batch = max_batch
        self._lane_of = lane_of
        self._max = max_in_flight
        self._commit_interval = commit_interval
        # Lanes finish batches one after another; their offsets go out together, in at most
        # one commit request per gap (each costs a broker round trip on both sides).
        self._min_commit_gap = min(min_commit_gap, commit_interval)
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._lanes: dict[tuple[TopicPartition, str], asyncio.Queue[KafkaRecord | None]] = {}
        self._tasks: dict[tuple[TopicPartition, str], asyncio.Task[None]] = {}
        self._stopping = False
        self._changed = asyncio.Event()
        self._released: set[TopicPartition] = set()

    def owns(self, record: KafkaRecord) -> bool:
        """Whether this instance may still act on `record` (its partition was not taken away)."""
        tp = TopicPartition(record.topic, record.partition)
        return tp not in self._released and tp in self._consumer.assignment()

    @property
    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._partitions.values())

    # -- feeding ----------------------------------------------------------------------------

    def submit(self, record: KafkaRecord) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self._released.discard(tp)  # assigned again
        part = self._partitions.setdefault(tp, _Partition())
        if record.offset <= part.highest:
            return  # already handed out (a re-fetch after seek)
        part.pending.add(record.offset)
        part.highest = record.offset
        key = (tp, self._lane_of(record))
        queue = self._lanes.get(key)
        if queue is None:
            queue = self._lanes[key] = asyncio.Queue()
            self._tasks[key] = asyncio.create_task(self._lane(key, queue), name=f"lane {key}")
        queue.put_nowait(record)
        if len(part.pending) >= self._max and not part.paused:
            part.paused = True
            self._consumer.pause(tp)
            log.info("lanes.paused", partition=f"{tp.topic}:{tp.partition}", in_flight=len(part.pending))

    async def _lane(self, key: tuple[TopicPartition, str], queue: asyncio.Queue[KafkaRecord | None]) -> None:
        tp = key[0]
        while True:
            record = await queue.get()
            if record is None or tp in self._released:
                return
            batch = [record]
            last = False
            while self._batch_handler is not None and len(batch) < self._max_batch \
                    and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    last = True
                    break
                batch.append(more)
            try:
                if len(batch) == 1:
                    await self._handler(record)
                else:
                    assert self._batch_handler is not None
                    await self._batch_handler(batch)
            except Abandoned:
                return  # left unfinished and uncommitted: the partition's new owner handles it
            except asyncio.CancelledError:
                raise
            except Exception:
                # The handler turns every input problem into an outcome; an exception here means
                # the gateway could not record one (Kafka down). Leave the record unfinished: it
                # will be handled again after a restart or rebalance.
                log.exception("lanes.handler_failed", partition=f"{tp.topic}:{tp.partition}",
                              offset=record.offset, batch=len(batch))
                raise
            part = self._partitions.get(tp)
            if part is not None:
                part.pending.difference_update(r.offset for r in batch)
                if part.paused and len(part.pending) <= self._max // 2:
                    part.paused = False
                    self._consumer.resume(tp)
            self._changed.set()
            if last:
                return

    # -- committing -------------------------------------------------------------------------

    async def commit(self, partitions: frozenset[TopicPartition] | None = None) -> None:
        offsets = {}
        for tp, part in self._partitions.items():
            if partitions is not None and tp not in partitions:
                continue
            mark = part.watermark()
            if mark is not None and mark != part.committed:
                offsets[tp] = mark
        if offsets:
            await self._consumer.commit(offsets)
            for tp, mark in offsets.items():
                self._partitions[tp].committed = mark

    async def commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = float("-inf")
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._commit_interval)
            # A later commit only: what is committed is still the lowest unfinished offset
            # (a crash meanwhile hands the finished records out again, answered from the
            # ledger, as after any crash); `release` and `stop` commit at once.
            wait = last + self._min_commit_gap - loop.time()
            if wait > 0 and not self._stopping:
                await asyncio.sleep(wait)
            self._changed.clear()
            last = loop.time()
            try:
                await self.commit(frozenset(self._consumer.assignment()))
            except Exception as exc:  # a rebalance in progress; the next round commits
                log.warning("lanes.commit_failed", error=str(exc))

    # -- partitions leaving ------------------------------------------------------------------

    async def release(self, partitions: frozenset[TopicPartition], grace: float) -> None:
        """Partitions are being taken away: start nothing new for them, let the record each
        lane is on finish (up to `grace` seconds), commit what is done, and cancel the rest.
        Queued records are left to the new owner: finishing them here would keep sending after
        the group has moved on."""
        self._released |= partitions
        keys = [k for k in self._tasks if k[0] in partitions]
        for key in keys:
            self._lanes[key].put_nowait(None)
        tasks = [self._tasks[k] for k in keys]
        if tasks:
            done, not_done = await asyncio.wait(tasks, timeout=grace)
            for task in not_done:
                task.cancel()
            if not_done:
                await asyncio.gather(*not_done, return_exceptions=True)
                log.warning("lanes.released_unfinished", lanes=len(not_done))
        try:
            await self.commit(partitions)
        except Exception as exc:
            log.warning("lanes.commit_failed", error=str(exc))
        for key in keys:
            self._lanes.pop(key, None)
            self._tasks.pop(key, None)
        for tp in partitions:
            self._partitions.pop(tp, None)

    async def stop(self, grace: float) -> None:
        self._stopping = True
        self._changed.set()
        await self.release(frozenset(self._partitions), grace)

    def failed_lanes(self) -> list[BaseException]:
        return [t.exception() for t in self._tasks.values()
                if t.done() and not t.cancelled() and t.exception() is not None]
