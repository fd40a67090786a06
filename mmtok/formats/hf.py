"""A Hugging Face ``datasets`` ``save_to_disk`` folder (what ``datasets.load_from_disk`` opens): export and import.

The folder holds ``data-NNNNN-of-MMMMM.arrow`` files (Arrow IPC *stream*
format, as ``datasets`` writes them), ``state.json`` (the list of data files)
and ``dataset_info.json``. Rows and column types as
:mod:`mmtok.formats.arrowrows` says; a new data file starts after about
``shard_tokens`` tokens (datasets' own default is 500 MB per file).
"""

from __future__ import annotations

import hashlib
import json
import os

from ..base.errors import FormatError
from .arrowrows import record_batches, rows_split_on_eos, schema_for, write_batches
from .output import TempDir, refuse_existing, synced_write

DEFAULT_SHARD_TOKENS = 1 << 28


def export_hf(store, output, *, block_size=None, shard_tokens: int = DEFAULT_SHARD_TOKENS, force: bool = False,
              progress=None) -> dict:
    import pyarrow as pa

    from .storeread import open_store

    store = open_store(store)
    output = os.fspath(output)
    refuse_existing([output], force)
    schema = schema_for(store, block_size)
    out = TempDir(output, force=force)
    names, writer, sink, held = [], None, None, 0
    fingerprint = hashlib.sha256(f"mmtok:{store.fingerprint}:{store.manifest['shards']}:{block_size}".encode())
    try:
        for batch in record_batches(store, schema, block_size, progress):
            if writer is None or held >= shard_tokens:
                _close(writer, sink)
                names.append(f".part-{len(names)}.arrow")
                sink = pa.OSFile(out.file(names[-1]), "wb")
                writer = pa.ipc.new_stream(sink, schema)
                held = 0
            writer.write_batch(batch)
            held += len(batch.column(0).flatten())
        if writer is None:  # an empty store: one empty file, as datasets writes
            names.append(".part-0.arrow")
            sink = pa.OSFile(out.file(names[-1]), "wb")
            writer = pa.ipc.new_stream(sink, schema)
        _close(writer, sink)
        writer = None
        final = [f"data-{i:05d}-of-{len(names):05d}.arrow" for i in range(len(names))]
        for old, new in zip(names, final):
            _fsync(out.file(old))
            os.rename(out.file(old), out.file(new))
        state = {"_data_files": [{"filename": n} for n in final], "_fingerprint": fingerprint.hexdigest()[:16],
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": None}
        info = {"citation": "", "description": f"exported by mmtok from {os.path.basename(store.path)}",
                "homepage": "", "license": ""}
        synced_write(out.file("state.json"), json.dumps(state, indent=2, sort_keys=True).encode())
        synced_write(out.file("dataset_info.json"), json.dumps(info, indent=2, sort_keys=True).encode())
        out.commit()
    except BaseException:
        if writer is not None:
            writer.close()
            sink.close()
        out.abort()
        raise
    return {"path": out.path, "files": [os.path.join(out.path, n) for n in final],
            "rows": "windows" if block_size else "documents"}


def _close(writer, sink) -> None:
    if writer is not None:
        writer.close()
        sink.close()


def _fsync(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def hf_files(source: str) -> list[str]:
    state_path = os.path.join(source, "state.json")
    if not os.path.isfile(state_path):
        raise FormatError(f"{source}: no state.json (not a datasets save_to_disk folder; a DatasetDict's splits "
                          "are its subfolders)")
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{state_path}: not a datasets state file ({type(exc).__name__}: {exc})") from None
    paths = []
    for name in names:
        if not isinstance(name, str) or os.path.basename(name) != name:
            raise FormatError(f"{state_path}: data file name {name!r} is not a plain file name")
        paths.append(os.path.join(source, name))
    return paths


def import_hf(source, writer, *, column: str = "input_ids", progress=None) -> dict:
    import pyarrow as pa

    source = os.fspath(source)
    paths = hf_files(source)
    total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p)) or 1
    rows = done = 0
    for path in paths:
        try:
            reader = pa.ipc.open_stream(pa.memory_map(path, "r"))
            rows += write_batches(writer, reader, column, rows_split_on_eos(reader.schema), path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise FormatError(f"{path}: not a readable Arrow stream ({str(exc).splitlines()[0]})") from None
        done += os.path.getsize(path)
        if progress is not None:
            progress(done, total)
    writer.close_document(paths[-1])  # window rows may leave the last document without its eos
    return {"rows": rows, "files_read": len(paths)}


def hf_texts(source, text_column: str):
    import pyarrow as pa

    for path in hf_files(os.fspath(source)):
        reader = pa.ipc.open_stream(pa.memory_map(path, "r"))
        if text_column not in reader.schema.names:
            raise FormatError(f"{path}: no column {text_column!r} (columns: {', '.join(reader.schema.names)})")
        for batch in reader:
            for text in batch.column(reader.schema.names.index(text_column)).to_pylist():
                if not isinstance(text, str):
                    raise FormatError(f"{path}: column {text_column!r} holds {type(text).__name__}, not text")
                yield text
