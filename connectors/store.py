"""Keep attachment files and signed packages on disk, addressed by their SHA-256.

Attachments travel through Kafka by reference (claim check): an event carries a `file://` URI,
the SHA-256 and the size. `FileStore` is the embedded store on a (shared) file system:

    ROOT/objects/ab/abcdef…   attachments, content-addressed, written once, read-only
    ROOT/archive/ab/abcdef…   signed packages (in and out), kept verbatim for retention
    ROOT/tmp/                 scratch space: temporary files and directories (same file
                              system, so a finished file is published with one atomic rename)

`copy_reference` is the gate for references that come from agencies: a `file://` URI is opened
once, beneath one of *that agency's own* attachment roots only, component by component without
following any symlink (`openat` with O_NOFOLLOW, each directory with O_DIRECTORY), checked to be
a regular file that is not one of the gateway's own secret files, and copied from that one open
file descriptor into a private scratch file, hashed on the way. Size and SHA-256 must match the
event; a mismatch says only that it does not match, never the file's real size or hash. The
caller (and the worker that builds the package) uses only the private copy, so what was checked
is what is encoded and signed: the agency's file is never opened again by name. The archive and
the scratch area can never be named. `resolve` is the same gate for tools (no agency: the store
and `allowed_roots`). Everything here is synchronous file I/O; async callers run it in a
thread.

Errors are `StoreError` with a reason from `REASONS`. `store.unavailable` is transient: a full,
read-only or unwritable file system is an operator's problem, and the work retries after the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

from edxml.errors import GatewayError

REASONS: dict[str, str] = {
    "store.forbidden": "a reference is not a file:// URI inside the store root or an allowed root "
                       "(other scheme, remote host, relative path, '..', a symlink leading out)",
    "store.missing": "the referenced file does not exist or is not a regular file",
    "store.size_mismatch": "the referenced file's size differs from the size in the event (the "
                           "message never tells the real size)",
    "store.hash_mismatch": "the referenced file's SHA-256 differs from the hash in the event "
                           "(the message never tells the real hash)",
    "store.unavailable": "the file system refused the operation (full, read-only, permission "
                         "denied, I/O error); transient: retried once the operator fixes it",
}

_CHUNK = 1024 * 1024
_P = TypeVar("_P", str, Path)
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

    def resolve(self, ref: Reference, *, verify_hash: bool = True,
                agency: str | None = None) -> Path: ...

    def copy_reference(self, ref: Reference, agency: str, directory: Path,
                       name: str | None = None) -> Path: ...

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

    `agency_roots` maps each agency (OrganId) to the directories its `file://` references may
    point into (its own export share mounted on the gateway host); an agency can never read
    beneath another agency's roots, the store, or anything else. `allowed_roots` are directories
    any caller *without* an agency may read (tools and tests; the outbound pipeline always names
    the agency). `secret_files` are files no reference may ever reach, even by a hard link (the
    signing keys, the axis secret). The store never writes into any of these roots.
    """

    def __init__(self, root: str | os.PathLike[str],
                 allowed_roots: Sequence[str | os.PathLike[str]] = (), *,
                 agency_roots: Mapping[str, Sequence[str | os.PathLike[str]]] | None = None,
                 secret_files: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.root = Path(os.path.abspath(root))
        self.allowed_roots = tuple(Path(os.path.abspath(r)) for r in allowed_roots)
        # Roots are resolved once, here (an operator's symlink in the configured path is fine);
        # when a reference is used, every component is opened without following symlinks, so a
        # symlink appearing later anywhere on the way is refused.
        # Each root as (configured path, real path): a reference may use either form.
        self._readable = tuple(_both(r) for r in (self.root, *self.allowed_roots))
        self.agency_roots: dict[str, tuple[tuple[Path, Path], ...]] = {
            agency: tuple(_both(r) for r in roots)
            for agency, roots in (agency_roots or {}).items()}
        real_root = Path(os.path.realpath(self.root))
        self._never = (real_root / _ARCHIVE, real_root / _TMP)
        # The same places as strings, for the archive step's path arithmetic (pathlib's parsing
        # was most of its Python).
        self._root_str = str(self.root)
        self._root_prefix = self._root_str.rstrip("/") + "/"
        self._tmp_str = self._root_prefix + _TMP
        self._secret_inodes: frozenset[tuple[int, int]] = frozenset(
            _inode(Path(p)) for p in secret_files if _inode(Path(p)) is not None)  # type: ignore[misc]

    def __repr__(self) -> str:
        return (f"FileStore(root={str(self.root)!r}, allowed_roots={len(self.allowed_roots)}, "
                f"agencies={len(self.agency_roots)})")

    # -- references from events ---------------------------------------------------------------

    def roots_for(self, agency: str | None) -> tuple[tuple[Path, Path], ...]:
        """The directories a reference may point into: the agency's own roots (none if the
        agency has none), or, without an agency, the store and `allowed_roots`."""
        if agency is None:
            return self._readable
        return self.agency_roots.get(agency, ())

    def resolve(self, ref: Reference, *, verify_hash: bool = True,
                agency: str | None = None) -> Path:
        """The path of a referenced file, after checking place, size and (unless
        `verify_hash=False`) SHA-256, for tools that read the file themselves afterwards. The
        outbound pipeline uses `copy_reference`, which never opens the file again by name."""
        fd = self._open_reference(ref, agency)
        try:
            if verify_hash:
                digest = hashlib.sha256()
                _pump(fd, None, ref.size, digest, _short(ref.uri))
                self._check_hash(digest.hexdigest(), ref)
        finally:
            os.close(fd)
        return Path(unquote(urlsplit(ref.uri).path))

    def copy_reference(self, ref: Reference, agency: str, directory: Path,
                       name: str | None = None) -> Path:
        """Open the referenced file once, beneath `agency`'s roots, and copy it into a new
        private file in `directory` (a scratch directory of the caller), checking size and
        SHA-256 of the bytes copied; return the copy's path. The copy is what gets encoded and
        signed: nothing the agency changes after this call can reach the package."""
        fd = self._open_reference(ref, agency)
        try:
            target = Path(directory) / (name or f"att-{uuid.uuid4().hex}")
            try:
                out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | _O_CLOEXEC, 0o600)
            except OSError as exc:
                raise unavailable(exc, "create a private copy in", directory) from None
            try:
                digest = hashlib.sha256()
                _pump(fd, out, ref.size, digest, _short(ref.uri))
            except BaseException:
                os.close(out)
                _unlink_quietly(target)
                raise
            os.close(out)
        finally:
            os.close(fd)
        try:
            self._check_hash(digest.hexdigest(), ref)
        except StoreError:
            _unlink_quietly(target)
            raise
        return target

    @staticmethod
    def _check_hash(digest: str, ref: Reference) -> None:
        claimed = str(ref.sha256).lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(digest.encode("ascii"), claimed):
            raise StoreError("store.hash_mismatch", f"{_short(ref.uri)} does not match the "
                             "sha256 in the event", where=_short(ref.uri))

    def _open_reference(self, ref: Reference, agency: str | None) -> int:
        """An open, read-only descriptor of the referenced regular file whose size is the one
        the event gives; refused if it is not beneath the roots without any symlink."""
        uri = ref.uri
        base, rel = self._locate(uri, agency)
        fd = _open_beneath(base, rel, uri)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError("store.missing", f"{_short(uri)} is not a regular file",
                                 where=_short(uri))
            if (info.st_dev, info.st_ino) in self._secret_inodes:
                raise StoreError("store.forbidden", f"{_short(uri)} is one of the gateway's "
                                 "own secret files", where=_short(uri))
            if info.st_size != ref.size:
                raise StoreError("store.size_mismatch", f"{_short(uri)} does not match the "
                                 "size in the event", where=_short(uri))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _locate(self, uri: str, agency: str | None) -> tuple[Path, tuple[str, ...]]:
        """The real root a reference lies beneath and the parts of its path below it; refused
        if it is beneath none of the roots, names a root itself, or the archive or scratch."""
        # The path's parts, compared as tuples with the roots' (pathlib's `==` and
        # `is_relative_to` are these comparisons, less the parsing on every call).
        path = self._parts_of(uri)
        roots = self.roots_for(agency)
        rel = None
        for configured, real in roots:
            for form in (configured.parts, real.parts):
                if path == form:
                    raise StoreError("store.missing", f"{_short(uri)} is a directory, not a "
                                     "regular file", where=_short(uri))
                if path[:len(form)] == form:
                    rel, base = path[len(form):], real
                    break
            if rel is not None:
                break
        if rel is None:
            whose = "the sending agency's attachment roots" if agency is not None \
                else "the store and the allowed roots"
            raise StoreError("store.forbidden", f"{_short(uri)} is not beneath {whose}",
                             where=_short(uri))
        opened = base.parts + rel
        if any(path[:len(n.parts)] == n.parts or opened[:len(n.parts)] == n.parts
               for n in self._never):
            raise StoreError("store.forbidden", f"{_short(uri)} names the gateway's archive or "
                             "scratch area", where=_short(uri))
        return base, rel

    def _path_of_text(self, uri: str) -> str:
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
        return raw

    def _parts_of(self, uri: str) -> tuple[str, ...]:
        """`Path(raw).parts` of the reference's path, without building the Path for a plain
        path (no empty or '.' component, which pathlib would drop or keep as '//')."""
        raw = self._path_of_text(uri)
        parts = raw.split("/")
        parts[0] = "/"
        if all(parts[1:]) and "." not in parts:
            return tuple(parts)
        return Path(raw).parts

    # -- writing ---------------------------------------------------------------------------------

    def put(self, src: Path, name: str = "", *, move: bool = False) -> StoredRef:
        """Store a file under `objects/` by its SHA-256 (atomic, idempotent).

        `name` (the attachment's name) is only used in error messages: the object's path is its
        hash, so the same bytes are stored once whatever they are called. With `move=True` the
        source (a file in `scratch()`) is renamed into place instead of copied.
        """
        return self._store(Path(src), _OBJECTS, name or Path(src).name, move)

    def archive_package(self, src: Path, *, move: bool = False) -> StoredRef:
        """Keep a signed package verbatim under `archive/` by its SHA-256 (atomic, idempotent).

        A package in `scratch()` (the pipelines build and fetch theirs there) is archived by a
        hard link instead of a copy, and so becomes read-only under its scratch name too: the
        gateway only reads a package after writing it, and a later write would go to a new
        file renamed over the name (edxml.writer), never into the archived one.
        """
        src = Path(src)
        if not move and self._in_scratch(src):
            linked = self._link(src, _ARCHIVE, src.name)
            if linked is not None:
                return linked
        return self._store(src, _ARCHIVE, src.name, move)

    def path_for(self, area: str, sha256: str) -> Path:
        """Where the file with this SHA-256 lives in `objects` or `archive`."""
        if area not in (_OBJECTS, _ARCHIVE) or len(sha256) != 64 or \
                sha256.strip("0123456789abcdef"):   # left over: a character that is not hex
            raise ValueError("area must be objects/archive and sha256 64 lower-case hex digits")
        return self.root / area / sha256[:2] / sha256

    def _in_scratch(self, src: Path) -> bool:
        scratch = self._tmp_str
        path = os.path.abspath(src)
        if path != scratch and not path.startswith(scratch + "/"):
            return False
        # Beneath the scratch area by name; it is really there unless a component below the
        # scratch directory is a symlink (then the full resolution decides, as always).
        # lstat of those few components instead of `realpath`'s walk of the whole path.
        here = scratch
        for part in path[len(scratch) + 1:].split("/") if path != scratch else ():
            here = here + "/" + part
            try:
                if stat.S_ISLNK(os.lstat(here).st_mode):
                    break
            except OSError:
                break
        else:
            # realpath(src) is then realpath(scratch) followed by these same components.
            return True
        return _is_relative_to(os.path.realpath(src), os.path.realpath(scratch))

    def _link(self, src: Path, area: str, label: str) -> StoredRef | None:
        """Publish `src` under `area` by a hard link instead of a copy: hashed, made durable and
        read-only, linked under a temporary name, checked to be the very file hashed, and
        renamed into place (a name appears for a complete file, atomically). None when it
        cannot be linked (the caller copies instead)."""
        try:
            fd = os.open(src, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except OSError as exc:
            raise unavailable(exc, f"read {label} from", src) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                return None     # not a plain file of its own
            digest = hashlib.sha256()
            try:
                _pump(fd, None, info.st_size, digest, label)
            except StoreError as exc:
                if exc.transient:
                    raise
                return None     # changed while read
            size, sha = info.st_size, digest.hexdigest()
            # path_for's place, as a string (sha is hexdigest's own lower-case hex).
            parent = f"{self._root_prefix}{area}/{sha[:2]}"
            final = f"{parent}/{sha}"
            self._ensure_dir(parent)
            if _same_size(final, size):
                return _ref(Path(final), sha, size)
            try:
                os.fchmod(fd, 0o444)
                os.fsync(fd)
            except OSError as exc:
                raise unavailable(exc, f"write {label} to", final) from None
            tmp = f"{self._ensure_dir(self._tmp_str)}/.{area}-{uuid.uuid4().hex}"
            try:
                os.link(src, tmp, follow_symlinks=False)
            except OSError:
                return None     # a file system that cannot link
            try:
                if os.stat(tmp, follow_symlinks=False).st_ino != info.st_ino:
                    return None     # not the file hashed above (renamed over meanwhile)
                os.replace(tmp, final)
            except OSError as exc:
                raise unavailable(exc, f"publish {label} as", final) from None
            finally:
                _unlink_quietly(tmp)
        finally:
            os.close(fd)
        _fsync_dir(parent)
        return _ref(Path(final), sha, size)

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

    def _ensure_dir(self, path: _P) -> _P:
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.stat(path).st_mode):
                return path     # the usual case: one stat, no pathlib
        path = Path(path)   # type: ignore[assignment]
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
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# Test hook: called with the descriptor of the last directory just before the file itself is
# opened in it (the moment an attacker would swap the file). Never set outside tests.
_before_final_open: Callable[[int, str], None] | None = None


def _open_beneath(root: Path, rel: Sequence[str], uri: str) -> int:
    """Open `root`/`rel` read-only walking every component from `/` with openat and
    O_NOFOLLOW (directories also with O_DIRECTORY): no symlink is followed anywhere, so the
    file opened is really beneath `root` whatever is swapped in meanwhile."""
    where = _short(uri)
    parts = [*root.parts[1:], *rel]
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise StoreError("store.forbidden", "the path has an empty, '.' or '..' part",
                         where=where)
    try:
        dirfd = os.open("/", os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise unavailable(exc, "open", "/") from None
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC,
                              dir_fd=dirfd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR and _is_symlink(part, dirfd):
                    raise StoreError("store.forbidden", f"{where} passes through a symlink",
                                     where=where) from None
                raise _open_error(exc, uri) from None
            os.close(dirfd)
            dirfd = nxt
        if _before_final_open is not None:
            _before_final_open(dirfd, parts[-1])
        try:
            # O_NONBLOCK: a FIFO placed there must not hang the gateway.
            return os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC,
                           dir_fd=dirfd)
        except OSError as exc:
            raise _open_error(exc, uri) from None
    finally:
        os.close(dirfd)


def _is_symlink(name: str, dirfd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_error(exc: OSError, uri: str) -> StoreError:
    where = _short(uri)
    # ELOOP: O_NOFOLLOW met a symlink as the last component; ENOTDIR with O_DIRECTORY and
    # O_NOFOLLOW: a symlink (or a file) where a directory was expected.
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return StoreError("store.forbidden", f"{where} is or passes through a symlink",
                          where=where)
    if exc.errno in _MISSING_ERRNOS:
        return StoreError("store.missing", f"{where} does not exist (or passes through "
                          "something that is not a directory)", where=where)
    return unavailable(exc, "read", where)


def _pump(fd: int, out: int | None, size: int, digest: Any, label: str) -> None:
    """Read the open file `fd` to its end, at most `size` + 1 bytes (a file that grew is a
    mismatch, not an unbounded read), hashing and (if `out`) copying what is read."""
    # No bigger than the file needs (+1 to see that it grew): a megabyte zeroed for a 30 KiB
    # attachment costs more than reading it.
    buf = bytearray(min(_CHUNK, size + 1))
    view = memoryview(buf)
    total = 0
    while True:
        want = min(_CHUNK, size + 1 - total)
        if want <= 0:
            break
        try:
            n = os.readv(fd, [view[:want]])
        except BlockingIOError:
            continue  # pragma: no cover - a regular file never blocks
        except OSError as exc:
            raise unavailable(exc, "read", label) from None
        if not n:
            break
        digest.update(view[:n])
        total += n
        if out is not None:
            done = 0
            while done < n:  # os.write may write less than asked
                try:
                    done += os.write(out, view[done:n])
                except OSError as exc:
                    raise unavailable(exc, "write a private copy of", label) from None
    if total != size:
        raise StoreError("store.size_mismatch", f"{label} does not match the size in the "
                         "event", where=label)
    # A private copy is not synced to disk: it lives only as long as its record's work, and
    # after a crash that work starts again from the agency's file in a new scratch directory.


def _both(root: str | os.PathLike[str]) -> tuple[Path, Path]:
    return Path(os.path.abspath(root)), Path(os.path.realpath(root))


def _is_relative_to(path: str, base: str) -> bool:
    return Path(path).is_relative_to(base)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _short(uri: object) -> str:
    text = str(uri)
    return text if len(text) <= 300 else text[:300] + "…"


def _ref(path: Path, digest: str, size: int) -> StoredRef:
    return StoredRef(uri=path.as_uri(), sha256=digest, size=size, path=path)


def _same_size(path: Path | str, size: int) -> bool:
    # Objects appear only by atomic rename of a complete file named by its hash, so an existing
    # one with the right size is the same content.
    try:
        return os.stat(path).st_size == size
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
