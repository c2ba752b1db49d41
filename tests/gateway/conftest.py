"""Fixtures of the end-to-end tests: two provinces' gateways on the run's broker, and an agency
client for each. A module defines its own `lab` fixture (its overrides, its scope) from
`running_lab`; `thai_nguyen` and `nghe_an` then speak for that module's lab."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway.lab import NGHE_AN, THAI_NGUYEN, AgencyClient, Lab


def running_lab(tmp_path_factory: pytest.TempPathFactory, bootstrap: str,
                **options: Any) -> Iterator[Lab]:
    """A lab with both provinces' gateways started; on teardown each gateway's log tail is
    printed, so a failing test shows what the gateways said."""
    lab = Lab(tmp_path_factory.mktemp("lab"), bootstrap, **options)
    lab.start()
    lab.start_gateway(THAI_NGUYEN)
    lab.start_gateway(NGHE_AN)
    try:
        yield lab
    finally:
        lab.stop()
        for gw in lab.gateways:
            print(f"--- {gw.log}\n" + gw.log.read_text(errors="replace")[-4000:])


@pytest.fixture
def thai_nguyen(lab: Lab) -> AgencyClient:
    return AgencyClient(lab, THAI_NGUYEN, "000.00.00.H55")


@pytest.fixture
def nghe_an(lab: Lab) -> AgencyClient:
    return AgencyClient(lab, NGHE_AN, "000.00.00.H41")
