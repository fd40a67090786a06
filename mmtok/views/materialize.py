"""Writing a dataset view's samples into a new store: streamed, in constant memory, committed atomically.

What a sample becomes: sample ``k`` of the view is document ``k`` of the new
store, holding the sample's tokens followed by eos unless they already end
with it (the format requires every document to end with eos). A document
sample shorter than ``block_size`` is therefore its whole original document,
eos included; a bulk window (or a document cut at ``block_size``) gains one
eos, which the document view cuts off again. So
``TokenDataset.open(out, block_size=view.block_size)`` (line by line, which
the manifest records) gives back the view's samples one for one. Tails of
documents longer than ``block_size`` are not copied: no sample of the view
holds them, and copying them would let one sample of a line-by-line view of a
bulk store (a single 10 GB document) cost 10 GB.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np

from ..base.constants import (
    DEFAULT_SHARD_TOKENS,
    FORMAT_NAME,
    FORMAT_VERSION,
    STORE_MAX_TOKENIZER_BYTES,
    TEMP_PREFIX,
    TOKENIZER_FILE,
)
from ..base.errors import MmtokError, StoreError, StoreExistsError, os_error_reason
from ..base.faults import fault_point
from ..base.version import __version__
from ..store.manifest import atomic_write_bytes, fsync_dir, write_manifest
from ..store.safefile import read_store_file
from ..store.store import Store
from ..store.tempfiles import owned_temp_dir, remove_orphans
from ..store.writer import ShardSink
from .dataset import TokenDataset
from .tree import is_view, leaves

__all__ = ["DEFAULT_BATCH_TOKENS", "describe", "materialize", "sample_documents"]

#: Tokens read per step (about 8 bytes each while in flight): the memory bound of a materialisation.
DEFAULT_BATCH_TOKENS = 1 << 22


def materialize(view, path, *, shard_tokens: int = DEFAULT_SHARD_TOKENS, batch_tokens: int = DEFAULT_BATCH_TOKENS,
                progress=None) -> Store:
    """Write the samples of ``view`` (a TokenDataset, merged or blended view) as a new store at ``path``.

    See the module docstring for what each sample becomes. The store is built
    in a temporary folder next to ``path`` and renamed into place at the end,
    so ``path`` either does not exist or holds the whole store (a failure
    removes the temporary folder). ``path`` must not exist yet (an empty folder
    is fine). Memory stays about ``batch_tokens`` tokens whatever the size of
    the view. The manifest's ``inputs`` records what the store was made from
    (FORMAT.md, "Materialised views"). ``progress(done, total)`` is called
    with sample counts after every batch.
    """
    if not is_view(view):
        raise TypeError(f"materialize() takes a TokenDataset or a merged/blended view, not {type(view).__name__}")
    for option, value in (("shard_tokens", shard_tokens), ("batch_tokens", batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive int, not {value!r}")
    path = os.path.abspath(os.fspath(path))
    _check_destination(path)
    sources = [leaf.store for leaf in leaves(view)]
    reference = sources[0]
    tokenizer_json = read_store_file(reference.path, os.path.join(reference.path, TOKENIZER_FILE),
                                     limit=STORE_MAX_TOKENIZER_BYTES)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    prefix = f"{TEMP_PREFIX}{os.path.basename(path)}-"
    remove_orphans(parent, prefix)  # left by a killed merge into the same place
    owned = owned_temp_dir(parent, prefix)
    tmp = owned.path
    sink = None
    try:
        atomic_write_bytes(os.path.join(tmp, TOKENIZER_FILE), tokenizer_json)
        sink = ShardSink(tmp, dtype=reference.dtype.str, next_index=0, token_offset=0)
        shards, total = [], len(view)
        # A shard closes after the batch that fills it: batches no larger than a shard keep shards near shard_tokens.
        per_batch = max(1, min(batch_tokens, shard_tokens) // (view.block_size + 1))
        for start in range(0, total, per_batch):
            stop = min(total, start + per_batch)
            sink.write(*sample_documents(view, np.arange(start, stop, dtype=np.int64), dtype=reference.dtype,
                                         eos_id=reference.eos_id))
            if sink.open_tokens >= shard_tokens:
                shards.append(sink.close_shard())
            if progress is not None:
                progress(stop, total)
            fault_point("merge-batch")
        if sink.open_tokens:
            shards.append(sink.close_shard())
        tokenizer = dict(reference.manifest["tokenizer"], file=TOKENIZER_FILE,
                         file_sha256=hashlib.sha256(tokenizer_json).hexdigest(),
                         # Conservative: special-token strings were parsed as ids in some of the text.
                         allow_special=any(s.manifest["tokenizer"]["allow_special"] for s in sources))
        num_tokens = sum(shard["tokens"] for shard in shards)
        write_manifest(tmp, {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_by": f"mmtok {__version__}",
            "tokenizer": tokenizer,
            "dtype": reference.dtype.str,
            "eos_id": reference.eos_id,
            "num_tokens": num_tokens,
            "num_documents": total,
            "shards": shards,
            "inputs": [{
                "kind": "samples" if isinstance(view, TokenDataset) else view.kind, "path": None,
                "line_by_line": True, "block_size": view.block_size, "position": None, "first_token": 0,
                "first_document": 0, "tokens": num_tokens, "documents": total, "view": describe(view),
            }],
            "build": {"shard_tokens": shard_tokens, "batch_tokens": batch_tokens},
        })
        try:
            os.rename(tmp, path)  # replaces nothing but an empty folder; the store appears whole or not at all
        except OSError:
            raise StoreExistsError(f"{path}: appeared while the store was written; choose another path") from None
        fault_point("merge-renamed")
        fsync_dir(parent)
    except BaseException as exc:
        if sink is not None:
            sink.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        owned.release()
        if isinstance(exc, OSError) and not isinstance(exc, MmtokError):
            raise StoreError(f"{path}: writing the store failed, nothing was left there "
                             f"({os_error_reason(exc)})") from None
        raise
    owned.release()
    return Store(path)


def sample_documents(view, index: np.ndarray, *, dtype, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, ends)``: samples ``index`` of ``view`` as consecutive documents, and their end offsets.

    Each document is the sample's tokens plus eos when they do not end with it;
    gathered as one padded batch (padded with eos, so the appended eos is
    already in place) and flattened with a mask, without a loop per sample.
    """
    batch, lengths = view.get_batch(index, dtype=dtype, pad_id=eos_id, return_lengths=True)
    rows = np.arange(index.shape[0])
    # Every sample holds at least one token (a document has its eos; block_size >= 1).
    doc_lengths = lengths + (batch[rows, lengths - 1] != eos_id)
    width = batch.shape[1]
    padded = np.full((index.shape[0], width + 1), eos_id, dtype=dtype)
    padded[:, :width] = batch
    tokens = padded[np.arange(width + 1) < doc_lengths[:, None]]
    return tokens, np.cumsum(doc_lengths)


def describe(ds) -> dict:
    """What a dataset is made of, as plain JSON values: source stores (path, fingerprint, snapshot) and parameters."""
    if isinstance(ds, TokenDataset):
        store = ds.store
        return {"kind": "store", "path": os.path.abspath(store.path), "fingerprint": store.fingerprint,
                "shards": len(store.shards), "num_tokens": store.num_tokens, "num_documents": store.num_documents,
                "block_size": ds.block_size, "stride": ds.stride, "line_by_line": ds.line_by_line, "samples": len(ds)}
    return {"kind": ds.kind, **ds.settings(), "samples": len(ds), "inputs": [describe(d) for d in ds.inputs]}


def _check_destination(path: str) -> None:
    if os.path.isdir(path) and not os.listdir(path):
        return
    if os.path.lexists(path):
        raise StoreExistsError(f"{path}: already exists; materialising writes a new store: choose another path "
                               "or remove it first")
