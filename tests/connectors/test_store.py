"""The file store: content-addressed writes, the reference gate, and file-system failures."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.store import AttachmentStore, FileStore, StoreError, StoredRef


@dataclass(frozen=True)
class Ref:
    uri: str
    sha256: str
    size: int


def ref_for(path: Path, data: bytes | None = None) -> Ref:
    data = path.read_bytes() if data is None else data
    return Ref(path.as_uri(), hashlib.sha256(data).hexdigest(), len(data))


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    root = tmp_path / "store"
    root.mkdir()
    return FileStore(root)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def in_child(fn: Callable[[], object], *, uid: int | None = None) -> dict[str, object]:
    """Run `fn` in a forked child (optionally as another user) and return what it reported."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report a StoreError's reason, or what else happened, then exit
        os.close(read_fd)
        try:
            if uid is not None:
                os.setgid(uid)
                os.setuid(uid)
            result: dict[str, object] = {"ok": True, "value": repr(fn())}
        except StoreError as exc:
            result = {"ok": False, "reason": exc.reason, "transient": exc.transient,
                      "message": exc.message}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"ok": False, "reason": type(exc).__name__, "message": str(exc)}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return json.loads(data)


# -- writing --------------------------------------------------------------------------------

def test_put_stores_by_sha256_and_resolves_back(store: FileStore, tmp_path: Path) -> None:
    data = b"%PDF-1.7 quyet dinh\n" * 1000
    src = write(tmp_path / "in" / "qd.pdf", data)
    ref = store.put(src, "qd.pdf")
    digest = hashlib.sha256(data).hexdigest()
    assert (ref.sha256, ref.size) == (digest, len(data))
    assert ref.path == store.root / "objects" / digest[:2] / digest
    assert ref.uri.startswith("file:///") and ref.path.read_bytes() == data
    assert store.resolve(ref) == ref.path
    assert src.exists(), "put copies unless asked to move"


def test_put_is_idempotent_and_leaves_no_temporary_files(store: FileStore, tmp_path: Path) -> None:
    first = store.put(write(tmp_path / "a.bin", b"same bytes"), "a.bin")
    second = store.put(write(tmp_path / "b.bin", b"same bytes"), "b.bin")
    assert first == second
    assert [p.name for p in (store.root / "objects").rglob("*") if p.is_file()] == [first.sha256]
    assert list((store.root / "tmp").iterdir()) == []
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o444


def test_put_with_move_renames_the_scratch_file(store: FileStore) -> None:
    with store.workdir() as work:
        src = write(work / "decoded.docx", b"PK\x03\x04 docx body")
        ref = store.put(src, "decoded.docx", move=True)
        assert not src.exists()
    assert ref.path.read_bytes() == b"PK\x03\x04 docx body"
    again_src = write(store.root / "tmp" / "again", b"PK\x03\x04 docx body")
    assert store.put(again_src, move=True) == ref
    assert not again_src.exists()


def test_archive_keeps_packages_apart_from_attachments(store: FileStore, tmp_path: Path) -> None:
    pkg = write(tmp_path / "out.edxml", b"<edXML>signed</edXML>")
    ref = store.archive_package(pkg)
    assert ref.path.parent.parent == store.root / "archive"
    assert ref.path.name == hashlib.sha256(b"<edXML>signed</edXML>").hexdigest()
    assert isinstance(store, AttachmentStore) and isinstance(ref, StoredRef)


def test_scratch_space_is_on_the_store_file_system(store: FileStore) -> None:
    scratch = store.scratch()
    assert scratch == store.root / "tmp" and scratch.stat().st_dev == store.root.stat().st_dev
    with store.workdir() as work:
        write(work / "x", b"x")
        assert work.parent == scratch
    assert not work.exists()


def test_sweep_removes_only_old_leftovers(store: FileStore) -> None:
    tmp = store.root / "tmp"
    old = write(tmp / ".objects-crashed", b"partial")
    write(tmp / "scratch-old" / "a", b"a")
    fresh = write(tmp / ".objects-running", b"partial")
    os.utime(old, (1_000, 1_000))
    os.utime(tmp / "scratch-old", (1_000, 1_000))
    now = fresh.stat().st_mtime + 10
    assert store.sweep(3600, now=now) == 2
    assert [p.name for p in tmp.iterdir()] == [fresh.name]


# -- the reference gate ----------------------------------------------------------------------

@pytest.mark.parametrize("uri", [
    "http://files.example/qd.pdf",
    "s3://bucket/qd.pdf",
    "file://fileserver/share/qd.pdf",
    "file:relative/qd.pdf",
    "file:///etc/passwd",
    "file:///etc/passwd?x=1",
])
def test_references_outside_file_paths_in_the_roots_are_forbidden(store: FileStore,
                                                                   uri: str) -> None:
    with pytest.raises(StoreError) as caught:
        store.resolve(Ref(uri, "0" * 64, 1))
    assert caught.value.reason == "store.forbidden" and not caught.value.transient


def test_path_traversal_out_of_the_root_is_forbidden(store: FileStore, tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", b"not yours")
    uri = f"{store.root.as_uri()}/objects/../../secret.txt"
    encoded = f"{store.root.as_uri()}/objects/%2E%2E/%2E%2E/secret.txt"
    for candidate in (uri, encoded):
        with pytest.raises(StoreError) as caught:
            store.resolve(Ref(candidate, ref_for(secret).sha256, secret.stat().st_size))
        assert caught.value.reason == "store.forbidden"


def test_a_symlink_leading_out_of_the_root_is_forbidden(store: FileStore, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.pdf", b"outside")
    link = store.root / "objects" / "link.pdf"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    with pytest.raises(StoreError) as caught:
        store.resolve(Ref(link.as_uri(), ref_for(outside).sha256, 7))
    assert caught.value.reason == "store.forbidden"


def test_files_in_an_allowed_root_resolve(tmp_path: Path) -> None:
    share = tmp_path / "agency share"
    src = write(share / "văn bản 1.pdf", b"agency file")
    store = FileStore(tmp_path / "store", allowed_roots=[share])
    ref = ref_for(src)
    assert "%20" in ref.uri
    assert store.resolve(ref) == src
    with pytest.raises(StoreError) as caught:
        FileStore(tmp_path / "store").resolve(ref)
    assert caught.value.reason == "store.forbidden"


def test_missing_files_directories_and_fifos_are_missing(store: FileStore) -> None:
    (store.root / "dir").mkdir()
    os.mkfifo(store.root / "fifo")
    for name in ("absent.pdf", "dir", "fifo"):
        with pytest.raises(StoreError) as caught:
            store.resolve(Ref((store.root / name).as_uri(), "0" * 64, 0))
        assert caught.value.reason == "store.missing", name


def test_size_and_hash_must_match_the_event(store: FileStore) -> None:
    path = write(store.root / "objects" / "x.pdf", b"original")
    good = ref_for(path)
    with pytest.raises(StoreError) as caught:
        store.resolve(Ref(good.uri, good.sha256, good.size + 1))
    assert caught.value.reason == "store.size_mismatch"
    path.write_bytes(b"tampered")  # same length, other bytes
    with pytest.raises(StoreError) as caught:
        store.resolve(good)
    assert caught.value.reason == "store.hash_mismatch"
    # What the file really holds is never told (a caller could learn any file's hash).
    real = hashlib.sha256(b"tampered").hexdigest()
    assert real not in caught.value.message and real not in str(caught.value.where)
    with pytest.raises(StoreError) as caught:
        store.resolve(Ref(good.uri, good.sha256, 12345))
    assert caught.value.reason == "store.size_mismatch"
    assert str(len(b"tampered")) not in caught.value.message.replace(good.uri, "")


def test_uppercase_hash_in_the_event_is_accepted(store: FileStore) -> None:
    path = write(store.root / "objects" / "y.pdf", b"payload")
    ref = ref_for(path)
    assert store.resolve(Ref(ref.uri, ref.sha256.upper(), ref.size)) == path


# -- file-system failures --------------------------------------------------------------------

def test_a_file_where_the_objects_directory_should_be_is_unavailable(store: FileStore,
                                                                     tmp_path: Path) -> None:
    write(store.root / "objects", b"not a directory")
    with pytest.raises(StoreError) as caught:
        store.put(write(tmp_path / "a.pdf", b"a"), "a.pdf")
    assert caught.value.reason == "store.unavailable" and caught.value.transient
    with pytest.raises(StoreError) as caught:
        store.check()
    assert caught.value.reason == "store.unavailable"


def test_an_unmounted_store_root_fails_the_check(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        FileStore(tmp_path / "not-mounted").check()
    assert caught.value.reason == "store.unavailable" and "mounted" in caught.value.message


def test_a_read_only_store_directory_is_unavailable() -> None:
    # root ignores permission bits, so the write is attempted by an unprivileged child process.
    base = Path(tempfile.mkdtemp(prefix="edoc-store-ro-"))
    try:
        os.chmod(base, 0o755)
        root = base / "store"
        root.mkdir()
        src = write(base / "a.pdf", b"attachment")
        os.chmod(src, 0o644)
        os.chmod(root, 0o555)
        store = FileStore(root)
        uid = 65534 if os.geteuid() == 0 else None
        report = in_child(lambda: store.put(src, "a.pdf"), uid=uid)
        assert report == {"ok": False, "reason": "store.unavailable", "transient": True,
                          "message": report["message"]}
        assert "Permission denied" in str(report["message"])
        assert list(root.iterdir()) == []
    finally:
        os.chmod(base / "store", 0o755)
        shutil.rmtree(base)


def test_a_write_refused_by_the_kernel_midway_leaves_no_partial_object(store: FileStore,
                                                                       tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the kernel refuse writes past 64 KiB (EFBIG), like a full quota would.
    src = write(tmp_path / "big.bin", os.urandom(256 * 1024))

    def put_with_a_small_file_size_limit() -> object:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        return store.put(src, "big.bin")

    report = in_child(put_with_a_small_file_size_limit)
    assert report["reason"] == "store.unavailable" and report["transient"] is True
    assert "EFBIG" in str(report["message"])
    assert not (store.root / "objects").exists() or not any(
        p.is_file() for p in (store.root / "objects").rglob("*"))
    assert list((store.root / "tmp").iterdir()) == []


# -- per-agency roots, opened once -------------------------------------------------------------

A, B = "000.00.02.H55", "000.00.03.H55"


@pytest.fixture
def agencies(tmp_path: Path) -> FileStore:
    (tmp_path / "exports" / A).mkdir(parents=True)
    (tmp_path / "exports" / B).mkdir(parents=True)
    key = write(tmp_path / "keys" / "key.pem", b"-----BEGIN PRIVATE KEY----- secret")
    return FileStore(tmp_path / "store", agency_roots={A: [tmp_path / "exports" / A],
                                                       B: [tmp_path / "exports" / B]},
                     secret_files=[key])


def test_an_agency_copies_its_own_file_once_into_a_private_file(agencies: FileStore,
                                                               tmp_path: Path) -> None:
    src = write(tmp_path / "exports" / A / "sub dir" / "qd.pdf", b"%PDF agency A\n" * 1000)
    work = tmp_path / "work"
    work.mkdir()
    copy = agencies.copy_reference(ref_for(src), A, work)
    assert copy.parent == work and copy.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert copy.stat().st_ino != src.stat().st_ino


def test_an_agency_cannot_name_another_agencys_file_or_the_store(agencies: FileStore,
                                                                 tmp_path: Path) -> None:
    theirs = write(tmp_path / "exports" / B / "b.pdf", b"agency B's file")
    archived = agencies.archive_package(write(tmp_path / "pkg.edxml", b"<edXML/>"))
    stored = agencies.put(write(tmp_path / "in.pdf", b"received for someone"))
    work = tmp_path / "work"
    work.mkdir()
    for ref in (ref_for(theirs), archived, stored):
        with pytest.raises(StoreError) as caught:
            agencies.copy_reference(ref, A, work)
        assert caught.value.reason == "store.forbidden", ref.uri
    # An agency without roots can name nothing at all.
    with pytest.raises(StoreError) as caught:
        agencies.copy_reference(ref_for(theirs), "000.00.09.H55", work)
    assert caught.value.reason == "store.forbidden"
    assert list(work.iterdir()) == []


def test_the_archive_is_never_readable_even_without_an_agency(store: FileStore,
                                                              tmp_path: Path) -> None:
    archived = store.archive_package(write(tmp_path / "pkg.edxml", b"<edXML/>"))
    with pytest.raises(StoreError) as caught:
        store.resolve(archived)
    assert caught.value.reason == "store.forbidden"


def test_symlinks_anywhere_beneath_the_root_are_refused(agencies: FileStore,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "exports" / A
    inside = write(root / "real" / "x.pdf", b"inside the root")
    (root / "dirlink").symlink_to(root / "real")
    (root / "filelink.pdf").symlink_to(inside)
    work = tmp_path / "work"
    work.mkdir()
    for uri in ((root / "dirlink" / "x.pdf").as_uri(), (root / "filelink.pdf").as_uri()):
        with pytest.raises(StoreError) as caught:
            agencies.copy_reference(Ref(uri, ref_for(inside).sha256, 15), A, work)
        assert caught.value.reason == "store.forbidden", uri


def test_a_hard_link_to_a_secret_file_is_refused(agencies: FileStore, tmp_path: Path) -> None:
    link = tmp_path / "exports" / A / "innocent.pdf"
    os.link(tmp_path / "keys" / "key.pem", link)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StoreError) as caught:
        agencies.copy_reference(ref_for(link), A, work)
    assert caught.value.reason == "store.forbidden"
    assert list(work.iterdir()) == []


def test_a_file_swapped_for_a_symlink_to_a_key_between_check_and_open_is_never_copied(
        agencies: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack of the review: the reference is checked, then the file is replaced by a
    symlink to a private key before it is opened. Here the swap happens at the last possible
    moment (a hook right before the final open); the key must never be copied."""
    import connectors.store as store_module

    root = tmp_path / "exports" / A
    key = tmp_path / "keys" / "key.pem"
    decoy = write(root / "decoy.pdf", key.read_bytes())  # same size and hash as the key
    ref = ref_for(decoy)

    def swap(_dirfd: int, name: str) -> None:
        os.unlink(root / name)
        os.symlink(key, root / name)

    monkeypatch.setattr(store_module, "_before_final_open", swap)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StoreError) as caught:
        agencies.copy_reference(ref, A, work)
    assert caught.value.reason == "store.forbidden"
    assert list(work.iterdir()) == []


def test_a_file_that_changes_after_the_check_is_a_mismatch(agencies: FileStore,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.store as store_module

    root = tmp_path / "exports" / A
    src = write(root / "grows.pdf", b"short")
    ref = ref_for(src)
    monkeypatch.setattr(store_module, "_before_final_open",
                        lambda _fd, name: (root / name).write_bytes(b"short and then much more"))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StoreError) as caught:
        agencies.copy_reference(ref, A, work)
    assert caught.value.reason == "store.size_mismatch"
    assert list(work.iterdir()) == []


# -- archiving the gateway's own packages by a hard link --------------------------------------

def test_a_package_in_scratch_is_archived_by_a_read_only_hard_link(store: FileStore,
                                                                   tmp_path: Path) -> None:
    body = b"<edXML>signed in scratch</edXML>\n"
    with store.workdir() as work:
        pkg = write(work / "package.edxml", body)
        ref = store.archive_package(pkg)
        assert ref.path.stat().st_ino == pkg.stat().st_ino, "linked, not copied"
        assert stat.S_IMODE(ref.path.stat().st_mode) == 0o444
        assert pkg.read_bytes() == body, "the scratch name still reads the package"
    # Same answer as a copy of the same bytes from outside the store, and the archived file
    # outlives its scratch directory.
    copied = FileStore(tmp_path / "other").archive_package(write(tmp_path / "p.edxml", body))
    assert (ref.sha256, ref.size) == (copied.sha256, copied.size)
    assert ref.path.read_bytes() == body
    assert [p.name for p in (store.root / "tmp").iterdir()] == []


def test_a_package_outside_scratch_is_copied_and_left_as_it_was(store: FileStore,
                                                                tmp_path: Path) -> None:
    src = write(tmp_path / "sample.edxml", b"<edXML>someone else's file</edXML>")
    os.chmod(src, 0o644)
    ref = store.archive_package(src)
    assert ref.path.stat().st_ino != src.stat().st_ino
    assert stat.S_IMODE(src.stat().st_mode) == 0o644
    assert stat.S_IMODE(ref.path.stat().st_mode) == 0o444


def test_a_scratch_file_with_another_name_is_copied_not_linked(store: FileStore) -> None:
    with store.workdir() as work:
        pkg = write(work / "package.edxml", b"<edXML>twice named</edXML>")
        os.link(pkg, work / "second-name")
        ref = store.archive_package(pkg)
        assert ref.path.stat().st_ino != pkg.stat().st_ino
        assert ref.path.read_bytes() == pkg.read_bytes()


def test_archiving_falls_back_to_a_copy_where_links_are_refused(
        store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    with store.workdir() as work:
        pkg = write(work / "package.edxml", b"<edXML>no links here</edXML>")
        ref = store.archive_package(pkg)
        assert ref.path.stat().st_ino != pkg.stat().st_ino
        assert ref.path.read_bytes() == b"<edXML>no links here</edXML>"
        assert ref.sha256 == hashlib.sha256(b"<edXML>no links here</edXML>").hexdigest()
    assert [p.name for p in (store.root / "tmp").iterdir()] == []


def test_archiving_a_scratch_package_twice_keeps_one_file(store: FileStore) -> None:
    with store.workdir() as work:
        first = store.archive_package(write(work / "a.edxml", b"<edXML>same</edXML>"))
        second = store.archive_package(write(work / "b.edxml", b"<edXML>same</edXML>"))
    assert first == second
    assert [p.name for p in (store.root / "archive").rglob("*") if p.is_file()] == [first.sha256]


@pytest.mark.parametrize("actual", [0, 1, 49, 51, 100, 3 * 1024 * 1024])
def test_a_copy_checks_the_size_on_the_bytes_read(tmp_path: Path, actual: int) -> None:
    """The copy buffer is sized from the claimed size: a file shorter or longer than the claim
    is still a mismatch, whatever its length."""
    from connectors.store import _pump

    src = write(tmp_path / "f", os.urandom(actual))
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(StoreError) as caught:
            _pump(fd, None, 50, hashlib.sha256(), "f")
    finally:
        os.close(fd)
    assert caught.value.reason == "store.size_mismatch"
    assert caught.value.message == "f does not match the size in the event"


def _in_scratch_by_realpath(store: FileStore, src: Path) -> bool:
    """The plain definition `_in_scratch` answers more cheaply."""
    scratch = store.root / "tmp"
    return Path(os.path.abspath(src)).is_relative_to(scratch) \
        and Path(os.path.realpath(src)).is_relative_to(os.path.realpath(scratch))


def test_in_scratch_decides_as_the_full_resolution_does(store: FileStore,
                                                        tmp_path: Path) -> None:
    scratch = store.scratch()
    outside = tmp_path / "outside"
    write(outside / "package.edxml", b"x")
    write(scratch / "work" / "package.edxml", b"x")
    (scratch / "out").symlink_to(outside)               # a directory link leading out
    (scratch / "in").symlink_to(scratch / "work")       # a directory link staying inside
    (scratch / "leaf").symlink_to(outside / "package.edxml")
    (scratch / "dangling").symlink_to(tmp_path / "nowhere")
    outside_link = tmp_path / "to-scratch"
    outside_link.symlink_to(scratch)
    candidates = [
        scratch, scratch / "work", scratch / "work" / "package.edxml",
        scratch / "missing" / "package.edxml", scratch / "out" / "package.edxml",
        scratch / "in" / "package.edxml", scratch / "leaf", scratch / "dangling",
        scratch / "work" / ".." / "out" / "package.edxml", outside / "package.edxml",
        outside_link / "work" / "package.edxml", store.root, store.root / "tmpx" / "a",
        Path(os.path.relpath(scratch / "work" / "package.edxml")),
    ]
    answers = {str(c): store._in_scratch(c) for c in candidates}
    assert answers == {str(c): _in_scratch_by_realpath(store, c) for c in candidates}
    assert answers[str(scratch / "work" / "package.edxml")] is True
    assert answers[str(scratch / "out" / "package.edxml")] is False
    assert answers[str(scratch / "leaf")] is False


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEF-g x\u00e9", min_size=60, max_size=68))
def test_path_for_accepts_exactly_64_lower_case_hex_digits(sha: str) -> None:
    store = FileStore("store-root-never-created")
    plain = len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
    try:
        store.path_for("archive", sha)
    except ValueError:
        assert not plain
    else:
        assert plain


def test_archiving_recreates_an_area_removed_meanwhile(store: FileStore) -> None:
    first = write(store.scratch() / "a" / "package.edxml", b"one")
    store.archive_package(first)
    shutil.rmtree(store.root / "archive")
    second = write(store.scratch() / "b" / "package.edxml", b"two")
    stored = store.archive_package(second)
    assert stored.path.read_bytes() == b"two"
    assert stored.path == store.path_for("archive", hashlib.sha256(b"two").hexdigest())
    assert stored.uri == stored.path.as_uri()


def _located_by_pathlib(store: FileStore, uri: str, agency: str | None) -> object:
    """Where `_locate` must put a reference, by the pathlib comparisons it replaces."""
    try:
        path = Path(store._path_of_text(uri))
    except StoreError as exc:
        return (exc.reason, exc.message, exc.where)
    for configured, real in store.roots_for(agency):
        for form in (configured, real):
            if path == form:
                return ("store.missing", "directory")
            if path.is_relative_to(form):
                rel, base = path.parts[len(form.parts):], real
                if any(path.is_relative_to(n) or Path(base, *rel).is_relative_to(n)
                       for n in store._never):
                    return ("store.forbidden", "archive or scratch")
                return (base, tuple(rel))
    return ("store.forbidden", "not beneath")


def _located(store: FileStore, uri: str, agency: str | None) -> object:
    try:
        return store._locate(uri, agency)
    except StoreError as exc:
        if "is a directory" in exc.message:
            return ("store.missing", "directory")
        if "archive or scratch" in exc.message:
            return ("store.forbidden", "archive or scratch")
        if "is not beneath" in exc.message:
            return ("store.forbidden", "not beneath")
        return (exc.reason, exc.message, exc.where)


_SEGMENT = st.sampled_from(["", ".", "..", "a", "b", "share", "tmp", "archive", "store",
                            "att.pdf", "x%2Fy", "%2E", "é"])


@pytest.fixture
def located_store(tmp_path: Path) -> FileStore:
    real = tmp_path / "real-share"
    (real / "a").mkdir(parents=True)
    (tmp_path / "share").symlink_to(real)         # the configured form is a link to the real
    (tmp_path / "store").mkdir()
    return FileStore(tmp_path / "store", [tmp_path / "allowed"],
                     agency_roots={"G01": [tmp_path / "share"], "ROOT": ["/"]})


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])   # it is only read
@given(prefix=st.sampled_from(["share", "real-share", "store", "store/tmp", "store/archive",
                               "allowed", "elsewhere", ""]),
       segments=st.lists(_SEGMENT, max_size=4), slashes=st.sampled_from(["/", "//", "/./"]),
       agency=st.sampled_from(["G01", "ROOT", None, "nobody"]),
       host=st.sampled_from(["", "localhost"]), trailing=st.sampled_from(["", "/", "/."]))
def test_locate_decides_as_the_pathlib_comparisons(located_store: FileStore, prefix: str,
                                                   segments: list[str], slashes: str,
                                                   agency: str | None, host: str,
                                                   trailing: str) -> None:
    base = str(located_store.root.parent) + ("/" + prefix if prefix else "")
    uri = f"file://{host}" + base + (slashes + slashes.join(segments) if segments else "") \
        + trailing
    assert _located(located_store, uri, agency) == _located_by_pathlib(located_store, uri, agency)
