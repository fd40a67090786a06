"""Parquet with an ``input_ids`` column (what ``datasets.load_dataset("parquet", ...)`` reads): export and import.

Rows and column types as :mod:`mmtok.formats.arrowrows` says. Export writes one
file, row group by row group. Import reads a file or a folder of
``*.parquet`` files (name order), a list-of-ids ``column`` (default
``input_ids``), or a ``text_column`` of strings tokenized like any input.
"""

from __future__ import annotations

import os

from ..base.errors import FormatError
from .arrowrows import record_batches, rows_split_on_eos, schema_for, write_batches
from .output import TempFile, refuse_existing
from .rawtokens import files_in


def export_parquet(store, output, *, block_size=None, force: bool = False, progress=None) -> dict:
    import pyarrow.parquet as pq

    from .storeread import open_store

    store = open_store(store)
    output = os.fspath(output)
    refuse_existing([output], force)
    schema = schema_for(store, block_size)
    out = TempFile(output)
    try:
        # ids are high-cardinality: dictionary pages only cost time (pyarrow falls back to plain anyway)
        with pq.ParquetWriter(out.file, schema, use_dictionary=False) as writer:
            for batch in record_batches(store, schema, block_size, progress):
                writer.write_batch(batch)
        out.commit()
    except BaseException:
        out.abort()
        raise
    return {"path": out.path, "files": [out.path], "rows": "windows" if block_size else "documents"}


def parquet_files(source) -> list[str]:
    return files_in(os.fspath(source), ".parquet", "give a .parquet file or a folder of them")


def import_parquet(source, writer, *, column: str = "input_ids", progress=None) -> dict:
    import pyarrow.parquet as pq

    paths = parquet_files(source)
    opened = []
    for path in paths:
        try:
            opened.append(pq.ParquetFile(path))
        except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses for bad files
            raise FormatError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    total = sum(os.path.getsize(p) for p in paths) or 1
    rows = done = 0
    for path, file in zip(paths, opened):
        windows = rows_split_on_eos(file.schema_arrow)
        try:
            rows += write_batches(writer, file.iter_batches(batch_size=8192, columns=None), column, windows, path)
        except OSError as exc:
            raise FormatError(f"{path}: damaged Parquet data ({exc})") from None
        done += os.path.getsize(path)
        if progress is not None:
            progress(done, total)
    writer.close_document(paths[-1])  # window rows may leave the last document without its eos
    return {"rows": rows, "files_read": len(paths)}


def parquet_texts(source, text_column: str):
    """The strings of ``text_column``, file by file, batch by batch (for a text import)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in parquet_files(source):
        file = pq.ParquetFile(path)
        if text_column not in file.schema_arrow.names:
            raise FormatError(f"{path}: no column {text_column!r} (columns: {', '.join(file.schema_arrow.names)})")
        kind = file.schema_arrow.field(text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise FormatError(f"{path}: column {text_column!r} is {kind}, not text")
        for batch in file.iter_batches(batch_size=4096, columns=[text_column]):
            for text in batch.column(0).to_pylist():
                if text is None:
                    raise FormatError(f"{path}: column {text_column!r} has a null row")
                yield text
