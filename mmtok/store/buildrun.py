"""One build run between two manifests: encode chunks into shards, journal progress, commit the manifest.

:func:`mmtok.store.build.build` checks the request and prepares the folder;
:class:`BuildRun` does the work, resuming from the build journal when one
matches (FORMAT.md, "Commit protocol").
"""

from __future__ import annotations

import hashlib
import os
import time

from ..base.constants import (
    DEFAULT_COMMIT_BYTES,
    DEFAULT_COMMIT_SECONDS,
    FORMAT_NAME,
    FORMAT_VERSION,
    TOKENIZER_FILE,
)
from ..base.faults import fault_point
from ..base.version import __version__
from ..inputs.readers import iter_chunks
from .history import (
    request_sha256,
)
from .manifest import (
    JOURNAL_FORMAT,
    atomic_write_bytes,
    manifest_sha256,
    read_journal,
    remove_journal,
    write_journal,
    write_manifest,
)
from .pipeline import encode_chunk, ordered_map, prefetched
from .writer import ShardSink, remove_unnamed_files


def tokenizer_entry(tok, tokenizer_json: bytes) -> dict:
    """The manifest's ``tokenizer`` field for ``tok``, whose tokenizer.json bytes are ``tokenizer_json``."""
    return {
        "name": tok.name, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size,
        "eos_token": tok.eos_token, "allow_special": tok.allow_special, "file": TOKENIZER_FILE,
        "file_sha256": hashlib.sha256(tokenizer_json).hexdigest(),
    }


class BuildRun:
    """One build (fresh, resumed or appending) between two manifests."""

    def __init__(self, path, base, request, tok, sources, chunk_bytes, shard_tokens, *, again=False):
        self.path, self.base, self.request, self.tok, self.again = path, base, request, tok, again
        self.sources, self.chunk_bytes, self.shard_tokens = sources, chunk_bytes, shard_tokens
        self.base_sha = manifest_sha256(path)
        base_shards = base["shards"] if base else []
        self.token_offset = base["num_tokens"] if base else 0
        self.doc_offset = base["num_documents"] if base else 0
        self.commit_every = (DEFAULT_COMMIT_SECONDS, DEFAULT_COMMIT_BYTES)
        journal = read_journal(path)
        if journal and not self._resumable(journal):
            remove_journal(path)
            journal = None
        if journal is None or not self._start(base_shards, journal):
            self._start(base_shards, None)

    def _start(self, base_shards: list, journal: dict | None) -> bool:
        """Continue from ``journal`` (or from scratch for None); False if its open shard's files do not hold it."""
        self.pending = journal["shards"] if journal else []
        self._hashing: list = []  # (index in pending, Future of its checksummed entry)
        self.progress = journal["progress"] if journal else [
            {"position": None, "complete": False, "documents": 0, "tokens": 0} for _ in self.sources]
        open_shard = journal.get("open_shard") if journal else None
        remove_unnamed_files(self.path, {s["name"] for s in base_shards + self.pending},
                             keep_open=open_shard["name"] if open_shard else None)
        committed = sum(s["tokens"] for s in self.pending)
        self.sink = ShardSink(self.path, dtype=self.tok.dtype.str, next_index=len(base_shards) + len(self.pending),
                              token_offset=self.token_offset + committed)
        # a journal names closed shards before their checksums are known (see _close_shard)
        self.pending = [self.sink.checksummed(entry) for entry in self.pending]
        if open_shard:
            try:
                self.sink.reopen(open_shard)
            except (OSError, ValueError):
                remove_journal(self.path)  # its checkpoint did not survive: start afresh
                return False
        return True

    def _resumable(self, journal: dict) -> bool:
        return (
            journal.get("base_manifest_sha256") == self.base_sha
            and journal.get("request") == self.request
            and all(source.kind != "texts" and not source.stream for source in self.sources)
        )

    def _chunks(self):
        """(source index, chunk, is last of its source), resuming each source where it stopped."""
        for index, (source, state) in enumerate(zip(self.sources, self.progress)):
            if state["complete"]:
                continue
            chunks = iter_chunks(source, start=state["position"], chunk_bytes=self.chunk_bytes,
                                 cut_rules=self.tok.cut_rules, lazy=True, joint=self.tok.eos_token)
            previous = next(chunks, None)
            if previous is None:
                state["complete"] = True  # resumed exactly at its end
                continue
            for chunk in chunks:
                yield index, previous, False
                previous = chunk
            yield index, previous, True

    def execute(self, workers: int, progress) -> None:
        chunks = self._chunks()
        if workers > 1 and all(source.kind != "texts" for source in self.sources):
            # Files are read and cut on a thread of their own; a caller's iterable of texts is
            # consumed on the caller's thread (it may be bound to it, as sqlite3 cursors are).
            chunks = prefetched(chunks, depth=2)
        try:
            self._encode_all(chunks, workers, progress)
        except BaseException:
            self.sink.abort()
            raise
        finally:
            chunks.close()  # stops the reading thread and closes the input at once, also on errors
        try:
            self._commit_manifest()  # waits for the last checksums after writing what it can meanwhile
        finally:
            self.sink.shutdown()

    def _encode_all(self, chunks, workers: int, progress) -> None:
        """Encode every chunk on ``workers`` threads and write the tokens in order, journaling progress."""
        encode = lambda item: encode_chunk(self.tok, *item[1].take())  # noqa: E731
        seconds, nbytes = self.commit_every
        last_commit, since_commit = time.monotonic(), 0
        for (index, chunk, last), (tokens, doc_ends) in ordered_map(encode, chunks, workers=workers):
            self.sink.write(tokens, doc_ends)
            fault_point("chunk-written")
            state = self.progress[index]
            state["position"], state["complete"] = chunk.position, last
            state["tokens"] += int(tokens.shape[0])
            state["documents"] += int(doc_ends.shape[0])
            if progress is not None:
                progress.update(index, chunk, int(tokens.shape[0]))
            since_commit += chunk.nbytes
            if self.sink.open_tokens >= self.shard_tokens:
                self._close_shard()
                self._commit_journal(None)
            elif since_commit >= nbytes or time.monotonic() - last_commit >= seconds:
                self._commit_journal(self.sink.checkpoint())  # mid-shard: the open shard continues on resume
            else:
                continue
            last_commit, since_commit = time.monotonic(), 0
        if self.sink.open_tokens:
            self._close_shard()

    def _close_shard(self) -> None:
        """Close the open shard; its checksums are computed while the next shard is encoded.

        The journal names it at once without them (its files are final and
        durable); a resumed build reads them back for the checksums it lacks."""
        entry, future = self.sink.close_shard_later()
        self.pending.append(entry)
        self._hashing.append((len(self.pending) - 1, future))

    def _collect_checksums(self, *, wait: bool) -> None:
        """Put finished checksums into their pending entries (all of them, waiting, if ``wait``)."""
        still = []
        for index, future in self._hashing:
            if wait or future.done():
                self.pending[index] = future.result()
            else:
                still.append((index, future))
        self._hashing = still

    def _commit_journal(self, open_shard: dict | None) -> None:
        self._collect_checksums(wait=False)
        write_journal(self.path, {
            "format": JOURNAL_FORMAT,
            "version": FORMAT_VERSION,
            "base_manifest_sha256": self.base_sha,
            "request": self.request,
            "shards": self.pending,
            "open_shard": open_shard,
            "progress": self.progress,
        })

    def _commit_manifest(self) -> None:
        tok, base = self.tok, self.base
        tokenizer_json = tok.to_json().encode("utf-8")
        if base is None:
            atomic_write_bytes(os.path.join(self.path, TOKENIZER_FILE), tokenizer_json, step="tokenizer")
        self._collect_checksums(wait=True)  # the last shard's, hashed meanwhile
        inputs = list(base["inputs"]) if base else []
        history = list(base.get("history", [])) if base else []
        history.append({"request_sha256": request_sha256(self.request), "inputs": [len(inputs), len(inputs) + len(self.sources)],
                        "again": self.again, "shard_tokens": self.shard_tokens, "chunk_bytes": self.chunk_bytes})
        first_token, first_doc = self.token_offset, self.doc_offset
        for source, state in zip(self.sources, self.progress):
            inputs.append({**source.identity(), "position": state["position"], "first_token": first_token,
                           "first_document": first_doc, "tokens": state["tokens"], "documents": state["documents"]})
            first_token += state["tokens"]
            first_doc += state["documents"]
        shards = (base["shards"] if base else []) + self.pending
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_by": f"mmtok {__version__}",
            "tokenizer": base["tokenizer"] if base else tokenizer_entry(tok, tokenizer_json),
            "dtype": tok.dtype.str,
            "eos_id": tok.eos_id,
            "num_tokens": sum(s["tokens"] for s in shards),
            "num_documents": sum(s["documents"] for s in shards),
            "shards": shards,
            "inputs": inputs,
            "history": history,
            "build": {"shard_tokens": self.shard_tokens, "chunk_bytes": self.chunk_bytes, "engine": tok.engine},
        }
        write_manifest(self.path, manifest)
        remove_journal(self.path)
        fault_point("journal-removed")

    def rollback(self) -> None:
        """Forget this build: its journal and every shard file the manifest does not name."""
        remove_journal(self.path)
        remove_unnamed_files(self.path, {s["name"] for s in (self.base["shards"] if self.base else [])})
