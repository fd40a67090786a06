"""Telling object-storage URLs from local paths, and reaching them through fsspec."""

from __future__ import annotations

import os

from ..base.errors import StoreError

__all__ = ["filesystem", "is_remote", "join_url"]


def is_remote(path) -> bool:
    """True for a URL with a scheme other than ``file://`` (``s3://bucket/corpus.mmtok``)."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


def join_url(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(part.strip("/") for part in parts)])


def filesystem(url: str, storage_options: dict | None = None):
    """``(fsspec filesystem, path without scheme)`` for ``url``.

    Credentials and endpoints come from the usual places of each backend (for
    S3: ``AWS_*`` environment variables, ``~/.aws``; ``AWS_ENDPOINT_URL`` or
    ``storage_options={"endpoint_url": ...}`` for S3-compatible stores).
    """
    try:
        import fsspec.core
    except ImportError:
        raise StoreError(f"{url}: reading object storage needs fsspec and its backend: "
                         "pip install 'mmtok[s3]' (or fsspec plus gcsfs/adlfs)") from None
    options = dict(storage_options or {})
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if url.startswith(("s3://", "s3a://")) and endpoint and "endpoint_url" not in options:
        options["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as exc:
        raise StoreError(f"{url}: cannot reach this storage ({exc}); for s3:// pip install 'mmtok[s3]'") from None
    return fs, path
