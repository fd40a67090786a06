"""Reading CSV files: one row = one document, with shape checks that name the row and line."""

from __future__ import annotations

import contextlib
import csv
import struct

from ..base.errors import InputError
from . import lines
from .chunk import BOM, Chunk, decode_utf8, empty_input
from .csvfast import PushbackReader, parse_block
from .sources import Source, open_stream

_CSV_FIELD_LIMIT = 2 ** (8 * struct.calcsize("l") - 1) - 1  # csv stores the limit in a C long
_SHOWN_COLUMNS = 20  # column names quoted in a message


class _LineFeed:
    """Decoded lines for csv.reader, counting the bytes and lines it consumed.

    Every line it gives ends with a line break (one is added to a last line
    without), so csv.reader only ever meets the end of the data between rows
    or inside a quoted field: a row that comes back after :attr:`eof` was set
    ended inside a quote that was never closed.
    """

    eof = False

    def __init__(self, stream, source: Source, offset: int, lines: int):
        self.stream, self.source, self.offset, self.lines = stream, source, offset, lines

    def __iter__(self):
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(lines.MAX_LINE_BYTES + 1)
        if len(raw) > lines.MAX_LINE_BYTES:
            raise lines.line_too_long(self.source, self.lines + 1, "CSV line")
        if not raw:
            self.eof = True
            raise StopIteration
        start = self.offset
        self.offset += len(raw)
        if start == 0 and raw.startswith(BOM):
            raw, start = raw[len(BOM):], len(BOM)
        text = decode_utf8(raw, self.source, self.lines, start)
        self.lines += 1
        return text if raw.endswith(b"\n") else text + "\n"


@contextlib.contextmanager
def _wide_csv_fields(limit: int = _CSV_FIELD_LIMIT):
    """Set csv's process-wide field size limit while parsing; restore it before yielding."""
    previous = csv.field_size_limit(min(limit, _CSV_FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def csv_chunks(source, position, chunk_bytes, rules, *, lazy=False, joint=None):
    rows, fields, index = position["rows"], position.get("fields"), position.get("index")
    display, limit = source.display, source.csv_field_limit
    with open_stream(source, offset=position["offset"]) as stream:
        stream = PushbackReader(stream)  # a block the fast path declines goes back for csv
        feed = _LineFeed(stream, source, position["offset"], position["lines"])
        reader = csv.reader(feed)

        def next_row():
            while True:
                line = feed.lines + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return None, line
                except csv.Error as e:
                    if "field limit" in str(e):
                        raise InputError(f"a field of the row that starts at line {line:,} is longer than "
                                         f"{limit:,} characters; if a quote is never closed, it runs on to "
                                         "here: check the quotes, or raise the limit with csv_field_limit= "
                                         "(--csv-field-limit)", path=display, line=feed.lines) from None
                    raise InputError(f"malformed CSV ({e})", path=display, line=feed.lines) from None
                if feed.eof:  # the data ended inside a quoted field: see _LineFeed
                    opened = feed.lines - row[-1].count("\n") + 1
                    raise InputError("the quoted field opened on this line is never closed (the file ends "
                                     "inside it); close the quote, or double a quote that is part of the text "
                                     '("")', path=display, line=opened)
                if row:  # csv gives [] for a blank line
                    return row, line

        texts, chunk_start, documents = [], feed.offset, 0
        if fields is None:  # at the start: the first row fixes the shape and the column
            with _wide_csv_fields(limit):
                row, line = next_row()
            if row is None:
                raise empty_input(source)
            rows, fields, index = 1, len(row), _column_index(source, row, line)
            if not source.header:
                texts.append(row[index])
        while True:
            if fields == 1 and not texts:  # one column: whole blocks of strictly shaped rows at once
                fast = _fast_chunk(stream, chunk_bytes, limit)
                if fast is not None:
                    texts, nbytes, lines = fast
                    feed.offset, feed.lines, rows, documents = feed.offset + nbytes, feed.lines + lines, \
                        rows + len(texts), documents + len(texts)
                    if texts:  # a block of blank lines has none: its bytes count with the next chunk
                        yield Chunk(texts, [True] * len(texts),
                                    {"reader": "csv", "offset": feed.offset, "lines": feed.lines, "rows": rows,
                                     "fields": fields, "index": index}, feed.offset - chunk_start,
                                    stream.file_offset())
                        texts, chunk_start = [], feed.offset
                    continue
            with _wide_csv_fields(limit):
                while feed.offset - chunk_start < chunk_bytes:
                    row, line = next_row()
                    if row is None:
                        break
                    rows += 1
                    if len(row) != fields:
                        raise InputError(f"row {rows} has {len(row)} field(s) but the first row has {fields}; "
                                         "every row needs the same number of fields (quote fields that "
                                         "contain commas or quotes)", path=display, line=line)
                    texts.append(row[index])
            if texts:
                documents += len(texts)
                yield Chunk(texts, [True] * len(texts),
                            {"reader": "csv", "offset": feed.offset, "lines": feed.lines, "rows": rows,
                             "fields": fields, "index": index},
                            feed.offset - chunk_start, stream.file_offset())
            if row is None:
                break
            texts, chunk_start = [], feed.offset
    if position["offset"] == 0 and not documents:
        raise empty_input(source, " (it has a header row but no data rows)")


def _fast_chunk(stream: PushbackReader, chunk_bytes: int, limit: int):
    """``(texts, bytes, lines)`` of the next block of a one-column CSV, parsed in bulk (:mod:`.csvfast`).

    The block is ``chunk_bytes`` bytes completed to a line end, so it depends
    only on the bytes and where it starts; the record it cuts (if any) is
    pushed back for the next block.  None (the whole block pushed back) when
    :func:`parse_block` declines it: csv then reads it row by row.
    """
    block = stream.read(chunk_bytes)
    if block and not block.endswith(b"\n"):
        rest = stream.readline(lines.MAX_LINE_BYTES + 1)
        block += rest
        if len(rest) > lines.MAX_LINE_BYTES:  # an endless line: csv's path names it
            stream.unread(block)
            return None
    parsed = parse_block(block, at_eof=not block.endswith(b"\n"), field_limit=limit,
                         line_limit=lines.MAX_LINE_BYTES) if block else None
    stream.unread(block[parsed[1]:] if parsed else block)
    return parsed


def _column_index(source: Source, first: list[str], line: int) -> int:
    """The index of the text column, from ``source.column`` and the first row."""
    column, count = source.column, len(first)
    shown = first if count <= _SHOWN_COLUMNS else [*first[:_SHOWN_COLUMNS], f"... {count - _SHOWN_COLUMNS:,} more"]
    has = f"the file has {count:,} columns" + (f" {shown}" if source.header else "")
    problem = None
    if isinstance(column, str) and not source.header:
        problem = f"column {column!r} is a name, but the file is read without a header row (--no-header, " \
                  "header=False); give a 0-based column index instead"
    elif isinstance(column, str) and first.count(column) != 1:
        problem = f"the header has {first.count(column) or 'no'} column(s) named {column!r}: {has}; pass " \
                  "one of those names, or a 0-based index, with --column (column= in Python)"
    elif column is None and count != 1:
        problem = f"{has}; pick the one holding the text by name or 0-based index with --column " \
                  "(column= in Python)"
    elif isinstance(column, int) and column >= count:
        problem = f"column {column} is out of range: {has} (indexes are 0-based)"
    if problem:
        raise InputError(problem, path=source.display, line=line)
    return first.index(column) if isinstance(column, str) else column or 0
