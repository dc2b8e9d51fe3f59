"""On-disk index folders: the only module that reads or writes index files.

Layout (pyterrier-style: every artifact says what it is): one folder holding ``manifest.json`` and the
arrays. The manifest records the format name and version, creation time, package and dependency versions,
the catalog's sha256, the settings the index was built with, and for every file its sha256, size, kind,
dtype and shape.

Writing is atomic: files go to a temporary sibling folder, are fsync'ed, the manifest is written last,
the folder is renamed into ``<parent>/.<name>-versions/<version>``, and ``<name>`` is a symlink switched
with ``os.replace`` — a reader sees the old index or the new one, never a mix, and a build killed at any
point leaves the previous index as it was. Arrays are ``.npy`` files read with ``allow_pickle=False``
(optionally memory-mapped); structured data is JSON. Loading refuses anything it cannot trust, naming the
file: a missing file, a size or checksum mismatch, another format or format version, a bad dtype/shape.

A build also removes the temporaries of earlier builds of the same target that were killed: each build holds a
lock (``flock``) on ``.<name>.tmp-<token>.lock`` while its ``.<name>.tmp-<token>`` entries exist, so entries whose
lock nobody holds belong to a build that is gone. When the target is a plain folder (an index written by other
means) it is swapped with the new symlink in one step (``renameat2(RENAME_EXCHANGE)``), then kept as a version.

Reading is fenced, because a reload reads whatever folder an admin request names: the folder is opened once and
every file through it, never following a symlink (``O_NOFOLLOW``: a file that is a link is refused, so nothing
outside the folder is read) and only if it is a regular file (a FIFO, a device or a socket is refused before it
is opened). The manifest's size is capped before it is read, every file's size is compared with the manifest
before a byte of it is read, and the files are then read through the descriptors that were checked. An optional
root confines the folder (after resolving symlinks) to one tree, and an optional deadline stops a load between
files, hashed blocks and rows (``IndexLoadTimeoutError``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import math
import mmap as _mmap
import os
import shutil
import stat
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from .errors import IndexIntegrityError, IndexLoadTimeoutError

T = TypeVar("T")

FORMAT = "zhida-index"
FORMAT_VERSION = 2  # 2: query→category model, intent cue features and calibration
MANIFEST = "manifest.json"
KEEP_VERSIONS = 2
MAX_MANIFEST_BYTES = 1 << 20  # default cap (Settings.max_manifest_bytes); a real manifest is about 10 KB
_BLOCK = 1 << 20  # bytes hashed between two deadline checks
_ROWS = 4096  # JSON lines parsed between two deadline checks
# files of an index are opened read-only, never through a symlink, and without waiting (a FIFO would block an
# open for reading until a writer appears; a regular file ignores O_NONBLOCK)
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexWriter:
    """Collects the files of one index in a temporary folder; ``commit`` publishes them atomically."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd, token = _take_build_lock(parent, self.target.name)
        self._prefix = parent / f".{self.target.name}.tmp-{token}"
        remove_stale_temporaries(self.target, keep=token)
        self.tmp = self._prefix
        self.tmp.mkdir()
        self.files: dict[str, dict[str, Any]] = {}

    def _record(self, name: str, kind: str, describes: str, **extra: Any) -> None:
        path = self.tmp / name
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
        self.files[name] = {"kind": kind, "describes": describes, "bytes": path.stat().st_size,
                            "sha256": sha256_file(path), **extra}

    def array(self, name: str, arr: np.ndarray, describes: str) -> None:
        arr = np.ascontiguousarray(arr)
        if arr.dtype == object:
            raise TypeError(f"{name}: object arrays cannot be stored without pickle")
        with open(self.tmp / name, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        self._record(name, "npy", describes, dtype=str(arr.dtype), shape=list(arr.shape))

    def json(self, name: str, obj: Any, describes: str) -> None:
        with open(self.tmp / name, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, separators=(",", ":"))
        self._record(name, "json", describes)

    def jsonl(self, name: str, rows: list[dict[str, Any]], describes: str) -> None:
        with open(self.tmp / name, "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        self._record(name, "jsonl", describes, rows=len(rows))

    def blob(self, name: str, write: Any, kind: str, describes: str) -> None:
        """A file written by a library (``write(path)``), e.g. a FAISS index."""
        write(str(self.tmp / name))
        self._record(name, kind, describes)

    def commit(self, meta: dict[str, Any]) -> Path:
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            **meta,
            "files": self.files,
        }
        with open(self.tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync(self.tmp)
        versions = self.target.parent / f".{self.target.name}-versions"
        versions.mkdir(exist_ok=True)
        vid = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:8]
        final = versions / vid
        os.rename(self.tmp, final)
        link = Path(f"{self._prefix}.link")
        os.symlink(os.path.join(versions.name, vid), link)
        if os.path.lexists(self.target) and not self.target.is_symlink():
            # An index written by other means (a plain folder): swap it with the link in one step, so the target
            # is always a complete index, then keep it as a version.
            _exchange(link, self.target)
            os.rename(link, versions / f"{vid}-previous")
        else:
            os.replace(link, self.target)
        _fsync(self.target.parent)
        _prune(versions, keep={vid})
        self._unlock()
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self._prefix}.link")
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._prefix}.lock")
            os.close(self._lock_fd)
            self._lock_fd = -1


def _take_build_lock(parent: Path, name: str) -> tuple[int, str]:
    """Create and lock ``.<name>.tmp-<token>.lock`` for a new build; returns its descriptor and the token.

    The lock is held until the build commits or aborts (the kernel drops it when the process dies). If another
    build's clean-up removed the file between its creation and the lock, the file locked is not the one at the
    path any more: take another token."""
    while True:
        token = uuid.uuid4().hex[:12]
        path = parent / f".{name}.tmp-{token}.lock"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd, token
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temporaries(target: str | os.PathLike[str], keep: str = "") -> list[str]:
    """Remove what builds of ``target`` that were killed left beside it (``.<name>.tmp-<token>`` folders, their
    ``.link`` and ``.lock``); a build whose lock is held is running and is left alone. Returns the names removed."""
    target = Path(target)
    prefix = f".{target.name}.tmp-"
    groups: dict[str, list[Path]] = {}
    with contextlib.suppress(FileNotFoundError):
        for p in target.parent.iterdir():
            if p.name.startswith(prefix):
                token = p.name[len(prefix):].split(".", 1)[0]
                if token != keep:
                    groups.setdefault(token, []).append(p)
    removed: list[str] = []
    for token, paths in groups.items():
        lock = target.parent / f"{prefix}{token}.lock"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1  # no lock: left by a build that was killed after dropping it, or by an older Zhida
        except OSError:
            continue  # cannot tell: leave it
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # that build is running
            for p in sorted(paths, key=lambda p: p == lock):  # the lock file last
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(p)
                removed.append(p.name)
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100  # linux/fcntl.h


def _exchange(a: Path, b: Path) -> None:
    """Swap the entries at ``a`` and ``b`` atomically (Linux ``renameat2(…, RENAME_EXCHANGE)``, glibc ≥ 2.28).

    Where that is not available (another system, a file system without it) the swap is three renames, with a
    moment in which ``b`` is missing."""
    libc = _libc()
    fn = getattr(libc, "renameat2", None) if libc is not None else None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(b))
    spare = Path(f"{a}.old")
    os.rename(b, spare)
    os.replace(a, b)
    os.rename(spare, a)


_LIBC: list[Any] = []


def _libc() -> Any:
    """The C library (for ``renameat2``), or ``None`` where there is none to load."""
    if not _LIBC:
        name = ctypes.util.find_library("c")
        lib = None
        if name:
            with contextlib.suppress(OSError):
                lib = ctypes.CDLL(name, use_errno=True)
        _LIBC.append(lib)
    return _LIBC[0]


def _prune(versions: Path, keep: set[str]) -> None:
    """Remove old versions, keeping the newest ``KEEP_VERSIONS`` (a reader may still use the previous)."""
    entries = sorted((p for p in versions.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    for p in entries[KEEP_VERSIONS:]:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


class IndexReader:
    """Opens an index folder after checking the manifest and every file it lists (the fence: module docstring).

    ``root``: the folder, symlinks resolved, must lie under this one. ``deadline``: a ``time.monotonic()`` value
    after which reading stops with ``IndexLoadTimeoutError``. The files stay open until ``close`` (or the end of
    a ``with`` block); arrays mapped from them stay valid after it.
    """

    def __init__(self, path: str | os.PathLike[str], verify: str = "full", mmap: bool = True,
                 root: str | os.PathLike[str] | None = None, deadline: float | None = None,
                 max_manifest_bytes: int = MAX_MANIFEST_BYTES) -> None:
        self.path = Path(path)
        self.mmap = mmap
        self.deadline = deadline
        self._fds: dict[str, int] = {}
        self._closer = weakref.finalize(self, _close_all, self._fds)
        try:
            self._dir = _open_folder(self.path, root)
            self._fds["."] = self._dir
            self.manifest: dict[str, Any] = self._read_manifest(max_manifest_bytes)
            mpath = str(self.path / MANIFEST)
            if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
                raise IndexIntegrityError(f"not a {FORMAT} manifest (format={self.manifest.get('format') if isinstance(self.manifest, dict) else None!r})", mpath)
            if self.manifest.get("format_version") != FORMAT_VERSION:
                raise IndexIntegrityError(
                    f"format version {self.manifest.get('format_version')!r} is not supported (this Zhida reads "
                    f"{FORMAT_VERSION}); rebuild the index", mpath)
            files = self.manifest.get("files")
            if not isinstance(files, dict) or not files:
                raise IndexIntegrityError("manifest lists no files", mpath)
            self.files: dict[str, dict[str, Any]] = files
            for name, info in files.items():
                self._verify(name, info, verify)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the folder and its files (idempotent)."""
        self._closer()

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_deadline(self, what: str) -> None:
        """Stop here when the load's deadline has passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise IndexLoadTimeoutError(f"{self.path}: the load passed its deadline (reading {what}) and was abandoned")

    def _open(self, name: str, missing: str) -> tuple[int, os.stat_result]:
        """A file of the folder, opened only if it is a regular file (not a link, FIFO, device or socket)."""
        p = str(self.path / name)
        self.check_deadline(name)
        try:
            st = os.stat(name, dir_fd=self._dir, follow_symlinks=False)
        except FileNotFoundError:
            raise IndexIntegrityError(missing, p) from None
        except OSError as exc:
            raise IndexIntegrityError(f"cannot open ({exc.strerror or exc})", p) from None
        if not stat.S_ISREG(st.st_mode):
            raise IndexIntegrityError(f"is {_file_kind(st.st_mode)}, not a regular file: refused", p)
        try:
            fd = os.open(name, _OPEN_FILE, dir_fd=self._dir)
        except OSError as exc:  # replaced since the stat: a symlink now gives ELOOP
            raise IndexIntegrityError(f"cannot open ({exc.strerror or exc})", p) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise IndexIntegrityError(f"is {_file_kind(st.st_mode)}, not a regular file: refused", p)
        return fd, st

    def _read_manifest(self, cap: int) -> Any:
        mpath = str(self.path / MANIFEST)
        fd, st = self._open(MANIFEST, "manifest is missing: not an index folder, or a build was interrupted")
        try:
            if st.st_size > cap:
                raise IndexIntegrityError(f"manifest is {st.st_size} bytes, more than max_manifest_bytes ({cap}): refused "
                                          "unread", mpath)
            data = _read_upto(fd, cap + 1)
        finally:
            os.close(fd)
        if len(data) > cap:
            raise IndexIntegrityError(f"manifest grew past max_manifest_bytes ({cap}) while being read", mpath)
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise IndexIntegrityError(f"manifest is not valid JSON ({exc})", mpath) from exc

    def _verify(self, name: str, info: Any, verify: str) -> None:
        p = str(self.path / name)
        if not name or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
            raise IndexIntegrityError("manifest names a file outside the index folder", p)
        if not isinstance(info, dict):
            raise IndexIntegrityError("manifest entry of this file is not an object", p)
        fd, st = self._open(name, "file listed in the manifest is missing")
        self._fds[name] = fd
        if st.st_size != info.get("bytes"):  # before a byte of it is read
            raise IndexIntegrityError(f"size {st.st_size} differs from the manifest's {info.get('bytes')} (truncated or replaced)", p)
        if verify == "full" and self._sha256(fd, name) != info.get("sha256"):
            raise IndexIntegrityError("sha256 checksum does not match the manifest (file is damaged)", p)

    def _sha256(self, fd: int, name: str) -> str:
        h = hashlib.sha256()
        offset = 0
        while True:
            self.check_deadline(name)
            block = os.pread(fd, _BLOCK, offset)
            if not block:
                return h.hexdigest()
            h.update(block)
            offset += len(block)

    def _info(self, name: str) -> dict[str, Any]:
        if name not in self.files:
            raise IndexIntegrityError("required file is not listed in the manifest", str(self.path / name))
        return self.files[name]

    def _fd(self, name: str) -> int:
        self._info(name)
        self.check_deadline(name)
        fd = self._fds.get(name)
        if fd is None:
            raise IndexIntegrityError("file is no longer open (the reader was closed)", str(self.path / name))
        return fd

    def array(self, name: str) -> np.ndarray:
        info = self._info(name)
        p = self.path / name
        try:
            arr = _read_npy(self._fd(name), self.mmap)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexIntegrityError(f"cannot read array ({exc})", str(p)) from exc
        if str(arr.dtype) != info.get("dtype") or list(arr.shape) != info.get("shape"):
            raise IndexIntegrityError(
                f"array is {arr.dtype}{list(arr.shape)}, manifest says {info.get('dtype')}{info.get('shape')}", str(p))
        return arr

    def json(self, name: str) -> Any:
        fd = self._fd(name)
        p = self.path / name
        try:
            return json.loads(_read_upto(fd, os.fstat(fd).st_size).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise IndexIntegrityError(f"cannot read JSON ({exc})", str(p)) from exc

    def jsonl(self, name: str) -> list[Any]:
        return list(self.iter_jsonl(name))

    def iter_jsonl(self, name: str) -> Iterator[Any]:
        """Rows one at a time: a million parsed rows held at once would leave gigabytes of freed-but-kept
        heap behind (the items built from them are what should stay)."""
        fd = self._fd(name)
        p = self.path / name
        try:
            with open(fd, encoding="utf-8", closefd=False) as fh:
                fh.seek(0)
                for i, line in enumerate(fh):
                    if i % _ROWS == 0:
                        self.check_deadline(name)
                    if line.strip():
                        yield json.loads(line)
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"cannot read JSON lines ({exc})", str(p)) from exc

    def has(self, name: str) -> bool:
        """Whether the manifest lists ``name`` (optional parts of an index)."""
        return name in self.files

    def name(self, name: str) -> str:
        """The path of a file of this folder, as error messages name it."""
        return str(self.path / name)

    def blob(self, name: str, read: Callable[[IO[bytes]], T], what: str) -> T:
        """A file read by a library from an open binary file (``read(fh)``, e.g. FAISS through a callback reader);
        its failure names the file."""
        fd = self._fd(name)
        try:
            with open(fd, "rb", closefd=False) as fh:
                fh.seek(0)
                out = read(fh)
        except (OSError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IndexIntegrityError(f"{what} cannot read the file ({first})", str(self.path / name)) from exc
        self.check_deadline(name)
        return out


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def _open_folder(path: Path, root: str | os.PathLike[str] | None) -> int:
    """The index folder, opened once (its files are opened relative to it, so a symlink switched by a rebuild
    during the load cannot mix two versions); with ``root``, the folder must resolve to a place under it."""
    real = os.path.realpath(path)
    if root is not None:
        top = os.path.realpath(root)
        if os.path.commonpath([real, top]) != top:
            raise IndexIntegrityError(f"resolves to {real}, which is not under the index root {top} "
                                      "(setting index_root): refused", str(path))
    try:
        return os.open(real, _OPEN_DIR)
    except FileNotFoundError:
        raise IndexIntegrityError("index folder does not exist (build it with `python -m search build`)", str(path)) from None
    except NotADirectoryError:
        raise IndexIntegrityError("is not a folder: an index is a folder holding manifest.json", str(path)) from None
    except OSError as exc:
        raise IndexIntegrityError(f"cannot open the index folder ({exc.strerror or exc})", str(path)) from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"


def _read_upto(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from the start of ``fd`` (fewer at the end of the file)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        block = os.pread(fd, min(n - got, 64 << 20), got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _read_npy(fd: int, use_mmap: bool) -> np.ndarray:
    """A ``.npy`` file from an open descriptor, never unpickling; mapped read-only when ``use_mmap``.

    ``np.load`` maps only files it opens by name itself, so the header is parsed here with numpy's public
    format functions and the data mapped with ``mmap`` from the checked descriptor."""
    with open(fd, "rb", closefd=False) as fh:
        fh.seek(0)
        if not use_mmap:
            return np.load(fh, allow_pickle=False)  # type: ignore[no-any-return]
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f".npy format version {version} is not read")
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError("object arrays are never loaded")
    nbytes = math.prod(shape) * dtype.itemsize
    size = os.fstat(fd).st_size
    if offset + nbytes != size:
        raise ValueError(f"the header describes {nbytes} data bytes, the file holds {size - offset}")
    if nbytes == 0:
        return np.zeros(shape, dtype=dtype)
    buf = _mmap.mmap(fd, size, access=_mmap.ACCESS_READ)
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset, order="F" if fortran else "C")


def manifest_checksum(path: str | os.PathLike[str]) -> str:
    """sha256 of an index's manifest: identifies exactly which index a report was made on."""
    p = Path(path) / MANIFEST
    with contextlib.suppress(OSError):
        return sha256_file(p)
    return "unknown"
