"""Writing an export atomically: temporary names next to the target, renamed into place last.

A one-file output is a :class:`TempFile`; a multi-file output is built in a
:class:`TempDir` renamed into place whole, so a reader never sees a partial
export. An existing target is refused unless ``force``; with ``force`` it is
replaced only once the new output is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..base.constants import TEMP_PREFIX
from ..base.errors import StoreError, StoreExistsError
from ..store.atomicfile import current_umask
from ..store.manifest import fsync_dir


def refuse_existing(paths, force: bool) -> None:
    """A StoreExistsError naming the first of ``paths`` that exists, unless ``force``."""
    if force:
        return
    for path in paths:
        if os.path.lexists(path) and not _empty_folder(path):
            raise StoreExistsError(f"{path}: already exists; choose another output or pass --force to replace it")


def _empty_folder(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


class TempFile:
    """A file written under a temporary name beside ``path``; ``commit()`` fsyncs and renames it over ``path``."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        folder, name = os.path.split(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}.", dir=folder)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write there ({exc.strerror})") from None
        self.file = os.fdopen(fd, "wb")

    def write(self, data) -> None:
        self.file.write(data)

    def finish(self) -> None:
        """Make the bytes durable under the temporary name (call before :meth:`commit`)."""
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.chmod(self.tmp, 0o666 & ~current_umask())

    def commit(self) -> None:
        self.finish()
        os.replace(self.tmp, self.path)
        fsync_dir(os.path.dirname(self.path))

    def abort(self) -> None:
        self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


class TempDir:
    """A folder built under a temporary name beside ``path`` and renamed into place by ``commit()``."""

    def __init__(self, path: str, *, force: bool = False):
        self.path = os.path.abspath(path)
        self.force = force
        parent, name = os.path.split(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
            self.tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}.", dir=parent)
            os.chmod(self.tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
        except OSError as exc:
            raise StoreError(f"{path}: cannot write there ({exc.strerror})") from None

    def file(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def commit(self) -> None:
        fsync_dir(self.tmp)
        parent = os.path.dirname(self.path)
        old = None
        if os.path.lexists(self.path) and not _empty_folder(self.path):  # rename replaces an empty folder
            if not self.force:
                raise StoreExistsError(f"{self.path}: appeared while exporting; choose another output")
            old = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old-", dir=parent)
            os.rename(self.path, os.path.join(old, "x"))
        os.rename(self.tmp, self.path)
        fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def synced_write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
