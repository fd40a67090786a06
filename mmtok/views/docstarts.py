"""Where documents start inside samples, read from the store's document index (never by scanning for eos).

A bulk window ``[s, s + L)`` holds the start of document ``i + 1`` for every
document end offset ``e`` with ``s < e < s + L``; position 0 of a window is
always treated as a start (a document cut by the window edge restarts there, as
in Megatron's ``reset_position_ids``). Position ids count from each start.
"""

from __future__ import annotations

import numpy as np

from ..store.store import Store

__all__ = ["ends_up_to", "window_doc_starts", "position_ids_from_starts"]


def ends_up_to(store: Store, x: np.ndarray) -> np.ndarray:
    """How many document end offsets are ``<= x``, for every x in an int64 array (vectorised per shard)."""
    x = np.asarray(x, dtype=np.int64)
    out = np.zeros(x.shape, dtype=np.int64)
    if not len(store.shards):
        return out
    # Shard k's document ends lie in (T_k, T_{k+1}]: the shard to search for x is the one with T_k < x <= T_{k+1}.
    shard_of = np.clip(np.searchsorted(store.token_starts, x, side="left") - 1, 0, len(store.shards) - 1)
    for shard in np.unique(shard_of).tolist():
        mask = shard_of == shard
        out[mask] = store.doc_starts[shard] + np.searchsorted(store.shard_docs(shard), x[mask], side="right")
    return out


def window_doc_starts(store: Store, starts: np.ndarray, length: int) -> list[np.ndarray]:
    """For each window ``[s, s + length)``: the sorted offsets inside it where a document starts (0 included)."""
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    if starts.shape[0] == 0:
        return []
    lo = ends_up_to(store, starts)
    hi = ends_up_to(store, starts + (length - 1))
    counts = hi - lo
    total = int(counts.sum())
    if total:
        first = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(total)  # lo[w] + k for each window
        _, ends = store.document_bounds(first)
        offsets = ends - np.repeat(starts, counts)
    else:
        offsets = np.empty(0, dtype=np.int64)
    pieces = np.split(offsets, np.cumsum(counts)[:-1])
    return [np.concatenate(([0], piece)).astype(np.int64) for piece in pieces]


def position_ids_from_starts(starts: np.ndarray, length: int) -> np.ndarray:
    """Positions ``0, 1, ...`` restarting at every offset in ``starts`` (which holds 0), for a row of ``length``."""
    marks = np.zeros(length, dtype=np.int64)
    inside = starts[starts < length]
    marks[inside] = inside
    return np.arange(length, dtype=np.int64) - np.maximum.accumulate(marks)
