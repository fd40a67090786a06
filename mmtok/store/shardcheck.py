"""Checks shared by local and remote verification: a store file's sha256, and a shard's contents."""

from __future__ import annotations

import hashlib

from ..base.errors import CorruptStoreError
from .safefile import open_store_file

__all__ = ["check_shard_contents", "store_file_sha256"]

# Tokens are scanned in slices of this many ids to keep memory flat.
_SCAN = 1 << 24


def store_file_sha256(store: str, path: str, *, limit: int | None = None, block: int = 1 << 22) -> str | None:
    """sha256 of a store file (a regular file inside the store), or None when it is missing."""
    digest = hashlib.sha256()
    try:
        with open_store_file(store, path, limit=limit) as f:
            while chunk := f.read(block):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def check_shard_contents(store, i: int, shard: dict, where: str) -> None:
    """Ids below the vocabulary size, document ends valid, the last document ended (files already proven)."""
    tokens = store.shard_tokens(i)
    for lo in range(0, tokens.shape[0], _SCAN):
        top = int(tokens[lo : lo + _SCAN].max())
        if top >= store.vocab_size:
            raise CorruptStoreError(f"{where}: token id {top} is not below the vocabulary size {store.vocab_size}")
    store.shard_docs(i)  # offsets increasing, inside the shard, each just past an eos (checked as mapped)
    if not shard["documents"] and i == len(store.shards) - 1 and shard["tokens"]:
        raise CorruptStoreError(f"{where}: the store's last document does not end (no document end in its last shard)")


def verify_report(store, problems: list[str], leftovers: list[str]) -> dict:
    """What `mmtok verify` prints, for a local or a remote store alike."""
    return {
        "shards": len(store.shards),
        "tokens": store.num_tokens,
        "documents": store.num_documents,
        "leftovers": leftovers,
        "problems": problems,
    }
