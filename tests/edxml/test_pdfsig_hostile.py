"""Hostile PDFs: every one yields a report with a stable reason, never an exception or an
unbounded read. Inputs are generated here at run time (decompression bombs, broken
cross-reference data, signature dictionaries pointing outside the file, huge byte ranges, deep
nesting, absurd object counts); the reasons are in docs/reasons.md.

The 1 GiB case runs the analysis in a child process and asserts only that its peak resident
memory stays within the 256 MiB bound of docs/performance.md.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from edxml.pdfmake import minimal_pdf
from edxml.pdfsig import PdfLimits, PdfReport, analyse_pdf
from edxml.pki import TestPki
from tests.edxml.pdfsig_fixtures import SignedPdfs, make_signed_pdfs

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def pdfs(test_pki: TestPki) -> SignedPdfs:
    return make_signed_pdfs(test_pki.material)


def _pdf(objects: list[bytes], *, trailer_extra: bytes = b"", xref_stream: bytes | None = None) -> bytes:
    """A PDF from raw object bodies (object 1 is the catalog) with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    start = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
              % (len(offsets) + 1, trailer_extra, start))
    return out.getvalue()


def _page_tree() -> list[bytes]:
    return [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]


def xref_stream_bomb(_: SignedPdfs) -> bytes:
    """The cross-reference data itself is a Flate stream that expands to 64 MiB."""
    data = zlib.compress(b"\0" * (64 * MiB), 9)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    cat = out.tell()
    out.write(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    pages = out.tell()
    out.write(b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n")
    xref = out.tell()
    out.write(b"3 0 obj\n<< /Type /XRef /Size 4 /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>\n"
              b"stream\n" % len(data) + data + b"\nendstream\nendobj\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    del cat, pages
    return out.getvalue()


def object_stream_bomb(_: SignedPdfs) -> bytes:
    """The catalog lives in an object stream with two stacked Flate layers (a ratio far above
    what one layer of Deflate can reach)."""
    inner = zlib.compress(b"1 0 " + b" " * (64 * MiB) + b"<< /Type /Catalog >>", 9)
    data = zlib.compress(inner, 9)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    objstm = out.tell()
    out.write(b"2 0 obj\n<< /Type /ObjStm /N 1 /First 4 /Filter [/FlateDecode /FlateDecode] /Length %d >>\n"
              b"stream\n" % len(data) + data + b"\nendstream\nendobj\n")
    rows = b"".join([bytes([0]) + (0).to_bytes(4, "big") + (65535).to_bytes(2, "big"),
                     bytes([2]) + (2).to_bytes(4, "big") + (0).to_bytes(2, "big"),
                     bytes([1]) + objstm.to_bytes(4, "big") + (0).to_bytes(2, "big")])
    xref = out.tell()
    rows += bytes([1]) + xref.to_bytes(4, "big") + (0).to_bytes(2, "big")
    out.write(b"3 0 obj\n<< /Type /XRef /Size 4 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
              % len(rows) + rows + b"\nendstream\nendobj\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def broken_startxref(_: SignedPdfs) -> bytes:
    data = minimal_pdf()
    return re.sub(rb"startxref\n\d+", b"startxref\n999999999", data)


def xref_pointing_at_garbage(_: SignedPdfs) -> bytes:
    data = bytearray(minimal_pdf())
    at = data.index(b"xref\n")
    data[at:at + 4] = b"junk"
    return bytes(data)


def truncated(pdfs: SignedPdfs) -> bytes:
    return pdfs.valid[: len(pdfs.valid) // 2]


def _patch_byte_range(signed: bytes, values: bytes) -> bytes:
    m = re.search(rb"/ByteRange \[[^\]]*\] *", signed)  # the writer pads it with spaces
    assert m is not None
    new = b"/ByteRange [" + values + b"]"
    assert len(new) <= len(m.group(0)), "no room in the padded ByteRange"
    new += b" " * (len(m.group(0)) - len(new))
    return signed[:m.start()] + new + signed[m.end():]


def byte_range_outside_file(pdfs: SignedPdfs) -> bytes:
    m = re.search(rb"/ByteRange \[0 (\d+) (\d+) (\d+)", pdfs.valid)
    assert m is not None
    return _patch_byte_range(pdfs.valid, b"0 %s %s %d" % (m.group(1), m.group(2), int(m.group(3)) + 4096))


def huge_byte_range(pdfs: SignedPdfs) -> bytes:
    return _patch_byte_range(pdfs.valid, b"0 99999999999 99999999999 99999999999")


def negative_byte_range(pdfs: SignedPdfs) -> bytes:
    return _patch_byte_range(pdfs.valid, b"0 -5 10 20")


def byte_range_not_numbers(pdfs: SignedPdfs) -> bytes:
    return _patch_byte_range(pdfs.valid, b"/a /b /c /d")


def contents_not_cms(pdfs: SignedPdfs) -> bytes:
    m = re.search(rb"/Contents <([0-9a-fA-F]+)>", pdfs.valid)
    assert m is not None
    junk = b"30" + b"ff" * ((len(m.group(1)) - 2) // 2)
    return pdfs.valid[:m.start(1)] + junk + pdfs.valid[m.end(1):]


def deep_nesting(_: SignedPdfs) -> bytes:
    objs = _page_tree()
    objs[0] = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields " + b"[" * 50_000 + b"]" * 50_000 + b" >> >>"
    return _pdf(objs)


def absurd_object_count(_: SignedPdfs) -> bytes:
    data = minimal_pdf()
    return data.replace(b"/Size 6", b"/Size 999999999")


def not_a_pdf(_: SignedPdfs) -> bytes:
    return b"PK\x03\x04 this is a zip"


def empty(_: SignedPdfs) -> bytes:
    return b""


CASES: dict[str, tuple[Callable[[SignedPdfs], bytes], str]] = {
    "xref-stream-bomb": (xref_stream_bomb, "pdf.bomb"),
    "object-stream-bomb": (object_stream_bomb, "pdf.bomb"),
    "broken-startxref": (broken_startxref, "pdf.malformed"),
    "xref-pointing-at-garbage": (xref_pointing_at_garbage, "pdf.malformed"),
    "truncated": (truncated, "pdf.malformed"),
    "byte-range-outside-file": (byte_range_outside_file, "pdf.signature.byte_range"),
    "huge-byte-range": (huge_byte_range, "pdf.signature.byte_range"),
    "negative-byte-range": (negative_byte_range, "pdf.signature.byte_range"),
    "byte-range-not-numbers": (byte_range_not_numbers, "pdf.signature.byte_range"),
    "contents-not-cms": (contents_not_cms, "pdf.signature.malformed"),
    "deep-nesting": (deep_nesting, "pdf.too_deep"),
    "absurd-object-count": (absurd_object_count, "pdf.too_many_objects"),
    "not-a-pdf": (not_a_pdf, "pdf.not_pdf"),
    "empty": (empty, "pdf.not_pdf"),
}


def _reason(report: PdfReport) -> str | None:
    if report.reason:
        return report.reason
    reasons = {s.reason for s in report.signatures}
    assert len(reasons) == 1, report
    return reasons.pop()


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_pdf_is_reported_with_its_reason(name: str, pdfs: SignedPdfs, tmp_path: Path) -> None:
    make, reason = CASES[name]
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(make(pdfs))
    report = analyse_pdf(path, pdfs.trust)
    assert _reason(report) == reason, report
    assert report.status in ("unreadable", "signed")
    assert all(s.verdict == "invalid" for s in report.signatures)


def test_more_signatures_than_allowed(pdfs: SignedPdfs) -> None:
    report = analyse_pdf(pdfs.two_signatures, pdfs.trust, limits=PdfLimits(max_signatures=1))
    assert report.reason == "pdf.too_many_signatures"


_MAKE = """
import sys
from edxml.pdfmake import minimal_pdf, sign_pdf
from edxml.signature import Signer
signer = Signer.from_pem(sys.argv[2], sys.argv[3], chain_path=sys.argv[4])
with open(sys.argv[1] + ".unsigned", "wb") as f:
    f.write(minimal_pdf("scan", padding=1024 * 1024 * 1024))
with open(sys.argv[1] + ".unsigned", "rb") as src, open(sys.argv[1], "wb") as dst:
    sign_pdf(src, signer.private_key, signer.certificate, signer.chain, output=dst)
"""

# VmHWM is the peak resident set of this process image (ru_maxrss would carry the parent's
# peak across exec).
_CHILD = """
import sys
from edxml.pdfsig import PdfTrust, analyse_pdf
report = analyse_pdf(sys.argv[1], PdfTrust.from_paths([sys.argv[2]]))
with open("/proc/self/status") as f:
    peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(report.status, ",".join(s.verdict for s in report.signatures), peak_kib)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
def test_report_on_a_1_gib_pdf_stays_within_the_memory_bound(test_pki: TestPki, tmp_path: Path) -> None:
    files = test_pki.agencies["000.00.00.H55"]
    signed = tmp_path / "big.pdf"
    # Made in a child of its own so this test process stays small too.
    made = subprocess.run([sys.executable, "-c", _MAKE, str(signed), str(files.key), str(files.cert),
                           str(files.chain)], capture_output=True, text=True, timeout=590)
    assert made.returncode == 0, made.stderr[-2000:]
    Path(str(signed) + ".unsigned").unlink()
    assert signed.stat().st_size > 1024 * MiB
    out = subprocess.run([sys.executable, "-c", _CHILD, str(signed), str(test_pki.trust_dir)],
                         capture_output=True, text=True, timeout=590)
    assert out.returncode == 0, out.stderr[-2000:]
    status, verdicts, peak_kib = out.stdout.split()
    assert (status, verdicts) == ("signed", "valid"), out.stdout
    assert int(peak_kib) * 1024 <= 256 * MiB, f"peak RSS {peak_kib} KiB"
