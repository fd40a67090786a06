"""Megatron-Core / NeMo / GPT-NeoX indexed datasets (``PREFIX.bin`` + ``PREFIX.idx``): export, link, import.

Layout (FORMATS.md, "megatron"): the ``.idx`` is ``MMIDIDX\\x00\\x00``, version
``<Q`` 1, dtype code ``<B``, sequence count ``<Q``, document-index count ``<Q``,
then int32 sequence lengths, int64 byte pointers into the ``.bin``, int64
document indices. The ``.bin`` is the tokens, headerless. mmtok writes one
sequence per document, eos kept (as ``--append-eod``). ``link=True`` writes
only ``.idx`` files whose pointers skip each shard's ``.npy`` header, and
hard-links (or symlinks) the shard's tokens file as the ``.bin``.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from ..base.errors import FormatError
from ..store.store import shard_paths
from .output import TempDir, TempFile, refuse_existing, synced_write
from .storeread import npy_data_offset, open_store, pieces

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequences, document indices
DTYPE_CODES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32,
               8: np.uint16}
LINK_FILE = "mmtok-link.json"  # in a --link folder: prefixes in order, and which continue a document
_BLOCK = 1 << 20  # sequences per block when writing or reading an index
_INT32_MAX = (1 << 31) - 1


def prefix_of(path: str) -> str:
    """``x``, ``x.bin`` or ``x.idx`` -> ``x``."""
    path = os.fspath(path)
    return path[:-4] if path.endswith((".bin", ".idx")) else path


def megatron_dtype(store) -> tuple[int, np.dtype]:
    """(code, dtype) a store exports as: uint16 -> 8; uint32 -> int32 (4) when every id can fit."""
    if store.dtype == np.dtype("<u2"):
        return 8, np.dtype("<u2")
    if store.vocab_size - 1 > _INT32_MAX:
        raise FormatError(f"{store.path}: ids up to {store.vocab_size - 1:,} do not fit Megatron's int32 tokens")
    return 4, np.dtype("<i4")


def _write_index(out, code: int, bounds_blocks, count: int, itemsize: int, offset: int, start: int, where: str):
    """Write an .idx for ``count`` sequences given as blocks of boundary offsets (stream positions)."""
    out.write(HEADER.pack(MAGIC, VERSION, code, count, count + 1))
    for kind in ("lengths", "pointers"):
        for bounds in bounds_blocks():
            lengths = np.diff(bounds)
            if kind == "lengths":
                if lengths.shape[0] and int(lengths.max()) > _INT32_MAX:
                    raise FormatError(f"{where}: a document of {int(lengths.max()):,} tokens is longer than "
                                      "Megatron's int32 sequence lengths allow")
                out.write(lengths.astype("<i4").tobytes())
            else:
                out.write(((bounds[:-1] - start) * itemsize + offset).astype("<i8").tobytes())
    for lo in range(0, count + 1, _BLOCK):
        out.write(np.arange(lo, min(count + 1, lo + _BLOCK), dtype="<i8").tobytes())


def export_megatron(store, output, *, link: bool = False, force: bool = False, progress=None) -> dict:
    """Write ``store`` as ``OUTPUT.bin`` + ``OUTPUT.idx`` (one sequence per document), or with ``link`` a
    folder OUTPUT of one prefix per shard whose ``.bin`` is the shard's own tokens file."""
    store = open_store(store)
    code, dtype = megatron_dtype(store)
    if link:
        return _export_linked(store, os.fspath(output), code, force, progress)
    prefix = prefix_of(output)
    refuse_existing([prefix + ".bin", prefix + ".idx"], force)
    bin_file, idx_file = TempFile(prefix + ".bin"), TempFile(prefix + ".idx")
    try:
        for tokens, _ in pieces(store, progress=progress):
            if code == 4 and tokens.shape[0] and int(tokens.max()) > _INT32_MAX:
                raise FormatError(f"{store.path}: token id {int(tokens.max())} does not fit Megatron's int32")
            bin_file.write(memoryview(np.ascontiguousarray(tokens.astype(dtype, copy=False))).cast("B"))

        def blocks():
            previous = 0
            for i in range(len(store.shards)):
                ends = store.shard_docs(i)
                for lo in range(0, ends.shape[0], _BLOCK):
                    part = np.asarray(ends[lo : lo + _BLOCK], dtype=np.int64)
                    yield np.concatenate([[previous], part])
                    previous = int(part[-1])

        _write_index(idx_file, code, blocks, store.num_documents, dtype.itemsize, 0, 0, store.path)
        bin_file.finish()
        idx_file.finish()
        bin_file.commit()  # the .idx is what readers open first: it is renamed last
        idx_file.commit()
    except BaseException:
        bin_file.abort()
        idx_file.abort()
        raise
    return {"path": prefix, "files": [prefix + ".bin", prefix + ".idx"], "sequences": store.num_documents,
            "dtype_code": code, "linked": False}


def _export_linked(store, folder: str, code: int, force: bool, progress) -> dict:
    refuse_existing([folder], force)
    out = TempDir(folder, force=force)
    itemsize = store.dtype.itemsize
    prefixes, continued, how = [], [], set()
    total = store.num_tokens * itemsize
    try:
        for i, shard in enumerate(store.shards):
            if not shard["tokens"]:
                continue
            tokens_path, _ = shard_paths(store.path, shard["name"])
            offset = npy_data_offset(tokens_path, store.dtype.str, shard["tokens"])
            start, stop = int(store.token_starts[i]), int(store.token_starts[i + 1])
            ends = np.asarray(store.shard_docs(i), dtype=np.int64)
            tail = [stop] if not ends.shape[0] or int(ends[-1]) < stop else []  # ends strictly increase
            bounds = np.concatenate([[start], ends, tail]).astype(np.int64)
            name = shard["name"]
            how.add(_link(os.path.abspath(tokens_path), out.file(name + ".bin")))
            with open(out.file(name + ".idx"), "wb") as f:
                _write_index(f, code, lambda b=bounds: [b], bounds.shape[0] - 1, itemsize, offset, start, store.path)
                f.flush()
                os.fsync(f.fileno())
            prefixes.append(name)
            continued.append(bool(not ends.shape[0] or int(ends[-1]) < stop))  # the last sequence goes on
            if progress is not None:
                progress(stop * itemsize, total)
        note = {"format": "mmtok-megatron-link", "version": 1, "prefixes": prefixes,
                "continues": continued, "dtype_code": code}
        synced_write(out.file(LINK_FILE), (json.dumps(note, indent=1) + "\n").encode())
        out.commit()
    except BaseException:
        out.abort()
        raise
    return {"path": os.path.abspath(folder), "files": [os.path.join(folder, p + ".idx") for p in prefixes],
            "sequences": None, "dtype_code": code, "linked": "+".join(sorted(how)) or "none"}


def _link(target: str, name: str) -> str:
    try:
        os.link(target, name)
        return "hard link"
    except OSError:
        os.symlink(target, name)
        return "symlink"
