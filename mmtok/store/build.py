"""Building and appending to a store: inputs -> tokenizer -> shards -> journal -> manifest.

Commit protocol: shards are closed under their final names, then the build
journal names them together with where every input stopped (so a killed build
resumes there), and only the last step replaces the manifest, the store's one
commit point for readers. Bad input rolls the store back to exactly what it was.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from typing import Iterable

from ..base.constants import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_COMMIT_BYTES,
    DEFAULT_COMMIT_SECONDS,
    DEFAULT_SHARD_TOKENS,
    FORMAT_NAME,
    FORMAT_VERSION,
    TOKENIZER_FILE,
)
from ..base.errors import (
    InputError,
    MmtokError,
    StoreError,
    TokenizerError,
)
from ..base.faults import fault_point
from ..base.version import __version__
from ..inputs.cachesniff import refuse_cache_file
from ..inputs.options import check_options_apply
from ..inputs.readers import iter_chunks
from ..inputs.sources import Source, resolve_source, texts_source
from .appendmode import check_appendable, check_same_mode
from .folder import locked, prepare_folder
from .history import forget_stale_journal, recorded_request, request_sha256, write_failure
from .manifest import (
    JOURNAL_FORMAT,
    atomic_write_bytes,
    manifest_sha256,
    read_journal,
    read_manifest,
    remove_journal,
    write_journal,
    write_manifest,
)
from .pipeline import default_workers, encode_chunk, ordered_map
from .store import Store
from .writer import ShardSink, remove_store_files, remove_unnamed_files


def build(
    inputs=None,
    path=None,
    *,
    texts: Iterable[str] | None = None,
    tokenizer=None,
    eos_token: str | None = None,
    line_by_line: bool | None = None,
    column: str | int | None = None,
    field: str = "text",
    header: bool = True,
    append: bool = False,
    again: bool = False,
    on_note=None,
    workers: int | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    engine: str = "auto",
    progress=None,
    commit_seconds: float = DEFAULT_COMMIT_SECONDS,
    commit_bytes: int = DEFAULT_COMMIT_BYTES,
) -> Store:
    """Tokenize ``inputs`` (a path or list of paths) and/or ``texts`` into the store at ``path``.

    Rerunning an interrupted build with the same arguments resumes it; rerunning
    a finished one returns the store untouched. ``append=True`` adds the inputs
    to an existing store made with the same tokenizer. The journal is committed
    when a shard closes and also after ``commit_seconds`` of work or
    ``commit_bytes`` of input text since the last commit, so a killed build
    loses at most about that much; the finished bytes never depend on it.
    to an existing store made with the same tokenizer; an append whose request
    (the same input files, unchanged, and settings) the store's history already
    records is a no-op that says so through ``on_note(message)`` (default: a
    warning), unless ``again=True`` asks to append the same inputs once more.
    A full disk raises :class:`StoreError`; the store stays at its last commit
    and a rerun resumes once space is freed.
    """
    from ..tokenize.tokenizer import load_tokenizer

    if path is None:
        raise TypeError("build() needs the output store path: build(inputs, path)")
    if shard_tokens < 1 or chunk_bytes < 1:
        raise ValueError("shard_tokens and chunk_bytes must be positive")
    path = os.fspath(path)
    sources = _sources(inputs, texts, line_by_line=line_by_line, column=column, field=field, header=header)
    tok = load_tokenizer(tokenizer, eos_token=eos_token, engine=engine)
    request = {
        "tokenizer": tok.fingerprint,
        "eos_id": tok.eos_id,
        "allow_special": tok.allow_special,
        "dtype": tok.dtype.str,
        "inputs": [source.identity() for source in sources],
        "shard_tokens": shard_tokens,
        "chunk_bytes": chunk_bytes,
    }
    created = prepare_folder(path)
    with locked(path):
        base = read_manifest(path) if os.path.exists(os.path.join(path, "manifest.json")) else None
        if base is not None:
            if not append and _same_inputs(base, request):
                remove_journal(path)
                return Store(path)
            check_appendable(path, base, tok, append)
            check_same_mode(path, base, sources)
            done = None if again else recorded_request(base, request)
            if done is not None:
                forget_stale_journal(path, base)
                names = ", ".join(str(entry["path"]) for entry in request["inputs"])
                note = (f"{path}: nothing appended: the store already holds {names} (unchanged, same settings; "
                        f"its inputs {done['inputs'][0]}..{done['inputs'][1] - 1}); "
                        "use --again (again=True) to append the same inputs once more")
                (on_note or (lambda text: warnings.warn(text, stacklevel=3)))(note)
                return Store(path)
        run = _BuildRun(path, base, request, tok, sources, chunk_bytes, shard_tokens, again=again)
        run.commit_every = (commit_seconds, commit_bytes)
        try:
            run.execute(workers or default_workers(), progress)
        except (InputError, TokenizerError):
            # Bad data fails the same way every time: undo everything this build wrote.
            run.rollback()
            if base is None:
                remove_store_files(path, remove_folder=created)
            raise
        except OSError as exc:
            if isinstance(exc, MmtokError):
                raise
            raise StoreError(write_failure(path, exc)) from None
        return Store(path)


def _sources(inputs, texts, **options) -> list[Source]:
    if inputs is None:
        paths = []
    elif isinstance(inputs, (str, os.PathLike, Source)):
        paths = [inputs]
    else:
        paths = list(inputs)
    sources = [item if isinstance(item, Source) else resolve_source(item, **options) for item in paths]
    files = [source for item, source in zip(paths, sources) if not isinstance(item, Source)]
    if files:
        field = None if options["field"] == "text" else options["field"]  # the default counts as not given
        check_options_apply(files, column=options["column"], field=field, header=options["header"])
    for source in sources:
        if source.kind == "txt" and source.path is not None:
            refuse_cache_file(source)
    if texts is not None:
        sources.append(texts_source(texts))
    if not sources:
        raise InputError("nothing to build: give at least one input file or texts")
    return sources


def _same_inputs(base: dict, request: dict) -> bool:
    """True when the store already holds exactly the requested inputs, built with this tokenizer."""
    done, wanted = base["inputs"], request["inputs"]
    return (
        base["tokenizer"]["fingerprint"] == request["tokenizer"]
        and base["tokenizer"]["allow_special"] == request["allow_special"]
        and len(done) == len(wanted)
        and all(w["kind"] != "texts" and {k: d.get(k) for k in w} == w for d, w in zip(done, wanted))
    )


def tokenizer_entry(tok, tokenizer_json: bytes) -> dict:
    """The manifest's ``tokenizer`` field for ``tok``, whose tokenizer.json bytes are ``tokenizer_json``."""
    return {
        "name": tok.name, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size,
        "eos_token": tok.eos_token, "allow_special": tok.allow_special, "file": TOKENIZER_FILE,
        "file_sha256": hashlib.sha256(tokenizer_json).hexdigest(),
    }


class _BuildRun:
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
        self.progress = journal["progress"] if journal else [
            {"position": None, "complete": False, "documents": 0, "tokens": 0} for _ in self.sources]
        open_shard = journal.get("open_shard") if journal else None
        remove_unnamed_files(self.path, {s["name"] for s in base_shards + self.pending},
                             keep_open=open_shard["name"] if open_shard else None)
        committed = sum(s["tokens"] for s in self.pending)
        self.sink = ShardSink(self.path, dtype=self.tok.dtype.str, next_index=len(base_shards) + len(self.pending),
                              token_offset=self.token_offset + committed)
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
            and all(source.kind != "texts" for source in self.sources)
        )

    def _chunks(self):
        """(source index, chunk, is last of its source), resuming each source where it stopped."""
        for index, (source, state) in enumerate(zip(self.sources, self.progress)):
            if state["complete"]:
                continue
            chunks = iter_chunks(source, start=state["position"], chunk_bytes=self.chunk_bytes, cut_rules=self.tok.cut_rules)
            previous = next(chunks, None)
            if previous is None:
                state["complete"] = True  # resumed exactly at its end
                continue
            for chunk in chunks:
                yield index, previous, False
                previous = chunk
            yield index, previous, True

    def execute(self, workers: int, progress) -> None:
        encode = lambda item: encode_chunk(self.tok, item[1].texts, item[1].ends)  # noqa: E731
        seconds, nbytes = self.commit_every
        last_commit, since_commit = time.monotonic(), 0
        try:
            for (index, chunk, last), (tokens, doc_ends) in ordered_map(encode, self._chunks(), workers=workers):
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
                    self.pending.append(self.sink.close_shard())
                    self._commit_journal(None)
                elif since_commit >= nbytes or time.monotonic() - last_commit >= seconds:
                    self._commit_journal(self.sink.checkpoint())  # mid-shard: the open shard continues on resume
                else:
                    continue
                last_commit, since_commit = time.monotonic(), 0
            if self.sink.open_tokens:
                self.pending.append(self.sink.close_shard())
        except BaseException:
            self.sink.abort()
            raise
        self._commit_manifest()

    def _commit_journal(self, open_shard: dict | None) -> None:
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
            "build": {"shard_tokens": self.shard_tokens, "chunk_bytes": self.chunk_bytes},
        }
        write_manifest(self.path, manifest)
        remove_journal(self.path)
        fault_point("journal-removed")

    def rollback(self) -> None:
        """Forget this build: its journal and every shard file the manifest does not name."""
        remove_journal(self.path)
        remove_unnamed_files(self.path, {s["name"] for s in (self.base["shards"] if self.base else [])})
