"""The worker pool heals itself, and a package that kills workers is not read forever.

A worker is killed for real (SIGKILL, as the OOM killer does) while the pipeline's read of a
package is in its hands: the worker is stopped (SIGSTOP) first, so the task cannot finish
before the kill, whatever the machine's speed. No sleeps decide an outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import signal
import time

import pytest
from prometheus_client import CollectorRegistry

from gateway.daemon import watch_workers
from gateway.http import HealthState
from gateway.metrics import GatewayMetrics
from gateway.work import KeySpec, WorkerDied, WorkerPool, WorkerSetup
from tests.gateway.inbound_lab import H41, H55, document, inbound_lab, signed

RESULT_TIMEOUT = 120      # a safety net against a hung test, not an assertion about time


def _wait_to_be_killed() -> None:
    time.sleep(3600)


def _address_space_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_AS)[0]


def _allocate(n: int) -> int:
    return len(bytearray(n))


def test_a_killed_worker_is_replaced_and_the_pool_keeps_working() -> None:
    pool = WorkerPool(WorkerSetup(keys=()), 1)
    try:
        pid = pool.submit(os.getpid).result(RESULT_TIMEOUT)
        victim = pool.submit(_wait_to_be_killed)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerDied) as died:
            victim.result(RESULT_TIMEOUT)
        assert died.value.reason == "gateway.worker_died" and died.value.transient
        assert pool.submit(os.getpid).result(RESULT_TIMEOUT) != pid
        assert pool.recreated == 1 and not pool.broken
    finally:
        pool.shutdown()


def test_workers_run_under_the_configured_address_space_limit() -> None:
    limit = 1024 ** 3
    pool = WorkerPool(WorkerSetup(keys=(), memory_limit_bytes=limit), 1)
    try:
        assert pool.submit(_address_space_limit).result(RESULT_TIMEOUT) == limit
        # Going over it is a MemoryError in the worker, not a dead worker.
        with pytest.raises(MemoryError):
            pool.submit(_allocate, 2 * limit).result(RESULT_TIMEOUT)
        assert pool.submit(_allocate, 1024).result(RESULT_TIMEOUT) == 1024
        assert pool.recreated == 0
    finally:
        pool.shutdown()


async def test_a_pool_that_cannot_start_is_given_up_then_not_ready_then_exit(tmp_path) -> None:
    """Workers whose start fails (a key file gone): the pool breaks at every task. It is
    recreated a few times, then given up; readiness goes false and the watcher stops the
    daemon (exit 1) for its supervisor to restart it."""
    missing = str(tmp_path / "gone.pem")
    pool = WorkerPool(WorkerSetup(keys=(KeySpec("000.00.00.H41", key=missing, cert=missing),)),
                      1, max_consecutive_breaks=2)
    try:
        for _ in range(10):
            try:
                fut = pool.submit(os.getpid)
            except WorkerDied:
                break
            with pytest.raises(WorkerDied):
                fut.result(RESULT_TIMEOUT)
        assert pool.failed is not None
        health = HealthState(("workers",))
        health.set_ok("workers")
        with pytest.raises(RuntimeError, match="worker pool"):
            await watch_workers(pool, health, GatewayMetrics(CollectorRegistry()))
        assert not health.ready and "workers" in health.failing()
    finally:
        pool.shutdown(wait=False)


# --- the inbound pipeline: a worker killed mid-package ----------------------------------------

async def _kill_under_read(lab, poll: asyncio.Task) -> None:
    """SIGKILL the (stopped) worker once the pipeline has handed it a package."""
    pool = lab.ctx.pool
    while pool.in_flight == 0:
        assert not poll.done(), "the poll ended before reading anything"
        await asyncio.sleep(0.01)
    os.kill(lab.worker_pid, signal.SIGKILL)


async def _stopped_worker(lab) -> None:
    loop = asyncio.get_running_loop()
    lab.worker_pid = await loop.run_in_executor(lab.ctx.pool, os.getpid)
    os.kill(lab.worker_pid, signal.SIGSTOP)


@pytest.fixture
async def lab(tmp_path, kafka_settings, topic_factory):
    async with inbound_lab(tmp_path, kafka_settings, topic_factory, workers=1,
                           worker_memory_bytes=1024 ** 3) as lab:
        yield lab


@pytest.mark.kafka
async def test_a_worker_killed_mid_package_is_replaced_and_nothing_is_lost(lab) -> None:
    sent = await lab.send(signed(document("301"), by=H55))
    await _stopped_worker(lab)
    poll = asyncio.create_task(lab.poll())
    await _kill_under_read(lab, poll)
    assert await poll == 0                              # deferred, not marked, not lost
    assert await lab.events("inbound_documents") == []
    assert await lab.axis_status(sent) == "initial"
    # The next poll reads it again (alone) in a new pool, and it arrives, once.
    assert await lab.poll() == 1
    (arrived,) = await lab.events("inbound_documents")
    assert arrived.data["package"]["message_header"]["document_id"].endswith("301/UBND-VP")
    assert await lab.axis_status(sent) == "done"
    assert lab.ctx.pool.recreated == 1
    assert lab.poller.deaths == {}


@pytest.mark.kafka
async def test_a_package_that_kills_a_worker_twice_is_quarantined_as_poison(lab) -> None:
    sent = await lab.send(signed(document("302"), by=H55))
    for _ in range(2):
        await _stopped_worker(lab)
        poll = asyncio.create_task(lab.poll())
        await _kill_under_read(lab, poll)
        await poll
    receiver = await lab.receiver_doc_id(sent)
    assert (await lab.letters()) == {receiver: "package.poison"}
    assert await lab.events("inbound_documents") == []
    assert await lab.axis_status(sent) == "fail"          # marked: not fetched forever
    assert await lab.poll() == 0
    # The gateway goes on with the next package.
    after = await lab.send(signed(document("303"), by=H55))
    assert await lab.poll() == 1
    assert await lab.axis_status(after) == "done"


async def _soak(lab, *, packages: int, kills: int, seed: int) -> None:
    """Packages sent in batches, workers killed at random moments while reading (RLIMIT_AS
    set in every worker); every axis message ends published or quarantined, none twice."""
    rng = random.Random(seed)
    sent = [await lab.send(signed(document(str(400 + i)), by=H55)) for i in range(packages)]
    killed = 0
    for _ in range(packages * 4):
        poll = asyncio.create_task(lab.poll())
        if killed < kills and rng.random() < 0.7:
            while lab.ctx.pool.in_flight == 0 and not poll.done():
                await asyncio.sleep(0.005)
            if not poll.done():
                pid = await _any_worker_pid(lab)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
        await poll
        if all([await lab.axis_status(s) in ("done", "fail") for s in sent]):
            break
    assert killed > 0
    statuses = [await lab.axis_status(s) for s in sent]
    assert set(statuses) <= {"done", "fail"}, statuses
    published = [e.data["axis_doc_id"] for e in await lab.events("inbound_documents")]
    letters = await lab.letters()
    assert len(published) == len(set(published))                     # none twice
    assert set(published).isdisjoint(letters)
    receivers = {await lab.receiver_doc_id(s) for s in sent}
    assert set(published) | set(letters) == receivers                # none lost
    assert set(letters.values()) <= {"package.poison"}
    assert lab.ctx.pool.recreated >= 1


async def _any_worker_pid(lab) -> int | None:
    """A live worker of the current pool, read from /proc (its children)."""
    children = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    try:
        with open(children, encoding="ascii") as fh:
            pids = [int(p) for p in fh.read().split()]
    except OSError:
        return None
    workers = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    workers.append(pid)
        except OSError:
            continue
    return max(workers) if workers else None


@pytest.mark.kafka
async def test_soak_short_workers_killed_under_rlimit_as_lose_nothing(lab) -> None:
    await _soak(lab, packages=6, kills=2, seed=10)


@pytest.mark.slow
@pytest.mark.kafka
async def test_soak_long_workers_killed_under_rlimit_as_lose_nothing(lab) -> None:
    await _soak(lab, packages=60, kills=15, seed=11)


@pytest.mark.kafka
def test_a_gateway_whose_workers_cannot_start_exits_for_its_supervisor(kafka_bootstrap,
                                                                        tmp_path) -> None:
    """Workers given 1 MiB of address space cannot even import: the pool breaks at each probe,
    is given up, readiness fails, and the daemon exits 1 instead of staying up unable to
    work."""
    from gateway.lab import NGHE_AN, Lab

    lab = Lab(tmp_path / "lab", kafka_bootstrap,
              gateway_overrides={NGHE_AN.code: {"gateway": {"worker_memory_bytes": 1024 ** 2}}})
    lab.start()
    try:
        gw = lab.start_gateway(NGHE_AN)
        assert gw.popen.wait(timeout=RESULT_TIMEOUT) == 1
        log = gw.log.read_text(errors="replace")
        assert "gateway.task_failed" in log and "worker pool" in log
    finally:
        lab.stop()


def _spawned_workers(parent: int) -> list[int]:
    try:
        with open(f"/proc/{parent}/task/{parent}/children", encoding="ascii") as fh:
            pids = [int(p) for p in fh.read().split()]
    except OSError:
        return []
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(pid)
        except OSError:
            continue
    return out


@pytest.mark.kafka
async def test_a_running_gateway_whose_worker_is_killed_keeps_receiving(kafka_bootstrap,
                                                                        tmp_path) -> None:
    """Case 6 at the daemon: the OOM killer takes the receiving gateway's worker; the pool is
    recreated and the next document arrives (the pool used to stay broken for good, every
    later poll failing while the process stayed up)."""
    import aiohttp

    from connectors.cloudevents import CloudEvent
    from gateway import events
    from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab

    lab = Lab(tmp_path / "lab", kafka_bootstrap)
    lab.start()
    try:
        lab.start_gateway(THAI_NGUYEN)
        receiving = lab.start_gateway(NGHE_AN)
        sender = AgencyClient(lab, THAI_NGUYEN, H55)
        recipient = AgencyClient(lab, NGHE_AN, H41)

        async def exchange(number: str) -> CloudEvent:
            doc = sender.document(to=[(H41, "UBND tỉnh Nghệ An")], number=number,
                                  notation="UBND-VP", subject=f"Văn bản số {number}",
                                  attachments=[sender.attachment("a.pdf", b"%PDF-1.4\n%%EOF\n")])
            key = doc["message_header"]["document_id"]
            await sender.publish(events.DOCUMENT_SEND, doc, key=key)
            (event,) = await recipient.wait_for(
                "inbound_documents",
                lambda e: e.data["package"]["message_header"]["document_id"] == key)
            return event

        await exchange("501")                  # the receiving gateway's worker is running
        (worker,) = _spawned_workers(receiving.popen.pid)
        os.kill(worker, signal.SIGKILL)
        arrived = await exchange("502")
        assert arrived.data["signature"]["status"] == "valid"
        assert receiving.alive()
        assert worker not in _spawned_workers(receiving.popen.pid)
        url = next(json.loads(line)["http"] for line in
                   receiving.log.read_text(errors="replace").splitlines()
                   if '"gateway.starting"' in line)
        text = ""
        async with aiohttp.ClientSession() as session:
            for _ in range(100):       # the watcher counts the recreation on its next round
                async with session.get(url + "/metrics") as resp:
                    text = await resp.text()
                if "edoc_gateway_worker_pool_recreated_total 1.0" in text:
                    break
                await asyncio.sleep(0.1)
        assert "edoc_gateway_worker_pool_recreated_total 1.0" in text
    finally:
        lab.stop()
