"""Tell a file's type from its first bytes, since senders' ContentType values cannot be trusted.

The reference Java library declares `application/zip` for a zipped `.doc` and others write
`application/doc`; a clerk needs to know what the file really is.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from typing import BinaryIO

SNIFF_BYTES = 4096

MAX_ZIP_ENTRIES = 10_000
"""Central-directory entries a ZIP may list before any ZIP reader is let near it."""
MAX_ZIP_DIRECTORY_BYTES = 4 * 1024 * 1024
"""Size of the central directory, which a ZIP reader loads whole (1 M entries once cost 454 MiB)."""

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"

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


def zip_directory(f: BinaryIO) -> tuple[int, int] | None:
    """(entries, central directory bytes) a ZIP file declares, read from its end records only.

    Looks where a ZIP reader looks (the end-of-central-directory record, and the ZIP64 one it
    points to) without reading the directory itself, so the declared sizes can be checked
    before anything is loaded. The larger of the classic and ZIP64 figures counts. None when
    there is no end record (not a ZIP a reader could open). Position restored.
    """
    pos = f.tell()
    try:
        f.seek(0, 2)
        size = f.tell()
        span = min(size, 22 + 0xFFFF + 20 + 56)
        f.seek(size - span)
        tail = f.read(span)
    finally:
        f.seek(pos)
    i = len(tail) - 22
    if i < 0:
        return None
    if not (tail[i:i + 4] == _EOCD and tail[-2:] == b"\x00\x00"):
        i = tail.rfind(_EOCD)
        if i < 0 or len(tail) - i < 22:
            return None
    _sig, _disk, _cd_disk, on_disk, entries, cd_bytes, _offset, _comment = struct.unpack(
        "<4s4H2LH", tail[i:i + 22])
    entries = max(entries, on_disk)
    loc = i - 20
    if loc >= 0 and tail[loc:loc + 4] == _EOCD64_LOCATOR:
        rec = loc - 56
        if rec >= 0 and tail[rec:rec + 4] == _EOCD64:
            (_sig, _size, _made, _need, _disk, _cd_disk, on_disk64, entries64, cd_bytes64,
             _offset64) = struct.unpack("<4sQ2H2L4Q", tail[rec:rec + 56])
            # 0xFFFF / 0xFFFFFFFF in the classic record mean "see the ZIP64 one".
            entries = max(entries if entries != 0xFFFF else 0, entries64, on_disk64)
            cd_bytes = max(cd_bytes if cd_bytes != 0xFFFFFFFF else 0, cd_bytes64)
        else:
            # A ZIP64 locator whose record is not where readers expect it: assume the worst.
            cd_bytes = max(cd_bytes, size)
    return entries, cd_bytes


def zip_directory_too_large(f: BinaryIO, *, max_entries: int = MAX_ZIP_ENTRIES,
                            max_bytes: int = MAX_ZIP_DIRECTORY_BYTES) -> str | None:
    """Why the ZIP's declared central directory is too large to read, or None."""
    found = zip_directory(f)
    if found is None:
        return None
    entries, cd_bytes = found
    if entries > max_entries:
        return f"the ZIP's central directory lists {entries} entries (limit {max_entries})"
    if cd_bytes > max_bytes:
        return f"the ZIP's central directory declares {cd_bytes} bytes (limit {max_bytes})"
    return None


def sniff_file(f: BinaryIO) -> str:
    """The MIME type of an open file (read from the start; position restored)."""
    pos = f.tell()
    f.seek(0)
    head = f.read(SNIFF_BYTES)
    mime = sniff_bytes(head)
    if mime == "application/zip" and zip_directory_too_large(f) is None:
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as zf:
                mime = container_type(zf) or mime
        except (zipfile.BadZipFile, OSError, ValueError, zlib.error, EOFError,
                NotImplementedError, RuntimeError):
            pass
    f.seek(pos)
    return mime
