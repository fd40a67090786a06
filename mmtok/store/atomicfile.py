"""Files of the portable cache written durably: renamed into place whole, or fsynced before a folder is."""

from __future__ import annotations

import os

from ..base.constants import TEMP_PREFIX
from ..base.errors import StoreError
from ..base.faults import fault_point
from .manifest import fsync_dir
from .tempfiles import owned_temp_file, remove_orphans


class AtomicFile:
    """A file written under a temporary name next to ``path`` and renamed over it on commit."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        folder, name = os.path.split(self.path)
        if os.path.isdir(self.path):
            raise StoreError(f"{path}: is a folder; give the cache file's name")
        try:
            os.makedirs(folder, exist_ok=True)
            remove_orphans(folder, f"{TEMP_PREFIX}{name}.")  # left by a killed export to the same file
            self._owned, fd = owned_temp_file(folder, f"{TEMP_PREFIX}{name}.")
        except OSError as exc:
            raise StoreError(f"{path}: cannot write there ({exc.strerror})") from None
        self.tmp = self._owned.path
        self.file = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        fault_point("export-written")
        self.file.close()
        os.chmod(self.tmp, 0o666 & ~current_umask())
        os.replace(self.tmp, self.path)
        fault_point("export-renamed")
        self._owned.release()
        fsync_dir(os.path.dirname(self.path))

    def abort(self) -> None:
        """Remove the temporary file; never raises (with a full disk, the close's final flush fails)."""
        try:
            self.file.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass
        self._owned.release()


def current_umask() -> int:
    """The process umask (read by setting it, then restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_synced(path: str, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` and fsync it (a store folder built elsewhere, renamed later)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
