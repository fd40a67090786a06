"""Writing an imported token stream as a store: shards in a temporary folder, renamed into place last.

:class:`StoreWriter` receives documents as ``(tokens, ends)`` runs, checks every
id against the tokenizer's vocabulary, appends the eos id to a document that
lacks it (counted, so the import summary can say so), cuts shards, and writes
``tokenizer.json`` and the manifest (the commit point) before the folder is
renamed into place. Any failure removes the temporary folder: nothing is left.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from ..base.constants import DEFAULT_SHARD_TOKENS, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, TOKENIZER_FILE
from ..base.errors import FormatError, StoreError
from ..base.version import __version__
from ..store.manifest import check_manifest, encode_json
from ..store.writer import ShardSink
from .output import TempDir, refuse_existing, synced_write


class StoreWriter:
    """Build a store at ``destination`` from documents; ``commit()`` names it, ``abort()`` drops it."""

    def __init__(self, destination, tokenizer, *, source: str, kind: str, shard_tokens: int = DEFAULT_SHARD_TOKENS,
                 force: bool = False):
        if type(shard_tokens) is not int or shard_tokens < 1:
            raise ValueError("shard_tokens must be a positive integer")
        self.destination = os.path.abspath(os.fspath(destination))
        refuse_existing([self.destination], force)
        self.tok = tokenizer
        self.source, self.kind, self.shard_tokens = source, kind, shard_tokens
        self.dtype = tokenizer.dtype
        self.folder = TempDir(self.destination, force=force)
        self.sink = ShardSink(self.folder.tmp, dtype=self.dtype.str, next_index=0, token_offset=0)
        self.shards: list[dict] = []
        self.tokens = self.documents = self.eos_appended = 0
        self._open = False  # tokens were written after the last document end
        self._last_token = -1

    def check_ids(self, ids: np.ndarray, where: str) -> None:
        """A FormatError if any id is negative or not below the vocabulary size."""
        if not ids.shape[0]:
            return
        top, low = int(ids.max()), int(ids.min())
        if low < 0:
            raise FormatError(f"{where}: token id {low} is negative (damaged file, or the wrong --dtype)")
        if top >= self.tok.vocab_size:
            raise FormatError(f"{where}: token id {top} is not below the vocabulary size {self.tok.vocab_size} of "
                              f"{self.tok.name}; pass the tokenizer the data was made with (--tokenizer)")

    def write(self, tokens: np.ndarray, ends, where: str) -> None:
        """Append ``tokens``; ``ends`` are the run-relative ends of the documents completed in it (the
        first may be 0: the open document ended with the previous run). A document whose last token is
        not eos (or that is empty) gets one appended. Tokens after the last end stay open."""
        self.check_ids(tokens, where)
        tokens = tokens.astype(self.dtype, copy=False)
        ends = np.asarray(ends, dtype=np.int64)
        if ends.shape[0]:
            starts = np.concatenate([[0], ends[:-1]])
            missing = np.ones(ends.shape[0], dtype=bool)
            inside = ends > starts  # non-empty within this run
            missing[inside] = tokens[ends[inside] - 1] != self.tok.eos_id
            if self._open and ends[0] == 0:
                missing[0] = self._last_token != self.tok.eos_id
            if missing.any():
                self.eos_appended += int(missing.sum())
                tokens = np.insert(tokens, ends[missing], self.tok.eos_id)
                ends = ends + np.cumsum(missing)
            self.documents += ends.shape[0]
            tail = tokens.shape[0] > int(ends[-1])
        else:
            tail = self._open or tokens.shape[0] > 0
        if tokens.shape[0]:
            self._last_token = int(tokens[-1])
        self._open = tail
        self._emit(tokens, ends)

    def _emit(self, tokens: np.ndarray, ends: np.ndarray) -> None:
        # A full shard is closed lazily, before the next token, so an end that falls exactly on a
        # shard boundary is recorded in the shard that holds its eos.
        n, lo, k = tokens.shape[0], 0, 0
        if not n and not ends.shape[0]:
            return
        while True:
            if self.sink.open_tokens >= self.shard_tokens and lo < n:
                self.shards.append(self.sink.close_shard())
            hi = min(n, lo + self.shard_tokens - self.sink.open_tokens)
            j = int(np.searchsorted(ends, hi, side="right"))
            self.sink.write(tokens[lo:hi], ends[k:j] - lo)
            self.tokens += hi - lo
            k, lo = j, hi
            if lo >= n:
                break

    def close_document(self, where: str) -> None:
        """End the open document (tokens written since the last end), appending eos if it lacks one."""
        if self._open:
            self.write(np.empty(0, dtype=self.dtype), np.zeros(1, dtype=np.int64), where)

    def commit(self, details: dict | None = None):
        """Close the last shard, write tokenizer.json and the manifest, and rename the folder into place."""
        from ..store.store import Store

        if self._open:
            raise FormatError(f"{self.source}: the last document has no end (internal: close_document first)")
        if self.sink.open_tokens:
            self.shards.append(self.sink.close_shard())
        tok = self.tok
        tokenizer_json = tok.to_json().encode("utf-8")
        synced_write(self.folder.file(TOKENIZER_FILE), tokenizer_json)
        manifest = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "created_by": f"mmtok {__version__}",
            "tokenizer": {
                "name": tok.name, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size,
                "eos_token": tok.eos_token, "allow_special": tok.allow_special, "file": TOKENIZER_FILE,
                "file_sha256": hashlib.sha256(tokenizer_json).hexdigest(),
            },
            "dtype": self.dtype.str, "eos_id": tok.eos_id,
            "num_tokens": self.tokens, "num_documents": self.documents, "shards": self.shards,
            "inputs": [{
                "path": os.path.abspath(self.source), "kind": self.kind, "compression": None,
                "line_by_line": True, "column": None, "field": None, "header": None, "position": None,
                "first_token": 0, "first_document": 0, "tokens": self.tokens, "documents": self.documents,
                "eos_appended": self.eos_appended, **(details or {}),
            }],
            "build": {"shard_tokens": self.shard_tokens},
        }
        check_manifest(manifest, MANIFEST_FILE)
        synced_write(self.folder.file(MANIFEST_FILE), encode_json(manifest))
        try:
            self.folder.commit()
        except OSError as exc:
            raise StoreError(f"{self.destination}: cannot put the store there ({exc.strerror})") from None
        return Store(self.destination)

    def abort(self) -> None:
        self.sink.abort()
        self.folder.abort()
