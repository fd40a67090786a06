"""Import a Megatron indexed dataset (one prefix, a folder of prefixes, or an mmtok ``--link`` folder).

Everything the ``.idx`` declares is checked against the file sizes before
anything is read (magic, version, integer dtype code, counts that give exactly
the file's size, lengths that are not negative, pointers inside the ``.bin``,
document indices from 0 to the sequence count, never decreasing). Documents
are Megatron's (sequences between document indices); one whose last token is
not eos gets it appended (data built without ``--append-eod``).
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from ..base.errors import FormatError
from .megatron import DTYPE_CODES, HEADER, LINK_FILE, MAGIC, VERSION, prefix_of

_BLOCK = 1 << 20


class IndexFile:
    """A checked ``.idx``/``.bin`` pair: ``dtype``, ``lengths``, ``pointers``, ``doc_index`` (memory maps)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        idx, bin_ = prefix + ".idx", prefix + ".bin"
        for path in (idx, bin_):
            if not os.path.isfile(path):
                raise FormatError(f"{path}: not found (a Megatron dataset is PREFIX.bin + PREFIX.idx)")
        size = os.path.getsize(idx)
        if size < HEADER.size:
            raise FormatError(f"{idx}: {size} bytes is shorter than the {HEADER.size}-byte header (truncated file)")
        with open(idx, "rb") as f:
            magic, version, code, count, doc_count = HEADER.unpack(f.read(HEADER.size))
        if magic != MAGIC:
            raise FormatError(f"{idx}: wrong magic {magic!r}, not {MAGIC!r} (not a Megatron MMIDIDX index)")
        if version != VERSION:
            raise FormatError(f"{idx}: index version {version}, only version {VERSION} is known")
        if code not in DTYPE_CODES or DTYPE_CODES[code] in (np.float32, np.float64):
            raise FormatError(f"{idx}: dtype code {code} is not an integer token type (known: 1-5, 8)")
        expected = HEADER.size + count * 12 + doc_count * 8
        if expected != size:
            raise FormatError(f"{idx}: declares {count:,} sequences and {doc_count:,} document indices "
                              f"({expected:,} bytes) but is {size:,} bytes (truncated or damaged file)")
        if doc_count < 1:
            raise FormatError(f"{idx}: has no document indices (damaged file)")
        self.dtype = np.dtype(DTYPE_CODES[code]).newbyteorder("<")
        self.bin_size = os.path.getsize(bin_)
        if self.bin_size % self.dtype.itemsize:
            raise FormatError(f"{bin_}: {self.bin_size:,} bytes is not a whole number of "
                              f"{self.dtype.itemsize}-byte tokens (truncated file, or not this index's .bin)")
        self.count, self.bin_path, self.idx_path = count, bin_, idx
        at = HEADER.size
        self.lengths = np.memmap(idx, dtype="<i4", mode="r", offset=at, shape=(count,)) if count else np.empty(0, "<i4")
        at += count * 4
        self.pointers = np.memmap(idx, dtype="<i8", mode="r", offset=at, shape=(count,)) if count else np.empty(0, "<i8")
        at += count * 8
        self.doc_index = np.memmap(idx, dtype="<i8", mode="r", offset=at, shape=(doc_count,))
        first, last = int(self.doc_index[0]), int(self.doc_index[-1])
        if first != 0 or last != count:
            raise FormatError(f"{idx}: document indices run from {first} to {last}, not from 0 to the "
                              f"sequence count {count} (damaged file)")
        for lo in range(0, doc_count, _BLOCK):
            part = np.asarray(self.doc_index[max(lo - 1, 0) : lo + _BLOCK])
            if np.any(np.diff(part) < 0):
                raise FormatError(f"{idx}: document indices decrease near entry {lo:,} (damaged file)")

    def blocks(self):
        """Yield ``(tokens, ends, where)`` per block of sequences: ends of the documents completed in it."""
        data = np.memmap(self.bin_path, dtype=self.dtype, mode="r") if self.bin_size else np.empty(0, self.dtype)
        itemsize = self.dtype.itemsize
        for s0 in range(0, self.count, _BLOCK):
            s1 = min(self.count, s0 + _BLOCK)
            lengths = np.asarray(self.lengths[s0:s1], dtype=np.int64)
            pointers = np.asarray(self.pointers[s0:s1], dtype=np.int64)
            where = f"{self.idx_path}: sequences {s0:,}-{s1 - 1:,}"
            if lengths.min() < 0:
                bad = s0 + int(np.argmax(lengths < 0))
                raise FormatError(f"{self.idx_path}: sequence {bad:,} has length {int(self.lengths[bad])} "
                                  "(negative: an overflowed or damaged index)")
            if pointers.min() < 0 or pointers.max() > self.bin_size or np.any(pointers % itemsize):
                raise FormatError(f"{where}: a byte pointer is negative, unaligned or past the end of "
                                  f"{self.bin_path} ({self.bin_size:,} bytes)")
            stops = pointers + lengths * itemsize
            if stops.max() > self.bin_size:
                bad = s0 + int(np.argmax(stops > self.bin_size))
                raise FormatError(f"{self.idx_path}: sequence {bad:,} ends at byte {int(stops[bad - s0]):,}, past "
                                  f"the end of {self.bin_path} ({self.bin_size:,} bytes)")
            first = pointers // itemsize
            if lengths.shape[0] and np.all(first[1:] == first[:-1] + lengths[:-1]):  # contiguous: one slice
                tokens = np.asarray(data[int(first[0]) : int(first[-1] + lengths[-1])])
            else:
                tokens = np.concatenate([data[a : a + n] for a, n in zip(first.tolist(), lengths.tolist())])
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            lo = int(np.searchsorted(self.doc_index, s0, side="right"))
            hi = int(np.searchsorted(self.doc_index, s1, side="right"))
            ends = offsets[np.asarray(self.doc_index[lo:hi], dtype=np.int64) - s0]
            yield tokens, ends, where, s1 == self.count


def prefixes_of(source: str) -> tuple[list[str], list[bool]]:
    """The prefixes to import in order, and for each whether its last sequence continues in the next one."""
    source = os.fspath(source)
    if os.path.isdir(source):
        note = os.path.join(source, LINK_FILE)
        if os.path.isfile(note):
            try:
                with open(note, encoding="utf-8") as f:
                    info = json.load(f)
                names, continues = info["prefixes"], info["continues"]
                if not (isinstance(names, list) and isinstance(continues, list) and len(names) == len(continues)
                        and all(isinstance(n, str) and n.isdigit() for n in names)):
                    raise ValueError("bad lists")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise FormatError(f"{note}: not a valid mmtok link note ({exc})") from None
            return [os.path.join(source, n) for n in names], [bool(c) for c in continues]
        found = sorted(glob.glob(os.path.join(glob.escape(source), "*.idx")))
        if not found:
            raise FormatError(f"{source}: a folder without .idx files (give PREFIX of PREFIX.bin + PREFIX.idx)")
        return [prefix_of(p) for p in found], [False] * len(found)
    return [prefix_of(source)], [False]


def import_megatron(source, writer, progress=None) -> dict:
    """Read every prefix of ``source`` into ``writer`` (a :class:`StoreWriter`); return details."""
    prefixes, continues = prefixes_of(source)
    files = [IndexFile(p) for p in prefixes]  # every header checked before any token is read
    total = sum(f.bin_size for f in files) or 1
    done = sequences = 0
    for index, (file, goes_on) in enumerate(zip(files, continues)):
        joins = goes_on and index + 1 < len(files)
        for tokens, ends, where, last in file.blocks():
            if joins and last and ends.shape[0] and int(ends[-1]) == tokens.shape[0]:
                ends = ends[:-1]  # a --link shard's last sequence: the head of a document that goes on
            writer.write(tokens, ends, where)
            done += tokens.nbytes
            if progress is not None:
                progress(done, total)
        sequences += file.count
        if not joins:
            writer.close_document(file.idx_path)
    return {"prefixes": len(files), "sequences": sequences, "token_dtype": files[0].dtype.name if files else None}

