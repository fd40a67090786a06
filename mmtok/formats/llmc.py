"""llm.c / modded-nanogpt token shards: a 256-int32 header (magic 20240520, version 1, token count), uint16 ids.

Their data scripts (llm.c ``dev/data/fineweb.py``) put the eos *before* every
document, so a shard stream reads ``eos d1 eos d2 ...``: the store's stream
(``d1 eos d2 eos ...``) with its last eos moved to the front. Export writes
that, cut into shards of ``shard_tokens`` (default 10**8, as fineweb.py) named
``train_000000.bin``, ...; import undoes it (documents start at each eos).
"""

from __future__ import annotations

import os

import numpy as np

from ..base.errors import FormatError
from .output import TempDir, refuse_existing
from .rawtokens import files_in, token_blocks
from .storeread import open_store, pieces

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
DEFAULT_SHARD_TOKENS = 10**8


def shard_header(count: int) -> bytes:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, count)
    return header.tobytes()


def export_llmc(store, output, *, shard_tokens: int = DEFAULT_SHARD_TOKENS, force: bool = False,
                progress=None) -> dict:
    store = open_store(store)
    if store.dtype != np.dtype("<u2"):
        raise FormatError(f"{store.path}: llm.c shards hold uint16 ids; this store's vocabulary "
                          f"({store.vocab_size:,}) needs uint32")
    if type(shard_tokens) is not int or not 1 <= shard_tokens < 1 << 31:
        raise ValueError("shard_tokens must be a positive integer below 2**31 (the header's int32 count)")
    output = os.fspath(output)
    refuse_existing([output], force)
    out = TempDir(output, force=force)
    files, f, left, index = [], None, 0, 0
    try:
        remaining = store.num_tokens

        def shifted():
            held = np.array([store.eos_id], dtype="<u2")  # eos before the first document
            for tokens, _ in pieces(store, progress=progress):
                if tokens.shape[0]:
                    yield np.concatenate([held, tokens[:-1]])
                    held = tokens[-1:]

        for tokens in shifted():
            while tokens.shape[0]:
                if not left:
                    if f is not None:
                        _close(f)
                    left = min(shard_tokens, remaining)
                    name = f"train_{index:06d}.bin"
                    f = open(out.file(name), "wb")
                    f.write(shard_header(left))
                    files.append(name)
                    index += 1
                part, tokens = tokens[:left], tokens[left:]
                f.write(part.tobytes())
                left -= part.shape[0]
                remaining -= part.shape[0]
        if f is None:  # an empty store: one empty shard, so that the folder still reads as llm.c data
            f = open(out.file("train_000000.bin"), "wb")
            f.write(shard_header(0))
            files.append("train_000000.bin")
        _close(f)
        out.commit()
    except BaseException:
        if f is not None:
            f.close()
        out.abort()
        raise
    return {"path": out.path, "files": [os.path.join(out.path, n) for n in files]}


def _close(f) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def read_header(path: str) -> int:
    """The token count of an llm.c shard after checking its header against its size."""
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise FormatError(f"{path}: {size} bytes is shorter than llm.c's {HEADER_BYTES}-byte header (truncated)")
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
    if int(header[0]) != MAGIC:
        raise FormatError(f"{path}: wrong magic {int(header[0])}, not {MAGIC} (not an llm.c token shard)")
    if int(header[1]) != VERSION:
        raise FormatError(f"{path}: version {int(header[1])}, only version {VERSION} (uint16 tokens) is known")
    count = int(header[2])
    if count < 0 or HEADER_BYTES + 2 * count != size:
        raise FormatError(f"{path}: header says {count:,} tokens, the file holds {(size - HEADER_BYTES) / 2:,} "
                          "(truncated or damaged file)")
    return count


def import_llmc(source, writer, *, progress=None) -> dict:
    paths = files_in(os.fspath(source), ".bin", "llm.c shards are *.bin files with a 1024-byte header")
    counts = [read_header(p) for p in paths]  # every header checked before any token is read
    eos = writer.tok.eos_id
    total, done, first = sum(counts) * 2 or 1, 0, True
    for path, count in zip(paths, counts):
        for tokens in token_blocks(path, np.dtype("<u2"), HEADER_BYTES, count):
            if first:
                first = False
                if tokens.shape[0] and int(tokens[0]) == eos:
                    tokens = tokens[1:]  # the eos that opens the first document
            # eos opens a document: it ends the one before it. In the store, eos closes a document.
            writer.write(tokens, np.flatnonzero(tokens == eos).astype(np.int64) + 1, f"{path}")
            done += tokens.nbytes
            if progress is not None:
                progress(done, total)
    if first:
        return {"shards_read": len(paths)}
    writer.write(np.array([eos], dtype=writer.dtype), np.array([1], dtype=np.int64), paths[-1])
    return {"shards_read": len(paths)}
