"""Keep attachment files and signed packages on disk, addressed by their SHA-256.

Attachments travel through Kafka by reference (claim check): an event carries a `file://` URI,
the SHA-256 and the size. `FileStore` is the embedded store on a (shared) file system:

    ROOT/objects/ab/abcdef…   attachments, content-addressed, written once, read-only
    ROOT/archive/ab/abcdef…   signed packages (in and out), kept verbatim for retention
    ROOT/tmp/                 scratch space: temporary files and directories (same file
                              system, so a finished file is published with one atomic rename)

`resolve` is the gate for references that come from agencies: only `file://` URIs inside the
store root or a configured allowed root are opened, and size and SHA-256 must match the event.
Everything here is synchronous file I/O; async callers run it in a thread.

Errors are `StoreError` with a reason from `REASONS`. `store.unavailable` is transient: a full,
read-only or unwritable file system is an operator's problem, and the work retries after the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from edxml.errors import GatewayError

REASONS: dict[str, str] = {
    "store.forbidden": "a reference is not a file:// URI inside the store root or an allowed root "
                       "(other scheme, remote host, relative path, '..', a symlink leading out)",
    "store.missing": "the referenced file does not exist or is not a regular file",
    "store.size_mismatch": "the referenced file's size differs from the size in the event",
    "store.hash_mismatch": "the referenced file's SHA-256 differs from the hash in the event",
    "store.unavailable": "the file system refused the operation (full, read-only, permission "
                         "denied, I/O error); transient: retried once the operator fixes it",
}

_CHUNK = 1024 * 1024
_OBJECTS, _ARCHIVE, _TMP = "objects", "archive", "tmp"
# Reading a reference: these mean "no such file" rather than "the file system is broken".
_MISSING_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}


class StoreError(GatewayError):
    """The store could not do what was asked; `transient` is True only for `store.unavailable`."""

    def __init__(self, reason: str, message: str, *, where: str | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown store reason {reason!r}")
        super().__init__(reason, message, where=where, transient=reason == "store.unavailable")


@runtime_checkable
class Reference(Protocol):
    """What `resolve` needs: an attachment reference from an event, or a `StoredRef`."""

    @property
    def uri(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class StoredRef:
    """A file in the store: its `file://` URI, lower-case hex SHA-256 and size in bytes."""

    uri: str
    sha256: str
    size: int
    path: Path


@runtime_checkable
class AttachmentStore(Protocol):
    """What the pipelines need from an attachment store (the file store; object storage later)."""

    def resolve(self, ref: Reference, *, verify_hash: bool = True) -> Path: ...

    def put(self, src: Path, name: str = "", *, move: bool = False) -> StoredRef: ...

    def archive_package(self, src: Path, *, move: bool = False) -> StoredRef: ...

    def scratch(self) -> Path: ...

    def workdir(self) -> ContextManager[Path]: ...

    def check(self) -> None: ...


def unavailable(exc: OSError, doing: str, path: Path | str) -> StoreError:
    """The transient error for a file-system failure (ENOSPC, EROFS, EACCES, EIO, …)."""
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    detail = exc.strerror or type(exc).__name__
    return StoreError("store.unavailable", f"cannot {doing} {path}: {detail} ({code})",
                      where=str(path))


class FileStore:
    """The embedded store: a directory on a local or shared file system.

    `allowed_roots` are extra directories that `file://` references may point into (an agency's
    export share mounted on the gateway host); the store never writes there.
    """

    def __init__(self, root: str | os.PathLike[str],
                 allowed_roots: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.root = Path(os.path.abspath(root))
        self.allowed_roots = tuple(Path(os.path.abspath(r)) for r in allowed_roots)
        # Compared against fully resolved paths, so resolve the roots the same way.
        self._readable = tuple(Path(os.path.realpath(r))
                               for r in (self.root, *self.allowed_roots))

    def __repr__(self) -> str:
        return f"FileStore(root={str(self.root)!r}, allowed_roots={len(self.allowed_roots)})"

    # -- references from events ---------------------------------------------------------------

    def resolve(self, ref: Reference, *, verify_hash: bool = True) -> Path:
        """The real path of a referenced file, after checking place, size and SHA-256.

        `verify_hash=False` leaves the SHA-256 to a caller that hashes the bytes as it uses them
        (the package writer does): one read of a large file instead of two, and the check is on
        the bytes actually used, not on a file that could change in between."""
        uri = ref.uri
        path = self._path_of(uri)
        try:
            real = Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            raise self._read_error(exc, uri) from None
        if not any(real.is_relative_to(r) for r in self._readable):
            raise StoreError("store.forbidden", f"{_short(uri)} is outside the store and the "
                             "allowed roots (after following symlinks)", where=_short(uri))
        try:
            # O_NOFOLLOW: the last component may not have become a symlink since realpath;
            # O_NONBLOCK: a FIFO placed there must not hang the gateway.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC)
        except OSError as exc:
            raise self._read_error(exc, uri) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError("store.missing", f"{_short(uri)} is not a regular file",
                                 where=_short(uri))
            if info.st_size != ref.size:
                raise StoreError("store.size_mismatch", f"{_short(uri)} has {info.st_size} "
                                 f"bytes, the event says {ref.size}", where=_short(uri))
            if not verify_hash:
                return real
            with os.fdopen(os.dup(fd), "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()  # type: ignore[arg-type]
        except OSError as exc:
            raise self._read_error(exc, uri) from None
        finally:
            os.close(fd)
        if digest != str(ref.sha256).lower():
            raise StoreError("store.hash_mismatch", f"{_short(uri)} has SHA-256 {digest}, the "
                             f"event says {str(ref.sha256)[:64]}", where=_short(uri))
        return real

    def _path_of(self, uri: str) -> Path:
        where = _short(uri)
        if not isinstance(uri, str) or "\x00" in uri:
            raise StoreError("store.forbidden", "the reference is not a usable URI", where=where)
        parts = urlsplit(uri)
        if parts.scheme.lower() != "file":
            raise StoreError("store.forbidden", f"scheme {parts.scheme[:20]!r} is not supported "
                             "by the file store (only file://)", where=where)
        if parts.netloc not in ("", "localhost"):
            raise StoreError("store.forbidden", f"file:// URI names host {parts.netloc[:60]!r}; "
                             "only local paths are accepted", where=where)
        if parts.query or parts.fragment:
            raise StoreError("store.forbidden", "a file:// URI may not have a query or fragment",
                             where=where)
        raw = unquote(parts.path)
        if "\x00" in raw or not raw.startswith("/"):
            raise StoreError("store.forbidden", "the file:// URI does not hold an absolute path",
                             where=where)
        if ".." in raw.split("/"):
            raise StoreError("store.forbidden", "the path contains '..'", where=where)
        return Path(raw)

    @staticmethod
    def _read_error(exc: OSError, uri: str) -> StoreError:
        where = _short(uri)
        if exc.errno in _MISSING_ERRNOS:
            return StoreError("store.missing", f"{where} does not exist", where=where)
        if exc.errno == errno.ELOOP:
            return StoreError("store.forbidden", f"{where} is (or passes through) a symlink loop "
                              "or a symlink swapped in after the check", where=where)
        return unavailable(exc, "read", where)

    # -- writing ---------------------------------------------------------------------------------

    def put(self, src: Path, name: str = "", *, move: bool = False) -> StoredRef:
        """Store a file under `objects/` by its SHA-256 (atomic, idempotent).

        `name` (the attachment's name) is only used in error messages: the object's path is its
        hash, so the same bytes are stored once whatever they are called. With `move=True` the
        source (a file in `scratch()`) is renamed into place instead of copied.
        """
        return self._store(Path(src), _OBJECTS, name or Path(src).name, move)

    def archive_package(self, src: Path, *, move: bool = False) -> StoredRef:
        """Keep a signed package verbatim under `archive/` by its SHA-256 (atomic, idempotent)."""
        return self._store(Path(src), _ARCHIVE, Path(src).name, move)

    def path_for(self, area: str, sha256: str) -> Path:
        """Where the file with this SHA-256 lives in `objects` or `archive`."""
        if area not in (_OBJECTS, _ARCHIVE) or len(sha256) != 64 or \
                any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("area must be objects/archive and sha256 64 lower-case hex digits")
        return self.root / area / sha256[:2] / sha256

    def _store(self, src: Path, area: str, label: str, move: bool) -> StoredRef:
        tmp_dir = self._ensure_dir(self.root / _TMP)
        if move:
            size, digest = _hash_file(src, label)
            final = self.path_for(area, digest)
            self._ensure_dir(final.parent)
            if _same_size(final, size):
                _unlink_quietly(src)
                return _ref(final, digest, size)
            try:
                os.chmod(src, 0o444)
                os.replace(src, final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise unavailable(exc, f"move {label} into", final) from None
                return self._store(src, area, label, move=False)
            _fsync_dir(final.parent)
            return _ref(final, digest, size)

        try:
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=f".{area}-")
        except OSError as exc:
            raise unavailable(exc, "create a temporary file in", tmp_dir) from None
        tmp = Path(tmp_name)
        try:
            size, digest = _copy_hashing(src, fd, label, tmp)
            final = self.path_for(area, digest)
            self._ensure_dir(final.parent)
            if _same_size(final, size):
                return _ref(final, digest, size)
            try:
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
            except OSError as exc:
                raise unavailable(exc, f"publish {label} as", final) from None
            _fsync_dir(final.parent)
            return _ref(final, digest, size)
        finally:
            _unlink_quietly(tmp)

    def _ensure_dir(self, path: Path) -> Path:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unavailable(exc, "create directory", path) from None
        if not path.is_dir():
            raise StoreError("store.unavailable", f"{path} exists but is not a directory",
                             where=str(path))
        return path

    # -- housekeeping ----------------------------------------------------------------------------

    def scratch(self) -> Path:
        """A directory on the store's file system for temporary work (create your own
        temporary files or directories in it): `put(..., move=True)` from there is a rename.
        Leftovers of a crash are removed by `sweep()`."""
        return self._ensure_dir(self.root / _TMP)

    @contextlib.contextmanager
    def workdir(self) -> Iterator[Path]:
        """A private temporary directory inside `scratch()`, removed afterwards."""
        tmp_dir = self.scratch()
        try:
            work = Path(tempfile.mkdtemp(dir=tmp_dir, prefix="scratch-"))
        except OSError as exc:
            raise unavailable(exc, "create a scratch directory in", tmp_dir) from None
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def check(self) -> None:
        """Raise `store.unavailable` unless the store can be written right now (for readiness)."""
        if not self.root.is_dir():
            raise StoreError("store.unavailable", f"store root {self.root} is not a directory "
                             "(is the volume mounted?)", where=str(self.root))
        for area in (_OBJECTS, _ARCHIVE, _TMP):
            self._ensure_dir(self.root / area)
        try:
            fd, name = tempfile.mkstemp(dir=self.root / _TMP, prefix=".check-")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise unavailable(exc, "write to", self.root / _TMP) from None

    def sweep(self, older_than_seconds: float, *, now: float | None = None) -> int:
        """Remove leftovers in `tmp/` (a crash mid-write) older than the given age; the count."""
        now = time.time() if now is None else now
        tmp_dir = self.root / _TMP
        removed = 0
        try:
            entries = list(os.scandir(tmp_dir))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise unavailable(exc, "list", tmp_dir) from None
        for entry in entries:
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < older_than_seconds:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise unavailable(exc, "remove", entry.path) from None
        return removed


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _short(uri: object) -> str:
    text = str(uri)
    return text if len(text) <= 300 else text[:300] + "…"


def _ref(path: Path, digest: str, size: int) -> StoredRef:
    return StoredRef(uri=path.as_uri(), sha256=digest, size=size, path=path)


def _same_size(path: Path, size: int) -> bool:
    # Objects appear only by atomic rename of a complete file named by its hash, so an existing
    # one with the right size is the same content.
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise unavailable(exc, "inspect", path) from None


def _hash_file(src: Path, label: str) -> tuple[int, str]:
    try:
        with open(src, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256")  # type: ignore[arg-type]
            return fh.tell(), digest.hexdigest()
    except OSError as exc:
        raise unavailable(exc, f"read {label} from", src) from None


def _copy_hashing(src: Path, fd: int, label: str, tmp: Path) -> tuple[int, str]:
    """Copy `src` into the open temporary file `fd` (closed here), hashing on the way."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        try:
            fh = open(src, "rb")
        except OSError as exc:
            raise unavailable(exc, f"read {label} from", src) from None
        with fh:
            while True:
                try:
                    n = fh.readinto(buf)
                except OSError as exc:
                    raise unavailable(exc, f"read {label} from", src) from None
                if not n:
                    break
                digest.update(view[:n])
                done = 0
                while done < n:  # os.write may write less than asked
                    try:
                        done += os.write(fd, view[done:n])
                    except OSError as exc:
                        raise unavailable(exc, f"write {label} to", tmp) from None
                size += n
        try:
            os.fsync(fd)
        except OSError as exc:
            raise unavailable(exc, f"write {label} to", tmp) from None
    finally:
        os.close(fd)
    return size, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable; some file systems (and all of Windows) cannot, which is fine.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


__all__ = ["REASONS", "AttachmentStore", "FileStore", "Reference", "StoreError", "StoredRef",
           "unavailable"]
