"""Check a package against schemas/edxml.xsd (the strict description of what we emit).

The schema is a second opinion for people: the reader does not need it and accepts packages of
other producers that it refuses (other element orders, placeholder signatures). Hostile input is
refused before the schema sees it: the file is first walked by :class:`edxml.xmlsafe.SafeParser`
(no DTD, no entities, bounded nesting), and only then parsed into a tree for xmlschema.

The whole tree is held in memory for XSD validation, so files larger than
:data:`MAX_XSD_BYTES` are not validated; the result says so in one line instead.

Where the schema is found: ``schemas/edxml.xsd`` of the source checkout this module sits in,
else the ``schemas`` package data (with ``xmldsig-core-schema.xsd`` beside it) of an installed
package.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from edxml.errors import EdxmlError
from edxml.model import NS
from edxml.xmlsafe import SafeParser

SCHEMA_FILE = "edxml.xsd"
MAX_XSD_BYTES = 64 * 1024 * 1024
"""Larger files are not validated against the schema (the tree would not fit comfortably)."""
MAX_PROBLEMS = 50
"""At most this many schema problems (the first the validator finds, shown in document order)
are listed; one more line says how many were left out."""

_LOCK = threading.Lock()

# The schema's Base64OneLine pattern, ([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?,
# is matched by Python's re with a backtracking frame per group repetition: about 2 GB of memory
# for a 60 MB attachment. Attachment content longer than _BIG_TEXT is checked here with the
# equivalent test (alphabet, at most two '=' at the end, length a multiple of 4) and blanked
# before the tree goes to xmlschema; shorter content is left to the schema.
_BIG_TEXT = 64 * 1024
_BASE64_ONE_LINE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONTENT = f"{{{NS}}}ContentTransferEncoded"
_ATTACHMENT = f"{{{NS}}}Attachment"


def schema_path() -> Path:
    """The edxml.xsd to use; raises FileNotFoundError naming the places looked at."""
    here = Path(__file__).resolve().parent
    candidates = []
    checkout = here.parent
    if (checkout / "pyproject.toml").is_file():  # a source checkout (or an editable install)
        candidates.append(checkout / "schemas" / SCHEMA_FILE)
    try:  # an installed wheel ships schemas/ as package data
        candidates.append(Path(str(resources.files("schemas").joinpath(SCHEMA_FILE))))
    except (ModuleNotFoundError, TypeError):
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{SCHEMA_FILE} not found (looked at "
                            + ", ".join(str(p) for p in dict.fromkeys(candidates)) + ")")


@lru_cache(maxsize=1)
def load_schema() -> Any:
    """The compiled schema (xmlschema.XMLSchema10), built once per process."""
    import xmlschema

    # The schema imports xmldsig-core-schema.xsd from its own directory; nothing remote.
    return xmlschema.XMLSchema10(str(schema_path()), allow="local")


class _Discard:
    """A SafeParser handler that keeps nothing: the walk only proves the input is harmless."""

    def start(self, uri: str, local: str, prefix: str, attrs: list, offset: int) -> None:
        pass

    def end(self, uri: str, local: str, prefix: str, offset: int) -> None:
        pass

    def text(self, data: str) -> None:
        pass

    def pi(self, target: str, data: str) -> None:
        pass


def validate_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_XSD_BYTES,
                  max_problems: int = MAX_PROBLEMS) -> list[str]:
    """Problems of the package at `path` against edxml.xsd, one line each; [] when it is valid.

    Lines name the place (``line N, /xpath``) and what is wrong. A file larger than
    `max_bytes`, or one the hardened parser refuses (DTD, entities, malformed), gives one line
    saying why it was not validated. Raises OSError if the file cannot be read.
    """
    from lxml import etree

    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        return [f"not validated against {SCHEMA_FILE}: the file is {size} bytes, more than the "
                f"{max_bytes}-byte limit for schema validation (XSD validation skipped for size)"]
    try:
        SafeParser(_Discard()).parse(path)
    except EdxmlError as exc:
        return [f"not validated against {SCHEMA_FILE}: {exc.reason}: {exc.message}"
                + (f" (at {exc.where})" if exc.where else "")]
    # Safe now: no DTD, no entities, bounded depth. huge_tree lifts libxml2's 10 MB cap on one
    # text node, which a base64 attachment of a few MB exceeds. Comments and processing
    # instructions are not part of what XSD validates (xmlschema would take them for child
    # elements of simple content); dropping them joins the text around them, as XSD reads it.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True, remove_comments=True, remove_pis=True)
    tree = etree.parse(str(path), parser)
    schema = load_schema()
    problems: list[tuple[int, str]] = []
    for elem in tree.getroot().iter(_CONTENT):
        parent = elem.getparent()
        content = elem.text or ""
        if parent is None or parent.tag != _ATTACHMENT or len(elem) or len(content) <= _BIG_TEXT:
            continue
        if len(content) % 4 or not _BASE64_ONE_LINE.fullmatch(content):
            names = [etree.QName(e).localname for e in (*reversed(list(elem.iterancestors())), elem)]
            problems.append((elem.sourceline or 0,
                             f"line {elem.sourceline}, /{'/'.join(names)}: value is not base64 "
                             "on one line (Base64OneLine: A-Z a-z 0-9 + /, length a multiple of "
                             "4, '=' padding only at the end)"))
        elem.text = ""
        del content
    left_out = 0
    with _LOCK:  # an xmlschema schema object is not documented as thread-safe
        for error in schema.iter_errors(tree):
            if len(problems) >= max_problems:
                left_out += 1
                continue
            line = getattr(error, "sourceline", None)
            where = ", ".join(p for p in (f"line {line}" if line else "", error.path or "") if p)
            reason = (error.reason or error.message or "").strip().replace("\n", " ")
            problems.append((line or 0, f"{where}: {reason}" if where else reason))
    lines = [text for _, text in sorted(problems, key=lambda p: p[0])]  # document order
    if left_out:
        lines.append(f"... and {left_out} more schema problem(s)")
    return lines
