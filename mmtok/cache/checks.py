"""What an import checks before trusting a cache: header, view settings, embedded manifest, .npy headers, disk.

Each check raises a one-line error naming the file (``name``) and what is
wrong; none of them reads more than the record or bytes it is given.
"""

from __future__ import annotations

import io
import os
import shutil
from tokenize import TokenError

from ..base.constants import (
    CACHE_FORMAT_NAME,
    CACHE_FORMAT_VERSION,
    CACHE_MAX_DOCUMENTS,
    CACHE_MAX_NPY_HEADER,
    CACHE_MAX_SHARDS,
    CACHE_MAX_TOKENS,
    FORMAT_NAME,
    FORMAT_VERSION,
    TOKEN_DTYPES,
)
from ..base.errors import CacheError, StoreError
from ..store.npyfile import read_npy_header
from .container import human_bytes

_VIEW_MAX_KEYS = 32
_VIEW_MAX_STR = 256


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


def require(cond: bool, name: str, what: str) -> None:
    """A CacheError ``"{name}: {what}"`` unless ``cond``."""
    if not cond:
        raise CacheError(f"{name}: {what}")


def int_field(obj: dict, key: str, lo: int, hi: int, name: str, where: str) -> int:
    """``obj[key]``, which must be an int in ``[lo, hi]``."""
    value = obj.get(key)
    require(type(value) is int, name, f"{where}: {key} must be an integer, found {value!r}")
    require(lo <= value <= hi, name, f"{where}: {key} = {value:,} is outside [{lo:,}, {hi:,}] (damaged or hostile file)")
    return value


def str_field(obj: dict, key: str, name: str, where: str, *, optional: bool = False) -> str | None:
    """``obj[key]``, which must be a str (or missing/None when ``optional``)."""
    value = obj.get(key)
    if optional and value is None:
        return None
    require(isinstance(value, str), name, f"{where}: {key} must be a string, found {value!r}")
    return value


def check_header(header: dict, name: str) -> dict:
    """The header record of an mmtok cache, every field checked (``view`` normalised); a CacheError otherwise."""
    where = "header"
    require(header.get("format") == CACHE_FORMAT_NAME, name, f"header: format is {header.get('format')!r}, "
            f"not {CACHE_FORMAT_NAME!r}")
    version = header.get("version")
    require(type(version) is int and version >= 1, name, f"header: version {version!r} is not a version number")
    if version > CACHE_FORMAT_VERSION:
        raise CacheError(f"{name}: written in cache format version {version}, newer than this mmtok reads "
                         f"(version {CACHE_FORMAT_VERSION}); upgrade mmtok")
    store = header.get("store")
    require(isinstance(store, dict) and store.get("format") == FORMAT_NAME, name, "header: store.format is not "
            f"{FORMAT_NAME!r}")
    store_version = store.get("version")
    require(type(store_version) is int and store_version >= 1, name, "header: store.version is not a version number")
    if store_version > FORMAT_VERSION:
        raise CacheError(f"{name}: holds a store of format version {store_version}, newer than this mmtok reads "
                         f"(version {FORMAT_VERSION}); upgrade mmtok")
    require(header.get("dtype") in TOKEN_DTYPES, name, f"header: dtype {header.get('dtype')!r} is not one of {TOKEN_DTYPES}")
    int_field(header, "num_tokens", 0, CACHE_MAX_TOKENS, name, where)
    int_field(header, "num_documents", 0, min(CACHE_MAX_DOCUMENTS, header["num_tokens"]), name, where)
    int_field(header, "num_shards", 0, CACHE_MAX_SHARDS, name, where)
    tok = header.get("tokenizer")
    require(isinstance(tok, dict), name, "header: tokenizer is missing")
    str_field(tok, "fingerprint", name, "header.tokenizer")
    str_field(tok, "name", name, "header.tokenizer", optional=True)
    str_field(tok, "eos_token", name, "header.tokenizer", optional=True)
    int_field(tok, "vocab_size", 1, 1 << 32, name, "header.tokenizer")
    int_field(header, "eos_id", 0, tok["vocab_size"] - 1, name, where)
    require(isinstance(tok.get("included"), bool), name, "header: tokenizer.included must be true or false")
    str_field(header, "manifest_sha256", name, where)
    try:
        header["view"] = check_view(header.get("view"), "header.view")
    except ValueError as exc:
        raise CacheError(f"{name}: {exc}") from None
    return header


def check_npy_header(head, dtype: str, length: int, name: str, where: str) -> bytes:
    """A shard record's ``.npy`` header bytes, which must describe exactly ``length`` items of ``dtype``."""
    require(isinstance(head, bytes) and 0 < len(head) <= CACHE_MAX_NPY_HEADER, name,
            f"{where}: the .npy header is missing or over {CACHE_MAX_NPY_HEADER} bytes")
    f = io.BytesIO(head)
    try:
        shape, fortran, found = read_npy_header(f)
    except (ValueError, SyntaxError, TypeError, OverflowError, TokenError) as exc:  # TokenError: numpy's
        # parser of old headers runs Python's tokenizer, which raises it on some damaged headers (found by fuzzing)
        raise CacheError(f"{name}: {where}: not a valid .npy header ({exc})") from None
    require(found.str == dtype and not fortran and shape == (length,) and f.tell() == len(head), name,
            f"{where}: the .npy header says {found.str} {shape}, the manifest {dtype} ({length},)")
    return head


def check_manifest_shape(data: bytes, name: str) -> None:
    """Refuse JSON far denser in items than any manifest before parsing it (parsing ``[{},{},...]`` takes ~25x its size).

    A real manifest (indented, one object per shard or input, a few hundred
    bytes each) has about one comma per 40 bytes and one container per 200.
    """
    if data.count(b",") > len(data) // 16 + 1024 or data.count(b"{") + data.count(b"[") > len(data) // 32 + 64:
        raise CacheError(f"{name}: the embedded manifest.json holds far more items than a manifest of its size "
                         "(damaged or hostile file)")


def check_disk_space(folder: str, needed: int, name: str) -> None:
    """Refuse an import that needs more than the free space where ``folder`` is."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise StoreError(f"{name}: importing needs {human_bytes(needed)} of disk, only {human_bytes(free)} is free "
                         f"in {os.path.dirname(folder)}")
