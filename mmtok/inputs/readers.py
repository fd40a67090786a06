"""Streaming the documents of an input out as chunks ready to tokenize.

:func:`iter_chunks` reads one :class:`~mmtok.inputs.sources.Source` with memory that
stays flat whatever the input size, and yields :class:`Chunk` objects.  Chunk
boundaries are a pure function of the input bytes, the start position and
``chunk_bytes``, so a build resumed from any chunk's ``position`` sees the same
chunks as one that never stopped.  Errors name the file and the 1-based line.
"""

from __future__ import annotations

import functools
import itertools
from typing import Iterator

from ..base.errors import InputError
from ..tokenize.cutpoints import check_rules, iter_pieces, sub_cuts
from .chunk import BOM, Chunk, check_unicode, decode_utf8, empty_input
from .csvreader import csv_chunks
from .jsonlreader import jsonl_chunks
from .lines import count_newlines, line_blocks
from .sources import Source, open_stream

__all__ = ["Chunk", "iter_chunks"]


def iter_chunks(source: Source, *, start: dict | None = None, chunk_bytes: int = 1 << 20,
                cut_rules=frozenset({"newline", "space"}), lazy: bool = False, joint: str = "\0") -> Iterator[Chunk]:
    """Yield the chunks of ``source``, from its beginning or from ``start``.

    - Bulk text: one piece of about ``chunk_bytes`` per chunk, cut only where
      ``cut_rules`` allow (see :mod:`mmtok.tokenize.cutpoints`); only the last piece
      ends the document.  A file with no allowed cut is read whole.
    - Text line by line: one line per document, without its ``\\n`` or
      ``\\r\\n``; empty lines are skipped. A line too long to hold is cut into
      pieces of one document (:mod:`mmtok.inputs.lines`).
    - CSV: one row per document (header row first by default); blank lines
      are skipped, an empty field is an empty document.
    - JSONL: one non-blank line per document, its ``source.field`` string; a
      line longer than :data:`~mmtok.inputs.lines.MAX_LINE_BYTES` is an error.
    - texts: one string per document.

    Line-based kinds batch whole documents until about ``chunk_bytes`` bytes.
    A leading UTF-8 BOM is dropped.  An input without any document raises
    InputError ("... is empty"); so does invalid UTF-8 or a malformed line/row.
    With ``lazy``, bulk text chunks are cut but not decoded, and JSONL blocks
    not parsed (see :meth:`Chunk.decoded`): the caller does it on its
    encoding threads. The other readers have nothing worth deferring and
    ignore it. ``joint``: a text documents are not expected to hold (the
    build gives the tokenizer's eos), put between the documents of a block
    that a reader holds as one text (:class:`~mmtok.inputs.chunk.SeparatedTexts`,
    JSONL); the other readers ignore it.
    """
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    rules = check_rules(cut_rules)
    name = source.kind if source.kind != "txt" else "txt-lines" if source.line_by_line else "txt-bulk"
    return _READERS[name](source, _check_start(source, start, name), chunk_bytes, rules, lazy=lazy, joint=joint)


def _check_start(source: Source, start, name: str) -> dict:
    counters = {"texts": ("index", "bytes"), "csv": ("offset", "lines", "rows")}.get(name, ("offset", "lines"))
    if start is None:
        if source.span is not None:  # a split of a file starts where its span does
            return {"reader": name, "offset": source.span.start, "lines": source.span.lines}
        return {"reader": name, **dict.fromkeys(counters, 0)}
    # a CSV position also carries the shape and column learnt from the first row
    counters += ("fields", "index") if name == "csv" else ()
    if not (isinstance(start, dict) and start.get("reader") == name
            and all(type(start.get(key)) is int and start[key] >= 0 for key in counters)
            and _line_start_fits(start, name)):
        raise InputError(f"resume position {start!r} is not a position of a {name} input; "
                         "the inputs changed since the build started: start the build afresh",
                         path=source.display)
    return dict(start)


def _line_start_fits(start: dict, name: str) -> bool:
    """A position inside a long line (txt-lines only) knows where that line started."""
    line_start = start.get("line_start")
    return line_start is None or (name == "txt-lines" and type(line_start) is int
                                  and 0 <= line_start <= start["offset"])


def _bulk_chunks(source, position, chunk_bytes, rules, *, lazy=False, joint=None):
    offset, lines = position["offset"], position["lines"]
    with open_stream(source, offset=offset) as stream:
        head, skipped = b"", 0
        if offset == 0:
            head = stream.read(len(BOM))
            if head == BOM:
                head, skipped = b"", len(BOM)
        offset += skipped
        pieces = 0
        for piece, last in iter_pieces(stream.read, chunk_bytes=chunk_bytes, rules=rules, carry=head):
            # a span that stops before the file's end leaves its document to the next span
            decode = functools.partial(_decode_piece, piece, rules, source, lines, offset,
                                       last and source.ends_at_file_end)
            offset += len(piece)
            lines += count_newlines(piece)
            yield Chunk.deferred(decode, {"reader": "txt-bulk", "offset": offset, "lines": lines},
                                 len(piece) + skipped, stream.file_offset(), lazy=lazy)
            skipped, pieces = 0, pieces + 1
        if position["offset"] == 0 and not pieces:
            raise empty_input(source)


def _decode_piece(piece: bytes, rules, source, lines: int, offset: int, ends_document: bool):
    """A bulk piece's ``(texts, ends)``: its sub-pieces decoded; only the last may end the document."""
    texts = _decode_sub_pieces(piece, rules, source, lines, offset)
    return texts, [False] * (len(texts) - 1) + [ends_document]


def _decode_sub_pieces(piece: bytes, rules, source, lines: int, offset: int) -> list[str]:
    """The piece as texts cut at safe points (:func:`~mmtok.tokenize.cutpoints.sub_cuts`): the same tokens, faster."""
    bounds = [0, *sub_cuts(piece, rules), len(piece)]
    try:
        with memoryview(piece) as view:  # str(view, ...) decodes without copying the slice first
            return [str(view[start:stop], "utf-8") for start, stop in zip(bounds, bounds[1:])]
    except UnicodeDecodeError:
        decode_utf8(piece, source, lines, offset)  # raises the error that names the line
        raise


def _txt_line_chunks(source, position, chunk_bytes, rules, *, lazy=False, joint=None):
    documents = 0
    for text, _, nbytes, offset, lines, file_offset, piece, last, line_start in line_blocks(
            source, position, chunk_bytes, pieces=True, rules=rules):
        where = {"reader": "txt-lines", "offset": offset, "lines": lines}
        if piece:  # of a long line (inputs/lines.py): one document, which the line's last piece ends
            documents += last
            if line_start is not None:
                where["line_start"] = line_start
            yield Chunk([text], [last], where, nbytes, file_offset)
            continue
        # every \r\n in a block ends a line, so replacing it first is exact
        texts = [line for line in text.replace("\r\n", "\n").split("\n") if line]
        if texts:
            documents += len(texts)
            yield Chunk(texts, [True] * len(texts), where, nbytes, file_offset)
    if position["offset"] == 0 and not documents:
        raise empty_input(source, " (it has no non-empty line)")


def _texts_chunks(source, position, chunk_bytes, rules, *, lazy=False, joint=None):
    index, total = position["index"], position["bytes"]
    items = iter(source.texts)
    if index:
        skipped = sum(1 for _ in itertools.islice(items, index))
        if skipped < index:
            raise InputError(f"texts has {skipped} element(s) but the build stopped after {index}; "
                             "the texts changed since: start the build afresh")
    texts, size = [], 0
    for index, text in enumerate(items, index + 1):
        if not isinstance(text, str):
            raise InputError(f"texts[{index - 1}] is {type(text).__name__}, expected str; "
                             "give texts as strings (decode bytes first)")
        texts.append(text)
        size += check_unicode(text, None, None, f"texts[{index - 1}]")
        if size >= chunk_bytes:
            total += size
            yield Chunk(texts, [True] * len(texts), {"reader": "texts", "index": index, "bytes": total}, size, total)
            texts, size = [], 0
    if texts:
        total += size
        yield Chunk(texts, [True] * len(texts), {"reader": "texts", "index": index, "bytes": total}, size, total)
    elif index == 0:  # only when reading from the start found nothing
        raise InputError("texts is empty: nothing to tokenize; give at least one string")


_READERS = {"txt-bulk": _bulk_chunks, "txt-lines": _txt_line_chunks, "csv": csv_chunks,
            "jsonl": jsonl_chunks, "texts": _texts_chunks}
