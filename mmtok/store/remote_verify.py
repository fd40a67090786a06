"""Proving a store on object storage whole (``mmtok verify s3://...``), and what it takes there.

Every file is fetched through the bounded local cache, which checks its sha256
while downloading; a copy already in the cache is hashed again (a damaged copy
is dropped and fetched anew), so what is proven is the remote store. Then the
same checks as a local store's run on the mapped shards: id range, document
ends. Every problem is reported with the URL of its file; a failure that says
nothing about the store (the cache too small, no network) stops the run.
"""

from __future__ import annotations

import os

from ..base.constants import DOCS_SUFFIX, SHARDS_DIR, TOKENIZER_FILE, TOKENS_SUFFIX
from ..base.errors import CorruptStoreError
from .shardcheck import check_shard_contents, store_file_sha256, verify_report
from .store import Store

__all__ = ["check_remote_store", "remote_leftovers"]


def check_remote_store(store: Store, *, on_shard=None) -> dict:
    """:func:`mmtok.store.verify.check_store` for a store opened from object storage."""
    problems = []
    try:
        _fetch_checked(store, TOKENIZER_FILE, store.manifest["tokenizer"].get("file_sha256"))
    except CorruptStoreError as exc:
        problems.append(str(exc))
    for i, shard in enumerate(store.shards):
        try:
            for suffix, key in ((TOKENS_SUFFIX, "tokens_sha256"), (DOCS_SUFFIX, "docs_sha256")):
                _fetch_checked(store, f"{SHARDS_DIR}/{shard['name']}{suffix}", shard[key])
            check_shard_contents(store, i, shard, f"{store.path}: shard {shard['name']}")
        except CorruptStoreError as exc:
            problems.append(str(exc))
        if on_shard is not None:
            on_shard(i)
    return verify_report(store, problems, remote_leftovers(store))


def _fetch_checked(store: Store, relative: str, sha256: str | None) -> None:
    """Prove the remote file ``relative`` by its checksum, downloading it once, and leave it in the cache."""
    if sha256 is None:
        raise CorruptStoreError(f"{store.path}/{relative}: the manifest gives no checksum; cannot verify it")
    cached = store.remote.cache.lookup(sha256)
    if cached is None:
        store.remote.local(relative, sha256)  # hashed while downloading; refused if it differs
        return
    # The same bytes are cached (by this store or another sharing them): hash the remote file as it streams
    # by, without storing it, and the cached copy too (a rotted copy is dropped, fetched anew when read).
    if store.remote.sha256(relative) != sha256:
        raise CorruptStoreError(f"{store.path}/{relative}: checksum mismatch on object storage (the remote file "
                                "is damaged or changed)")
    if store_file_sha256(os.path.dirname(cached), cached) != sha256:
        try:
            os.unlink(cached)
        except FileNotFoundError:
            pass


def remote_leftovers(store: Store) -> list[str]:
    """Files in the store's ``shards/`` on object storage that its manifest does not name."""
    named = {shard["name"] + suffix for shard in store.shards for suffix in (TOKENS_SUFFIX, DOCS_SUFFIX)}
    return sorted(name for name in store.remote.list_files(SHARDS_DIR) if name not in named)
