"""Opening a store's files safely: regular files inside the store folder, of bounded size.

A store may come from a stranger (an unpacked download, a shared folder), so its
readers never follow a symlink out of the store, never block on a FIFO or a
device, and never read more than a stated limit into memory (FORMAT.md,
"Files a reader refuses").
"""

from __future__ import annotations

import errno
import os
import stat

from ..base.errors import CorruptStoreError


def inside(store: str, path: str) -> bool:
    """True when ``path``, symlinks resolved, lies inside the folder ``store`` (also resolved)."""
    root = os.path.realpath(store)
    return os.path.realpath(path).startswith(root.rstrip(os.sep) + os.sep)


def open_store_file(store: str, path: str, *, limit: int | None = None):
    """Open ``path`` (a file of the store ``store``) for reading as a binary file object.

    Refuses, with a :class:`CorruptStoreError` naming the file, anything that is
    not a regular file inside the store, and (with ``limit``) a file larger than
    ``limit`` bytes. Raises FileNotFoundError when it is missing.
    """
    if not inside(store, path):
        raise CorruptStoreError(f"{path}: leads outside the store folder {store} (a symlink?); "
                                "a store's files must lie inside it: copy the data in, or rebuild the store")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore the flag.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CorruptStoreError(f"{path}: is a folder, not a file; the store is damaged (run `mmtok verify`)") from None
    except OSError as exc:
        raise CorruptStoreError(f"{path}: cannot be opened ({_reason(exc)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptStoreError(f"{path}: is {file_kind(info.st_mode)}, not a regular file; "
                                    "the store is damaged (run `mmtok verify`)")
        if limit is not None and info.st_size > limit:
            raise CorruptStoreError(f"{path}: is {info.st_size:,} bytes, more than the {limit:,} a store allows for it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a device or socket"


def read_store_file(store: str, path: str, *, limit: int) -> bytes:
    """The whole content of a store file of at most ``limit`` bytes (checked before and while reading)."""
    with open_store_file(store, path, limit=limit) as f:
        # read(n) allocates n bytes up front: ask for what fstat saw (plus one, to notice growth).
        data = f.read(os.fstat(f.fileno()).st_size + 1)
    if len(data) > limit:
        raise CorruptStoreError(f"{path}: grew past the {limit:,} bytes a store allows for it while being read")
    return data


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "its name is too long"
    return exc.strerror or str(exc)
