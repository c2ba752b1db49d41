"""An attachment's role rides in its Description and comes back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edxml.roles import ROLES, split_role, with_role


@given(st.sampled_from((None, *ROLES)), st.one_of(st.none(), st.text(min_size=1)))
def test_role_and_description_round_trip(role: str | None, description: str | None) -> None:
    written = with_role(role, description)
    if role is None:
        assert written == description
    else:
        assert split_role(written) == (role, description)


def test_a_description_without_the_prefix_has_no_role() -> None:
    assert split_role("Bản ký số") == (None, "Bản ký số")
    assert split_role("role=draft; x") == (None, "role=draft; x")
    assert split_role(None) == (None, None)


def test_an_unknown_role_is_refused_when_writing() -> None:
    with pytest.raises(ValueError):
        with_role("draft", "x")
