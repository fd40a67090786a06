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
    READABLE_FORMAT_VERSIONS,
    SHARD_NAME_MAX_DIGITS,
    STORE_MAX_COUNT,
    STORE_MAX_JOURNAL_BYTES,
    STORE_MAX_MANIFEST_BYTES,
    TEMP_PREFIX,
    TOKEN_DTYPES,
)
from ..base.errors import CorruptStoreError, StoreError
from ..base.faults import fault_point
from .safefile import read_store_file
from ..base.jsonlimits import depth_message, json_too_deep

# Revision 2 can name an open shard (a mid-shard checkpoint); mmtok versions that
# knew only "mmtok-build-journal" ignore it and start afresh, which stays correct.
JOURNAL_FORMAT = "mmtok-build-journal-2"
_OLD_JOURNAL_FORMATS = ("mmtok-build-journal",)


def fsync_dir(path: str) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, data: bytes, *, step: str | None = None) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    ``step`` names the fault points passed on the way (``STEP-written``,
    ``STEP-replaced``, ``STEP-synced``; see :mod:`mmtok.base.faults`). On an
    error (a full disk) the temporary file is removed and the old file stays.
    """
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, TEMP_PREFIX + name)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            if step:
                fault_point(f"{step}-written")
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    os.replace(tmp, path)
    if step:
        fault_point(f"{step}-replaced")
    fsync_dir(folder or ".")
    if step:
        fault_point(f"{step}-synced")


def encode_json(obj: dict) -> bytes:
    """The one JSON encoding of manifests: stable key order, so equal content gives equal bytes."""
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_manifest(store: str, manifest: dict) -> None:
    atomic_write_bytes(os.path.join(store, MANIFEST_FILE), encode_json(manifest), step="manifest")


def manifest_sha256(store: str) -> str | None:
    """Hash of the current manifest's bytes, or None when there is none (a journal names its base)."""
    try:
        return hashlib.sha256(read_store_file(store, os.path.join(store, MANIFEST_FILE),
                                              limit=STORE_MAX_MANIFEST_BYTES)).hexdigest()
    except FileNotFoundError:
        return None


def read_manifest(store: str) -> dict:
    """Load and check a store's manifest; raise StoreError/CorruptStoreError saying what is wrong."""
    path = os.path.join(store, MANIFEST_FILE)
    if not os.path.isdir(store):
        raise StoreError(f"{store}: no such store (a store is a directory made by `mmtok build`)")
    try:
        data = read_store_file(store, path, limit=STORE_MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        hint = " (a build was interrupted: rerun it to resume)" if os.path.exists(os.path.join(store, JOURNAL_FILE)) else ""
        raise StoreError(f"{store}: not an mmtok store, {MANIFEST_FILE} is missing{hint}") from None
    return parse_manifest(data, path)


def parse_manifest(data: bytes, where: str) -> dict:
    """A manifest's bytes (from a file or object storage) parsed and checked; ``where`` names it in errors."""
    try:
        text = data.decode("utf-8")
        if json_too_deep(text):
            raise CorruptStoreError(f"{where}: {depth_message('the manifest')}")
        manifest = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStoreError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise CorruptStoreError(f"{where}: JSON nested too deeply to be a manifest") from None
    check_manifest(manifest, where)
    return manifest


def _require(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise CorruptStoreError(f"{path}: {what}")


def _count(value) -> bool:
    """A JSON integer (not a boolean) in [0, STORE_MAX_COUNT]."""
    return type(value) is int and 0 <= value <= STORE_MAX_COUNT


def check_manifest(manifest: dict, path: str) -> None:
    """Validate the structure and the internal arithmetic of a manifest."""
    _require(isinstance(manifest, dict), path, "the manifest is not a JSON object")
    if manifest.get("format") != FORMAT_NAME:
        raise CorruptStoreError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("version")
    # a version is an int: true, 1.5 or "1" is damage, not a newer format
    _require(type(version) is int and version >= 1, path, f"version must be a positive integer, found {version!r}")
    if version not in READABLE_FORMAT_VERSIONS:
        raise StoreError(
            f"{path}: store format version {version} is newer than this mmtok reads "
            f"(version {FORMAT_VERSION}); upgrade mmtok"
        )
    _require(manifest.get("dtype") in TOKEN_DTYPES, path, f"dtype must be one of {TOKEN_DTYPES}")
    for key in ("num_tokens", "num_documents", "eos_id"):
        _require(_count(manifest.get(key)), path, f"{key} must be an integer from 0 to {STORE_MAX_COUNT:,}")
    tok = manifest.get("tokenizer")
    _require(isinstance(tok, dict) and isinstance(tok.get("fingerprint"), str), path, "tokenizer.fingerprint is missing")
    _require(isinstance(tok.get("allow_special"), bool), path, "tokenizer.allow_special must be true or false")
    id_limit = 1 << (8 * int(manifest["dtype"][-1]))
    _require(_count(tok.get("vocab_size")) and manifest["eos_id"] < tok["vocab_size"] <= id_limit, path,
             f"tokenizer.vocab_size must exceed eos_id and fit dtype {manifest['dtype']}")
    shards = manifest.get("shards")
    _require(isinstance(shards, list), path, "shards must be a list")
    tokens = documents = 0
    names = set()
    for i, shard in enumerate(shards):
        _require(isinstance(shard, dict), path, f"shards[{i}] is not an object")
        for key in ("tokens", "documents"):
            _require(_count(shard.get(key)), path, f"shards[{i}].{key} must be an integer from 0 to {STORE_MAX_COUNT:,}")
        for key in ("name", "tokens_sha256", "docs_sha256"):
            _require(isinstance(shard.get(key), str), path, f"shards[{i}].{key} must be a string")
        name = shard["name"]
        _require(0 < len(name) <= SHARD_NAME_MAX_DIGITS and name.isascii() and name.isdigit(), path,
                 f"shards[{i}].name must be 1 to {SHARD_NAME_MAX_DIGITS} ASCII digits, not {name[:40]!r}")
        _require(name not in names, path, f"shard {name} is listed twice")
        names.add(name)
        _require(shard["documents"] <= shard["tokens"], path, f"shard {name} ends more documents than it has tokens")
        tokens += shard["tokens"]
        documents += shard["documents"]
    _require(tokens == manifest["num_tokens"], path, f"shards hold {tokens} tokens, num_tokens says {manifest['num_tokens']}")
    _require(documents == manifest["num_documents"], path, f"shards hold {documents} documents, num_documents says {manifest['num_documents']}")
    _require(isinstance(manifest.get("inputs"), list), path, "inputs must be a list")
    _require(isinstance(manifest.get("history", []), list), path, "history must be a list")


def read_journal(store: str) -> dict | None:
    """The build journal of an interrupted build, or None. A damaged journal counts as none."""
    try:
        text = read_store_file(store, os.path.join(store, JOURNAL_FILE), limit=STORE_MAX_JOURNAL_BYTES).decode("utf-8")
        journal = None if json_too_deep(text) else json.loads(text)
    except (FileNotFoundError, CorruptStoreError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(journal, dict) or journal.get("format") not in (JOURNAL_FORMAT, *_OLD_JOURNAL_FORMATS) \
            or journal.get("version") != FORMAT_VERSION:
        return None
    return journal


def write_journal(store: str, journal: dict) -> None:
    atomic_write_bytes(os.path.join(store, JOURNAL_FILE), encode_json(journal), step="journal")


def remove_journal(store: str) -> None:
    try:
        os.unlink(os.path.join(store, JOURNAL_FILE))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        return  # not ours; verify reports it
    fsync_dir(store)
