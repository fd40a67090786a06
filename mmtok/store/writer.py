"""Writing shards: stream tokens into temporary files, then close them into named shards.

A shard becomes real only when a manifest (or, during a build, the journal)
names it; until then its files live under temporary names and are removed by
the next build as leftovers.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from ..base.constants import (
    DOCS_DTYPE,
    DOCS_SUFFIX,
    PARTITIONS_DIR,
    SHARD_NAME_DIGITS,
    SHARDS_DIR,
    TEMP_PREFIX,
    TOKENIZER_FILE,
    TOKENS_SUFFIX,
)
from .manifest import JOURNAL_FILE, MANIFEST_FILE, fsync_dir
from .npyfile import NpyStreamWriter


def shard_name(index: int) -> str:
    return str(index).zfill(SHARD_NAME_DIGITS)


class ShardSink:
    """Receives the token stream in chunk order and cuts it into shards.

    ``token_offset`` is the position of the next token in the whole stream, so
    document end offsets are stored globally, as the format requires.
    """

    def __init__(self, store: str, *, dtype: str, next_index: int, token_offset: int):
        self.folder = os.path.join(store, SHARDS_DIR)
        os.makedirs(self.folder, exist_ok=True)
        self.dtype = dtype
        self.next_index = next_index
        self.token_offset = token_offset
        self._tokens: NpyStreamWriter | None = None
        self._docs: NpyStreamWriter | None = None

    @property
    def open_tokens(self) -> int:
        """Tokens written to the shard being filled."""
        return self._tokens.length if self._tokens else 0

    def write(self, tokens: np.ndarray, doc_ends: np.ndarray) -> None:
        """Append a chunk: its tokens and the chunk-relative end offsets of the documents it completes."""
        if self._tokens is None:
            base = os.path.join(self.folder, TEMP_PREFIX + shard_name(self.next_index))
            self._tokens = NpyStreamWriter(base + TOKENS_SUFFIX, self.dtype)
            self._docs = NpyStreamWriter(base + DOCS_SUFFIX, DOCS_DTYPE)
        self._tokens.write(tokens)
        self._docs.write(doc_ends.astype(np.int64) + self.token_offset)
        self.token_offset += tokens.shape[0]

    def close_shard(self) -> dict:
        """Finish the open shard durably under its final name and return its manifest entry."""
        name = shard_name(self.next_index)
        tokens, docs = self._tokens, self._docs
        entry = {
            "name": name,
            "tokens": tokens.length,
            "documents": docs.length,
            "tokens_sha256": tokens.close(),
            "docs_sha256": docs.close(),
        }
        final = os.path.join(self.folder, name)
        os.replace(tokens.path, final + TOKENS_SUFFIX)
        os.replace(docs.path, final + DOCS_SUFFIX)
        fsync_dir(self.folder)
        self._tokens = self._docs = None
        self.next_index += 1
        return entry

    def abort(self) -> None:
        """Drop the shard being filled (its temporary files)."""
        for writer in (self._tokens, self._docs):
            if writer is not None:
                writer.abort()
        self._tokens = self._docs = None


def remove_unnamed_files(store: str, keep_shards: set[str]) -> None:
    """Delete leftovers of interrupted builds: shard files no manifest or journal names, temp files."""
    folder = os.path.join(store, SHARDS_DIR)
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            stem = entry.split(".", 1)[0]
            if entry.startswith(TEMP_PREFIX) or stem not in keep_shards:
                os.unlink(os.path.join(folder, entry))
    for entry in os.listdir(store):
        if entry.startswith(TEMP_PREFIX):
            os.unlink(os.path.join(store, entry))


def is_store_folder(path: str) -> bool:
    """True when every entry of ``path`` is something mmtok writes (so it is safe to clean)."""
    ours = {MANIFEST_FILE, JOURNAL_FILE, TOKENIZER_FILE, SHARDS_DIR, PARTITIONS_DIR}
    return all(entry in ours or entry.startswith(TEMP_PREFIX) for entry in os.listdir(path))


def remove_store_files(path: str, *, remove_folder: bool) -> None:
    """Undo a store that a failed build created: only mmtok's own files go."""
    shutil.rmtree(os.path.join(path, SHARDS_DIR), ignore_errors=True)
    for entry in os.listdir(path):
        if entry in (MANIFEST_FILE, JOURNAL_FILE, TOKENIZER_FILE) or entry.startswith(TEMP_PREFIX):
            os.unlink(os.path.join(path, entry))
    if remove_folder:
        os.rmdir(path)
