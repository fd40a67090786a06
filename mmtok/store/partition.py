"""Partitioned builds: one self-contained partition of a store, written by any worker of any engine.

``build_partition(inputs, root, partition_id)`` tokenizes one split of the
inputs into ``root/partitions/PPPPPP/``, which is an ordinary store of its own
(FORMAT.md, "Partitions") built by :func:`mmtok.store.build.build`: shards
closed durably, a journal so a killed task resumes, and its manifest written
last by an atomic rename: that manifest is the partition's descriptor and its
commit point. The partition id is fixed per input split, so a retried task
finds its own folder: it resumes it (killed before its manifest), leaves it
(already finished with the same file inputs) or replaces it (finished with
other inputs, or in-memory texts, which cannot be compared), never adding a
second copy. :func:`mmtok.store.commit.commit` joins the partitions.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterable

from ..base.constants import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_SHARD_TOKENS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    PARTITION_NAME_DIGITS,
    PARTITIONS_DIR,
    TOKENIZER_FILE,
)
from ..base.errors import StoreError, StoreExistsError
from ..base.faults import fault_point
from ..base.version import __version__
from ..inputs.sources import Source
from ..remote.urls import is_remote
from .build import _sources, build
from .buildrun import tokenizer_entry
from .manifest import atomic_write_bytes, fsync_dir, read_manifest, write_manifest
from .writer import is_store_folder

__all__ = ["MAX_PARTITIONS", "build_partition", "partition_path"]

MAX_PARTITIONS = 10**PARTITION_NAME_DIGITS


def partition_path(root: str, partition_id: int) -> str:
    return os.path.join(root, PARTITIONS_DIR, str(partition_id).zfill(PARTITION_NAME_DIGITS))


def check_partition_id(partition_id) -> int:
    if isinstance(partition_id, bool) or not isinstance(partition_id, int) or not 0 <= partition_id < MAX_PARTITIONS:
        raise ValueError(f"partition_id must be an integer from 0 to {MAX_PARTITIONS - 1}, got {partition_id!r}")
    return partition_id


def build_partition(
    inputs=None,
    root=None,
    partition_id: int | None = None,
    *,
    texts: Iterable[str] | None = None,
    tokenizer=None,
    eos_token: str | None = None,
    engine: str = "auto",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    **options,
) -> dict:
    """Tokenize ``inputs`` (paths or :class:`~mmtok.inputs.sources.Source` splits) and/or ``texts``
    into partition ``partition_id`` of the store at ``root``; return ``{partition_id, path, tokens,
    documents}``.

    Give every partition the same tokenizer and settings, and number the
    partitions 0, 1, ... in input order: the committed store's token stream is
    the partitions' streams in id order. No inputs and no texts makes an empty
    partition (a rank with nothing to do still reports in). ``options`` are
    :func:`mmtok.build`'s (``line_by_line``, ``column``, ``field``, ``header``,
    ``workers``, ``progress``).
    """
    from ..tokenize.tokenizer import load_tokenizer

    if root is None or partition_id is None:
        raise TypeError("build_partition() needs the store root and the partition id: build_partition(inputs, root, partition_id)")
    check_partition_id(partition_id)
    if options.get("append"):
        raise ValueError("build_partition() does not append: each partition holds one split of the inputs")
    root = os.fspath(root)
    if is_remote(root):  # built in a local staging folder, then uploaded with its manifest last
        from .remote_partitions import build_remote_partition

        return build_remote_partition(build_partition, inputs, root, partition_id, texts=texts, tokenizer=tokenizer,
                                      eos_token=eos_token, engine=engine, shard_tokens=shard_tokens,
                                      chunk_bytes=chunk_bytes, **options)
    _prepare_root(root)
    path = partition_path(root, partition_id)
    tok = load_tokenizer(tokenizer, eos_token=eos_token, engine=engine)
    if inputs is not None and not isinstance(inputs, (str, os.PathLike, Source)):
        inputs = list(inputs)
    if texts is not None and not isinstance(texts, (str, bytes)):
        texts = _none_if_empty(texts)  # an engine's empty partition (no rows) is an empty partition
    empty = texts is None and (inputs is None or inputs == [])
    settings = {"shard_tokens": shard_tokens, "chunk_bytes": chunk_bytes}
    if os.path.exists(os.path.join(path, MANIFEST_FILE)) and (
            empty or texts is not None or not _finished_same(path, inputs, tok, settings, options)):
        _remove_partition(path)  # a retry with other (or uncomparable) inputs overwrites
    if empty:
        _write_empty_partition(path, tok, settings)
        return {"partition_id": partition_id, "path": path, "tokens": 0, "documents": 0}
    source_options = {key: options.pop(key) for key in ("line_by_line", "column", "field", "header") if key in options}
    store = build(inputs, path, texts=texts, tokenizer=tok, shard_tokens=shard_tokens, chunk_bytes=chunk_bytes,
                  **source_options, **options)
    return {"partition_id": partition_id, "path": path, "tokens": store.num_tokens, "documents": store.num_documents}


def _none_if_empty(texts):
    iterator = iter(texts)
    first = next(iterator, _NOTHING)
    return None if first is _NOTHING else itertools.chain([first], iterator)


_NOTHING = object()


def _prepare_root(root: str) -> None:
    if os.path.exists(root) and not os.path.isdir(root):
        raise StoreError(f"{root}: exists and is not a folder; choose another output path")
    if os.path.exists(os.path.join(root, MANIFEST_FILE)):
        raise StoreExistsError(f"{root}: already a committed store; build partitions into a new root "
                               "(a committed store does not take more partitions)")
    if os.path.isdir(root) and not is_store_folder(root):
        raise StoreError(f"{root}: folder is not empty and is not an mmtok store; choose another output path")
    os.makedirs(os.path.join(root, PARTITIONS_DIR), exist_ok=True)


def _finished_same(path: str, inputs, tok, settings: dict, options: dict) -> bool:
    """True when the finished partition at ``path`` already holds exactly these file inputs, so built."""
    manifest = read_manifest(path)
    if (manifest["tokenizer"]["fingerprint"], manifest["eos_id"], manifest["tokenizer"]["allow_special"]) != (
            tok.fingerprint, tok.eos_id, tok.allow_special):
        return False
    if {k: manifest["build"].get(k) for k in settings} != settings:
        return False
    wanted = [source.identity() for source in _sources(inputs, None, **{
        key: options.get(key, default) for key, default in
        (("line_by_line", None), ("column", None), ("field", "text"), ("header", True))})]
    done = manifest["inputs"]
    return len(done) == len(wanted) and all({k: d.get(k) for k in w} == w for d, w in zip(done, wanted))


def _remove_partition(path: str) -> None:
    """Uncommit first (the manifest goes), then delete the rest."""
    os.unlink(os.path.join(path, MANIFEST_FILE))
    fsync_dir(path)
    fault_point("partition-removed")
    shutil.rmtree(path)


def _write_empty_partition(path: str, tok, settings: dict) -> None:
    os.makedirs(path, exist_ok=True)
    tokenizer_json = tok.to_json().encode("utf-8")
    atomic_write_bytes(os.path.join(path, TOKENIZER_FILE), tokenizer_json)
    write_manifest(path, {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "created_by": f"mmtok {__version__}",
        "tokenizer": tokenizer_entry(tok, tokenizer_json), "dtype": tok.dtype.str, "eos_id": tok.eos_id,
        "num_tokens": 0, "num_documents": 0, "shards": [], "inputs": [], "build": settings,
    })
