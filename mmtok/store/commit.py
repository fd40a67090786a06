"""Committing a partitioned build: join the finished partitions into one ordinary store.

:func:`commit` learns what finished by listing ``root/partitions/`` (a
partition is finished when its manifest exists), never from an engine's return
values. It refuses an incomplete set (a partition missing, or started without
finishing: still running, or crashed) unless the caller accepts it, checks that
every partition was made with one tokenizer and the same settings, and then
writes the root store: each partition shard's tokens file is hard-linked (not
copied) into ``shards/`` under its store-wide number, its document ends are
rewritten shifted by the tokens of the partitions before it, and the manifest,
the commit point, is written last. The partitions folder is removed after.
The result is an ordinary store (FORMAT.md): its token stream and document
ends equal a single build of the same inputs in the same order.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil

import numpy as np

from ..base.constants import (
    DOCS_DTYPE,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    PARTITION_NAME_DIGITS,
    PARTITIONS_DIR,
    SHARDS_DIR,
    TEMP_PREFIX,
    TOKENIZER_FILE,
)
from ..base.errors import MmtokError, StoreError, StoreExistsError, TokenizerMismatchError, os_error_reason
from ..base.faults import fault_point
from ..base.version import __version__
from ..remote.urls import is_remote
from .atomicfile import write_synced
from .folder import locked as _locked
from .manifest import atomic_write_bytes, fsync_dir, read_manifest, write_manifest
from .npyfile import npy_header, open_npy
from .partition import MAX_PARTITIONS
from .store import Store, shard_paths
from .writer import remove_unnamed_files, shard_name

__all__ = ["LocalPartitions", "commit", "scan_partitions", "shifted_docs"]


class LocalPartitions:
    """The partitions of a store folder on a filesystem: tokens are hard-linked into the store."""

    def __init__(self, root: str):
        self.root = root
        self.shas: dict[int, str] = {}

    def scan(self) -> tuple[dict[int, dict], list[int]]:
        """``({id: manifest} of finished partitions, [ids of partitions started but not finished])``."""
        folder = os.path.join(self.root, PARTITIONS_DIR)
        finished, unfinished = {}, []
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if not (len(entry) == PARTITION_NAME_DIGITS and entry.isascii() and entry.isdigit()):
                continue  # not a partition (a temporary file)
            path = os.path.join(folder, entry)
            if os.path.exists(os.path.join(path, MANIFEST_FILE)):
                finished[int(entry)] = read_manifest(path)
                with open(os.path.join(path, MANIFEST_FILE), "rb") as f:
                    self.shas[int(entry)] = hashlib.sha256(f.read()).hexdigest()
            else:
                unfinished.append(int(entry))
        return finished, unfinished

    def committed(self) -> dict | None:
        return read_manifest(self.root) if os.path.exists(os.path.join(self.root, MANIFEST_FILE)) else None

    def _dir(self, pid: int) -> str:
        return os.path.join(self.root, PARTITIONS_DIR, str(pid).zfill(PARTITION_NAME_DIGITS))

    def read_docs(self, pid: int, shard: dict) -> np.ndarray:
        return open_npy(shard_paths(self._dir(pid), shard["name"])[1], dtype=DOCS_DTYPE, length=shard["documents"])

    def begin(self, pid: int) -> None:
        with open(os.path.join(self._dir(pid), TOKENIZER_FILE), "rb") as f:
            atomic_write_bytes(os.path.join(self.root, TOKENIZER_FILE), f.read())
        os.makedirs(os.path.join(self.root, SHARDS_DIR), exist_ok=True)
        remove_unnamed_files(self.root, set())  # leftovers of an earlier commit that stopped half-way
        fault_point("commit-begun")

    def place_tokens(self, pid: int, shard: dict, name: str, itemsize: int) -> None:
        src = shard_paths(self._dir(pid), shard["name"])[0]
        _check_size(src, shard["tokens"] * itemsize)
        _link(src, shard_paths(self.root, name)[0])
        fault_point("commit-linked")

    def write_docs(self, name: str, data: bytes) -> None:
        path = shard_paths(self.root, name)[1]
        tmp = os.path.join(os.path.dirname(path), TEMP_PREFIX + os.path.basename(path))
        write_synced(tmp, data)
        fault_point("commit-docs-written")
        os.replace(tmp, path)

    def finish(self, manifest: dict) -> None:
        fsync_dir(os.path.join(self.root, SHARDS_DIR))
        fault_point("commit-shards-synced")
        write_manifest(self.root, manifest)  # the commit point
        self.remove_partitions()

    def remove_partitions(self) -> None:
        folder = os.path.join(self.root, PARTITIONS_DIR)
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)
            fault_point("commit-partition-removed")
        shutil.rmtree(folder, ignore_errors=True)
        fsync_dir(self.root)

    def open(self) -> Store:
        return Store(self.root)


def scan_partitions(root) -> tuple[dict[int, dict], list[int]]:
    """``({id: manifest} of finished partitions, [ids started but not finished])`` of a local root."""
    return LocalPartitions(os.fspath(root)).scan()


def commit(root, *, expect: int | None = None, allow_missing: bool = False) -> Store:
    """Join the finished partitions under ``root`` into the store ``root``; return it.

    ``expect=W`` says partitions ``0 .. W-1`` must all be there (without it,
    a partition that never started after the last one that did cannot be
    noticed). A missing or unfinished partition is an error naming it, unless
    ``allow_missing=True``: then the store holds the finished partitions only
    and its manifest lists the missing ones under ``build.missing_partitions``.
    Committing again after a successful commit returns the store unchanged.
    ``root`` may be an object-storage URL (``s3://...``): there token files are
    copied server-side (no bytes through this machine) instead of hard-linked.
    """
    root = os.fspath(root)
    if expect is not None and (isinstance(expect, bool) or not isinstance(expect, int)
                               or not 1 <= expect <= MAX_PARTITIONS):
        raise ValueError(f"expect must be the number of partitions, from 1 to {MAX_PARTITIONS}, got {expect!r}")
    if is_remote(root):
        from .remote_partitions import RemotePartitions

        return _commit(RemotePartitions(root), root, expect, allow_missing)
    if not os.path.isdir(root):
        raise StoreError(f"{root}: no such folder; build partitions into it first (mmtok build --rank/--world-size, "
                         "or mmtok.build_partition)")
    with _locked(root):
        try:
            return _commit(LocalPartitions(root), root, expect, allow_missing)
        except OSError as exc:
            if isinstance(exc, MmtokError):
                raise
            done = os.path.exists(os.path.join(root, MANIFEST_FILE))
            full = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write the store"
            state = ("the store is committed; rerun `mmtok commit` to remove the partitions" if done else
                     "nothing was committed and the partitions are intact: free some space and rerun `mmtok commit`")
            raise StoreError(f"{root}: {full} ({os_error_reason(exc)}); {state}") from None


def _commit(backend, root: str, expect, allow_missing) -> Store:
    finished, unfinished = backend.scan()
    committed = backend.committed()
    if committed is not None:
        return _already_committed(backend, root, committed, finished)
    missing = _check_complete(root, finished, unfinished, expect, allow_missing)
    ids = sorted(finished)
    _check_alike(root, finished, ids)
    _check_ends(backend, root, finished, ids)
    backend.finish(_write_store(backend, finished, ids, missing))
    return backend.open()


def _already_committed(backend, root: str, manifest: dict, finished: dict[int, dict]) -> Store:
    recorded = manifest.get("build", {}).get("partitions")
    if recorded is None:
        raise StoreExistsError(f"{root}: already a store that was not made by commit; "
                               "build the partitions into a new folder")
    known = {entry["id"]: entry["manifest_sha256"] for entry in recorded}
    new = [pid for pid in finished if known.get(pid) != backend.shas[pid]]
    if new:
        raise StoreExistsError(f"{root}: already committed; partition(s) {_ids(new)} were built after the "
                               "commit. A committed store takes no more partitions: build into a new folder")
    backend.remove_partitions()  # an earlier commit stopped before this
    return backend.open()


def _ids(ids) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")


def _check_complete(root, finished, unfinished, expect, allow_missing) -> list[int]:
    started = set(finished) | set(unfinished)
    if expect is not None:
        beyond = sorted(pid for pid in started if pid >= expect)
        if beyond:
            raise StoreError(f"{root}: partition(s) {_ids(beyond)} exist but --expect {expect} says ids stop at "
                             f"{expect - 1}; give the right count or remove them")
        wanted = range(expect)
    else:
        wanted = range(max(started) + 1 if started else 0)
    missing = [pid for pid in wanted if pid not in finished]
    if not finished:
        raise StoreError(f"{root}: no finished partition under {PARTITIONS_DIR}/"
                         + (f" (started but unfinished: {_ids(unfinished)})" if unfinished else "")
                         + "; build them first (mmtok build --rank R --world-size W)")
    if missing and not allow_missing:
        running = sorted(set(missing) & set(unfinished))
        absent = sorted(set(missing) - set(unfinished))
        parts = []
        if running:
            parts.append(f"{_ids(running)} started but did not finish (still running, or crashed: rerun them)")
        if absent:
            parts.append(f"{_ids(absent)} never started")
        raise StoreError(f"{root}: {len(missing)} of {len(wanted)} partitions are missing: partition(s) "
                         + "; ".join(parts) + ". Build them, or commit with --allow-missing to leave them out")
    return missing


def _check_alike(root, finished, ids) -> None:
    first = finished[ids[0]]
    for pid in ids[1:]:
        other = finished[pid]
        a, b = first["tokenizer"], other["tokenizer"]
        if (a["fingerprint"], first["eos_id"], a["allow_special"], first["dtype"]) != (
                b["fingerprint"], other["eos_id"], b["allow_special"], other["dtype"]):
            raise TokenizerMismatchError(
                f"{root}: partition {pid} was made with tokenizer {b.get('name')} ({b['fingerprint']}, eos "
                f"{other['eos_id']}, allow_special {b['allow_special']}), partition {ids[0]} with {a.get('name')} "
                f"({a['fingerprint']}, eos {first['eos_id']}, allow_special {a['allow_special']}); "
                "rebuild the odd partition with the same tokenizer")
        if _settings(first) != _settings(other):
            raise StoreError(f"{root}: partition {pid} was built with settings {other.get('build')}, partition "
                             f"{ids[0]} with {first.get('build')}; rebuild the odd partition with the same settings")


def _settings(manifest: dict) -> dict:
    """A partition's build settings; ``engine`` is left out: every engine gives the same ids and bytes."""
    return {key: value for key, value in manifest.get("build", {}).items() if key != "engine"}


def _last_end(backend, pid: int, manifest: dict) -> int:
    """The partition-relative end of its last finished document (0 if none)."""
    for shard in reversed(manifest["shards"]):
        if shard["documents"]:
            return int(backend.read_docs(pid, shard)[-1])
    return 0


def _check_ends(backend, root, finished, ids) -> None:
    """A partition whose last document continues in the next one needs that next one."""
    for pid in ids:
        manifest = finished[pid]
        if (manifest["num_tokens"] and pid + 1 not in finished
                and _last_end(backend, pid, manifest) != manifest["num_tokens"]):
            raise StoreError(f"{root}: partition {pid} ends inside a document that partition {pid + 1} "
                             f"continues, and partition {pid + 1} is not finished; build it before committing")


def shifted_docs(docs: np.ndarray, offset: int) -> bytes:
    """The bytes of a ``.docs.npy`` file holding ``docs + offset`` (the store's own header layout)."""
    data = (np.asarray(docs, dtype=np.int64) + offset).astype(DOCS_DTYPE)
    return npy_header(DOCS_DTYPE, data.shape[0]) + data.tobytes()


def _link(src: str, dst: str) -> None:
    """Put ``src``'s bytes at ``dst`` without copying them (a hard link), atomically."""
    tmp = os.path.join(os.path.dirname(dst), TEMP_PREFIX + os.path.basename(dst))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise StoreError(f"{dst}: cannot link {src} ({exc.strerror})") from None
        shutil.copyfile(src, tmp)  # a filesystem without hard links: copy instead
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, dst)


def _write_store(backend, finished: dict[int, dict], ids: list[int], missing: list[int]) -> dict:
    """Put every partition shard in place under its store-wide name; return the store's manifest."""
    first = finished[ids[0]]
    itemsize = np.dtype(first["dtype"]).itemsize
    backend.begin(ids[0])
    shards, inputs, record = [], [], []
    token_offset = doc_offset = 0
    for pid in ids:
        manifest = finished[pid]
        for entry in manifest["inputs"]:
            inputs.append({**entry, "partition": pid, "first_token": entry["first_token"] + token_offset,
                           "first_document": entry["first_document"] + doc_offset})
        for shard in manifest["shards"]:
            name = shard_name(len(shards))
            backend.place_tokens(pid, shard, name, itemsize)
            docs = shifted_docs(backend.read_docs(pid, shard), token_offset)
            backend.write_docs(name, docs)
            shards.append({"name": name, "tokens": shard["tokens"], "documents": shard["documents"],
                           "tokens_sha256": shard["tokens_sha256"], "docs_sha256": hashlib.sha256(docs).hexdigest()})
        record.append({"id": pid, "manifest_sha256": backend.shas[pid],
                       "tokens": manifest["num_tokens"], "documents": manifest["num_documents"]})
        token_offset += manifest["num_tokens"]
        doc_offset += manifest["num_documents"]
    build = dict(first.get("build", {}), partitions=record)
    if missing:
        build["missing_partitions"] = missing
    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "created_by": f"mmtok {__version__}",
        "tokenizer": first["tokenizer"], "dtype": first["dtype"], "eos_id": first["eos_id"],
        "num_tokens": token_offset, "num_documents": doc_offset, "shards": shards, "inputs": inputs,
        "build": build,
    }


def _check_size(path: str, data_bytes: int) -> None:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing; the partition is damaged, rebuild it") from None
    if size < data_bytes:
        raise StoreError(f"{path}: {size} bytes, too short for its tokens; the partition is damaged, rebuild it")

