"""The type of a received attachment is sniffed from the bytes kept while decoding, and that
gives what sniffing the decoded file gives (`edxml.mime.sniff_file`, as the reader did before)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from edxml import mime
from edxml.reader import read_package_bytes
from tests.edxml.test_inbound_core import _package


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


_PAYLOADS = {
    "pdf": b"%PDF-1.7\n" + bytes(range(256)) * 40,
    "empty": b"",
    "text": "Kính gửi: các sở, ban, ngành\n".encode() * 300,
    # a multi-byte character cut by the 4 KiB window: still text
    "text-cut": b"a" * (mime.SNIFF_BYTES - 1) + "ệ".encode() * 10,
    "xml": b"<?xml version='1.0'?><a>" + b"x" * 5000 + b"</a>",
    "binary": bytes(range(256)) * 30,
    "zip": _zip({"a.txt": b"hello", "b.txt": b"world"}),
    "docx": _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}),
}


@pytest.mark.parametrize("name", sorted(_PAYLOADS))
def test_detected_type_is_what_the_decoded_file_shows(tmp_path: Path, name: str) -> None:
    result = read_package_bytes(_package(tmp_path, _PAYLOADS[name]), tmp_path / "out")
    (report,) = result.attachments
    assert report.ok
    with open(report.attachment.path, "rb") as f:
        assert report.detected_type == mime.sniff_file(f)
    assert report.attachment.path.read_bytes() == _PAYLOADS[name]
