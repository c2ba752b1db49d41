"""Peak memory of reading hostile packages, measured in a child process (Linux: /proc).

docs/performance.md promises that reading a package stays under 256 MiB whatever it holds. Each
test writes a crafted package, reads it (reader and signature digester together, as the inbound
workers do) in a fresh interpreter and asserts only that bound on the child's peak RSS; the
inputs are generous, several times what broke the bound before. The figures are printed for
`pytest -s`; bench/ is where they are reported.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from pathlib import Path

from tests.edxml.hostile import make_corpus

REPO = Path(__file__).resolve().parents[2]
BOUND_MIB = 256

CHILD = """
import json, sys
from edxml.errors import EdxmlError
from edxml.reader import read_package
from edxml.signature import DocumentDigester
try:
    result = read_package(sys.argv[1], sys.argv[2], digester=DocumentDigester())
    outcome = [r.error.reason if r.error else None for r in result.attachments]
except EdxmlError as exc:
    outcome = exc.reason
# VmHWM is this process image's own peak; ru_maxrss would include the forking parent's.
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "peak_mib": peak_kib / 1024}))
"""


def read_in_child(path: Path, out: Path) -> dict:  # type: ignore[type-arg]
    run = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{path.name}: {report}")
    return report


def zip_with_entries(n: int) -> bytes:
    """A ZIP whose central directory lists ``n`` one-byte stored files (ZIP64 end records)."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0xE8B7BE43, 1, 1, 1, 0) + b"a" + b"x"
    entry = struct.Struct("<4s4B4HL2L5H2L")
    directory = b"".join(
        entry.pack(b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, 0xE8B7BE43, 1, 1, len(name), 0, 0, 0, 0, 0, 0) + name
        for name in (format(i, "x").encode() for i in range(n)))
    cd_offset = len(local)
    eocd64_offset = cd_offset + len(directory)
    eocd64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(directory), cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, eocd64_offset, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + directory + eocd64 + locator + eocd


def test_zip_listing_a_million_entries_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    data = zip_with_entries(1_000_000)  # ~51 MB of central directory, ~68 MB as base64
    marker = "QUFBQQ=="
    text = make_corpus.document(atts=(make_corpus.Att(ctype="application/zip", name="van-ban.doc",
                                                      b64=marker),))
    head, tail = text.split(marker)
    path = tmp_path / "zip-million.edxml"
    with open(path, "wb") as f:
        f.write(head.encode("utf-8"))
        f.write(base64.b64encode(data))
        f.write(tail.encode("utf-8"))
    report = read_in_child(path, tmp_path / "out")
    assert report["outcome"] == ["edxml.attachment.zip_directory"]
    assert report["peak_mib"] < BOUND_MIB


def test_a_million_namespace_declarations_are_refused_within_the_bound(tmp_path: Path) -> None:
    per_element, levels = 250_000, 4  # 1 M declarations, ~24 MB, each tag under the token limit
    opening = "".join(
        f'<v:x{level} xmlns:v="urn:v"' + "".join(f' xmlns:n{level}_{i:x}="u:n"' for i in range(per_element)) + ">"
        for level in range(levels))
    closing = "".join(f"</v:x{level}>" for level in reversed(range(levels)))
    text = make_corpus.document(header_extra="      " + opening + closing + "\n")
    path = tmp_path / "namespaces-million.edxml"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size > 20_000_000
    report = read_in_child(path, tmp_path / "out")
    assert report["outcome"] == "edxml.xml.too_many_namespaces"
    assert report["peak_mib"] < BOUND_MIB


def test_namespace_declarations_a_real_package_uses_are_read(tmp_path: Path) -> None:
    atts = tuple(make_corpus.Att(cid=f"cid:{i}", name=f"f{i}.pdf") for i in range(200))
    path = tmp_path / "many-attachments.edxml"
    path.write_text(make_corpus.document(atts=atts), encoding="utf-8")  # xmlns:edXML on each content
    report = read_in_child(path, tmp_path / "out")
    assert report["outcome"] == [None] * 200


def test_declared_directory_is_read_from_the_end_records(tmp_path: Path) -> None:
    import io
    import zipfile

    from edxml import mime

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"m{i}.txt", b"x" * i)
    entries, size = mime.zip_directory(buf)  # type: ignore[misc]
    assert entries == 3 and 0 < size < len(buf.getvalue())
    assert mime.zip_directory_too_large(buf, max_entries=2) is not None
    big = zip_with_entries(70_000)
    directory = len(big) - 32 - 56 - 20 - 22  # less the local file, the ZIP64 and classic end records
    assert mime.zip_directory(io.BytesIO(big)) == (70_000, directory)
    assert mime.zip_directory(io.BytesIO(b"PK\x03\x04 not a zip")) is None


def test_lowered_entry_limit_refuses_the_attachment_only(tmp_path: Path) -> None:
    import io
    import zipfile

    from edxml.reader import ReadLimits, read_package_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"m{i}.txt", b"x")
    text = make_corpus.document(atts=(make_corpus.Att(ctype="application/zip", content=buf.getvalue()),))
    result = read_package_bytes(text.encode("utf-8"), tmp_path, limits=ReadLimits(max_zip_entries=2))
    assert [r.error.reason if r.error else None for r in result.attachments] == ["edxml.attachment.zip_directory"]
    assert result.package.message_header.subject
