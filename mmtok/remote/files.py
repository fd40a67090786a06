"""The files of a store on object storage: read small ones directly, fetch big ones into the cache; upload."""

from __future__ import annotations

import os
from contextlib import contextmanager

from ..base.errors import CorruptStoreError, MmtokError, StoreError
from .cache import _COPY, FileCache
from .urls import filesystem, join_url

__all__ = ["RemoteFiles", "upload_folder"]


class RemoteFiles:
    """The files under ``url`` (a store, or a partition), read through fsspec."""

    def __init__(self, url: str, *, cache: FileCache | None = None, storage_options: dict | None = None):
        self.url = url.rstrip("/")
        self.storage_options = storage_options
        self._fs, self.root = filesystem(self.url, storage_options)
        self._pid = os.getpid()
        self._cache = cache

    def __reduce__(self):
        return (RemoteFiles, (self.url,), {"_cache": self._cache, "storage_options": self.storage_options})

    def __setstate__(self, state):
        self._cache = state["_cache"]
        self.storage_options = state["storage_options"]
        self._fs, self.root = filesystem(self.url, self.storage_options)
        self._pid = os.getpid()

    @property
    def fs(self):
        """The fsspec filesystem, made anew in a forked child (DataLoader workers under ``fork``).

        An async filesystem (s3fs) made before a fork belongs to the parent's
        event loop and HTTP sessions, and refuses to run in the child ("not
        fork-safe"); fsspec clears its instance cache and loop in the child, so
        asking again gives a fresh one.
        """
        if self._pid != os.getpid():
            self._fs, self.root = filesystem(self.url, self.storage_options)
            self._pid = os.getpid()
        return self._fs

    @property
    def cache(self) -> FileCache:
        if self._cache is None:
            self._cache = FileCache()
        return self._cache

    def _path(self, name: str) -> str:
        return "/".join([self.root.rstrip("/"), name])

    def exists(self, name: str) -> bool:
        return self.fs.exists(self._path(name))

    def read_bytes(self, name: str) -> bytes | None:
        """The whole file ``name`` (a manifest), fetched fresh; None when it does not exist."""
        with reaching(join_url(self.url, name)):
            try:
                return self.fs.cat_file(self._path(name))
            except FileNotFoundError:
                return None

    def bucket_exists(self) -> bool:
        bucket = self.root.split("/", 1)[0]
        with reaching(self.url):
            return self.fs.exists(bucket)

    def local(self, name: str, sha256: str) -> str:
        """A local path holding the verified bytes of ``name``, whose sha256 is ``sha256``."""
        path = self._path(name)
        where = join_url(self.url, name)
        cached = self.cache.lookup(sha256)
        if cached is not None:
            return cached
        try:
            with reaching(where):
                size = self.fs.size(path)
        except FileNotFoundError:
            raise CorruptStoreError(f"{where}: not found on object storage; the store is incomplete") from None

        def download(out) -> None:
            with self.fs.open(path, "rb", block_size=_COPY) as f:
                while True:
                    block = f.read(_COPY)
                    if not block:
                        return
                    out.write(block)

        with reaching(where):
            return self.cache.get(sha256, size, download, where)

    def sha256(self, name: str) -> str:
        """The sha256 of file ``name`` on object storage, streamed (nothing kept on disk)."""
        import hashlib

        where = join_url(self.url, name)
        digest = hashlib.sha256()
        try:
            with reaching(where), self.fs.open(self._path(name), "rb", block_size=_COPY) as f:
                while block := f.read(_COPY):
                    digest.update(block)
        except FileNotFoundError:
            raise CorruptStoreError(f"{where}: not found on object storage; the store is incomplete") from None
        return digest.hexdigest()

    def list_files(self, name: str) -> dict[str, int]:
        """Names and sizes of the files directly under ``name`` (empty if there is none)."""
        try:
            entries = self.fs.ls(self._path(name), detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {os.path.basename(e["name"]): e.get("size") or 0 for e in entries if e.get("type") == "file"}

    def total_size(self) -> int:
        """Bytes of every file under the root (one listing)."""
        try:
            return int(self.fs.du(self.root, total=True))
        except FileNotFoundError:
            return 0

    def list_dirs(self, name: str) -> list[str]:
        """Names of the folders directly under ``name`` (empty if there is none)."""
        try:
            entries = self.fs.ls(self._path(name), detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(os.path.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory")

    def put_bytes(self, name: str, data: bytes) -> None:
        with self.fs.open(self._path(name), "wb") as f:
            f.write(data)

    def copy(self, source: str, name: str) -> None:
        """Server-side copy of ``source`` (a name under this root) to ``name``: no bytes through this machine."""
        self.fs.copy(self._path(source), self._path(name))

    def remove(self, name: str, *, recursive: bool = False) -> None:
        try:
            self.fs.rm(self._path(name), recursive=recursive)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache()


@contextmanager
def reaching(where: str):
    """Turn a backend's failure (no network, no credentials, access denied: botocore's own exception
    classes, not all OSErrors) into a one-line StoreError naming ``where``; a missing file stays
    FileNotFoundError and mmtok's own errors pass through."""
    try:
        yield
    except (MmtokError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - each fsspec backend raises its own classes
        raise StoreError(f"{where}: cannot read from object storage ({type(exc).__name__}: {exc})") from None


def upload_folder(local: str, url: str, *, last: tuple[str, ...] = (), skip: tuple[str, ...] = (),
                  storage_options: dict | None = None) -> None:
    """Upload every file under ``local`` to ``url``; the files named in ``last`` after all others.

    Object storage has no rename: an object appears whole when its upload
    ends, so writing the commit-point file (a manifest) last commits the rest.
    """
    fs, root = filesystem(url, storage_options)
    files = []
    for folder, _, names in os.walk(local):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), local).replace(os.sep, "/")
            if relative not in skip and not name.startswith(".tmp-"):
                files.append(relative)
    files.sort(key=lambda rel: (rel in last, last.index(rel) if rel in last else 0, rel))
    for relative in files:
        fs.put_file(os.path.join(local, relative), "/".join([root.rstrip("/"), relative]))
    fs.invalidate_cache()
