"""Headerless token files (nanoGPT, llm.c shard bodies, OLMo memmaps): checked reading and eos splitting."""

from __future__ import annotations

import os

import numpy as np

from ..base.errors import FormatError

BLOCK_TOKENS = 1 << 22
RAW_DTYPES = {"uint16": "<u2", "uint32": "<u4", "int32": "<i4"}


def raw_dtype(name) -> np.dtype:
    """``"uint16"``/``"uint32"``/``"int32"`` (or a numpy dtype of those) as a little-endian dtype."""
    key = np.dtype(name).name if not isinstance(name, str) else name
    if key not in RAW_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(RAW_DTYPES)}, not {name!r}")
    return np.dtype(RAW_DTYPES[key])


def token_blocks(path: str, dtype: np.dtype, offset: int = 0, count: int | None = None):
    """Yield the ids of ``path`` after ``offset`` bytes in blocks; a FormatError if not whole tokens."""
    size = os.path.getsize(path) - offset
    if size % dtype.itemsize:
        raise FormatError(f"{path}: {size:,} bytes of tokens is not a whole number of {dtype.itemsize}-byte "
                          f"{dtype.name} tokens (truncated file, or the wrong --dtype)")
    n = size // dtype.itemsize if count is None else count
    if not n:
        return
    data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n,))
    for lo in range(0, n, BLOCK_TOKENS):
        yield np.array(data[lo : lo + BLOCK_TOKENS])


def ends_after_eos(tokens: np.ndarray, eos: int) -> np.ndarray:
    """Run-relative document ends: just past every eos."""
    return np.flatnonzero(tokens == eos).astype(np.int64) + 1


def files_in(source: str, suffix: str, what: str) -> list[str]:
    """``source`` itself, or the ``*suffix`` files of the folder ``source`` in name order."""
    if os.path.isdir(source):
        found = sorted(os.path.join(source, n) for n in os.listdir(source) if n.endswith(suffix)
                       and not n.startswith("."))
        if not found:
            raise FormatError(f"{source}: a folder without {suffix} files ({what})")
        return found
    if not os.path.isfile(source):
        raise FormatError(f"{source}: not found ({what})")
    return [source]
