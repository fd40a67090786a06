"""Tokenizer fingerprints remembered by the identity of the files that define the tokenizer.

Keying a cached store needs the tokenizer's fingerprint, and loading a tokenizer
to compute it takes most of a second (GPT-2). Remembering the fingerprint of a
tokenizer given by files (the bundled GPT-2, a tokenizer.json, vocab + merges),
keyed by those files' path, size and mtime_ns, lets a rerun open its store
without loading the tokenizer at all. The memo is a small JSON file; losing or
damaging it only loses the shortcut.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from ..base.version import __version__

__all__ = ["request_key", "recall", "remember"]

_FILE = "tokenizer-fingerprints.json"
_LIMIT = 64  # entries kept, most recent last
_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def request_key(args: dict) -> str | None:
    """Key of a tokenizer request (load_tokenizer's arguments), or None when files alone do not define it."""
    tokenizer, tokenizer_file = args.get("tokenizer"), args.get("tokenizer_file")
    vocab, merges = args.get("vocab_file"), args.get("merges_file")
    if sum(x is not None for x in (tokenizer, tokenizer_file, vocab or merges)) > 1 or (vocab is None) != (merges is None):
        return None  # load_tokenizer reports the conflict
    if tokenizer_file is not None:
        files = [tokenizer_file]
    elif vocab is not None:
        files = [vocab, merges]
    elif tokenizer is None or (isinstance(tokenizer, str) and tokenizer == "gpt2"):
        files = [os.path.join(_DATA, "gpt2_vocab.json"), os.path.join(_DATA, "gpt2_merges.txt")]
    elif isinstance(tokenizer, (str, os.PathLike)) and os.path.isfile(tokenizer):
        files = [tokenizer]
    else:
        return None  # tokenizer objects and model folders are fingerprinted by loading them
    identity = []
    for name in files:
        try:
            stat = os.stat(name)
        except OSError:
            return None
        identity.append([os.path.abspath(os.fspath(name)), stat.st_size, stat.st_mtime_ns])
    # The mmtok version is part of the key: a new version may compute fingerprints differently.
    material = {"mmtok": __version__, "files": identity, "eos_token": args.get("eos_token")}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def recall(key: str | None, folder: str) -> tuple[str, int] | None:
    """(fingerprint, eos_id) remembered in ``folder`` for ``key``, or None."""
    entry = _read(folder).get(key) if key is not None else None
    if isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str) and isinstance(entry.get("eos_id"), int):
        return entry["fingerprint"], entry["eos_id"]
    return None


def remember(key: str, fingerprint: str, eos_id: int, folder: str) -> None:
    """Record ``key``'s fingerprint and eos id in ``folder`` (silently skipped if it cannot be written)."""
    memo = _read(folder)
    memo.pop(key, None)
    memo[key] = {"fingerprint": fingerprint, "eos_id": eos_id}
    memo = dict(list(memo.items())[-_LIMIT:])
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)  # a unique name: concurrent writers never mix
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(memo, f)
        os.replace(tmp, os.path.join(folder, _FILE))
    except OSError:
        pass


def _read(folder: str) -> dict:
    try:
        with open(os.path.join(folder, _FILE), encoding="utf-8") as f:
            memo = json.load(f)
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}
