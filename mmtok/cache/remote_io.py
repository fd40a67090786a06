"""Export to and import from object storage (``s3://...``): through a local temporary file or folder.

An export is written locally (atomic, checked) and then uploaded as one
object, which appears whole when its upload ends. An import downloads the
cache file first, imports it locally with every check, and, for an ``s3://``
destination, uploads the rebuilt store with its manifest last.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ..base.constants import MANIFEST_FILE
from ..base.errors import StoreExistsError
from ..remote import RemoteFiles, filesystem, upload_folder
from ..store.store import Store

__all__ = ["export_to_remote", "import_remote"]


def export_to_remote(export, store, destination: str, **options) -> dict:
    """``export(store, local_file, **options)``, then upload the file to ``destination``."""
    folder = tempfile.mkdtemp(prefix=".tmp-mmtok-export-")
    try:
        local = os.path.join(folder, os.path.basename(destination.rstrip("/")) or "cache")
        summary = export(store, local, **options)
        fs, path = filesystem(destination)
        fs.put_file(local, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dict(summary, path=destination)


def import_remote(import_, source: str, destination: str, **options):
    """Download ``source`` if remote, ``import_`` it, and upload the store if ``destination`` is remote."""
    folder = tempfile.mkdtemp(prefix=".tmp-mmtok-import-")
    try:
        if "://" in source and not source.startswith("file://"):
            fs, path = filesystem(source)
            local_source = os.path.join(folder, os.path.basename(path) or "cache")
            fs.get_file(path, local_source)
        else:
            local_source = source
        if "://" not in destination or destination.startswith("file://"):
            result = import_(local_source, destination, **options)
            result.summary["source"] = source
            return result
        if RemoteFiles(destination).exists(MANIFEST_FILE):
            raise StoreExistsError(f"{destination}: already a store; import into a new path (or remove it first)")
        result = import_(local_source, os.path.join(folder, "store"), **options)
        upload_folder(os.path.join(folder, "store"), destination, last=(MANIFEST_FILE,))
        return type(result)(Store(destination), result[1], dict(result.summary, source=source, path=destination))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
