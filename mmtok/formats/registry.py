"""Which formats exist, which options each takes, and the two entry points: export and import."""

from __future__ import annotations

import os
import time

from ..base.constants import DEFAULT_SHARD_TOKENS
from ..base.errors import MmtokError, StoreError, os_error_reason

# format -> (module, function, options it accepts besides force/progress)
_EXPORTS = {
    "megatron": ("megatron", "export_megatron", {"link"}),
    "hf": ("hf", "export_hf", {"block_size", "shard_tokens"}),
    "parquet": ("parquet", "export_parquet", {"block_size"}),
    "nanogpt": ("nanogpt", "export_nanogpt", set()),
    "llmc": ("llmc", "export_llmc", {"shard_tokens"}),
    "olmo": ("olmo", "export_olmo", {"shard_tokens"}),
    "litdata": ("litdata", "export_litdata", {"shard_tokens"}),
}
_IMPORTS = {
    "megatron": ("megatron_import", "import_megatron", set()),
    "hf": ("hf", "import_hf", {"column"}),
    "parquet": ("parquet", "import_parquet", {"column"}),
    "nanogpt": ("nanogpt", "import_nanogpt", {"dtype"}),
    "llmc": ("llmc", "import_llmc", set()),
    "olmo": ("olmo", "import_olmo", {"dtype"}),
}
_TEXTS = {"hf": ("hf", "hf_texts"), "parquet": ("parquet", "parquet_texts")}
EXPORT_FORMATS = tuple(_EXPORTS)
IMPORT_FORMATS = tuple(_IMPORTS)
OPTION_NAMES = {"link": "--link", "block_size": "--block-size", "shard_tokens": "--shard-tokens",
                "column": "--column", "dtype": "--dtype", "text_column": "--text-column"}


def _function(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def _check_options(fmt: str, given: dict, allowed: set, direction: str) -> dict:
    used = {key: value for key, value in given.items() if value is not None and value is not False}
    extra = sorted(set(used) - allowed)
    if extra:
        names = ", ".join(OPTION_NAMES.get(key, key) for key in extra)
        raise ValueError(f"{names} does not apply to {direction} --format {fmt}")
    return used


def export_format(store, output, format: str, *, link: bool = False, block_size: int | None = None,
                  shard_tokens: int | None = None, force: bool = False, progress=None) -> dict:
    """Export ``store`` to ``output`` in ``format`` (one of :data:`EXPORT_FORMATS`); return a summary."""
    from .storeread import open_store

    if format not in _EXPORTS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
    module, name, allowed = _EXPORTS[format]
    options = _check_options(format, {"link": link, "block_size": block_size, "shard_tokens": shard_tokens},
                             allowed, "export")
    if format == "litdata" and "shard_tokens" in options:
        options["chunk_tokens"] = options.pop("shard_tokens")
    started = time.monotonic()
    store = open_store(store)
    try:
        summary = _function(module, name)(store, output, force=force, progress=progress, **options)
    except OSError as exc:
        if isinstance(exc, MmtokError):
            raise
        raise StoreError(f"{output}: export failed, nothing was left there ({exc.strerror or exc})") from None
    seconds = max(time.monotonic() - started, 1e-9)
    written = sum(os.path.getsize(f) for f in summary["files"] if os.path.exists(f) and not os.path.islink(f))
    raw = store.num_tokens * store.dtype.itemsize
    return {"format": format, "tokens": store.num_tokens, "documents": store.num_documents,
            "seconds": seconds, "bytes": written, "mb_per_s": raw / 1e6 / seconds, **summary}


def import_format(source, destination, format: str, *, tokenizer=None, eos_token: str | None = None,
                  dtype: str | None = None, column: str | None = None, text_column: str | None = None,
                  shard_tokens: int = DEFAULT_SHARD_TOKENS, force: bool = False, progress=None) -> dict:
    """Build a store at ``destination`` from ``source`` in ``format`` (one of :data:`IMPORT_FORMATS`).

    ``tokenizer`` (default GPT-2) is the one the ids were made with: every id
    must be below its vocabulary, and its eos id separates documents.
    Returns a summary with the store (``summary["store"]``).
    """
    from ..tokenize.tokenizer import load_tokenizer
    from .storewrite import StoreWriter

    if format not in _IMPORTS:
        raise ValueError(f"format must be one of {', '.join(IMPORT_FORMATS)} (litdata is export only), "
                         f"not {format!r}")
    module, name, allowed = _IMPORTS[format]
    allowed = allowed | ({"text_column"} if format in _TEXTS else set())
    options = _check_options(format, {"dtype": dtype, "column": column, "text_column": text_column}, allowed,
                             "import")
    if text_column is not None and column is not None:
        raise ValueError("give --column (token ids) or --text-column (text), not both")
    started = time.monotonic()
    source = os.fspath(source)
    if not os.path.exists(source) and format != "megatron":
        raise StoreError(f"{source}: not found")
    tok = load_tokenizer(tokenizer, eos_token=eos_token)
    if text_column is not None:
        store = _import_texts(source, destination, format, tok, text_column, shard_tokens, force)
        details = {"tokenized_from": text_column}
    else:
        writer = StoreWriter(destination, tok, source=source, kind=format, shard_tokens=shard_tokens, force=force)
        try:
            details = _function(module, name)(source, writer, progress=progress, **options)
            store = writer.commit({"format_details": details})
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, OSError) and not isinstance(exc, MmtokError):
                raise StoreError(f"{destination}: import failed, nothing was left there "
                                 f"({os_error_reason(exc)})") from None
            raise
        details = dict(details, eos_appended=writer.eos_appended)
    seconds = max(time.monotonic() - started, 1e-9)
    raw = store.num_tokens * store.dtype.itemsize
    return {"path": store.path, "source": source, "format": format, "tokenizer": tok.name,
            "tokens": store.num_tokens, "documents": store.num_documents, "shards": len(store.shards),
            "seconds": seconds, "mb_per_s": raw / 1e6 / seconds, "store": store, **details}


def _import_texts(source, destination, format, tok, text_column, shard_tokens, force):
    """Tokenize a text column like any input, into a folder renamed into place when the build is done."""
    from ..store.build import build
    from ..store.store import Store
    from .output import TempDir, refuse_existing

    destination = os.path.abspath(os.fspath(destination))
    refuse_existing([destination], force)
    folder = TempDir(destination, force=force)
    try:
        build(None, folder.tmp, texts=_function(*_TEXTS[format])(source, text_column), tokenizer=tok,
              line_by_line=True, shard_tokens=shard_tokens)
        folder.commit()
    except BaseException:
        folder.abort()
        raise
    return Store(destination)
