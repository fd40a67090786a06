"""Room reserved in the remote-store cache by downloads in flight, one locked file per download.

A reservation is ``<folder>/<token>.<size>``; its owner holds an exclusive
``flock`` on it for as long as the download runs. The kernel drops the lock
when the owner dies however it dies, so a reservation whose lock can be taken
belongs to a killed process: :meth:`Reservations.total` deletes it and that
download's partial file (``<incoming>/<token>``). Every method is called with
the cache's folder-wide lock held.
"""

from __future__ import annotations

import fcntl
import os

__all__ = ["Reservations"]


class Reservations:
    def __init__(self, folder: str, incoming: str):
        self.folder = folder
        self.incoming = incoming
        self._held: dict[str, int] = {}  # token -> fd of this process's reservations
        os.makedirs(folder, exist_ok=True)

    def add(self, token: str, size: int) -> None:
        fd = os.open(os.path.join(self.folder, f"{token}.{size}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._held[token] = fd

    def release(self, token: str) -> None:
        fd = self._held.pop(token, None)
        for name in os.listdir(self.folder):
            if name.split(".", 1)[0] == token:
                _unlink(os.path.join(self.folder, name))
        if fd is not None:
            os.close(fd)

    def total(self) -> int:
        """Bytes reserved by downloads in flight; the reservations of dead processes are deleted first."""
        total = 0
        for name in os.listdir(self.folder):
            token, _, size = name.partition(".")
            if not size.isdigit():
                continue  # not a reservation
            if token in self._held or self._alive(os.path.join(self.folder, name)):
                total += int(size)
            else:
                _unlink(os.path.join(self.incoming, token))
                _unlink(os.path.join(self.folder, name))
        return total

    @staticmethod
    def _alive(path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
