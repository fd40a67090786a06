"""Building and appending to a store: inputs -> tokenizer -> shards -> journal -> manifest.

Commit protocol: shards are closed under their final names, then the build
journal names them together with where every input stopped (so a killed build
resumes there), and only the last step replaces the manifest, the store's one
commit point for readers. Bad input rolls the store back to exactly what it was.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from typing import Iterable

from ..base.constants import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_SHARD_TOKENS,
    FORMAT_NAME,
    FORMAT_VERSION,
    TOKENIZER_FILE,
)
from ..base.errors import (
    InputError,
    StoreError,
    StoreExistsError,
    TokenizerError,
    TokenizerMismatchError,
)
from ..base.version import __version__
from ..inputs.readers import iter_chunks
from ..inputs.sources import Source, resolve_source, texts_source
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
from .writer import ShardSink, is_store_folder, remove_store_files, remove_unnamed_files


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
    csv_field_limit: int | None = None,
    append: bool = False,
    workers: int | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    engine: str = "auto",
    progress=None,
) -> Store:
    """Tokenize ``inputs`` (a path or list of paths) and/or ``texts`` into the store at ``path``.

    Rerunning an interrupted build with the same arguments resumes it; rerunning
    a finished one returns the store untouched. ``append=True`` adds the inputs
    to an existing store made with the same tokenizer.
    """
    from ..tokenize.tokenizer import load_tokenizer

    if path is None:
        raise TypeError("build() needs the output store path: build(inputs, path)")
    if shard_tokens < 1 or chunk_bytes < 1:
        raise ValueError("shard_tokens and chunk_bytes must be positive")
    path = os.fspath(path)
    sources = _sources(inputs, texts, line_by_line=line_by_line, column=column, field=field, header=header,
                       csv_field_limit=csv_field_limit)
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
    created = _prepare_folder(path)
    with _locked(path):
        base = read_manifest(path) if os.path.exists(os.path.join(path, "manifest.json")) else None
        if base is not None:
            if not append and _same_inputs(base, request):
                remove_journal(path)
                return Store(path)
            _check_appendable(path, base, tok, append)
        run = _BuildRun(path, base, request, tok, sources, chunk_bytes, shard_tokens)
        try:
            run.execute(workers or default_workers(), progress)
        except (InputError, TokenizerError):
            # Bad data fails the same way every time: undo everything this build wrote.
            run.rollback()
            if base is None:
                remove_store_files(path, remove_folder=created)
            raise
        return Store(path)


def _sources(inputs, texts, **options) -> list[Source]:
    if inputs is None:
        paths = []
    elif isinstance(inputs, (str, os.PathLike, Source)):
        paths = [inputs]
    else:
        paths = list(inputs)
    sources = [item if isinstance(item, Source) else resolve_source(item, **options) for item in paths]
    streams = [source.path for source in sources if source.stream]
    if len(set(streams)) < len(streams):
        twice = next(s for s in sources if s.stream and streams.count(s.path) > 1)
        raise InputError("is a stream (pipe, FIFO or stdin) given twice; a stream can be read only once",
                         path=twice.display)
    if texts is not None:
        sources.append(texts_source(texts))
    if not sources:
        raise InputError("nothing to build: give at least one input file or texts")
    return sources


def _prepare_folder(path: str) -> bool:
    """Create the store folder if needed; return True if this call created it."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"{path}: exists and is not a folder; choose another output path")
    try:
        os.makedirs(path)
        return True
    except FileExistsError:
        if not is_store_folder(path):
            raise StoreError(f"{path}: folder is not empty and is not an mmtok store; choose another output path") from None
        return False
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the store folder ({exc.strerror})") from None


@contextmanager
def _locked(path: str):
    """One build at a time per store: an exclusive lock on the store folder itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{path}: another build is writing this store; wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _same_inputs(base: dict, request: dict) -> bool:
    """True when the store already holds exactly the requested inputs, built with this tokenizer."""
    done, wanted = base["inputs"], request["inputs"]
    return (
        base["tokenizer"]["fingerprint"] == request["tokenizer"]
        and base["tokenizer"]["allow_special"] == request["allow_special"]
        and len(done) == len(wanted)
        and all(w["kind"] != "texts" and {k: d.get(k) for k in w} == w for d, w in zip(done, wanted))
    )


def _check_appendable(path: str, base: dict, tok, append: bool) -> None:
    if not append:
        raise StoreExistsError(
            f"{path}: a store already exists there with other inputs; use --append (append=True) "
            "to add these inputs to it, or choose another output path"
        )
    if (base["tokenizer"]["fingerprint"], base["eos_id"], base["tokenizer"]["allow_special"]) != (
        tok.fingerprint, tok.eos_id, tok.allow_special
    ):
        raise TokenizerMismatchError(
            f"{path}: the store was made with tokenizer {base['tokenizer'].get('name')} "
            f"({base['tokenizer']['fingerprint']}, eos {base['eos_id']}, "
            f"allow_special {base['tokenizer']['allow_special']}), not {tok.name} "
            f"({tok.fingerprint}, eos {tok.eos_id}, allow_special {tok.allow_special}); append with the store's tokenizer or build a new store"
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

    def __init__(self, path, base, request, tok, sources, chunk_bytes, shard_tokens):
        self.path, self.base, self.request, self.tok = path, base, request, tok
        self.sources, self.chunk_bytes, self.shard_tokens = sources, chunk_bytes, shard_tokens
        self.base_sha = manifest_sha256(path)
        base_shards = base["shards"] if base else []
        self.token_offset = base["num_tokens"] if base else 0
        self.doc_offset = base["num_documents"] if base else 0
        self.pending: list[dict] = []
        self.progress = [{"position": None, "complete": False, "documents": 0, "tokens": 0} for _ in sources]
        journal = read_journal(path)
        if journal and self._resumable(journal):
            self.pending = journal["shards"]
            self.progress = journal["progress"]
        elif journal:
            remove_journal(path)
        remove_unnamed_files(path, {s["name"] for s in base_shards + self.pending})
        committed = sum(s["tokens"] for s in self.pending)
        self.sink = ShardSink(path, dtype=tok.dtype.str, next_index=len(base_shards) + len(self.pending),
                              token_offset=self.token_offset + committed)

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
        try:
            for (index, chunk, last), (tokens, doc_ends) in ordered_map(encode, self._chunks(), workers=workers):
                self.sink.write(tokens, doc_ends)
                state = self.progress[index]
                state["position"], state["complete"] = chunk.position, last
                state["tokens"] += int(tokens.shape[0])
                state["documents"] += int(doc_ends.shape[0])
                if progress is not None:
                    progress.update(index, chunk, int(tokens.shape[0]))
                if self.sink.open_tokens >= self.shard_tokens:
                    self.pending.append(self.sink.close_shard())
                    self._commit_journal()
            if self.sink.open_tokens:
                self.pending.append(self.sink.close_shard())
        except BaseException:
            self.sink.abort()
            raise
        self._commit_manifest()

    def _commit_journal(self) -> None:
        write_journal(self.path, {
            "format": JOURNAL_FORMAT,
            "version": FORMAT_VERSION,
            "base_manifest_sha256": self.base_sha,
            "request": self.request,
            "shards": self.pending,
            "progress": self.progress,
        })

    def _commit_manifest(self) -> None:
        tok, base = self.tok, self.base
        tokenizer_json = tok.to_json().encode("utf-8")
        if base is None:
            atomic_write_bytes(os.path.join(self.path, TOKENIZER_FILE), tokenizer_json)
        inputs = list(base["inputs"]) if base else []
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
            "build": {"shard_tokens": self.shard_tokens, "chunk_bytes": self.chunk_bytes},
        }
        write_manifest(self.path, manifest)
        remove_journal(self.path)

    def rollback(self) -> None:
        """Forget this build: its journal and every shard file the manifest does not name."""
        remove_journal(self.path)
        remove_unnamed_files(self.path, {s["name"] for s in (self.base["shards"] if self.base else [])})
