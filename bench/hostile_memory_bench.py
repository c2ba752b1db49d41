"""Peak memory of reading hostile packages at several sizes: `python bench/hostile_memory_bench.py`.

Each crafted package (a ZIP attachment whose central directory lists N entries, N namespace
declarations in the header) is written to a temporary directory and read, reader and signature
digester together as the inbound workers do, in a fresh interpreter; the child's own peak RSS
(/proc VmHWM, Linux) is reported with the outcome. tests/edxml/test_memory_bounds.py asserts only
the 256 MiB bound of docs/performance.md on the largest sizes; this prints the figures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.edxml.hostile import make_corpus  # noqa: E402
from tests.edxml.test_memory_bounds import read_in_child as _read_in_child  # noqa: E402
from tests.edxml.test_memory_bounds import zip_with_entries  # noqa: E402


def read_in_child(path: Path, out: Path) -> dict:  # type: ignore[type-arg]
    with contextlib.redirect_stdout(io.StringIO()):
        return _read_in_child(path, out)


def zip_package(path: Path, entries: int) -> None:
    marker = "QUFBQQ=="
    text = make_corpus.document(atts=(make_corpus.Att(ctype="application/zip", name="van-ban.doc", b64=marker),))
    head, tail = text.split(marker)
    with open(path, "wb") as f:
        f.write(head.encode("utf-8"))
        f.write(base64.b64encode(zip_with_entries(entries)))
        f.write(tail.encode("utf-8"))


def namespace_package(path: Path, declarations: int) -> None:
    levels = 4
    per = max(1, declarations // levels)
    opening = "".join(f'<v:x{lv} xmlns:v="urn:v"' + "".join(f' xmlns:n{lv}_{i:x}="u:n"' for i in range(per)) + ">"
                      for lv in range(levels))
    closing = "".join(f"</v:x{lv}>" for lv in reversed(range(levels)))
    path.write_text(make_corpus.document(header_extra="      " + opening + closing + "\n"), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmpdir", default=None, help="where the crafted packages go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        d = Path(tmp)
        print(f"{'input':<42} {'size':>10} {'peak RSS':>10}  outcome")
        for n in (10_000, 100_000, 1_000_000):
            path = d / f"zip-{n}.edxml"
            zip_package(path, n)
            r = read_in_child(path, d / f"out-zip-{n}")
            print(f"{'ZIP central directory, ' + format(n, ',') + ' entries':<42} "
                  f"{path.stat().st_size / 2**20:>8.1f} M {r['peak_mib']:>8.1f} M  {r['outcome']}")
        for n in (1_000, 100_000, 1_000_000):
            path = d / f"ns-{n}.edxml"
            namespace_package(path, n)
            r = read_in_child(path, d / f"out-ns-{n}")
            print(f"{'namespace declarations, ' + format(n, ','):<42} "
                  f"{path.stat().st_size / 2**20:>8.1f} M {r['peak_mib']:>8.1f} M  {r['outcome']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
