"""A bounded, least-recently-used local cache of downloaded store files, shared by processes.

Files are stored by content: ``objects/<sha256>``, the checksum the manifest
gives for the file, verified while downloading; a file whose bytes do not hash
to its name is never renamed into place. So any file found in the cache is
right, whichever store or process put it there, and stores that share shards
share their cache entries.

The folder never holds more than ``max_bytes``, downloads in flight included.
Before downloading, a process *reserves* the file's size under the folder-wide
lock: it evicts least recently used objects (by modification time, which every
use touches) until the objects plus every reservation plus its own fit, or, when
other processes' downloads in flight hold the room, waits for them. Its bytes go
to ``incoming/`` (never more than it reserved) and are renamed into
``objects/`` under the lock, which turns the reservation into the object. A
failed download deletes its partial file and its reservation; a killed one
leaves a reservation whose lock nobody holds, which the next process to take
the folder lock deletes. One lock file per object makes a single process
download it while the others wait and then find it. Deleting a file that
another process has memory-mapped is safe on POSIX: the mapping stays valid and
the space is freed when it is unmapped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import uuid
from contextlib import contextmanager

from ..base.errors import CorruptStoreError, StoreError
from .reservations import Reservations

__all__ = ["DEFAULT_MAX_BYTES", "FileCache", "default_cache_dir", "file_lock"]

DEFAULT_MAX_BYTES = 20 << 30  # 20 GiB unless MMTOK_REMOTE_CACHE_BYTES says otherwise
_COPY = 1 << 22
_WAIT = 0.05  # seconds between looks for room while other downloads hold it


def default_cache_dir() -> str:
    """``$MMTOK_REMOTE_CACHE``, else ``remote/`` in mmtok's cache folder (as TokenDataset's stores)."""
    explicit = os.environ.get("MMTOK_REMOTE_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("MMTOK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mmtok")
    return os.path.join(base, "remote")


class FileCache:
    """Content-addressed files under ``folder``, at most ``max_bytes`` in total (downloads in flight included)."""

    def __init__(self, folder: str | None = None, max_bytes: int | None = None):
        self.folder = os.fspath(folder) if folder is not None else default_cache_dir()
        if max_bytes is None:
            max_bytes = int(os.environ.get("MMTOK_REMOTE_CACHE_BYTES", DEFAULT_MAX_BYTES))
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.objects = os.path.join(self.folder, "objects")
        self.locks = os.path.join(self.folder, "locks")
        self.incoming = os.path.join(self.folder, "incoming")
        try:
            for sub in (self.objects, self.locks, self.incoming):
                os.makedirs(sub, exist_ok=True)
            self.reservations = Reservations(os.path.join(self.folder, "reserved"), self.incoming)
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot create the remote-store cache folder ({exc.strerror}); "
                             "set MMTOK_REMOTE_CACHE to a writable folder") from None

    def __reduce__(self):
        return (FileCache, (self.folder, self.max_bytes))

    def path(self, sha256: str) -> str:
        if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
            raise CorruptStoreError(f"{sha256!r} is not a sha256 hex digest")
        return os.path.join(self.objects, sha256)

    def lookup(self, sha256: str) -> str | None:
        """The local path of object ``sha256`` if cached (marking it used), else None."""
        target = self.path(sha256)
        return target if self._touch(target) else None

    def get(self, sha256: str, size: int, download, what: str) -> str:
        """The local path of the object ``sha256`` (``size`` bytes), downloading it if needed.

        ``download(file)`` writes the object's bytes into ``file``; ``what``
        names it in errors (the remote URL). A file larger than the whole cache
        is refused: keeping it would break the bound every reader relies on.
        """
        target = self.path(sha256)
        if self._touch(target):
            return target
        if size > self.max_bytes:
            raise StoreError(f"{what}: {size:,} bytes do not fit the remote-store cache of {self.max_bytes:,} bytes "
                             f"({self.folder}); raise MMTOK_REMOTE_CACHE_BYTES")
        with file_lock(os.path.join(self.locks, sha256 + ".lock")):
            if self._touch(target):  # another process fetched it while we waited
                return target
            token = self._reserve(size)
            tmp = os.path.join(self.incoming, token)
            try:
                with open(tmp, "wb") as f:
                    hashing = _BoundedHashingWriter(f, size, what)
                    download(hashing)
                if hashing.digest() != sha256:
                    raise CorruptStoreError(f"{what}: downloaded bytes have sha256 {hashing.digest()}, the manifest "
                                            f"says {sha256}; the remote file is damaged or changed")
                with self._global():
                    os.replace(tmp, target)  # the reservation becomes the object: the total does not change
                    self.reservations.release(token)
            except BaseException:
                with self._global():
                    _unlink(tmp)
                    self.reservations.release(token)
                raise
        return target

    def total_bytes(self) -> int:
        """Bytes of the cached objects (downloads in flight not included)."""
        return sum(size for _, size, _ in self._entries())

    def used_bytes(self) -> int:
        """Bytes on disk in the cache: objects and partial downloads (take the lock for a consistent figure)."""
        partial = 0
        for entry in os.scandir(self.incoming):
            try:
                partial += entry.stat().st_size
            except FileNotFoundError:
                continue
        return self.total_bytes() + partial

    @contextmanager
    def locked(self):
        """Hold the folder-wide lock (no eviction, reservation or commit meanwhile)."""
        with self._global():
            yield

    def _reserve(self, size: int) -> str:
        """Reserve ``size`` bytes, evicting least recently used objects, waiting while downloads in flight hold the room."""
        token = f"{uuid.uuid4().hex}"
        while True:
            with self._global():
                reserved = self.reservations.total()  # also deletes the reservations of killed processes
                budget = self.max_bytes - reserved - size
                if budget >= 0:
                    self._evict(budget)
                    self.reservations.add(token, size)
                    return token
            time.sleep(_WAIT)

    def _touch(self, path: str) -> bool:
        try:
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    @contextmanager
    def _global(self):
        with file_lock(os.path.join(self.folder, "cache.lock")):
            yield

    def _entries(self):
        for entry in os.scandir(self.objects):
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            yield entry.path, stat.st_size, stat.st_mtime_ns

    def _evict(self, budget: int) -> None:
        """Delete least recently used objects until they take at most ``budget`` bytes (holding the lock)."""
        entries = list(self._entries())
        total = sum(size for _, size, _ in entries)
        for path, size, _ in sorted(entries, key=lambda e: e[2]):
            if total <= budget:
                break
            _unlink(path)
            total -= size


class _BoundedHashingWriter:
    """Hashes what passes through; refuses to write past the size the download reserved."""

    def __init__(self, file, limit: int, what: str):
        self._file = file
        self._hash = hashlib.sha256()
        self._left = limit
        self._what = what
        self._limit = limit

    def write(self, data) -> int:
        if len(data) > self._left:
            raise CorruptStoreError(f"{self._what}: the download is longer than the {self._limit:,} bytes object "
                                    "storage listed; the remote file changed while being read")
        self._left -= len(data)
        self._hash.update(data)
        return self._file.write(data)

    def digest(self) -> str:
        return self._hash.hexdigest()


@contextmanager
def file_lock(path: str):
    """Hold an exclusive ``flock`` on ``path`` (created if needed), waiting for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
