"""Write, hash and fsync the files an import restores on helper threads, in the order they were given.

Import restores a store from a stream; its main thread unpacks and checks
records. :class:`FileWriter` takes the writing off it: a writer thread writes
each payload and updates the file's sha256 (both release the GIL), and a sync
thread fsyncs every closed file while the next one is being restored, so the
disk's writeback overlaps decompression and checking instead of following it.
At most ``depth`` payloads wait (each at most ``CACHE_MAX_CHUNK_BYTES``), so
memory stays bounded. :meth:`FileWriter.close_file` returns the file's sha256
once its bytes are written (not yet durable); :meth:`FileWriter.finish`
returns once every file is fsynced. An OSError of either thread (a full disk)
is raised in the caller at its next call.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading


class FileWriter:
    """Background writes (with sha256) and fsyncs of new files; ``finish()`` or ``abort()`` ends it."""

    def __init__(self, depth: int = 2):
        self._writes: queue.Queue = queue.Queue(depth)
        self._syncs: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._files: list[_File] = []
        self._writer = threading.Thread(target=self._write_loop, name="mmtok-import-write", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name="mmtok-import-sync", daemon=True)
        self._writer.start()
        self._syncer.start()

    # ------------------------------------------------------------------ caller side

    def open_file(self, path: str) -> _File:
        """A new file at ``path`` (created now, so a bad path fails here)."""
        self._raise()
        handle = _File(open(path, "wb"))
        self._files.append(handle)
        return handle

    def write(self, handle: _File, data) -> None:
        self._raise()
        self._writes.put((handle, data))

    def close_file(self, handle: _File) -> str:
        """Wait until ``handle``'s bytes are written; return their sha256 (hex). Its fsync follows in the background."""
        self._raise()
        self._writes.put((handle, None))
        handle.written.wait()
        self._raise()
        return handle.sha.hexdigest()

    def finish(self) -> None:
        """Wait until every file given is written and fsynced; raise the first error of the threads."""
        self._stop()
        self._raise()
        self._files.clear()

    def abort(self) -> None:
        """Stop the threads after an error of the caller and close every file (the caller deletes them)."""
        self._stop()
        for handle in self._files:
            handle.file.close()

    # ------------------------------------------------------------------ helper threads

    def _stop(self) -> None:
        if self._writer.is_alive():
            self._writes.put(None)
            self._writer.join()
        if self._syncer.is_alive():
            self._syncs.put(None)
            self._syncer.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            if item is None:
                return
            handle, data = item
            try:
                if self._error is None:
                    if data is None:
                        handle.file.flush()
                    else:
                        handle.file.write(data)
                        handle.sha.update(data)
            except BaseException as exc:
                self._error = exc
            if data is None:
                if self._error is None:
                    self._syncs.put(handle)
                else:
                    handle.file.close()
                handle.written.set()

    def _sync_loop(self) -> None:
        while True:
            handle = self._syncs.get()
            if handle is None:
                return
            try:
                if self._error is None:
                    os.fsync(handle.file.fileno())
            except BaseException as exc:
                self._error = exc
            finally:
                handle.file.close()


class _File:
    __slots__ = ("file", "sha", "written")

    def __init__(self, file):
        self.file = file
        self.sha = hashlib.sha256()
        self.written = threading.Event()
