"""Partitioned builds on object storage (``s3://...``): partitions uploaded with their descriptor last.

Object storage has no rename, so a partition is built in a local staging folder
(the ordinary local build, resumable from its journal when a killed task is
retried on the same machine), then uploaded file by file with its manifest, the
partition's descriptor and commit point, uploaded last; a retried task first
deletes an older copy's manifest, then its files. Commit lists the partitions,
copies their token files server-side into ``shards/`` (no bytes through this
machine), writes the shifted document ends and, last, the store's manifest.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil

import numpy as np

from ..base.constants import (
    DOCS_SUFFIX,
    JOURNAL_FILE,
    MANIFEST_FILE,
    PARTITION_NAME_DIGITS,
    PARTITIONS_DIR,
    SHARDS_DIR,
    TOKENIZER_FILE,
    TOKENS_SUFFIX,
)
from ..base.errors import CorruptStoreError, StoreError, StoreExistsError
from ..remote import RemoteFiles, default_cache_dir, file_lock, upload_folder
from .manifest import encode_json, parse_manifest
from .store import Store

__all__ = ["RemotePartitions", "build_remote_partition", "staging_folder"]


def _name(pid: int) -> str:
    return f"{PARTITIONS_DIR}/{str(pid).zfill(PARTITION_NAME_DIGITS)}"


def build_remote_partition(build_local, inputs, url: str, partition_id: int, **options) -> dict:
    """Build partition ``partition_id`` locally with ``build_local`` (build_partition), then upload it.

    The local build goes to a staging folder named by the store URL and the
    partition id (under the remote cache folder, see :func:`staging_folder`), so
    a task killed on this machine resumes from its build journal when retried
    there, as a local partition does; a lock keeps two tasks of one partition on
    one machine apart. The folder is deleted once the partition is uploaded.
    """
    url = url.rstrip("/")
    remote = RemoteFiles(url)
    if remote.exists(MANIFEST_FILE):
        raise StoreExistsError(f"{url}: already a committed store; build partitions into a new root "
                               "(a committed store does not take more partitions)")
    staging = staging_folder(url, partition_id)
    try:
        os.makedirs(os.path.dirname(staging), exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{os.path.dirname(staging)}: cannot create the staging folder of partitions for object "
                         f"storage ({exc.strerror}); set MMTOK_REMOTE_CACHE to a writable folder") from None
    with file_lock(staging + ".lock"):
        result = build_local(inputs, staging, partition_id, **options)
        name = _name(partition_id)
        remote.remove(f"{name}/{MANIFEST_FILE}")  # uncommit an earlier attempt first
        remote.remove(name, recursive=True)
        upload_folder(result["path"], f"{url}/{name}", last=(MANIFEST_FILE,), skip=(JOURNAL_FILE,))
        shutil.rmtree(staging, ignore_errors=True)
    return dict(result, path=f"{url}/{name}")


def staging_folder(url: str, partition_id: int) -> str:
    """The local folder where partition ``partition_id`` of the store at ``url`` is built before its upload:
    ``staging/<sha256 of url and id>`` in the remote cache folder ($MMTOK_REMOTE_CACHE; not counted in
    its size bound), the same for every retry on this machine."""
    key = hashlib.sha256(f"{url.rstrip('/')}\0{partition_id}".encode()).hexdigest()[:32]
    return os.path.join(default_cache_dir(), "staging", key)


class RemotePartitions:
    """The commit backend of :mod:`mmtok.store.commit` for a root on object storage."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.remote = RemoteFiles(self.url)
        self.shas: dict[int, str] = {}

    def scan(self) -> tuple[dict[int, dict], list[int]]:
        finished, unfinished = {}, []
        for entry in self.remote.list_dirs(PARTITIONS_DIR):
            if not (len(entry) == PARTITION_NAME_DIGITS and entry.isascii() and entry.isdigit()):
                continue
            pid = int(entry)
            data = self.remote.read_bytes(f"{_name(pid)}/{MANIFEST_FILE}")
            if data is None:
                unfinished.append(pid)
                continue
            finished[pid] = parse_manifest(data, f"{self.url}/{_name(pid)}/{MANIFEST_FILE}")
            self.shas[pid] = hashlib.sha256(data).hexdigest()
        return finished, unfinished

    def committed(self) -> dict | None:
        data = self.remote.read_bytes(MANIFEST_FILE)
        return None if data is None else parse_manifest(data, f"{self.url}/{MANIFEST_FILE}")

    def read_docs(self, pid: int, shard: dict) -> np.ndarray:
        name = f"{_name(pid)}/{SHARDS_DIR}/{shard['name']}{DOCS_SUFFIX}"
        data = self.remote.read_bytes(name)
        if data is None or hashlib.sha256(data).hexdigest() != shard["docs_sha256"]:
            raise CorruptStoreError(f"{self.url}/{name}: missing or damaged (checksum); rebuild partition {pid}")
        return np.load(io.BytesIO(data), allow_pickle=False)

    def begin(self, pid: int) -> None:
        self.remote.copy(f"{_name(pid)}/{TOKENIZER_FILE}", TOKENIZER_FILE)

    def place_tokens(self, pid: int, shard: dict, name: str, itemsize: int) -> None:
        self.remote.copy(f"{_name(pid)}/{SHARDS_DIR}/{shard['name']}{TOKENS_SUFFIX}",
                         f"{SHARDS_DIR}/{name}{TOKENS_SUFFIX}")

    def write_docs(self, name: str, data: bytes) -> None:
        self.remote.put_bytes(f"{SHARDS_DIR}/{name}{DOCS_SUFFIX}", data)

    def finish(self, manifest: dict) -> None:
        self.remote.put_bytes(MANIFEST_FILE, encode_json(manifest))  # the commit point, last
        self.remove_partitions()

    def remove_partitions(self) -> None:
        self.remote.remove(PARTITIONS_DIR, recursive=True)

    def open(self) -> Store:
        return Store(self.url)
