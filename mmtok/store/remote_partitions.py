"""Partitioned builds on object storage (``s3://...``): partitions uploaded with their descriptor last.

Object storage has no rename, so a partition is built in a local staging folder
(the ordinary local build), then uploaded file by file with its manifest, the
partition's descriptor and commit point, uploaded last; a retried task first
deletes an older copy's manifest, then its files. Commit lists the partitions,
copies their token files server-side into ``shards/`` (no bytes through this
machine), writes the shifted document ends and, last, the store's manifest.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile

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
from ..base.errors import CorruptStoreError, StoreExistsError
from ..remote import RemoteFiles, upload_folder
from .manifest import encode_json, parse_manifest
from .store import Store

__all__ = ["RemotePartitions", "build_remote_partition"]


def _name(pid: int) -> str:
    return f"{PARTITIONS_DIR}/{str(pid).zfill(PARTITION_NAME_DIGITS)}"


def build_remote_partition(build_local, inputs, url: str, partition_id: int, **options) -> dict:
    """Build partition ``partition_id`` locally with ``build_local`` (build_partition), then upload it."""
    remote = RemoteFiles(url)
    if remote.exists(MANIFEST_FILE):
        raise StoreExistsError(f"{url}: already a committed store; build partitions into a new root "
                               "(a committed store does not take more partitions)")
    staging = tempfile.mkdtemp(prefix=".tmp-mmtok-partition-")
    try:
        result = build_local(inputs, staging, partition_id, **options)
        name = _name(partition_id)
        remote.remove(f"{name}/{MANIFEST_FILE}")  # uncommit an earlier attempt first
        remote.remove(name, recursive=True)
        upload_folder(result["path"], f"{url.rstrip('/')}/{name}", last=(MANIFEST_FILE,), skip=(JOURNAL_FILE,))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dict(result, path=f"{url.rstrip('/')}/{name}")


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
