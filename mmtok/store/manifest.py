"""The manifest (a store's only commit point) and the build journal: read, check, write atomically."""

from __future__ import annotations

import hashlib
import json
import os

from ..base.constants import (
    FORMAT_NAME,
    FORMAT_VERSION,
    JOURNAL_FILE,
    MANIFEST_FILE,
    TEMP_PREFIX,
    TOKEN_DTYPES,
)
from ..base.errors import CorruptStoreError, StoreError
from ..base.jsonlimits import depth_message, json_too_deep

JOURNAL_FORMAT = "mmtok-build-journal"


def fsync_dir(path: str) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, TEMP_PREFIX + name)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(folder or ".")


def encode_json(obj: dict) -> bytes:
    """The one JSON encoding of manifests: stable key order, so equal content gives equal bytes."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(store: str, manifest: dict) -> None:
    atomic_write_bytes(os.path.join(store, MANIFEST_FILE), encode_json(manifest))


def manifest_sha256(store: str) -> str | None:
    """Hash of the current manifest's bytes, or None when there is none (a journal names its base)."""
    try:
        with open(os.path.join(store, MANIFEST_FILE), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def read_manifest(store: str) -> dict:
    """Load and check a store's manifest; raise StoreError/CorruptStoreError saying what is wrong."""
    path = os.path.join(store, MANIFEST_FILE)
    if not os.path.isdir(store):
        raise StoreError(f"{store}: no such store (a store is a directory made by `mmtok build`)")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        if json_too_deep(text):
            raise CorruptStoreError(f"{path}: {depth_message('the manifest')}")
        manifest = json.loads(text)
    except FileNotFoundError:
        hint = " (a build was interrupted: rerun it to resume)" if os.path.exists(os.path.join(store, JOURNAL_FILE)) else ""
        raise StoreError(f"{store}: not an mmtok store, {MANIFEST_FILE} is missing{hint}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStoreError(f"{path}: not valid JSON ({exc})") from None
    check_manifest(manifest, path)
    return manifest


def _require(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise CorruptStoreError(f"{path}: {what}")


def check_manifest(manifest: dict, path: str) -> None:
    """Validate the structure and the internal arithmetic of a manifest."""
    _require(isinstance(manifest, dict), path, "the manifest is not a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise CorruptStoreError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("version")
    # a version is an int: true, 1.5 or "1" is damage, not a newer format
    _require(type(version) is int and version >= 1, path, f"version must be a positive integer, found {version!r}")
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{path}: store format version {version!r} is newer than this mmtok reads "
            f"(version {FORMAT_VERSION}); upgrade mmtok"
        )
    _require(manifest.get("dtype") in TOKEN_DTYPES, path, f"dtype must be one of {TOKEN_DTYPES}")
    for key in ("num_tokens", "num_documents", "eos_id"):
        _require(isinstance(manifest.get(key), int) and manifest[key] >= 0, path, f"{key} must be a non-negative integer")
    tok = manifest.get("tokenizer")
    _require(isinstance(tok, dict) and isinstance(tok.get("fingerprint"), str), path, "tokenizer.fingerprint is missing")
    _require(isinstance(tok.get("allow_special"), bool), path, "tokenizer.allow_special must be true or false")
    _require(isinstance(tok.get("vocab_size"), int) and manifest["eos_id"] < tok["vocab_size"], path, "eos_id must be below tokenizer.vocab_size")
    shards = manifest.get("shards")
    _require(isinstance(shards, list), path, "shards must be a list")
    tokens = documents = 0
    for i, shard in enumerate(shards):
        _require(isinstance(shard, dict), path, f"shards[{i}] is not an object")
        for key in ("tokens", "documents"):
            _require(isinstance(shard.get(key), int) and shard[key] >= 0, path, f"shards[{i}].{key} must be a non-negative integer")
        for key in ("name", "tokens_sha256", "docs_sha256"):
            _require(isinstance(shard.get(key), str), path, f"shards[{i}].{key} must be a string")
        _require(shard["name"].isascii() and shard["name"].isdigit(), path, f"shards[{i}].name must be ASCII digits")
        tokens += shard["tokens"]
        documents += shard["documents"]
    _require(tokens == manifest["num_tokens"], path, f"shards hold {tokens} tokens, num_tokens says {manifest['num_tokens']}")
    _require(documents == manifest["num_documents"], path, f"shards hold {documents} documents, num_documents says {manifest['num_documents']}")
    _require(isinstance(manifest.get("inputs"), list), path, "inputs must be a list")


def read_journal(store: str) -> dict | None:
    """The build journal of an interrupted build, or None. A damaged journal counts as none."""
    try:
        with open(os.path.join(store, JOURNAL_FILE), "rb") as f:
            text = f.read().decode("utf-8")
        journal = None if json_too_deep(text) else json.loads(text)
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(journal, dict) or journal.get("format") != JOURNAL_FORMAT or journal.get("version") != FORMAT_VERSION:
        return None
    return journal


def write_journal(store: str, journal: dict) -> None:
    atomic_write_bytes(os.path.join(store, JOURNAL_FILE), encode_json(journal))


def remove_journal(store: str) -> None:
    try:
        os.unlink(os.path.join(store, JOURNAL_FILE))
    except FileNotFoundError:
        return
    fsync_dir(store)
