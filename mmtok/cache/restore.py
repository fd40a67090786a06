"""Restore a store from an mmtok cache, byte for byte, checking every record as it streams by.

:func:`restore_store` reads the record stream (:class:`mmtok.cache.container.CacheReader`)
into a temporary folder, applying FORMAT.md's import rules: the header, the
embedded manifest and the shard records must agree, every id is below the
vocabulary size, document ends are increasing and end with eos, every file's
sha256 is the manifest's, and the trailer's checksum is the stream's.
:mod:`mmtok.cache.importer` decides where the folder goes.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..base.constants import (
    CACHE_MAX_MANIFEST_BYTES,
    CACHE_MAX_TOKENIZER_BYTES,
    DOCS_DTYPE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
)
from ..base.errors import CacheError, StoreError, TokenizerMismatchError
from ..base.faults import fault_point
from ..base.jsonlimits import depth_message, json_too_deep
from ..store.atomicfile import write_synced
from ..store.manifest import check_manifest, encode_json
from ..store.store import shard_paths
from .checks import (
    check_disk_space,
    check_header,
    check_manifest_shape,
    check_npy_header,
    int_field,
    require,
)
from .container import CacheReader
from .filewriter import FileWriter


def restore_store(reader: CacheReader, tmp: str, tokenizer, progress) -> tuple[dict, dict]:
    """Write the store an mmtok cache holds into the empty folder ``tmp``, checking everything; return (view, details).

    The files are written, hashed and fsynced on helper threads (:class:`FileWriter`) while this thread
    unpacks and checks the next records; every file is durable before the manifest is written.
    """
    files = FileWriter()
    try:
        return _restore(reader, tmp, tokenizer, progress, files)
    except BaseException:
        files.abort()
        raise


def _restore(reader: CacheReader, tmp: str, tokenizer, progress, files: FileWriter) -> tuple[dict, dict]:
    name = reader.name
    header = check_header(reader.record(), name)
    dtype = np.dtype(header["dtype"])
    itemsize = dtype.itemsize
    check_disk_space(tmp, header["num_tokens"] * itemsize + header["num_documents"] * 8, name)
    file_size = os.path.getsize(name)

    # manifest.json: kept in memory (it is small next to the store), checked like a store's own.
    parts: list[bytes] = []
    _read_file_section(reader, MANIFEST_FILE, CACHE_MAX_MANIFEST_BYTES, parts.append)
    manifest_bytes = b"".join(parts)
    require(hashlib.sha256(manifest_bytes).hexdigest() == header["manifest_sha256"], name,
            "manifest.json does not match the header's checksum (damaged file)")
    check_manifest_shape(manifest_bytes, name)
    try:
        text = manifest_bytes.decode("utf-8")
        if json_too_deep(text):
            raise CacheError(f"{name}: {depth_message('the embedded manifest.json')}")
        manifest = json.loads(text)
        check_manifest(manifest, MANIFEST_FILE)
    except CacheError:
        raise
    except (UnicodeDecodeError, ValueError) as exc:  # StoreErrors are ValueErrors
        raise CacheError(f"{name}: the embedded {exc}" if isinstance(exc, StoreError)
                         else f"{name}: the embedded manifest.json is not valid JSON ({type(exc).__name__})") from None
    tok_info = manifest["tokenizer"]
    for key, found in (("dtype", manifest["dtype"]), ("eos_id", manifest["eos_id"]),
                       ("num_tokens", manifest["num_tokens"]), ("num_documents", manifest["num_documents"]),
                       ("num_shards", len(manifest["shards"]))):
        require(header[key] == found, name, f"the header's {key} ({header[key]}) differs from the manifest's ({found})")
    require(header["tokenizer"]["fingerprint"] == tok_info["fingerprint"], name,
            "the header's tokenizer differs from the manifest's")
    require(header["tokenizer"]["vocab_size"] == tok_info["vocab_size"], name,
            "the header's vocabulary size differs from the manifest's")

    # tokenizer.json: embedded, or supplied by the caller (same fingerprint).
    details = {"tokenizer_included": header["tokenizer"]["included"], "tokenizer_replaced": False}
    given = None
    if tokenizer is not None or not header["tokenizer"]["included"]:
        given = _resolve_tokenizer(tokenizer, tok_info, name, header["tokenizer"]["included"])
    tokenizer_path = os.path.join(tmp, TOKENIZER_FILE)
    if header["tokenizer"]["included"]:
        out = files.open_file(tokenizer_path)
        _read_file_section(reader, TOKENIZER_FILE, CACHE_MAX_TOKENIZER_BYTES, lambda data: files.write(out, data))
        found_sha = files.close_file(out)
        expected = tok_info.get("file_sha256")
        require(expected is None or found_sha == expected, name,
                "tokenizer.json does not match the manifest's checksum (damaged file)")
    else:
        data = given.to_json().encode("utf-8")
        write_synced(tokenizer_path, data)
        sha = hashlib.sha256(data).hexdigest()
        if tok_info.get("file_sha256") not in (None, sha):
            # Same ids, other bytes (formatting, options): record the file we wrote.
            manifest["tokenizer"] = dict(tok_info, file_sha256=sha)
            manifest_bytes = encode_json(manifest)
            details["tokenizer_replaced"] = True

    # shards: written verbatim, checked as they stream by, compared with the manifest.
    names = [entry["name"] for entry in manifest["shards"]]
    require(all(n.isascii() and 1 <= len(n) <= 20 for n in names) and len(set(names)) == len(names), name,
            "the manifest's shard names are not distinct shard numbers")
    vocab, eos = tok_info["vocab_size"], manifest["eos_id"]
    start, last_end = 0, 0
    for index, entry in enumerate(manifest["shards"]):
        fault_point("import-section")
        where = f"shard {index}"
        record = reader.record("shard")
        require(record.get("index") == index and record.get("name") == entry["name"]
                and record.get("tokens") == entry["tokens"] and record.get("documents") == entry["documents"],
                name, f"{where}: the record ({record.get('name')!r}, {record.get('tokens')!r} tokens, "
                f"{record.get('documents')!r} documents) differs from the manifest's")
        tokens_path, docs_path = shard_paths(tmp, entry["name"])
        n, d = entry["tokens"], entry["documents"]
        stop = start + n
        head = check_npy_header(record.get("tokens_npy_header"), dtype.str, n, name, where)
        out = files.open_file(tokens_path)
        files.write(out, head)
        left = n * itemsize
        while left:
            data = reader.payload(left, itemsize, f"{where} tokens")
            ids = np.frombuffer(data, dtype=dtype)
            top = int(ids.max())
            require(top < vocab, name, f"{where}: token id {top} is not below the vocabulary size {vocab}")
            files.write(out, data)
            left -= len(data)
            if progress is not None:
                progress(reader.stream.position, file_size)
        sha = files.close_file(out)
        require(sha == entry["tokens_sha256"], name, f"{where}: tokens do not match the manifest's checksum (damaged file)")
        head = check_npy_header(record.get("docs_npy_header"), DOCS_DTYPE, d, name, where)
        tokens_map = np.memmap(tokens_path, dtype=dtype, mode="r", offset=len(record["tokens_npy_header"]),
                               shape=(n,)) if n and d else None
        out = files.open_file(docs_path)
        files.write(out, head)
        left = d * 8
        try:
            while left:
                data = reader.payload(left, 8, f"{where} document ends")
                ends = np.frombuffer(data, dtype=DOCS_DTYPE)
                require(int(ends[0]) > max(last_end, start) and int(ends[-1]) <= stop
                        and bool(np.all(ends[1:] > ends[:-1])), name,
                        f"{where}: document end offsets are not increasing inside the shard's tokens")
                require(bool(np.all(tokens_map[ends - 1 - start] == eos)), name,
                        f"{where}: a document does not end with the eos id {eos}")
                last_end = int(ends[-1])
                files.write(out, data)
                left -= len(data)
        finally:
            del tokens_map
        sha = files.close_file(out)
        require(sha == entry["docs_sha256"], name, f"{where}: document ends do not match the manifest's checksum (damaged file)")
        start = stop
    require(start == 0 or last_end == start, name, f"the last document ends at {last_end}, the stream at {start}")

    trailer = reader.record("end")
    hashed, digest = reader.digest()
    for key in ("num_tokens", "num_documents", "num_shards"):
        require(trailer.get(key) == header[key], name, f"trailer: {key} {trailer.get(key)!r} differs from the header's")
    require(trailer.get("bytes") == hashed and trailer.get("sha256") == digest, name,
            "trailer: the checksum of the stream does not match (damaged file)")
    reader.expect_end()
    files.finish()
    write_synced(os.path.join(tmp, MANIFEST_FILE), manifest_bytes)
    if progress is not None:
        progress(file_size, file_size)
    return header["view"] or {}, details


def _resolve_tokenizer(tokenizer, tok_info: dict, name: str, included: bool):
    from ..tokenize.tokenizer import load_tokenizer

    loaded = load_tokenizer(tokenizer)
    if loaded.fingerprint != tok_info["fingerprint"]:
        if tokenizer is None:
            raise CacheError(f"{name}: was exported without its tokenizer ({tok_info.get('name')}, "
                             f"{tok_info['fingerprint']}); pass the tokenizer it was made with (--tokenizer)")
        raise TokenizerMismatchError(
            f"{name}: was made with tokenizer {tok_info.get('name')} ({tok_info['fingerprint']}), "
            f"not {loaded.name} ({loaded.fingerprint})" + ("" if included else "; pass the tokenizer it was made with"))
    return loaded


def _read_file_section(reader: CacheReader, expected: str, limit: int, sink) -> int:
    record = reader.record("file")
    require(record.get("name") == expected, reader.name, f"expected the {expected} section, found "
            f"{record.get('name')!r}")
    size = int_field(record, "size", 0, limit, reader.name, expected)
    left = size
    while left:
        data = reader.payload(left, 1, expected)
        sink(data)
        left -= len(data)
    return size
