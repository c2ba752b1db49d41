"""Carry an attachment's role (digitised copy, original data file, appendix) in its Description.

The reference layout has no element for it, so the role travels as a short prefix of the
attachment's free-text Description, readable by a clerk and read back exactly by us:

    role=digitised                      (no description)
    role=original; Tệp gốc soạn thảo    (role, then the agency's own description)

A Description without the prefix has no role; one that merely looks like it (an unknown role)
is left as it is.
"""

from __future__ import annotations

import re

ROLES = ("digitised", "original", "appendix", "other")
_PREFIX = re.compile(r"^role=(" + "|".join(ROLES) + r")(?:; (.*))?$", re.S)


def with_role(role: str | None, description: str | None) -> str | None:
    """The Description to write for an attachment with ``role`` (None: unchanged)."""
    if role is None:
        return description
    if role not in ROLES:
        raise ValueError(f"unknown attachment role {role!r}")
    return f"role={role}" + (f"; {description}" if description else "")


def split_role(description: str | None) -> tuple[str | None, str | None]:
    """(role, the agency's description) from a Description written by :func:`with_role`."""
    if not description:
        return None, description
    m = _PREFIX.match(description)
    if m is None:
        return None, description
    return m.group(1), m.group(2)
