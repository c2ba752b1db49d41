"""Short runs of the fault scenarios (tests/faults/scenarios.py): a stream of documents between
Thái Nguyên and Nghệ An through real Kafka, the axis simulator and gateway processes, with one
fault injected mid-stream; afterwards every event and axis message must have exactly one outcome,
nothing may arrive twice and the audit chains must verify. The full runs and the table are
`python -m tests.faults.run`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kafka


def _assert_kept(report) -> None:
    assert report.problems == [], "\n".join(report.problems)
    assert report.lost == 0 and report.duplicated == 0
    assert report.audit_ok
    assert report.documents > 0 and report.delivered > 0


async def test_gateways_killed_at_random_moments_lose_and_duplicate_nothing(run_short):
    report = await run_short("sigkill")
    _assert_kept(report)
    assert report.delivered == report.documents
    assert any("SIGKILL" in f for f in report.faults)


async def test_the_surviving_instance_takes_over_the_killed_ones_partitions(run_short):
    report = await run_short("two-instances")
    _assert_kept(report)
    assert report.delivered == report.documents


async def test_broker_stopped_and_restarted_mid_stream_loses_nothing(run_short):
    report = await run_short("broker-restart")
    _assert_kept(report)
    assert report.delivered == report.documents


async def test_axis_outage_backlog_drains_without_dead_letters(run_short):
    report = await run_short("axis-outage")
    _assert_kept(report)
    assert report.delivered == report.documents and report.dead_lettered == 0
    assert any("outage" in f for f in report.faults)


async def test_flaky_axis_errors_timeouts_resets_and_lost_answers_deliver_each_once(run_short):
    report = await run_short("axis-flaky")
    _assert_kept(report)
    assert report.delivered == report.documents and report.dead_lettered == 0
    assert any(f.startswith("axis ") for f in report.faults), report.faults


async def test_poison_events_are_dead_lettered_with_their_reason_and_good_ones_flow(run_short):
    report = await run_short("poison")
    _assert_kept(report)
    assert report.dead_lettered == 6
    assert report.delivered == report.documents - 6


async def test_rebalance_in_the_middle_of_slow_sends_duplicates_nothing(run_short):
    report = await run_short("rebalance-mid-send")
    _assert_kept(report)
    assert report.delivered == report.documents


async def test_broken_inbound_store_defers_arrivals_until_repaired(run_short):
    report = await run_short("store-inbound")
    _assert_kept(report)
    assert report.delivered == report.documents


async def test_broken_outbound_scratch_space_is_retried_until_repaired(run_short):
    report = await run_short("store-outbound-scratch")
    _assert_kept(report)
    assert report.delivered == report.documents


async def test_broken_package_archive_after_a_send_does_not_fail_the_delivered_document(
        run_short):
    report = await run_short("store-outbound-archive")
    _assert_kept(report)
    assert report.delivered == report.documents
