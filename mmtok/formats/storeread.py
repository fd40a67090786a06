"""Reading a store for export: its token stream in pieces, document ends alongside, checksums checked.

:func:`pieces` is the one way exporters read a store: bounded pieces of the
token stream in order, each with the piece-relative end offsets of the
documents that end inside it. Every shard file's sha256 is checked as it
streams by, so an export of a damaged store fails (and leaves nothing).
:func:`documents` regroups pieces into whole documents for exporters that
write one record per document.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from ..base.constants import DOCS_DTYPE
from ..base.errors import CorruptStoreError
from ..store.npyfile import read_npy_header
from ..store.store import Store, shard_paths

PIECE_TOKENS = 1 << 22


def open_store(store) -> Store:
    return store if isinstance(store, Store) else Store(store)


def npy_data_offset(path: str, dtype: str, length: int) -> int:
    """Where the data of a store's ``.npy`` file starts, after checking its header against the manifest."""
    try:
        with open(path, "rb") as f:
            shape, fortran, found = read_npy_header(f)
            offset = f.tell()
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise CorruptStoreError(f"{path}: missing; the store is incomplete (run `mmtok verify`)") from None
    except ValueError as exc:
        raise CorruptStoreError(f"{path}: not a valid .npy file ({exc})") from None
    if found.str != np.dtype(dtype).str or fortran or shape != (length,) or size != offset + length * found.itemsize:
        raise CorruptStoreError(f"{path}: does not match the manifest ({dtype}, {length} items); run `mmtok verify`")
    return offset


def _checked_docs(path: str, length: int, expected_sha: str) -> np.ndarray:
    offset = npy_data_offset(path, DOCS_DTYPE, length)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    if digest.hexdigest() != expected_sha:
        raise CorruptStoreError(f"{path}: checksum mismatch (the file was changed or damaged); run `mmtok verify`")
    if length == 0:
        return np.empty(0, dtype=np.int64)
    return np.memmap(path, dtype=DOCS_DTYPE, mode="r", offset=offset, shape=(length,))


def pieces(store: Store, piece_tokens: int = PIECE_TOKENS, progress=None):
    """Yield ``(tokens, ends)``: the stream in pieces of at most ``piece_tokens``, and the piece-relative
    end offsets (int64) of the documents ending in each piece. ``progress(done_bytes, total_bytes)``."""
    itemsize = store.dtype.itemsize
    total, done = store.num_tokens * itemsize, 0
    for index, shard in enumerate(store.shards):
        tokens_path, docs_path = shard_paths(store.path, shard["name"])
        n = shard["tokens"]
        ends = _checked_docs(docs_path, shard["documents"], shard["docs_sha256"])
        start = int(store.token_starts[index])
        offset = npy_data_offset(tokens_path, store.dtype.str, n)
        digest = hashlib.sha256()
        with open(tokens_path, "rb") as f:
            digest.update(f.read(offset))
            lo, cut = 0, 0
            while lo < n:
                hi = min(n, lo + piece_tokens)
                piece = np.empty(hi - lo, dtype=store.dtype)
                if f.readinto(memoryview(piece).cast("B")) != piece.nbytes:
                    raise CorruptStoreError(f"{tokens_path}: shorter than its header says; run `mmtok verify`")
                digest.update(piece)
                stop = int(np.searchsorted(ends, start + hi, side="right"))
                yield piece, np.asarray(ends[cut:stop], dtype=np.int64) - (start + lo)
                cut, lo = stop, hi
                done += piece.nbytes
                if progress is not None:
                    progress(done, total)
        if digest.hexdigest() != shard["tokens_sha256"]:
            raise CorruptStoreError(f"{tokens_path}: checksum mismatch (the file was changed or damaged); "
                                    "run `mmtok verify`")
        del ends


def documents(store: Store, batch_tokens: int = PIECE_TOKENS, progress=None):
    """Yield ``(tokens, lengths)``: runs of whole documents (about ``batch_tokens`` tokens; one longer
    document alone), ``lengths`` their lengths in tokens (eos included)."""
    carry: list[np.ndarray] = []  # the start of a document that continues into the next piece
    for piece, ends in pieces(store, batch_tokens, progress):
        if not ends.shape[0]:
            carry.append(piece)
            continue
        last = int(ends[-1])
        head = np.concatenate([*carry, piece[:last]]) if carry else piece[:last]
        carried = sum(part.shape[0] for part in carry)
        lengths = np.diff(ends, prepend=0)
        lengths[0] += carried
        yield head, lengths
        carry = [piece[last:]] if last < piece.shape[0] else []
    if any(part.shape[0] for part in carry):
        raise CorruptStoreError(f"{store.path}: the stream does not end with a document end; run `mmtok verify`")
