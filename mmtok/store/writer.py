"""Writing shards: stream tokens into temporary files, then close them into named shards.

A shard becomes real only when a manifest (or, during a build, the journal)
names it; until then its files live under temporary names and are removed by
the next build as leftovers.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor

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
from ..base.faults import fault_point
from .manifest import JOURNAL_FILE, MANIFEST_FILE, fsync_dir
from .npyfile import NpyStreamWriter, fd_sha256, own_file_sha256


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
        self._hasher: ThreadPoolExecutor | None = None

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

    def checkpoint(self) -> dict | None:
        """Sync the shard being filled and describe it for the journal (None when no shard is open).

        A resumed build reopens it with :meth:`reopen` and goes on filling it, so
        shards are cut where an uninterrupted build cuts them.
        """
        if self._tokens is None:
            return None
        self._tokens.sync()
        self._docs.sync()
        return {"name": shard_name(self.next_index), "tokens": self._tokens.length, "documents": self._docs.length}

    def reopen(self, entry: dict) -> None:
        """Continue the shard a journal's checkpoint named (ValueError/OSError if its files do not hold it)."""
        if entry["name"] != shard_name(self.next_index):
            raise ValueError(f"the journal's open shard {entry['name']} is not the next one")
        base = os.path.join(self.folder, TEMP_PREFIX + entry["name"])
        self._tokens = NpyStreamWriter.reopen(base + TOKENS_SUFFIX, self.dtype, entry["tokens"])
        try:
            self._docs = NpyStreamWriter.reopen(base + DOCS_SUFFIX, DOCS_DTYPE, entry["documents"])
        except BaseException:
            self._tokens._file.close()
            self._tokens = None
            raise
        self.token_offset += entry["tokens"]

    def close_shard(self) -> dict:
        """Finish the open shard durably under its final name and return its manifest entry."""
        return _entry(*self._finish_shard())

    def close_shard_later(self) -> tuple[dict, Future]:
        """Like :meth:`close_shard`, but the checksums are computed on a helper thread.

        Returns the entry without its checksums (name and counts: the files are
        final and durable when this returns, so a journal may name them) and a
        Future of the whole entry. Reading the files back for their sha256
        starts as soon as their bytes are final, so it overlaps with waiting
        for the disk (fsync) and then with whatever the caller does next (encoding).
        """
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmtok-sha256")
        entry = {"name": shard_name(self.next_index), "tokens": self._tokens.length, "documents": self._docs.length}
        hashed: list[Future] = []
        self._finish_shard(lambda tokens_fd, docs_fd: hashed.append(
            self._hasher.submit(_sealed_entry, entry, tokens_fd, docs_fd)))
        return entry, hashed[0]

    def checksummed(self, entry: dict) -> dict:
        """``entry`` with its checksums, read from its (final) files if a journal recorded it without them."""
        if "tokens_sha256" in entry and "docs_sha256" in entry:
            return entry
        return _entry(entry["name"], os.path.join(self.folder, entry["name"]), entry["tokens"], entry["documents"])

    def _finish_shard(self, hash_sealed=None) -> tuple[str, str, int, int]:
        """Close the open shard's files durably under their final names.

        ``hash_sealed(tokens_fd, docs_fd)``, if given, receives descriptors of
        both files (its to close) once their bytes are final, before the fsyncs.
        """
        name = shard_name(self.next_index)
        tokens, docs = self._tokens, self._docs
        if hash_sealed is None:
            tokens.finish()
            docs.finish()
        else:
            tokens_fd = tokens.seal()
            try:
                docs_fd = docs.seal()
            except BaseException:
                os.close(tokens_fd)
                raise
            hash_sealed(tokens_fd, docs_fd)
            tokens.sync_and_close()
            docs.sync_and_close()
        fault_point("shard-synced")
        final = os.path.join(self.folder, name)
        os.replace(tokens.path, final + TOKENS_SUFFIX)
        os.replace(docs.path, final + DOCS_SUFFIX)
        fault_point("shard-renamed")
        fsync_dir(self.folder)
        self._tokens = self._docs = None
        self.next_index += 1
        return name, final, tokens.length, docs.length

    def shutdown(self) -> None:
        """Wait for the checksums still being computed and stop the helper thread."""
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None

    def abort(self) -> None:
        """Drop the shard being filled (its temporary files)."""
        for writer in (self._tokens, self._docs):
            if writer is not None:
                writer.abort()
        self._tokens = self._docs = None
        self.shutdown()


def _entry(name: str, final: str, tokens: int, documents: int) -> dict:
    """A closed shard's manifest entry: its counts and the sha256 of both files."""
    return {
        "name": name,
        "tokens": tokens,
        "documents": documents,
        "tokens_sha256": own_file_sha256(final + TOKENS_SUFFIX),
        "docs_sha256": own_file_sha256(final + DOCS_SUFFIX),
    }


def _sealed_entry(entry: dict, tokens_fd: int, docs_fd: int) -> dict:
    """``entry`` with the sha256 of the shard's two files, read from descriptors of them (closed here)."""
    try:
        return {**entry, "tokens_sha256": fd_sha256(tokens_fd), "docs_sha256": fd_sha256(docs_fd)}
    finally:
        os.close(tokens_fd)
        os.close(docs_fd)


def remove_unnamed_files(store: str, keep_shards: set[str], keep_open: str | None = None) -> None:
    """Delete leftovers of interrupted builds: shard files no manifest or journal names, temp files.

    ``keep_open`` names the shard a journal checkpointed while it was being
    filled: its temporary files are kept for the build to continue.
    """
    folder = os.path.join(store, SHARDS_DIR)
    kept_temp = {TEMP_PREFIX + keep_open + TOKENS_SUFFIX, TEMP_PREFIX + keep_open + DOCS_SUFFIX} if keep_open else set()
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            stem = entry.split(".", 1)[0]
            if entry in kept_temp:
                continue
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
