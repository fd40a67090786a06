"""The memory maps of a store's shards: opened on first use, checked once, at most a bounded number at a time.

Each map holds a file descriptor, so a store of thousands of shards keeps only
the ``STORE_MAX_OPEN_SHARDS`` most recently used ones mapped. A shard's document
ends are checked the first time they are mapped (cheap checks only: strictly
increasing, inside the shard's token range, each just past an eos id), so a
hand-edited or damaged store gives a :class:`CorruptStoreError` naming the
shard instead of wrong documents; checksums stay with ``mmtok verify``.
"""

from __future__ import annotations

import collections
import os

import numpy as np

from ..base.constants import DOCS_DTYPE, DOCS_SUFFIX, SHARDS_DIR, STORE_MAX_OPEN_SHARDS, TOKENS_SUFFIX
from ..base.errors import CorruptStoreError
from .npyfile import open_npy


def shard_paths(store: str, name: str) -> tuple[str, str]:
    base = os.path.join(store, SHARDS_DIR, name)
    return base + TOKENS_SUFFIX, base + DOCS_SUFFIX


def open_shard_limit() -> int:
    """Shards mapped at once: ``STORE_MAX_OPEN_SHARDS``, or fewer when the open-file limit is low.

    Two descriptors per shard, and at most a quarter of the process's limit, so
    that several open stores and the program's own files still fit.
    """
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return STORE_MAX_OPEN_SHARDS
    if soft == getattr(resource, "RLIM_INFINITY", -1) or soft <= 0:
        return STORE_MAX_OPEN_SHARDS
    return max(4, min(STORE_MAX_OPEN_SHARDS, soft // 8))


class ShardMaps:
    """Lazily mapped ``(tokens, docs)`` arrays of the shards of one store snapshot."""

    def __init__(self, path: str, shards: list, dtype: np.dtype, eos_id: int, token_starts: np.ndarray,
                 *, opener=None, on_unmap=None, limit: int | None = None):
        """``opener(i, which)`` maps file ``which`` (0 tokens, 1 docs) of shard ``i`` (default: the local
        store's file, checked by ``open_npy``); ``on_unmap(i)`` is told when shard ``i``'s map is dropped."""
        self.path, self.shards, self.dtype, self.eos_id = path, shards, dtype, eos_id
        self.token_starts = token_starts
        self._opener, self._on_unmap = opener or self._open_local, on_unmap
        self.limit = max(1, limit or open_shard_limit())
        self._open: collections.OrderedDict[tuple[int, int], np.ndarray] = collections.OrderedDict()
        self._checked: set[int] = set()

    def tokens(self, i: int) -> np.ndarray:
        return self._get(i, 0)

    def docs(self, i: int) -> np.ndarray:
        array = self._get(i, 1)
        if i not in self._checked:
            self._check_docs(i, array)
            self._checked.add(i)
        return array

    def _get(self, i: int, which: int) -> np.ndarray:
        key = (i, which)
        array = self._open.get(key)
        if array is not None:
            self._open.move_to_end(key)
            return array
        array = self._opener(i, which)
        self._open[key] = array
        while len(self._open) > 2 * self.limit:
            (shard, _), _ = self._open.popitem(last=False)  # unmapped once no view of it is left
            if self._on_unmap is not None:
                self._on_unmap(shard)
        return array

    def _open_local(self, i: int, which: int) -> np.ndarray:
        shard = self.shards[i]
        file = shard_paths(self.path, shard["name"])[which]
        if which == 0:
            return open_npy(file, dtype=self.dtype.str, length=shard["tokens"], store=self.path)
        return open_npy(file, dtype=DOCS_DTYPE, length=shard["documents"], store=self.path)

    def _check_docs(self, i: int, docs: np.ndarray) -> None:
        if not docs.shape[0]:
            return
        start, stop = int(self.token_starts[i]), int(self.token_starts[i + 1])
        where = f"{self.path}: shard {self.shards[i]['name']}"
        if docs.shape[0] > 1 and not bool((docs[1:] > docs[:-1]).all()):
            raise CorruptStoreError(f"{where}: document end offsets are not strictly increasing (run `mmtok verify`)")
        if int(docs[0]) <= start or int(docs[-1]) > stop:
            raise CorruptStoreError(f"{where}: document end offsets fall outside the shard's tokens [{start}, {stop}] "
                                    "(run `mmtok verify`)")
        if i == len(self.shards) - 1 and int(docs[-1]) != stop:
            raise CorruptStoreError(f"{where}: the last document ends at {int(docs[-1])}, the store holds {stop} tokens")
        if not bool((self.tokens(i)[docs - 1 - start] == self.eos_id).all()):
            raise CorruptStoreError(f"{where}: a document does not end with the eos id {self.eos_id} (run `mmtok verify`)")

    def drop_all(self) -> None:
        self._open.clear()
