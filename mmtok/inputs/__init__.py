"""The inputs layer: where text comes from and how it is read in bounded memory.

Owns sources (files, compressed files, iterables of strings), the readers of
txt (bulk or by line), CSV and JSON lines, the :class:`Chunk` they yield,
and the deterministic splits of inputs by rank (``split_inputs``).
May import :mod:`mmtok.base` and :mod:`mmtok.tokenize` (for cut points).
A new input format goes here: a reader yielding chunks, chosen in
``readers.iter_chunks``.
"""

from .chunk import Chunk
from .readers import iter_chunks
from .sources import Source, Span, resolve_source, texts_source
from .split import split_inputs, split_sources

__all__ = ["Source", "Span", "resolve_source", "texts_source", "Chunk", "iter_chunks", "split_inputs", "split_sources"]
