"""A sha256 computed on a helper thread, so that hashing a cache's stream overlaps reading and writing it.

``update`` hands a piece over (at most ``depth`` pieces wait, so memory stays
bounded); ``hexdigest`` waits for the pieces given so far. hashlib releases the
GIL while it hashes, so on two cores the stream's checksum costs the caller
almost nothing. The pieces must not change after they are given (bytes, or
views of buffers that are not reused).
"""

from __future__ import annotations

import hashlib
import queue
import threading


class BackgroundSha256:
    """sha256 of the pieces given to :meth:`update`, in order, hashed on a helper thread; :meth:`close` ends it."""

    def __init__(self, depth: int = 8):
        self._sha = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(depth)
        self._ended = threading.Event()
        # The thread holds the queue, not this object, so a reader dropped after an error is collected (__del__).
        self._thread = threading.Thread(target=_hash_pieces, args=(self._sha, self._queue, self._ended),
                                        name="mmtok-sha256", daemon=True)
        self._thread.start()

    def update(self, piece) -> None:
        if len(piece):
            self._queue.put(piece)

    def hexdigest(self) -> str:
        """The sha256 (hex) of every piece given so far."""
        self._queue.join()
        return self._sha.hexdigest()

    def close(self) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        self._queue.put(None)
        self._thread.join()

    def __del__(self):
        ended = getattr(self, "_ended", None)
        if ended is not None:
            ended.set()


def _hash_pieces(sha, pieces: queue.Queue, ended: threading.Event) -> None:
    while True:
        try:
            piece = pieces.get(timeout=0.2)
        except queue.Empty:
            if ended.is_set():
                return
            continue
        if piece is not None:
            sha.update(piece)
        pieces.task_done()
        if piece is None:
            return
