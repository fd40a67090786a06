"""The remote layer: stores on object storage (``s3://``, ``gs://``, ... through fsspec, imported lazily).

Owns telling a URL from a local path, the bounded, least-recently-used local
cache of downloaded store files (checksummed, safe across processes through
file locks), reading files of a remote store through it, and uploading a local
folder with its commit-point file last. May import :mod:`mmtok.base` only.
"""

from .cache import FileCache, default_cache_dir, file_lock
from .files import RemoteFiles, upload_folder
from .urls import filesystem, is_remote, join_url

__all__ = ["FileCache", "RemoteFiles", "default_cache_dir", "file_lock", "filesystem", "is_remote", "join_url", "upload_folder"]
