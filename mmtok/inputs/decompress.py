"""Decompressing file objects for inputs (gzip, zstd) and a byte-counting reader for streams.

Errors name the file (``display``) and say how to fix it; :mod:`mmtok.inputs.sources`
chooses among these when it opens an input.
"""

from __future__ import annotations

import gzip
import io
import zlib

from ..base.errors import InputError

BUFFER = 1 << 18


class GzipRaw(io.RawIOBase):
    """Decompressed gzip bytes (all members) with errors naming the file."""

    def __init__(self, file, display: str):
        self._gz = gzip.GzipFile(fileobj=file, mode="rb")
        self._display = display

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self._gz.readinto(b)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise InputError(f"corrupt or truncated gzip data ({e}); re-create or re-download "
                             "the file", path=self._display) from None


class ZstdRaw(io.RawIOBase):
    """Decompressed zstd bytes (all frames) with errors naming the file.

    zstandard's stream reader silently stops at a truncated frame, so frames
    are decoded here with decompressobj, which tells whether a frame ended.
    """

    _FEED = 1024  # compressed bytes per call: bounds the output of one call

    def __init__(self, file, display: str):
        import zstandard  # imported lazily: only needed when a .zst is read

        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor()
        self._file = file
        self._display = display
        self._obj = None  # decompressor of the current frame
        self._input = b""
        self._input_pos = 0
        self._output = b""
        self._output_pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._output_pos >= len(self._output):
            if not self._decode_more():
                return 0
        n = min(len(b), len(self._output) - self._output_pos)
        b[:n] = self._output[self._output_pos:self._output_pos + n]
        self._output_pos += n
        return n

    def _decode_more(self) -> bool:
        if self._input_pos >= len(self._input):
            self._input, self._input_pos = self._file.read(BUFFER), 0
            if not self._input:
                if self._obj is not None and not self._obj.eof:
                    raise InputError("truncated zstd data: the last frame is incomplete; "
                                     "re-create or re-download the file", path=self._display)
                return False
        if self._obj is None or self._obj.eof:
            self._obj = self._dctx.decompressobj()
        piece = self._input[self._input_pos:self._input_pos + self._FEED]
        self._input_pos += len(piece)
        try:
            self._output, self._output_pos = self._obj.decompress(piece), 0
        except self._zstd.ZstdError as e:
            raise InputError(f"corrupt zstd data ({e}); re-create or re-download the file",
                             path=self._display) from None
        if self._obj.eof and self._obj.unused_data:
            # the next frame began inside this piece: feed its start again
            self._input = self._obj.unused_data + self._input[self._input_pos:]
            self._input_pos = 0
        return True


class CountingRaw(io.FileIO):
    """A stream's file descriptor, counting the bytes read (a pipe has no position to ask)."""

    count = 0

    def readinto(self, b) -> int | None:
        n = super().readinto(b)
        self.count += n or 0
        return n
