"""Streaming writer and strict reader of one-dimensional ``.npy`` files.

Shards are written as a stream (their length is unknown until they close), so
the header is padded to a fixed size and rewritten in place at the end. Readers
check the header strictly against what the manifest promised before mapping.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from tokenize import TokenError

import numpy as np

from ..base.constants import NPY_HEADER_BYTES
from ..base.errors import CorruptStoreError
from .safefile import open_store_file

_MAGIC = b"\x93NUMPY\x01\x00"


def npy_header(dtype: str, length: int) -> bytes:
    """The fixed-size version 1.0 ``.npy`` header of a 1-D little-endian array."""
    body = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (dtype, length)
    room = NPY_HEADER_BYTES - len(_MAGIC) - 2 - 1  # 2: header length field, 1: newline
    if len(body) > room:
        raise ValueError(f"array length {length} does not fit a {NPY_HEADER_BYTES}-byte header")
    body = body.ljust(room) + "\n"
    return _MAGIC + (len(body)).to_bytes(2, "little") + body.encode("latin1")


class NpyStreamWriter:
    """Append 1-D arrays of one dtype to ``path``; ``close()`` fixes the header.

    The checksum covers the whole file, header included, so it is computed at
    :meth:`close` from the (page-cached) file once the header is final.
    """

    def __init__(self, path: str, dtype: str):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.length = 0
        self._file = open(path, "wb")
        self._file.write(npy_header(self.dtype.str, 0))

    def write(self, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array, dtype=self.dtype)
        view = memoryview(data).cast("B")
        self._file.write(view)
        self.length += data.shape[0]

    def sync(self) -> None:
        """Make everything written so far durable (a build journal is about to name this length)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    @classmethod
    def reopen(cls, path: str, dtype: str, length: int) -> NpyStreamWriter:
        """Continue a file a killed build had synced at ``length`` items: cut what came after, append from there.

        Raises OSError (missing) or ValueError (shorter than ``length``): the caller then starts afresh.
        """
        self = cls.__new__(cls)
        self.path, self.dtype, self.length = path, np.dtype(dtype), length
        end = NPY_HEADER_BYTES + length * self.dtype.itemsize
        if os.path.getsize(path) < end:
            raise ValueError(f"{path} is shorter than the {length} items the journal names")
        self._file = open(path, "r+b")
        self._file.truncate(end)
        self._file.seek(end)
        return self

    def finish(self) -> None:
        """Finish the file durably: its final header, flushed and fsynced."""
        self.seal()
        self.sync_and_close()

    def seal(self) -> int:
        """Write the final header and flush: the file's bytes are final (not yet durable).

        Returns a new read-only descriptor of the file, for reading it
        (hashing) while :meth:`sync_and_close` waits for the disk; the caller
        closes it.
        """
        header = npy_header(self.dtype.str, self.length)
        self._file.seek(0)
        self._file.write(header)
        self._file.flush()
        return os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def sync_and_close(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> str:
        """Finish the file durably and return its sha256 (of all its bytes)."""
        self.finish()
        return file_sha256(self.path)

    def abort(self) -> None:
        """Drop the file; never raises (a full disk can make the final flush of ``close`` fail)."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass


def file_sha256(path: str, *, block: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def own_file_sha256(path: str, *, block: int = 1 << 24) -> str:
    """:func:`file_sha256` of a file this process just wrote and nothing else changes (a closed shard).

    It hashes the file through memory maps of ``block`` bytes at a time,
    straight from the page cache: less CPU than reading it into buffers
    first, and no more resident memory than one block.
    """
    with open(path, "rb") as f:
        return fd_sha256(f.fileno(), block=block)


def fd_sha256(fd: int, *, block: int = 1 << 24) -> str:
    """:func:`own_file_sha256` of the open file ``fd`` (all its bytes, whatever its position)."""
    block -= block % mmap.ALLOCATIONGRANULARITY  # map offsets must be multiples of it
    digest = hashlib.sha256()
    size = os.fstat(fd).st_size
    for start in range(0, size, block):
        with mmap.mmap(fd, min(block, size - start), offset=start, access=mmap.ACCESS_READ) as part:
            digest.update(part)  # releases the GIL
    return digest.hexdigest()


def read_npy_header(f) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` header at ``f``'s position; ValueError if it is not one."""
    version = np.lib.format.read_magic(f)
    try:
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    except (SyntaxError, TypeError, OverflowError, TokenError) as exc:  # numpy's literal parser, on damaged bytes
        raise ValueError(" ".join(f"{type(exc).__name__}: {exc}".split())) from None
    raise ValueError(f"unsupported .npy version {version}")


def open_npy(path: str, *, dtype: str, length: int, store: str | None = None) -> np.ndarray:
    """Map a 1-D ``.npy`` of the store ``store`` read-only after checking its header is what we expect.

    The file must be a regular file inside ``store`` (default: its own folder; :func:`open_store_file`).
    """
    try:
        with open_store_file(store or os.path.dirname(os.path.abspath(path)), path) as f:
            shape, fortran, found = read_npy_header(f)
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
            if found.str != np.dtype(dtype).str or fortran or shape != (length,):
                raise CorruptStoreError(
                    f"{path}: header says dtype {found.str} shape {shape}, manifest says {dtype} ({length},)"
                )
            if size != offset + length * found.itemsize:
                raise CorruptStoreError(f"{path}: file is {size} bytes, expected {offset + length * found.itemsize}")
            if length == 0:
                return np.empty(0, dtype=found)
            # A plain ndarray over the map: numpy's memmap subclass adds overhead to every slice.
            return np.memmap(f, dtype=found, mode="r", offset=offset, shape=(length,)).view(np.ndarray)
    except FileNotFoundError:
        raise CorruptStoreError(f"{path}: missing; the store is incomplete (run `mmtok verify`)") from None
    except (ValueError, SyntaxError) as exc:
        if isinstance(exc, CorruptStoreError):
            raise
        raise CorruptStoreError(f"{path}: not a valid .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None

