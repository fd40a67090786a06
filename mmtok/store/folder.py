"""The store folder of a build: created if needed, refused if it holds other things, locked while writing."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager

from ..base.errors import StoreError
from .writer import is_store_folder

__all__ = ["locked", "prepare_folder"]


def prepare_folder(path: str) -> bool:
    """Create the store folder if needed; return True if this call created it."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"{path}: exists and is not a folder; choose another output path")
    try:
        os.makedirs(path)
        return True
    except FileExistsError:
        if not is_store_folder(path):
            raise StoreError(f"{path}: folder is not empty and is not an mmtok store; choose another output path") from None
        return False
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the store folder ({exc.strerror})") from None


@contextmanager
def locked(path: str):
    """One build at a time per store: an exclusive lock on the store folder itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{path}: another build is writing this store; wait for it to finish") from None
        yield
    finally:
        os.close(fd)
