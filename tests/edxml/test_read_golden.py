"""The inbound path decides every recorded case exactly as recorded (see tests/edxml/read_golden.py).

The golden file was written by the reader, digester and verification as they were before the
inbound handlers were fused for speed; any change of outcome (reason, message, where, model,
attachment, warning, verdict) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

from edxml.pki import TestPki

from tests.edxml import read_golden


def test_every_recorded_package_reads_and_verifies_as_recorded(test_pki: TestPki, tmp_path: Path) -> None:
    want = json.loads(read_golden.GOLDEN.read_text(encoding="utf-8"))
    full = read_golden.outcomes(test_pki, tmp_path)
    got = json.loads(read_golden.dump(full))
    assert sorted(got) == sorted(want)
    changed = [name for name in want if got[name] != want[name]]
    assert not changed, (f"{len(changed)} outcomes changed, first {changed[0]}: recorded "
                         f"{want[changed[0]]}, now {got[changed[0]]}:\n{full[changed[0]]}")


def test_the_recorded_set_covers_valid_refused_and_every_damage() -> None:
    want = json.loads(read_golden.GOLDEN.read_text(encoding="utf-8"))
    ends = {v[0].split()[0] for v in want.values()}
    assert ends >= {"valid", "invalid", "absent", "placeholder", "error", "sign_error"}
    kinds = {name.rsplit("[", 1)[-1].rstrip("]") for name in want if name.endswith("]")}
    assert kinds >= {"signed", "subject-changed", "signature-value-damaged", "first-certificate-removed",
                     "trace-header-added", "signature-in-envelope", "signature-wrapping-object",
                     "comment-inserted", "pi-inserted", "attributes-reordered", "prefixes-changed",
                     "crlf", "bom", "entity-declaration"}
    assert sum(v[0].startswith("error ") for v in want.values()) > 100
