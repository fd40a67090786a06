"""A store's build history: which requests it already carried out (so a rerun append is a no-op), and write failures.

Every committed build or append adds ``{request_sha256, inputs, again,
shard_tokens, chunk_bytes}`` to the manifest's ``history`` (FORMAT.md): the hash
of the request (tokenizer, input identities: path, size, mtime, reading
options; settings) and the range of ``inputs`` it added.
"""

from __future__ import annotations

import errno
import hashlib

from .manifest import encode_json, manifest_sha256, read_journal, remove_journal
from .writer import remove_unnamed_files


def request_sha256(request: dict) -> str:
    return hashlib.sha256(encode_json(request)).hexdigest()


def recorded_request(base: dict, request: dict) -> dict | None:
    """The history entry of ``base`` that already carried out ``request``, or None.

    Requests that include ``texts=`` have no file identity and are never taken as done.
    """
    if any(entry.get("kind") == "texts" for entry in request["inputs"]):
        return None
    key = request_sha256(request)
    return next((entry for entry in base.get("history", []) if entry.get("request_sha256") == key), None)


def forget_stale_journal(path: str, base: dict) -> None:
    """Drop a journal (and its shard files) that a committed manifest made obsolete.

    That is the window between the manifest's replacement and the journal's
    removal; a journal of an interrupted build on top of the current manifest
    (a killed ``again`` append) is kept for its rerun.
    """
    journal = read_journal(path)
    if journal is not None and journal.get("base_manifest_sha256") == manifest_sha256(path):
        return
    remove_journal(path)
    remove_unnamed_files(path, {s["name"] for s in base["shards"]})


def write_failure(path: str, exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{path}: the disk is full ({exc.strerror}){where}; the store is as it was at its last commit: "
                "free some space and rerun the same command to resume")
    return f"{path}: cannot write the store ({exc.strerror or exc}){where}; the store is as it was at its last commit"
