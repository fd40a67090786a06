"""Building and appending to a store: inputs -> tokenizer -> shards -> journal -> manifest.

Commit protocol: shards are closed under their final names, then the build
journal names them together with where every input stopped (so a killed build
resumes there), and only the last step replaces the manifest, the store's one
commit point for readers. Bad input rolls the store back to exactly what it was.
"""

from __future__ import annotations

import os
import warnings
from typing import Iterable

from ..base.constants import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_COMMIT_BYTES,
    DEFAULT_COMMIT_SECONDS,
    DEFAULT_SHARD_TOKENS,
)
from ..base.errors import (
    InputError,
    MmtokError,
    StoreError,
    TokenizerError,
)
from ..inputs.cachesniff import refuse_cache_file
from ..inputs.options import check_options_apply
from ..inputs.sources import Source, resolve_source, texts_source
from .appendmode import check_appendable, check_same_mode
from .buildrun import BuildRun
from .folder import locked, prepare_folder
from .history import (
    forget_stale_journal,
    recorded_request,
    write_failure,
)
from .manifest import (
    read_manifest,
    remove_journal,
)
from .pipeline import default_workers
from .store import Store
from .writer import remove_store_files


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
        run = BuildRun(path, base, request, tok, sources, chunk_bytes, shard_tokens, again=again)
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
        check_options_apply(files, column=options["column"], field=field, header=options["header"],
                            csv_field_limit=options.get("csv_field_limit"))
    for source in sources:
        if source.kind == "txt" and source.path is not None and not source.stream:  # a stream is read once
            refuse_cache_file(source)
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


def _same_inputs(base: dict, request: dict) -> bool:
    """True when the store already holds exactly the requested inputs, built with this tokenizer."""
    done, wanted = base["inputs"], request["inputs"]
    return (
        base["tokenizer"]["fingerprint"] == request["tokenizer"]
        and base["tokenizer"]["allow_special"] == request["allow_special"]
        and len(done) == len(wanted)
        and all(w["kind"] != "texts" and {k: d.get(k) for k in w} == w for d, w in zip(done, wanted))
    )
