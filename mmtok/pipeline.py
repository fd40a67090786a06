"""The tokenizing pipeline: chunks in, token arrays out, in input order, on all cores.

Both tokenizer engines release the GIL while encoding, so a thread pool keeps
every core busy without copying text between processes. Results are consumed
strictly in submission order, so the output never depends on the worker count.
"""

from __future__ import annotations

import collections
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np


def encode_chunk(tokenizer, texts: list[str], ends: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Encode a chunk's pieces; append eos after each piece that ends a document.

    Returns the chunk's tokens and the chunk-relative end offset of every
    document it completes (the offset just past that document's eos).
    """
    encoded = tokenizer.encode_batch(texts)
    eos = tokenizer.eos_id
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
    ends_mask = np.fromiter(ends, dtype=bool, count=len(ends))
    total = int(lengths.sum() + ends_mask.sum())
    parts = (ids + [eos] if end else ids for ids, end in zip(encoded, ends))
    tokens = np.fromiter(itertools.chain.from_iterable(parts), dtype=tokenizer.dtype, count=total)
    doc_ends = np.cumsum(lengths + ends_mask)[ends_mask]
    return tokens, doc_ends


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def ordered_map(function, items: Iterable, *, workers: int, window: int | None = None) -> Iterator[tuple]:
    """Yield ``(item, function(item))`` in input order, with at most ``window`` items in flight.

    The bounded window keeps memory flat on inputs of any size.
    """
    window = window or 2 * workers
    if workers <= 1:
        for item in items:
            yield item, function(item)
        return
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmtok-encode") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) >= window:
                    head, future = pending.popleft()
                    yield head, future.result()
            while pending:
                head, future = pending.popleft()
                yield head, future.result()
        finally:
            for _, future in pending:
                future.cancel()
