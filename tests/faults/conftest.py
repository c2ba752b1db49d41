"""The fault scenarios share the run's broker (tests/conftest.py) except broker-restart, which
starts and restarts one of its own."""

from __future__ import annotations

import pytest

from tests.faults.scenarios import SHORT, Report, run_scenario


@pytest.fixture
def run_short(kafka_bootstrap, kafka_broker, tmp_path):
    """`await run_short(name)` -> the scenario's Report at the short size."""

    async def run(name: str) -> Report:
        report = await run_scenario(name, kafka_bootstrap, tmp_path / name, SHORT,
                                    broker=kafka_broker)
        if report.skipped:
            pytest.skip(report.skipped)
        print(report.row())
        for problem in report.problems:
            print(" -", problem)
        return report

    return run
