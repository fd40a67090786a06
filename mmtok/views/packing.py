"""Packing whole documents into ``block_size`` rows by best-fit decreasing (``TokenDataset(packing="bfd")``).

The rule (Ding et al. 2024, "Fewer Truncations Improve Language Modeling"):
a document longer than ``block_size`` is first cut into ``block_size`` pieces
(each a row of its own) and a shorter remainder; the remainders and the short
documents, longest first (ties in document order), each go into the open row
with the least room that still fits it (the first opened of equal rooms), or
starts a new row. No token is dropped
or repeated: every row is at most ``block_size`` tokens, the rest is padding.
Finally the rows are put in a random order drawn from ``seed``.

The layout is computed once per (store contents, block_size, seed) and kept
as one ``.npy`` file in the store cache folder (``<cache>/packing/``; format in
FORMAT.md, "Derived files"), written atomically, so DataLoader workers and
later runs map it instead of packing again.
"""

from __future__ import annotations

import bisect
import heapq
import os
import warnings

import numpy as np

from ..base.constants import TEMP_PREFIX
from ..base.errors import CorruptStoreError
from ..store.store import Store
from .cachedir import PACKING_FILE_VERSION, packing_path
from .docstarts import position_ids_from_starts
from .samples import _ragged

__all__ = ["PackedIndex", "pack_bfd", "PACKING_FILE_VERSION"]

_MAGIC = 0x6D6D746F6B50  # "mmtokP": first int64 of a packing file


def pack_bfd(lengths: np.ndarray, block_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack documents of ``lengths`` tokens (stored back to back) into rows; see the module docstring.

    Returns ``(row_offsets, piece_starts, piece_lengths)``: row r is the pieces
    ``row_offsets[r]:row_offsets[r+1]``, piece j being stream tokens
    ``[piece_starts[j], piece_starts[j] + piece_lengths[j])``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    doc_start = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64) if lengths.size else lengths
    full = lengths // block_size
    # Full pieces: one row each.
    full_doc = np.repeat(np.arange(lengths.shape[0]), full)
    full_k = np.arange(int(full.sum())) - np.repeat(np.cumsum(full) - full, full)
    full_starts = doc_start[full_doc] + full_k * block_size
    # Remainders and short documents: best-fit decreasing.
    rest = lengths - full * block_size
    keep = np.flatnonzero(rest > 0)
    rest_starts, rest_lengths = doc_start[keep] + full[keep] * block_size, rest[keep]
    order = np.argsort(-rest_lengths, kind="stable")
    bin_of = np.empty(order.shape[0], dtype=np.int64)
    buckets: dict[int, list[int]] = {}  # room left -> heap of the open rows with that room (first opened on top)
    rooms: list[int] = []  # sorted room values that have open rows
    count = 0
    for j, size in zip(order.tolist(), rest_lengths[order].tolist()):
        at = bisect.bisect_left(rooms, size)
        if at < len(rooms):
            room = rooms[at]
            stack = buckets[room]
            row = heapq.heappop(stack)
            if not stack:
                del rooms[at], buckets[room]
        else:
            room, row = block_size, count
            count += 1
        bin_of[j] = row
        left = room - size
        if left:
            stack = buckets.get(left)
            if stack is None:
                stack = buckets[left] = []
                bisect.insort(rooms, left)
            heapq.heappush(stack, row)
    # Pieces of a row in the order they were placed (largest first).
    placed = order[np.argsort(bin_of[order], kind="stable")]
    rows_of_rest = np.bincount(bin_of, minlength=count)
    piece_starts = np.concatenate((full_starts, rest_starts[placed])).astype(np.int64)
    piece_lengths = np.concatenate((np.full(full_starts.shape[0], block_size), rest_lengths[placed])).astype(np.int64)
    sizes = np.concatenate((np.ones(full_starts.shape[0], dtype=np.int64), rows_of_rest))
    # Rows in a random order drawn from the seed.
    perm = np.random.default_rng(seed).permutation(sizes.shape[0])
    first = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    new_sizes = sizes[perm]
    take = np.repeat(first[perm], new_sizes) + (np.arange(int(new_sizes.sum())) - np.repeat(np.cumsum(new_sizes) - new_sizes, new_sizes))
    row_offsets = np.concatenate(([0], np.cumsum(new_sizes))).astype(np.int64)
    return row_offsets, piece_starts[take], piece_lengths[take]


def _encode(row_offsets, piece_starts, piece_lengths) -> np.ndarray:
    head = np.array([_MAGIC, PACKING_FILE_VERSION, row_offsets.shape[0] - 1, piece_starts.shape[0]], dtype="<i8")
    return np.concatenate((head, row_offsets, piece_starts, piece_lengths)).astype("<i8")


def _decode(flat: np.ndarray, path: str):
    if flat.ndim != 1 or flat.shape[0] < 4 or int(flat[0]) != _MAGIC or int(flat[1]) != PACKING_FILE_VERSION:
        raise CorruptStoreError(f"{path}: not an mmtok packing file of version {PACKING_FILE_VERSION}; delete it "
                                "and it will be computed again")
    rows, pieces = int(flat[2]), int(flat[3])
    if flat.shape[0] != 4 + rows + 1 + 2 * pieces:
        raise CorruptStoreError(f"{path}: truncated packing file; delete it and it will be computed again")
    row_offsets = flat[4 : 5 + rows]
    return row_offsets, flat[5 + rows : 5 + rows + pieces], flat[5 + rows + pieces :]


def _write_atomic(path: str, flat: np.ndarray) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.path.basename(path)}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.save(f, flat, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_or_pack(store: Store, block_size: int, seed: int):
    """``(row_offsets, piece_starts, piece_lengths)`` from the packing file, computing and writing it if absent."""
    path = packing_path(store.path, store.shards, block_size, seed)
    if os.path.exists(path):
        return _decode(np.load(path, mmap_mode="r", allow_pickle=False), path)
    arrays = pack_bfd(store.documents.lengths(), block_size, seed)
    try:
        _write_atomic(path, _encode(*arrays))
    except OSError as exc:
        warnings.warn(f"could not keep the packing of {store.path} at {path} ({exc.strerror}); it is recomputed "
                      "in each process", stacklevel=3)
    return arrays


class PackedIndex:
    """A line-by-line view's rows after packing: the same interface as SampleIndex, plus document starts."""

    def __init__(self, store: Store, *, block_size: int, seed: int):
        self.store, self.block_size, self.seed = store, block_size, seed
        self.row_offsets, self.piece_starts, self.piece_lengths = load_or_pack(store, block_size, seed)
        self.count = self.row_offsets.shape[0] - 1

    def one(self, i: int) -> np.ndarray:
        batch, lengths = self.many(np.array([i], dtype=np.int64), dtype=self.store.dtype, pad_id=0, pad_to_block=False)
        return batch[0, : lengths[0]]

    def _pieces(self, index: np.ndarray):
        lo, hi = self.row_offsets[index], self.row_offsets[index + 1]
        counts = hi - lo
        pieces = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return counts, np.asarray(self.piece_starts[pieces]), np.asarray(self.piece_lengths[pieces])

    def many(self, index: np.ndarray, *, dtype: np.dtype, pad_id: int, pad_to_block: bool):
        """``(batch, lengths)``: rows ``index`` padded with ``pad_id`` to the longest (or ``block_size``)."""
        counts, starts, lengths = self._pieces(index)
        row_of = np.repeat(np.arange(index.shape[0]), counts)
        row_lengths = np.bincount(row_of, weights=lengths, minlength=index.shape[0]).astype(np.int64)
        width = self.block_size if pad_to_block else int(row_lengths.max(initial=0))
        out = np.full((index.shape[0], width), pad_id, dtype=dtype)
        if starts.shape[0] == 0:
            return out, row_lengths
        pieces = _ragged(self.store, starts, lengths, int(lengths.max()), dtype=dtype, pad_id=pad_id)
        values = pieces[np.arange(pieces.shape[1]) < lengths[:, None]]
        offset_in_row = np.cumsum(lengths) - lengths - np.repeat(np.cumsum(row_lengths) - row_lengths, counts)
        total = int(lengths.sum())
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[np.repeat(row_of, lengths), np.repeat(offset_in_row, lengths) + within] = values
        return out, row_lengths

    def doc_starts(self, i: int) -> np.ndarray:
        """Offsets in row ``i`` where a piece (a document, or a piece of a long one) starts."""
        _, _, lengths = self._pieces(np.array([i], dtype=np.int64))
        return (np.cumsum(lengths) - lengths).astype(np.int64)

    def position_ids(self, i: int) -> np.ndarray:
        _, _, lengths = self._pieces(np.array([i], dtype=np.int64))
        return position_ids_from_starts((np.cumsum(lengths) - lengths).astype(np.int64), int(lengths.sum()))
