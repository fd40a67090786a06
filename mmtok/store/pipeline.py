"""The tokenizing pipeline: chunks in, token arrays out, in input order, on all cores.

Every tokenizer engine releases the GIL while encoding, so a thread pool keeps
every core busy without copying text between processes. Results are consumed
strictly in submission order, so the output never depends on the worker count.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
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
    every_piece_ends = ends.count(True) == len(ends)  # rows: a C-level count, no array of flags
    if every_piece_ends and len(texts) > 1:
        joined = tokenizer.encode_documents(texts)  # one engine call for all, where proven equal
        if joined is not None:
            return joined[0].astype(tokenizer.dtype, copy=False), joined[1]
    ids, offsets = tokenizer.encode_flat(texts if type(texts) is list else list(texts))
    if every_piece_ends:
        ending = np.arange(len(ends), dtype=np.int64)
    else:
        ending = np.flatnonzero(np.fromiter(ends, dtype=bool, count=len(ends)))
    if ending.shape[0] == 0:
        # Ids are below the vocabulary size, which the dtype was chosen to hold: the cast cannot overflow.
        return ids.astype(tokenizer.dtype, copy=False), np.empty(0, dtype=np.int64)
    # The j-th eos goes j places further on than the end of its piece's ids (the j eos before it);
    # the ids fill every other place, cast once into the output (a fraction of np.insert's cost).
    eos_at = offsets[ending + 1] + np.arange(ending.shape[0], dtype=np.int64)
    tokens = np.empty(ids.shape[0] + ending.shape[0], dtype=tokenizer.dtype)
    is_id = np.ones(tokens.shape[0], dtype=bool)
    is_id[eos_at] = False
    tokens[is_id] = ids
    tokens[eos_at] = tokenizer.eos_id
    return tokens, eos_at + 1  # a document ends just past its eos


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


_END = object()  # the producer's last entry


def prefetched(items: Iterable, *, depth: int) -> Iterator:
    """Yield ``items`` in order, produced ahead on a helper thread with at most ``depth`` waiting.

    The build's reading and cutting then overlap with its writing instead of
    taking turns on one thread (the engines release the GIL, and so do file
    reads and numpy's passes).  An exception of the producer is raised here at
    its place in the order, after every item before it; closing this
    generator stops the producer at its next item.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as error:  # handed to the consumer, which raises it in order
            put((_END, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # a generator's files are closed by the thread that ran it

    producer = threading.Thread(target=produce, name="mmtok-read", daemon=True)
    producer.start()
    try:
        while True:
            item, error = ready.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        # Only a producer blocked in a read (a pipe that never ends) outlives this wait, as a daemon.
        producer.join(timeout=1)
