"""Decompress ahead on a helper thread, so that an import's checks and writes overlap decompression.

:class:`ReadAhead` wraps a reader whose ``read(n)`` returns at most ``n``
bytes (the bounded gzip and zstd readers of :mod:`mmtok.cache.compression`):
a helper thread calls it for pieces of ``piece`` bytes and keeps at most
``depth`` of them waiting, so memory stays bounded by ``depth x piece`` on any
input. zlib, zlib-ng and zstd release the GIL while they inflate, so on two
cores decompression runs beside the caller's unpacking, hashing and writing.
An error of the reader (a truncated or corrupt stream) is raised in the caller
at the point of the stream where it happened, never earlier.
"""

from __future__ import annotations

import queue
import threading

_END = object()


class ReadAhead:
    """``read(n)``: at most ``n`` bytes of ``reader``'s stream (b"" at its end), read ahead on a thread."""

    def __init__(self, reader, piece: int, depth: int = 4):
        self._reader, self._piece = reader, piece
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, name="mmtok-readahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._reader.read(self._piece)
                if not data:
                    break
                if not self._put(data):
                    return
        except BaseException as exc:  # handed to the caller, raised where the stream broke
            self._put(exc)
            return
        self._put(_END)

    def read(self, n: int) -> bytes:
        if not self._current:
            if self._done:
                return b""
            item = self._queue.get()
            if item is _END:
                self._done = True
                return b""
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._current = memoryview(item)
            if len(self._current) <= n:  # the whole piece: no copy
                self._current = memoryview(b"")
                return item
        piece = bytes(self._current[:n])
        self._current = self._current[n:]
        return piece

    def close(self) -> None:
        """Stop the helper thread (waits for the piece it is decompressing)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.05)
