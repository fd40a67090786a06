"""Readers of other stacks' token formats written for the tests from the published layouts alone.

They share no code with mmtok.formats, so a test that compares what they read
with the store checks mmtok's writers against the layouts, not against
themselves.
"""

from __future__ import annotations

import gzip
import json
import os
import struct

import numpy as np

MEGATRON_CODES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}


def megatron_sequences(prefix: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Every sequence of PREFIX.bin/.idx (as Megatron's IndexedDataset returns them) and the document indices."""
    with open(prefix + ".idx", "rb") as f:
        raw = f.read()
    magic, version, code, count, doc_count = struct.unpack_from("<9sQBQQ", raw, 0)
    assert magic == b"MMIDIDX\x00\x00" and version == 1
    at = 9 + 8 + 1 + 8 + 8
    lengths = np.frombuffer(raw, "<i4", count, at)
    pointers = np.frombuffer(raw, "<i8", count, at + 4 * count)
    doc_index = np.frombuffer(raw, "<i8", doc_count, at + 12 * count)
    assert at + 12 * count + 8 * doc_count == len(raw)
    dtype = np.dtype(MEGATRON_CODES[code])
    data = np.fromfile(prefix + ".bin", dtype=np.uint8)
    seqs = [data[p : p + n * dtype.itemsize].view(dtype) for p, n in zip(pointers.tolist(), lengths.tolist())]
    return seqs, doc_index


def nanogpt_tokens(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint16)


def llmc_tokens(folder) -> tuple[np.ndarray, list[int]]:
    """The concatenated tokens of every llm.c shard in the folder (name order) and each shard's count."""
    parts, counts = [], []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            header = np.frombuffer(f.read(256 * 4), dtype="<i4")
            assert header[0] == 20240520 and header[1] == 1
            tokens = np.frombuffer(f.read(), dtype="<u2")
        assert tokens.shape[0] == header[2]
        parts.append(tokens)
        counts.append(int(header[2]))
    return (np.concatenate(parts) if parts else np.empty(0, np.uint16)), counts


def olmo_documents(folder, dtype) -> list[np.ndarray]:
    """Documents of a Dolma-style folder: each .npy is headerless ids, its .csv.gz has start,end,... rows."""
    docs = []
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".npy")):
        tokens = np.fromfile(os.path.join(folder, name), dtype=dtype)
        with gzip.open(os.path.join(folder, name[:-4] + ".csv.gz"), "rt") as f:
            for line in f:
                start, end = (int(x) for x in line.split(",")[:2])
                docs.append(tokens[start:end])
    return docs


def litdata_items(folder) -> tuple[list[np.ndarray], list[dict], dict]:
    """Items of every chunk of a litdata optimized folder, the index's chunk entries, and its config."""
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    fmt = index["config"]["data_format"][0]
    dtype = {"no_header_numpy:5": np.uint16, "no_header_numpy:6": np.uint32}[fmt]
    items = []
    for chunk in index["chunks"]:
        raw = open(os.path.join(folder, chunk["filename"]), "rb").read()
        n = struct.unpack_from("<I", raw, 0)[0]
        offsets = np.frombuffer(raw, "<u4", n + 1, 4)
        assert n == chunk["chunk_size"] and offsets[-1] == len(raw) == chunk["chunk_bytes"]
        chunk_items = [np.frombuffer(raw[a:b], dtype=dtype) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
        assert sum(i.shape[0] for i in chunk_items) == chunk["dim"]
        items.extend(chunk_items)
    return items, index["chunks"], index["config"]


def litdata_windows(folder, block_size: int) -> list[np.ndarray]:
    """What TokensLoader(block_size) serves: per chunk, dim // block_size windows of the chunk's flat tokens."""
    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    dtype = {"no_header_numpy:5": np.uint16, "no_header_numpy:6": np.uint32}[index["config"]["data_format"][0]]
    windows = []
    for chunk in index["chunks"]:
        header = (1 + chunk["chunk_size"] + 1) * 4
        flat = np.fromfile(os.path.join(folder, chunk["filename"]), dtype=np.uint8)[header:].view(dtype)
        windows.extend(flat[i * block_size : (i + 1) * block_size] for i in range(chunk["dim"] // block_size))
    return windows
