"""One tokenizer per Ray worker process: shipped once through the object store, rebuilt once per process."""

from __future__ import annotations

_LOADED: dict = {}


def tokenizer_spec(tok, *, in_object_store: bool = True) -> tuple:
    """What a task needs to get ``tok``: a key, and the tokenizer's JSON (in Ray's object store, or inline).

    The reference is wrapped in a list so Ray does not resolve it for every
    task: a worker fetches and rebuilds the tokenizer only the first time.
    """
    rebuild, args = tok.__reduce__()
    if in_object_store:
        import ray

        return (rebuild, (tok.fingerprint, *args[1:]), [ray.put(args[0])])
    return (rebuild, (tok.fingerprint, *args[1:]), [args[0]])


def tokenizer_in_worker(spec):
    rebuild, key, holder = spec
    tok = _LOADED.get(key)
    if tok is None:
        import ray

        payload = holder[0]
        tok = _LOADED[key] = rebuild(payload if isinstance(payload, str) else ray.get(payload), *key[1:])
    return tok
