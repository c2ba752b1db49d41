"""docs/reasons.md is generated from the code's `REASONS` tables and lists exactly their codes.

Every module of `edxml/`, `connectors/` and `gateway/` that assigns a module-level `REASONS`
(a dict of code -> meaning, code -> (transient, meaning), or a tuple of codes) is imported and
read. Every reason code the source passes to an error (`SomeError("x.y", ...)`, `reason="x.y"`,
`_invalid("x.y", ...)`, `... or "x.y"` inside such a call) must be in one of those tables, so
a new reason cannot ship undocumented.

Regenerate the document after changing a table:

    python -m tests.test_reasons --write
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "reasons.md"
PACKAGES = ("edxml", "connectors", "gateway")
LAYERS = {
    "edxml": "Package core (`edxml/`): reading, writing, signing, trust",
    "connectors": "Connectors (`connectors/`): the axis, Kafka, event envelopes, attachment store",
    "gateway": "Gateway (`gateway/`): configuration, events, pipelines, audit, dead letters",
}
CODE = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)+$")
_ASSIGNS_REASONS = re.compile(r"^REASONS\s*[:=]", re.M)
# Callees whose first argument is a reason code, besides every *Error class and any call that
# is raised directly (`raise self.error("config.invalid", ...)`).
_REASON_FIRST = {"_fail", "_invalid"}


@dataclass(frozen=True)
class Reason:
    code: str
    meaning: str
    module: str
    transient: bool | None = None


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def reason_modules() -> list[str]:
    """Modules that define a module-level `REASONS` table (re-exports are not definitions)."""
    return [_module_name(p) for p in _source_files()
            if _ASSIGNS_REASONS.search(p.read_text(encoding="utf-8"))]


def collect_reasons() -> list[Reason]:
    """Every (code, meaning, module) of every `REASONS` table, in layer and module order."""
    out: list[Reason] = []
    for name in reason_modules():
        table = importlib.import_module(name).REASONS
        items = table.items() if isinstance(table, dict) else ((code, "") for code in table)
        for code, value in items:
            transient = None
            if isinstance(value, tuple):  # (transient flag, meaning)
                transient = next((v for v in value if isinstance(v, bool)), None)
                value = next((v for v in value if isinstance(v, str)), "")
            out.append(Reason(str(code), str(value), name, transient))
    return out


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """String constants an argument can evaluate to (`a or "x.y"`, `"x" if c else "y"`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _strings(value)
    elif isinstance(node, ast.IfExp):
        yield from _strings(node.body)
        yield from _strings(node.orelse)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def codes_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(code, line) of every reason code literal given to an error or verdict in `tree`."""
    raised = {id(n.exc) for n in ast.walk(tree) if isinstance(n, ast.Raise)}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = _callee(call)
        candidates: list[ast.AST] = [kw.value for kw in call.keywords if kw.arg == "reason"]
        if (name.endswith("Error") or name in _REASON_FIRST or id(call) in raised) and call.args:
            candidates.append(call.args[0])
        elif name.endswith("Verdict"):  # CertificateVerdict(False, "edxml.signature.untrusted", ...)
            candidates.extend(call.args)
        for arg in candidates:
            for const in _strings(arg):
                if CODE.match(const.value):
                    yield const.value, const.lineno


def raised_codes() -> dict[str, list[str]]:
    """Reason codes passed to errors in the source: code -> ["file:line", ...]."""
    found: dict[str, list[str]] = {}
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for code, line in codes_in(tree):
            found.setdefault(code, []).append(f"{path.relative_to(REPO).as_posix()}:{line}")
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(reasons: list[Reason] | None = None) -> str:
    """docs/reasons.md: one table, rows grouped by layer, one row per code."""
    reasons = collect_reasons() if reasons is None else reasons
    by_code: dict[str, list[Reason]] = {}
    for r in reasons:
        by_code.setdefault(r.code, []).append(r)
    lines = [
        "# Reason codes",
        "",
        "Every error, refusal and dead letter carries a stable, dotted, lowercase `reason` for",
        "machines (metrics labels, dead-letter filters, agencies' software) next to a message for",
        "people. This is the complete list, grouped by layer; \"transient\" reasons are retried,",
        "the others are final until someone fixes the input or the configuration.",
        "",
        "This file is generated from the `REASONS` tables of the modules named in the last",
        "column; do not edit it by hand. After changing a table run",
        "`python -m tests.test_reasons --write`; the test suite fails while a code is missing",
        "here or raised without being in a table.",
        "",
        "| Layer | Code | Meaning | Defined in |",
        "|---|---|---|---|",
    ]
    for layer in PACKAGES:
        codes = sorted(c for c, rs in by_code.items() if rs[0].module.split(".")[0] == layer)
        for code in codes:
            rs = by_code[code]
            meanings = list(dict.fromkeys(r.meaning for r in rs if r.meaning))
            meaning = "; ".join(meanings) or "(no description)"
            if any(r.transient for r in rs):
                meaning = "*transient:* " + meaning
            modules = ", ".join(f"`{m}`" for m in dict.fromkeys(r.module for r in rs))
            lines.append(f"| {layer} | `{code}` | {_cell(meaning)} | {modules} |")
    lines += ["", "Layers:", ""]
    lines += [f"- **{layer}**: {LAYERS[layer]}" for layer in PACKAGES]
    return "\n".join(lines) + "\n"


_ROW = re.compile(r"^\|\s*[a-z]+\s*\|\s*`([^`]+)`\s*\|", re.M)


def documented_codes(text: str | None = None) -> list[str]:
    """The codes in the table of docs/reasons.md, in file order (duplicates kept)."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    return _ROW.findall(text)


# -- tests ----------------------------------------------------------------------------------


def test_every_module_reason_code_is_documented_and_nothing_else():
    codes = {r.code for r in collect_reasons()}
    documented = documented_codes()
    assert len(documented) == len(set(documented)), "a code is listed twice in docs/reasons.md"
    missing = sorted(codes - set(documented))
    stale = sorted(set(documented) - codes)
    assert not missing and not stale, (
        f"docs/reasons.md is out of date (missing {missing}, no longer defined {stale}); "
        "run: python -m tests.test_reasons --write")


def test_every_reason_the_source_raises_is_in_a_reasons_table():
    known = {r.code for r in collect_reasons()}
    unlisted = {code: where for code, where in raised_codes().items() if code not in known}
    assert not unlisted, "raised but in no REASONS table: " + "; ".join(
        f"{code} at {', '.join(where)}" for code, where in sorted(unlisted.items()))


def test_reasons_tables_use_dotted_lowercase_codes_with_a_meaning():
    bad = [(r.module, r.code) for r in collect_reasons() if not CODE.match(r.code) or not r.meaning]
    assert not bad


def test_the_raise_scan_finds_codes_in_every_calling_style():
    sample = ('raise EdxmlError("edxml.a.b", "m")\n'
              'raise AxisError(\n    "axis.x", "m")\n'
              'return GatewayError(sig["reason"] or "edxml.c.d", "m")\n'
              'dead_letter_event(rec, reason="dlq.e", message="m")\n'
              'return _invalid("edxml.f", "m")\n'
              'raise ValueError("not a code")\n'
              'return CertificateVerdict(False, "edxml.g", "m")\n'
              'raise self.error("config.h", "where", "m")\n'
              'log.error("gateway.task_failed", error="x")\n'
              'log.info("gateway.started")\n')
    found = list(codes_in(ast.parse(sample)))
    assert sorted(found) == [("axis.x", 3), ("config.h", 9), ("dlq.e", 5), ("edxml.a.b", 1),
                             ("edxml.c.d", 4), ("edxml.f", 6), ("edxml.g", 8)]


def test_render_lists_a_code_defined_twice_once_with_both_modules():
    text = render([Reason("edxml.value.date", "bad date", "edxml.values"),
                   Reason("edxml.value.date", "bad date", "edxml.reader"),
                   Reason("axis.timeout", "no answer", "connectors.axis.errors", True)])
    assert documented_codes(text) == ["edxml.value.date", "axis.timeout"]
    assert "`edxml.values`, `edxml.reader`" in text
    assert "*transient:* no answer" in text


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        DOC.write_text(render(), encoding="utf-8")
        print(f"wrote {DOC.relative_to(REPO)} ({len({r.code for r in collect_reasons()})} codes)")
        return 0
    if argv in ([], ["--check"]):
        if DOC.read_text(encoding="utf-8") != render():
            print(f"{DOC.relative_to(REPO)} is out of date; run python -m tests.test_reasons --write",
                  file=sys.stderr)
            return 1
        return 0
    print("usage: python -m tests.test_reasons [--write | --check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
