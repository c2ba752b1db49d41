"""Tell a file's type from its first bytes, since senders' ContentType values cannot be trusted.

The reference Java library declares `application/zip` for a zipped `.doc` and others write
`application/doc`; a clerk needs to know what the file really is.
"""

from __future__ import annotations

import zipfile
import zlib
from typing import BinaryIO

SNIFF_BYTES = 4096

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),  # .doc/.xls/.ppt
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"{\\rtf", "application/rtf"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
)

ZIP_MAGIC = b"PK\x03\x04"

# Formats that are ZIP containers in their own right, recognised by a member they must have.
_OOXML = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


def sniff_bytes(head: bytes) -> str:
    """The MIME type the first bytes show; `application/octet-stream` when they show nothing."""
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    if head.startswith(ZIP_MAGIC):
        return "application/zip"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<?xml") or stripped.startswith(b"<"):
        return "application/xml"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed window is still text.
        if exc.start < len(head) - 3:
            return "application/octet-stream"
    if head and all(b >= 0x20 or b in b"\t\r\n" for b in head):
        return "text/plain"
    return "application/octet-stream"


def container_type(zf: zipfile.ZipFile) -> str | None:
    """For a ZIP that is really an office document (OOXML, ODF), that document's type."""
    names = zf.namelist()
    if "[Content_Types].xml" in names:
        for prefix, mime in _OOXML.items():
            if any(n.startswith(prefix) for n in names):
                return mime
        return "application/vnd.openxmlformats-officedocument"
    if "mimetype" in names:
        # ODF's first member names the type in a few bytes; read no more than that, whatever the
        # member claims (a zip bomb can be called "mimetype" too).
        try:
            info = zf.getinfo("mimetype")
            if info.file_size > 100:
                return None
            with zf.open(info) as member:
                declared = member.read(101).decode("ascii").strip()
        except (UnicodeDecodeError, KeyError, zipfile.BadZipFile, OSError, zlib.error,
                EOFError, NotImplementedError, RuntimeError, ValueError):
            return None
        if not declared or not declared.isprintable() or "/" not in declared:
            return None
        return declared
    return None


def sniff_file(f: BinaryIO) -> str:
    """The MIME type of an open file (read from the start; position restored)."""
    pos = f.tell()
    f.seek(0)
    head = f.read(SNIFF_BYTES)
    mime = sniff_bytes(head)
    if mime == "application/zip":
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                mime = container_type(zf) or mime
        except (zipfile.BadZipFile, OSError, ValueError, zlib.error, EOFError,
                NotImplementedError, RuntimeError):
            pass
    f.seek(pos)
    return mime
