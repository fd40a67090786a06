"""One copy of each tokenizer file in the store cache: hard links into a content-addressed folder.

Every store carries its own ``tokenizer.json`` (a store is self-contained: it
can be copied, exported or read alone). In the store cache most stores carry
the same 1.5 MB file, so :func:`share_tokenizer` replaces a store's copy by a
hard link to ``<cache>/tokenizers/<sha256>.json``: still a file of the store,
one copy on disk. Store files are never changed in place (always replaced by a
rename), so a link can never carry one store's change into another.
:func:`prune_shared` removes the shared files no store links to any more.
"""

from __future__ import annotations

import os

from ..base.constants import TEMP_PREFIX, TOKENIZER_FILE
from ..store.npyfile import file_sha256

__all__ = ["SHARED_DIR", "prune_shared", "share_tokenizer"]

SHARED_DIR = "tokenizers"


def share_tokenizer(store_path: str, cache: str, manifest: dict) -> bool:
    """Make ``store_path``'s tokenizer file a link to the cache's shared copy; True if it is one now.

    Best effort: on a file system without hard links, or any error, the store
    keeps its own copy (it is complete either way).
    """
    digest = manifest["tokenizer"].get("file_sha256")
    own = os.path.join(store_path, TOKENIZER_FILE)
    if not digest or not os.path.isfile(own):
        return False
    folder = os.path.join(cache, SHARED_DIR)
    shared = os.path.join(folder, f"{digest}.json")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.path.exists(shared) and os.path.samefile(shared, own):
            return True
        if not os.path.exists(shared) or file_sha256(shared) != digest:
            _link_over(own, shared)  # the first store of this tokenizer provides the shared copy
            return True
        if file_sha256(own) != digest:
            return False  # not the file its manifest names: leave it for `mmtok verify` to report
        _link_over(shared, own)
        return True
    except OSError:
        return False


def _link_over(source: str, target: str) -> None:
    """Atomically make ``target`` a hard link to ``source``."""
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{name}.{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.link(source, tmp)
    os.replace(tmp, target)


def prune_shared(cache: str) -> list[str]:
    """Remove shared tokenizer files that no store links to (link count 1); return their paths."""
    folder = os.path.join(cache, SHARED_DIR)
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        path = os.path.join(folder, name)
        try:
            if os.stat(path).st_nlink <= 1:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
    return removed
