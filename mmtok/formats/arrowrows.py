"""Rows of token ids as Arrow record batches, both ways (shared by the ``hf`` and ``parquet`` formats).

Export: one row per document (eos kept), or with ``block_size`` one row per
``block_size`` window of the stream (the last row shorter), in a column
``input_ids`` of ``list<uint16>`` or ``list<uint32>`` (the store's dtype; what
``datasets`` shows as ``List(Value('uint16'))``). The schema carries
``mmtok = {"rows": "documents"|"windows", ...}`` so that import knows how to
cut documents again. Import: a list-of-integers column, one document per row
(eos appended where missing), or split just past every eos for window rows.
"""

from __future__ import annotations

import json

import numpy as np

from ..base.errors import FormatError
from .storeread import documents, pieces

ROW_BATCH_TOKENS = 1 << 22


def schema_for(store, block_size):
    import pyarrow as pa

    value = pa.uint16() if store.dtype.itemsize == 2 else pa.uint32()
    meta = {"rows": "windows" if block_size else "documents", "block_size": block_size, "eos_id": store.eos_id,
            "tokenizer": store.manifest["tokenizer"].get("name"), "fingerprint": store.fingerprint}
    return pa.schema([pa.field("input_ids", pa.list_(value))], metadata={"mmtok": json.dumps(meta)})


def record_batches(store, schema, block_size=None, progress=None):
    """Yield record batches of rows (documents, or ``block_size`` windows)."""
    import pyarrow as pa

    value_type = schema.field("input_ids").type.value_type
    if block_size:
        if type(block_size) is not int or block_size < 1:
            raise ValueError("block_size must be a positive integer")
        carry = np.empty(0, dtype=store.dtype)
        per = max(1, ROW_BATCH_TOKENS // block_size) * block_size
        for piece, _ in pieces(store, per, progress):
            tokens = np.concatenate([carry, piece]) if carry.shape[0] else piece
            whole = tokens.shape[0] // block_size * block_size
            carry = tokens[whole:]
            if whole:
                offsets = np.arange(0, whole + 1, block_size, dtype=np.int32)
                yield _batch(pa, schema, value_type, offsets, tokens[:whole])
        if carry.shape[0]:
            yield _batch(pa, schema, value_type, np.array([0, carry.shape[0]], dtype=np.int32), carry)
        return
    for tokens, lengths in documents(store, ROW_BATCH_TOKENS, progress):
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        if offsets[-1] >= 1 << 31:
            raise FormatError(f"{store.path}: a document of {int(offsets[-1]):,} tokens does not fit an Arrow list")
        yield _batch(pa, schema, value_type, offsets.astype(np.int32), tokens)


def _batch(pa, schema, value_type, offsets, values):
    column = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(values, type=value_type))
    return pa.record_batch([column], schema=schema)


def rows_split_on_eos(schema) -> bool:
    """True when the rows were written as windows of the stream (mmtok's schema metadata says so)."""
    raw = (schema.metadata or {}).get(b"mmtok")
    if not raw:
        return False
    try:
        return json.loads(raw.decode()).get("rows") == "windows"
    except (ValueError, AttributeError):
        return False


def list_column(batch, column: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of the list-of-integers column ``column`` of a record batch, checked."""
    import pyarrow as pa

    names = batch.schema.names
    if column not in names:
        raise FormatError(f"{where}: no column {column!r} (columns: {', '.join(names)}); choose one with --column")
    array = batch.column(names.index(column))
    kind = array.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not pa.types.is_integer(kind.value_type):
        raise FormatError(f"{where}: column {column!r} is {kind}, not a list of integer token ids "
                          "(a text column is imported with --text-column)")
    if array.null_count:
        raise FormatError(f"{where}: column {column!r} has {array.null_count} null rows")
    flat = array.flatten()
    if flat.null_count:
        raise FormatError(f"{where}: column {column!r} has null token ids")
    offsets = np.asarray(array.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    values = flat.to_numpy(zero_copy_only=False)
    return offsets, values


def write_batches(writer, batches, column: str, windows: bool, where: str) -> int:
    """Feed record batches into a StoreWriter; return the rows read."""
    rows = 0
    for batch in batches:
        offsets, values = list_column(batch, column, where)
        if values.dtype.kind not in "iu":
            raise FormatError(f"{where}: column {column!r} does not hold integers")
        ends = np.flatnonzero(values == writer.tok.eos_id) + 1 if windows else offsets[1:]
        writer.write(values, ends, f"{where}: rows from {rows:,}")
        rows += offsets.shape[0] - 1
    return rows
