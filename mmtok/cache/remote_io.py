"""Export to and import from object storage (``s3://...``): through a local temporary file or folder.

An export reads a store on object storage file by file through the bounded
local cache (each file checked as it downloads, held open while it is read).
An export is written locally (atomic, checked) and then uploaded as one
object, which appears whole when its upload ends. An import downloads the
cache file first, imports it locally with every check, and, for an ``s3://``
destination, uploads the rebuilt store with its manifest last.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..base.constants import DOCS_SUFFIX, MANIFEST_FILE, SHARDS_DIR, TOKENS_SUFFIX
from ..base.errors import StoreError, StoreExistsError
from ..remote import RemoteFiles, filesystem, is_remote, upload_folder
from ..store.store import Store, shard_paths

__all__ = ["export_to_remote", "file_size", "import_remote", "local_file", "open_file", "refuse_remote_for_stack", "shard_files"]


def export_to_remote(export, store, destination: str, **options) -> dict:
    """``export(store, local_file, **options)``, then upload the file to ``destination``."""
    folder = tempfile.mkdtemp(prefix=".tmp-mmtok-export-")
    try:
        local = os.path.join(folder, os.path.basename(destination.rstrip("/")) or "cache")
        summary = export(store, local, **options)
        fs, path = filesystem(destination)
        fs.put_file(local, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dict(summary, path=destination)


def import_remote(import_, source: str, destination: str, **options):
    """Download ``source`` if remote, ``import_`` it, and upload the store if ``destination`` is remote."""
    folder = tempfile.mkdtemp(prefix=".tmp-mmtok-import-")
    try:
        if "://" in source and not source.startswith("file://"):
            fs, path = filesystem(source)
            local_source = os.path.join(folder, os.path.basename(path) or "cache")
            fs.get_file(path, local_source)
        else:
            local_source = source
        if "://" not in destination or destination.startswith("file://"):
            result = import_(local_source, destination, **options)
            result.summary["source"] = source
            return result
        if RemoteFiles(destination).exists(MANIFEST_FILE):
            raise StoreExistsError(f"{destination}: already a store; import into a new path (or remove it first)")
        result = import_(local_source, os.path.join(folder, "store"), **options)
        upload_folder(os.path.join(folder, "store"), destination, last=(MANIFEST_FILE,))
        return type(result)(Store(destination), result[1], dict(result.summary, source=source, path=destination))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def local_file(store: Store, relative: str, sha256: str | None) -> str:
    """A store file's local path; for a store on object storage, fetched (checked) into the bounded cache."""
    return os.path.join(store.path, relative) if store.remote is None else store.local_file(relative, sha256)


def shard_files(store: Store, shard: dict, *, docs: bool = True):
    """Shard files as :class:`_Pinned` paths: a remote store's cached copy stays readable (an open
    descriptor) even if another process evicts it from the cache before it is read."""
    if store.remote is None:
        return shard_paths(store.path, shard["name"])
    kinds = ((TOKENS_SUFFIX, "tokens_sha256"), (DOCS_SUFFIX, "docs_sha256"))[: 2 if docs else 1]
    files = [_Pinned(store, f"{SHARDS_DIR}/{shard['name']}{suffix}", shard[key]) for suffix, key in kinds]
    return files if docs else (files[0], None)


class _Pinned:
    """A cached file of a remote store held by an open descriptor, so it stays readable even if another
    process evicts it from the cache before it is read; named by its URL in errors."""

    def __init__(self, store: Store, relative: str, sha256: str):
        self.url = f"{store.path}/{relative}"
        for _ in range(3):  # another process may evict the file between fetching and opening it
            try:
                self.fd = os.open(store.local_file(relative, sha256), os.O_RDONLY)
                return
            except FileNotFoundError:
                continue
        raise StoreError(f"{self.url}: evicted from the cache as soon as fetched; the cache is too small for the "
                         "processes sharing it (raise MMTOK_REMOTE_CACHE_BYTES)")

    def __str__(self) -> str:
        return self.url

    def __del__(self):
        if hasattr(self, "fd"):
            os.close(self.fd)


def open_file(path):
    if isinstance(path, _Pinned):
        os.lseek(path.fd, 0, os.SEEK_SET)  # a duplicated descriptor shares the offset
        return os.fdopen(os.dup(path.fd), "rb")
    return open(path, "rb")


def file_size(path) -> int:
    return os.fstat(path.fd).st_size if isinstance(path, _Pinned) else os.path.getsize(path)


def refuse_remote_for_stack(store: str, fmt: str) -> None:
    """Other stacks' writers read a local store's files; say so for a store on object storage."""
    if is_remote(store):
        raise StoreError(f"{store}: --format {fmt} reads a local store; export it to an mmtok cache "
                         "(`mmtok export STORE -o out.mmtok.gz`) and import that locally, or copy the store first")
