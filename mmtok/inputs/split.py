"""Deterministic splits of a build's inputs into ``world_size`` parts (``mmtok build --rank R --world-size W``).

The inputs are laid end to end as one byte space and cut into ``world_size``
near-equal parts. A cut that falls inside a file moves forward to the first
place where the file may be cut without changing the tokens:

- bulk text (uncompressed): the first safe cut point of the tokenizer's cut
  rules (:mod:`mmtok.tokenize.cutpoints`), the same rule the chunked build
  relies on, so the parts' token streams join into exactly the stream of the
  whole file;
- text read line by line, JSON lines (uncompressed): the start of the next line;
- CSV (a quoted field may hold newlines) and compressed files (no random
  access): not cut inside; the cut moves to the nearer end of the file.

A part of a file is a :class:`~mmtok.inputs.sources.Source` with a ``span``.
Cuts depend only on the bytes, the sizes and ``world_size``, so every rank
computes the same split on its own, with no communication. A part may be empty
(more ranks than cuttable bytes): its partition is empty.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..base.errors import InputError
from ..tokenize.cutpoints import check_rules, find_cut
from .sources import Source, Span, resolve_source

__all__ = ["split_sources", "split_inputs"]

_READ = 1 << 20


def split_inputs(inputs, world_size: int, *, tokenizer=None, line_by_line=None, column=None, field: str = "text",
                 header: bool = True) -> list[list[Source]]:
    """The ``world_size`` deterministic splits of the input files ``inputs`` (exported as ``mmtok.split_inputs``).

    Give split ``i`` to ``mmtok.build_partition(split, root, i, tokenizer=...)``
    (with the same tokenizer: its cut rules decide where a bulk text may be
    cut), from any engine; ``mmtok.commit(root, expect=world_size)`` then joins them.
    """
    from ..tokenize.tokenizer import load_tokenizer

    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    sources = [path if isinstance(path, Source) else resolve_source(
        path, line_by_line=line_by_line, column=column, field=field, header=header) for path in paths]
    return split_sources(sources, world_size, cut_rules=load_tokenizer(tokenizer).cut_rules)


def split_sources(sources: list[Source], world_size: int, *, cut_rules) -> list[list[Source]]:
    """The ``world_size`` parts of ``sources``, in order; concatenated they are the whole inputs."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    rules = check_rules(cut_rules)
    for source in sources:
        if source.path is None:
            raise InputError("in-memory texts cannot be split by rank; give each rank its own texts "
                             "with build_partition(texts=..., partition_id=rank)", path=source.display)
        if source.span is not None:
            raise ValueError(f"{source.display}: already a split of a file")
        if source.stream:
            raise InputError("is a stream (pipe, FIFO or stdin), which cannot be split by rank: each rank "
                             "would read its own stream; save it to a file first", path=source.display)
    sizes = [source.size or 0 for source in sources]
    starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
    total = starts[-1]
    bounds = [0]
    for rank in range(1, world_size):
        target = total * rank // world_size
        bounds.append(max(bounds[-1], _place_cut(sources, sizes, starts, target, rules)))
    bounds.append(total)
    return [_part(sources, sizes, starts, lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def _place_cut(sources, sizes, starts, target: int, rules) -> int:
    """The global byte position where a cut aimed at ``target`` may fall."""
    for i, source in enumerate(sources):
        if not starts[i] <= target < starts[i + 1]:
            continue
        local = target - starts[i]
        if local == 0:
            return target
        if source.compression is None and source.kind == "txt" and not source.line_by_line:
            cut = _bulk_cut(source.path, local, rules)
        elif source.compression is None and source.kind in ("txt", "jsonl"):
            cut = _line_cut(source.path, local)
        else:  # not cuttable inside: the nearer end of the file
            cut = 0 if 2 * local < sizes[i] else sizes[i]
        return starts[i] + min(cut if cut is not None else sizes[i], sizes[i])
    return target


def _bulk_cut(path: str, local: int, rules) -> int | None:
    """The first safe cut at or after byte ``local`` of the file, or None."""
    with open(path, "rb") as f:
        base = max(0, local - 2)  # the rules look at the two bytes before a cut
        f.seek(base)
        buf, search = f.read(_READ + local - base), local - base
        while True:
            cut = find_cut(buf, search, rules)
            if cut is not None:
                return base + cut
            more = f.read(_READ)
            if not more:
                return None
            # The last byte's cut was undecided (the "space" rule needs the byte after it).
            base += len(buf) - 3
            buf, search = buf[-3:] + more, 2


def _line_cut(path: str, local: int) -> int | None:
    """The start of the first line that begins at or after byte ``local``, or None."""
    with open(path, "rb") as f:
        f.seek(local - 1)
        position = local - 1
        while True:
            block = f.read(_READ)
            if not block:
                return None
            found = block.find(b"\n")
            if found >= 0:
                return position + found + 1
            position += len(block)


def _count_lines(path: str, stop: int) -> int:
    """Newlines in the first ``stop`` bytes (for the line numbers of error messages)."""
    count, left = 0, stop
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(_READ, left))
            if not block:
                break
            count += int(np.count_nonzero(np.frombuffer(block, np.uint8) == 0x0A))
            left -= len(block)
    return count


def _part(sources, sizes, starts, lo: int, hi: int) -> list[Source]:
    part = []
    for i, source in enumerate(sources):
        a, b = max(lo, starts[i]) - starts[i], min(hi, starts[i + 1]) - starts[i]
        if a >= b and not (sizes[i] == 0 and starts[i] == lo and lo < hi):
            continue
        if a == 0 and b == sizes[i]:
            part.append(source)
        else:
            part.append(dataclasses.replace(source, span=Span(a, b, _count_lines(source.path, a))))
    return part
