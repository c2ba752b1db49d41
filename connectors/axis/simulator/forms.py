"""Tell which wire form a request used: the reference client's, or the written description's.

The reference Java client (VNPT's SDKVXP, what agencies use with the real axis every day) and the
written protocol description differ on several points (docs/axis-simulator.md, "Wire forms").
By default the simulator accepts both and notes, point by point, which form each request used,
so a lab shows whether some client still sends the non-reference form. A point where both
forms coincide (a key list whose HashMap order is the standard order, a digest with no byte
below 0x10) says nothing and is not noted.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.axis.auth import PREFIX, VerifiedHeaders, java_hashmap_order

REFERENCE = "reference"
STANDARD = "standard"

_COUNT_OPERATIONS = {"countReceiveEdoc", "countReceiveStatus"}
_EMPTY_JSON_OPERATIONS = {"getEdoc", "updateStatus", "countReceiveEdoc", "countReceiveStatus"}
_STANDARD_HEAD = ["systemid", "timestamp", "Content-Type"]


def header_points(op: str, method: str, headers: Mapping[str, str],
                  verified: VerifiedHeaders) -> dict[str, str]:
    """The points of one verified request that its headers and method already decide."""
    points: dict[str, str] = {}
    names = [name for name, _ in verified.entries]
    params = [n for n in names if n != "Content-Type"]
    if params:
        plain = sum(1 for n in params if n in headers)
        if plain == len(params):
            points["parameters"] = STANDARD
        elif plain == 0:
            points["parameters"] = REFERENCE
    standard_order = _STANDARD_HEAD + [n for n in names if n not in _STANDARD_HEAD]
    hashmap_order = java_hashmap_order(names)
    if standard_order != hashmap_order:
        if names == hashmap_order:
            points["order"] = REFERENCE
        elif names == standard_order:
            points["order"] = STANDARD
    if op == "updateStatus":
        if "docId" in names:
            points["docId"] = REFERENCE
        elif "docid" in names:
            points["docId"] = STANDARD
    if op in _COUNT_OPERATIONS:
        points["method"] = REFERENCE if method == "POST" else STANDARD
    if op in _EMPTY_JSON_OPERATIONS:
        length = headers.get("Content-Length", "0").strip()
        points["body"] = REFERENCE if length == "2" else STANDARD
    if PREFIX + "to" in headers and op == "sendEdoc":
        to = (verified.get("to") or "").lstrip()
        points["to"] = REFERENCE if to.startswith("[") else STANDARD
    return points


def form_of(points: Mapping[str, str]) -> str:
    """`reference`, `standard`, `mixed` (both forms on different points) or `either`."""
    forms = set(points.values())
    if forms == {REFERENCE}:
        return REFERENCE
    if forms == {STANDARD}:
        return STANDARD
    return "mixed" if forms else "either"
