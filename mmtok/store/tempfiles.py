"""Temporary files and folders that say whether a live process owns them.

An import, merge or export writes under a ``.tmp-*`` name next to its
destination and renames it into place at the end. A killed run leaves that
temporary behind, so each one is created holding an exclusive ``flock`` for as
long as its process writes it: the lock dies with the process, and
:func:`remove_orphans` (run by the next import/merge/export into the same
place, and by ``mmtok stores --clean``) removes only temporaries whose lock it
can take, that is, whose owner is gone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile


class OwnedTemp:
    """A temporary file or folder at ``path``, locked by this process until :meth:`release`."""

    def __init__(self, path: str, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _own(make, parent: str, prefix: str) -> tuple[OwnedTemp, int | None]:
    while True:
        made = make(prefix=prefix, dir=parent)
        path, file_fd = (made, None) if isinstance(made, str) else (made[1], made[0])
        fd = os.open(path, os.O_RDONLY) if file_fd is None else os.dup(file_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            now = os.lstat(path)  # a cleaner may have removed it between its creation and our lock
            held = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                return OwnedTemp(path, fd), file_fd
        except (BlockingIOError, FileNotFoundError):
            pass
        os.close(fd)
        if file_fd is not None:
            os.close(file_fd)


def owned_temp_dir(parent: str, prefix: str) -> OwnedTemp:
    """A new folder ``parent/prefix*``, locked by this process."""
    return _own(tempfile.mkdtemp, parent, prefix)[0]


def owned_temp_file(parent: str, prefix: str) -> tuple[OwnedTemp, int]:
    """A new file ``parent/prefix*`` and a writable descriptor of it, locked by this process."""
    owned, fd = _own(tempfile.mkstemp, parent, prefix)
    return owned, fd


def remove_orphans(parent: str, prefix: str) -> list[str]:
    """Remove the entries of ``parent`` named ``prefix*`` that no live process owns; return their paths."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(parent, name)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                continue  # never ours
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                shutil.rmtree(path, ignore_errors=True)
            elif stat.S_ISREG(os.fstat(fd).st_mode):
                os.unlink(path)
            else:
                continue
            removed.append(path)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def orphan_locks(folder: str, suffix: str) -> list[str]:
    """Lock files ``X<suffix>`` of ``folder`` whose ``X`` does not exist."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [os.path.join(folder, n) for n in names
            if n.endswith(suffix) and not os.path.exists(os.path.join(folder, n[: -len(suffix)]))]


def remove_orphan_lock(lock_path: str, suffix: str) -> bool:
    """Remove a lock file that no process holds and whose ``X`` (the path without ``suffix``) does not exist."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.exists(lock_path[: -len(suffix)]):
            return False
        os.unlink(lock_path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
