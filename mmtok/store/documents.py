"""``store.documents``: a store's documents by index, slice or index array."""

from __future__ import annotations

import numpy as np

__all__ = ["Documents"]


class Documents:
    """``store.documents``: document i's tokens, trailing eos included.

    ``documents[i]`` is one array; ``documents[a:b]`` and ``documents[[i, j, ...]]``
    (a list or integer array) are a list of arrays; :meth:`ragged` gives the
    same selection as one flat array and the lengths (a ragged pair).
    """

    def __init__(self, store):
        self._store = store

    def __len__(self) -> int:
        return self._store.num_documents

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            starts, ends = self._store.document_bounds(self._indices(np.array([key]), key))
            return self._store.slice_tokens(int(starts[0]), int(ends[0]))
        starts, ends = self._store.document_bounds(self._select(key))
        return [self._store.slice_tokens(a, b) for a, b in zip(starts.tolist(), ends.tolist())]

    def ragged(self, key) -> tuple[np.ndarray, np.ndarray]:
        """Documents ``key`` (int, slice, list or array) as ``(tokens, lengths)``: one flat array and each length."""
        index = self._indices(np.array([key]), key) if isinstance(key, (int, np.integer)) else self._select(key)
        starts, ends = self._store.document_bounds(index)
        lengths = ends - starts
        tokens = np.empty(int(lengths.sum()), dtype=self._store.dtype)
        at = 0
        for a, b in zip(starts.tolist(), ends.tolist()):
            tokens[at : at + b - a] = self._store.slice_tokens(a, b)
            at += b - a
        return tokens, lengths

    def _select(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(*key.indices(self._store.num_documents), dtype=np.int64)
        if isinstance(key, (str, bytes, float)) or np.ndim(key) != 1 and not isinstance(key, (list, tuple)):
            raise TypeError(f"documents[...] takes an int, a slice, or a list/array of ints, not {type(key).__name__}")
        index = np.asarray(key)
        if index.size == 0:
            return np.empty(0, dtype=np.int64)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"documents[...] takes a 1-D list or array of ints, not one of dtype {index.dtype}")
        return self._indices(index.astype(np.int64), key)

    def _indices(self, index: np.ndarray, key) -> np.ndarray:
        n = self._store.num_documents
        index = np.where(index < 0, index + n, index).astype(np.int64)
        bad = (index < 0) | (index >= n)
        if bad.any():
            shown = key if isinstance(key, (int, np.integer)) else int(np.asarray(key).reshape(-1)[np.flatnonzero(bad)[0]])
            raise IndexError(f"document index {shown} out of range for {n} documents")
        return index

    def lengths(self) -> np.ndarray:
        """Every document's length in tokens (eos included), read shard by shard."""
        ends = [self._store.shard_docs(i) for i in range(len(self._store.shards))]
        ends = np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)
        return np.diff(ends, prepend=0)
