"""Proving a store whole: checksums, shapes, offsets, id ranges and document ends."""

from __future__ import annotations

import os

import numpy as np

from ..base.constants import SHARDS_DIR, TEMP_PREFIX, TOKENIZER_FILE
from ..base.errors import CorruptStoreError
from .npyfile import file_sha256
from .store import Store, shard_paths

# Tokens are scanned in slices of this many ids to keep memory flat.
_SCAN = 1 << 24


def file_sha256_or_none(path: str) -> str | None:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


def verify_store(path: str, *, on_shard=None) -> dict:
    """Check every shard of the store at ``path``; raise CorruptStoreError naming the first bad one.

    Returns a summary (shards, tokens, documents, leftover files). ``on_shard(i)``
    is called after shard ``i`` passes, for progress display.
    """
    store = Store(path)
    _check_tokenizer_file(store)
    previous_end = 0
    for i, shard in enumerate(store.shards):
        where = f"{path}: shard {shard['name']}"
        tokens_path, docs_path = shard_paths(path, shard["name"])
        for file_path, key in ((tokens_path, "tokens_sha256"), (docs_path, "docs_sha256")):
            found = file_sha256_or_none(file_path)
            if found is None:
                raise CorruptStoreError(f"{where}: {os.path.basename(file_path)} is missing")
            if found != shard[key]:
                raise CorruptStoreError(f"{where}: {os.path.basename(file_path)} checksum mismatch (the file was changed or damaged)")
        tokens = store.shard_tokens(i)
        docs = np.asarray(store.shard_docs(i))
        for lo in range(0, tokens.shape[0], _SCAN):
            top = int(tokens[lo : lo + _SCAN].max())
            if top >= store.vocab_size:
                raise CorruptStoreError(f"{where}: token id {top} is not below the vocabulary size {store.vocab_size}")
        start, stop = int(store.token_starts[i]), int(store.token_starts[i + 1])
        if docs.shape[0]:
            if np.any(np.diff(docs) <= 0) or docs[0] <= previous_end:
                raise CorruptStoreError(f"{where}: document end offsets are not strictly increasing")
            if docs[0] <= start or docs[-1] > stop:
                raise CorruptStoreError(f"{where}: document end offsets fall outside the shard's tokens [{start}, {stop})")
            if np.any(tokens[docs - 1 - start] != store.eos_id):
                raise CorruptStoreError(f"{where}: a document does not end with the eos id {store.eos_id}")
            previous_end = int(docs[-1])
        if on_shard is not None:
            on_shard(i)
    if store.num_tokens and previous_end != store.num_tokens:
        raise CorruptStoreError(f"{path}: the last document ends at {previous_end}, but the store holds {store.num_tokens} tokens")
    return {
        "shards": len(store.shards),
        "tokens": store.num_tokens,
        "documents": store.num_documents,
        "leftovers": leftover_files(store),
    }


def _check_tokenizer_file(store: Store) -> None:
    expected = store.manifest["tokenizer"].get("file_sha256")
    found = file_sha256_or_none(os.path.join(store.path, TOKENIZER_FILE))
    if found is None:
        raise CorruptStoreError(f"{store.path}: {TOKENIZER_FILE} is missing")
    if expected is not None and found != expected:
        raise CorruptStoreError(f"{store.path}: {TOKENIZER_FILE} checksum mismatch (the file was changed or damaged)")


def leftover_files(store: Store) -> list[str]:
    """Files in the shards folder that the manifest does not name (an interrupted build's)."""
    named = set()
    for shard in store.manifest["shards"]:
        named.update(os.path.basename(p) for p in shard_paths(store.path, shard["name"]))
    folder = os.path.join(store.path, SHARDS_DIR)
    entries = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(e for e in entries if e not in named or e.startswith(TEMP_PREFIX))

