"""Proving a store whole: checksums, shapes, offsets, id ranges, document ends, and what its files are.

``verify`` goes on after a problem and reports every one it finds, each naming
the shard or file; opening a store checks only what is cheap (see shardmaps).
"""

from __future__ import annotations

import os
import stat

from ..base.constants import (
    JOURNAL_FILE,
    MANIFEST_FILE,
    SHARDS_DIR,
    STORE_MAX_TOKENIZER_BYTES,
    TEMP_PREFIX,
    TOKENIZER_FILE,
)
from ..base.errors import CorruptStoreError
from .safefile import file_kind, inside
from .shardcheck import check_shard_contents, store_file_sha256, verify_report
from .store import Store, shard_paths


def verify_store(path: str, *, on_shard=None) -> dict:
    """Check every shard of the store at ``path``; raise CorruptStoreError listing every problem found.

    Returns a summary (shards, tokens, documents, leftover files). ``on_shard(i)``
    is called after shard ``i`` is checked, for progress display. The error's
    ``problems`` attribute lists the problems one per item, each naming its shard or file.
    """
    report = check_store(path, on_shard=on_shard)
    problems = report["problems"]
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        error = CorruptStoreError(problems[0] + more)
        error.problems = problems
        raise error
    return report


def check_store(path: str, *, on_shard=None) -> dict:
    """Like :func:`verify_store`, but return the problems in ``report["problems"]`` instead of raising.

    A manifest that cannot be read at all still raises (nothing else can be checked).
    """
    store = Store(path)
    if store.remote is not None:
        from .remote_verify import check_remote_store

        return check_remote_store(store, on_shard=on_shard)
    problems = file_problems(store)
    bad_files = {problem.split(": ", 1)[0] for problem in problems}  # reported once, by kind
    if os.path.join(store.path, TOKENIZER_FILE) not in bad_files:
        problems += _check_tokenizer_file(store)
    for i, shard in enumerate(store.shards):
        if bad_files.intersection(shard_paths(store.path, shard["name"])) or \
                os.path.join(store.path, SHARDS_DIR) in bad_files:
            continue
        try:
            _check_shard(store, i, shard)
        except CorruptStoreError as exc:
            problems.append(str(exc))
        if on_shard is not None:
            on_shard(i)
    return verify_report(store, problems, leftover_files(store))


def _check_shard(store: Store, i: int, shard: dict) -> None:
    path = store.path
    where = f"{path}: shard {shard['name']}"
    tokens_path, docs_path = shard_paths(path, shard["name"])
    store.shard_tokens(i)  # kind, place, header and size first: they say more than a checksum
    for file_path, key in ((tokens_path, "tokens_sha256"), (docs_path, "docs_sha256")):
        found = store_file_sha256(path, file_path)
        if found is None:
            raise CorruptStoreError(f"{where}: {os.path.basename(file_path)} is missing")
        if found != shard[key]:
            raise CorruptStoreError(f"{where}: {os.path.basename(file_path)} checksum mismatch (the file was changed or damaged)")
    check_shard_contents(store, i, shard, where)


def _check_tokenizer_file(store: Store) -> list[str]:
    expected = store.manifest["tokenizer"].get("file_sha256")
    file = os.path.join(store.path, TOKENIZER_FILE)
    try:
        found = store_file_sha256(store.path, file, limit=STORE_MAX_TOKENIZER_BYTES)
    except CorruptStoreError as exc:
        return [str(exc)]
    if found is None:
        return [f"{store.path}: {TOKENIZER_FILE} is missing"]
    if expected is not None and found != expected:
        return [f"{store.path}: {TOKENIZER_FILE} checksum mismatch (the file was changed or damaged)"]
    return []


def file_problems(store: Store) -> list[str]:
    """Every store file or folder that is a symlink leading out of the store, or not a regular file."""
    problems = []
    names = [MANIFEST_FILE, TOKENIZER_FILE, JOURNAL_FILE, SHARDS_DIR]
    names += [os.path.join(SHARDS_DIR, os.path.basename(p)) for s in store.shards for p in shard_paths(store.path, s["name"])]
    for name in names:
        full = os.path.join(store.path, name)
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            continue  # a missing shard is reported with its shard
        except OSError as exc:
            problems.append(f"{full}: cannot be examined ({exc.strerror})")
            continue
        if stat.S_ISLNK(info.st_mode) and not inside(store.path, full):
            problems.append(f"{full}: is a symlink leading outside the store (to {os.path.realpath(full)}); "
                            "readers refuse it: copy the file into the store")
            continue
        try:
            info = os.stat(full)
        except OSError:
            problems.append(f"{full}: is a broken symlink")
            continue
        wanted_dir = name == SHARDS_DIR
        if wanted_dir and not stat.S_ISDIR(info.st_mode):
            problems.append(f"{full}: is not a folder")
        elif not wanted_dir and not stat.S_ISREG(info.st_mode):
            problems.append(f"{full}: is {file_kind(info.st_mode)}, not a regular file; readers refuse it")
    return problems


def leftover_files(store: Store) -> list[str]:
    """Files in the shards folder that the manifest does not name (an interrupted build's)."""
    named = set()
    for shard in store.manifest["shards"]:
        named.update(os.path.basename(p) for p in shard_paths(store.path, shard["name"]))
    folder = os.path.join(store.path, SHARDS_DIR)
    entries = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(e for e in entries if e not in named or e.startswith(TEMP_PREFIX))
