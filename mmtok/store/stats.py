"""What a store holds, as numbers: the figures behind `mmtok info`."""

from __future__ import annotations

import os

import numpy as np

from ..base.constants import JOURNAL_FILE
from .store import Store


def folder_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def length_stats(lengths: np.ndarray) -> dict:
    """Summary of document lengths in tokens (eos included)."""
    if lengths.shape[0] == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    return {
        "count": int(lengths.shape[0]),
        "min": int(lengths.min()),
        "median": float(p50),
        "mean": float(lengths.mean()),
        "p90": float(p90),
        "p99": float(p99),
        "max": int(lengths.max()),
    }


def store_info(store: Store) -> dict:
    """A JSON-able description of a store (what `mmtok info --json` prints)."""
    manifest = store.manifest
    tok = manifest["tokenizer"]
    return {
        "path": store.path,
        "format": f"{manifest['format']} v{manifest['version']}",
        "tokens": store.num_tokens,
        "documents": store.num_documents,
        "dtype": store.dtype.name,
        "eos_id": store.eos_id,
        "tokenizer": {"name": tok.get("name"), "fingerprint": tok["fingerprint"], "vocab_size": tok["vocab_size"]},
        "engine": manifest.get("build", {}).get("engine"),
        "shards": len(store.shards),
        "bytes": folder_bytes(store.path) if store.remote is None else store.remote.total_size(),
        "line_by_line": store.line_by_line,
        "inputs": [
            {"path": entry.get("path") or entry.get("kind"), "kind": entry.get("kind"),
             "tokens": entry.get("tokens"), "documents": entry.get("documents"),
             **({"view": entry["view"]} if entry.get("view") else {})}
            for entry in manifest["inputs"]
        ],
        "document_length": length_stats(_lengths(store)),
        "interrupted_build": store.remote is None and os.path.exists(os.path.join(store.path, JOURNAL_FILE)),
    }


def _lengths(store: Store) -> np.ndarray:
    if store.remote is None:
        return store.documents.lengths()
    ends = [store.unchecked_doc_ends(i) for i in range(len(store.shards))]  # no token file downloaded
    return np.diff(np.concatenate(ends) if ends else np.empty(0, dtype=np.int64), prepend=0)
