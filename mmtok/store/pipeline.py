"""The tokenizing pipeline: chunks in, token arrays out, in input order, on all cores.

Every tokenizer engine releases the GIL while encoding, so a thread pool keeps
every core busy without copying text between processes. Results are consumed
strictly in submission order, so the output never depends on the worker count.
"""

from __future__ import annotations

import collections
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np


def encode_chunk(tokenizer, texts: list[str], ends: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Encode a chunk's pieces in one engine call; append eos after each piece that ends a document.

    Returns the chunk's tokens and the chunk-relative end offset of every
    document it completes (the offset just past that document's eos).  No
    per-piece Python work: a chunk of 10,000 CSV rows costs one batch call and
    a few numpy passes.
    """
    ids, offsets = tokenizer.encode_flat(texts)
    # Ids are below the vocabulary size, which the dtype was chosen to hold: the cast cannot overflow.
    ids = ids.astype(tokenizer.dtype, copy=False)
    ending = np.flatnonzero(np.fromiter(ends, dtype=bool, count=len(ends)))
    if ending.shape[0] == 0:
        return ids, np.empty(0, dtype=np.int64)
    insert_at = offsets[ending + 1]  # just after each ending piece's last token
    tokens = np.insert(ids, insert_at, np.asarray(tokenizer.eos_id, dtype=tokenizer.dtype))
    # The j-th eos lands j places further on (the j eos before it), and the document ends past it.
    doc_ends = insert_at + np.arange(1, ending.shape[0] + 1, dtype=np.int64)
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
