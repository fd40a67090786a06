"""Reading line-based inputs (txt line by line, JSON lines) in blocks of whole lines, in bounded memory.

A block is ``chunk_bytes`` bytes completed to the end of its last line, so
blocks depend only on the bytes and the start offset. A line is *long* when
it does not end within ``chunk_bytes + MAX_RUN_BYTES`` bytes of its start
(:data:`~mmtok.tokenize.cutpoints.MAX_RUN_BYTES`, 1 MiB); whether it is long
depends only on the line's own bytes, so a resumed build decides the same.

- Text read line by line cuts a long line into pieces that stay one document
  (only the last piece ends it), with the bulk reader's rule
  (:func:`~mmtok.tokenize.cutpoints.iter_pieces`): at safe cut points, or forced
  when none lies within ``MAX_RUN_BYTES``. Memory stays flat whatever the line's
  length. A piece's resume position carries ``line_start``, the offset where
  its line began.
- A JSON line is parsed whole, so a long one is read whole.

Either way a line (with its line break) longer than :data:`MAX_LINE_BYTES` is
an :class:`~mmtok.base.errors.InputError` naming the line: input without line
breaks (``/dev/zero``, a binary file, old Mac ``\\r`` line ends) stops there
instead of exhausting memory or running forever.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from ..base.errors import InputError
from ..tokenize import cutpoints
from .chunk import BOM, decode_utf8
from .sources import open_stream

__all__ = ["MAX_LINE_BYTES", "Block", "line_blocks", "line_too_long"]

MAX_LINE_BYTES = 1 << 28  # 256 MiB: the longest line (line break included) a line-based reader accepts


class Block(NamedTuple):
    """Whole lines (``piece`` False) or one piece of a long line (``last``: the line's last piece).

    ``offset``/``lines`` tell where the input stands after the block;
    ``line_start`` (pieces that do not end their line) is the offset of their line.
    """

    text: str
    first_line: int
    nbytes: int
    offset: int
    lines: int
    file_offset: int
    piece: bool = False
    last: bool = True
    line_start: int | None = None


def count_newlines(data: bytes) -> int:
    # numpy compares a megabyte about 8x faster than bytes.count(b"\n")
    return int(np.count_nonzero(np.frombuffer(data, np.uint8) == 0x0A))


def line_too_long(source, line: int, what: str, hint: str = "") -> InputError:
    """The error for a line longer than :data:`MAX_LINE_BYTES`."""
    return InputError(f"the line is longer than {MAX_LINE_BYTES:,} bytes, the longest {what} mmtok reads; a "
                      "file without line breaks (binary data, old Mac \\r line ends) is one endless line: "
                      f"check the file{hint}", path=source.display, line=line)


def line_blocks(source, position: dict, chunk_bytes: int, *, pieces: bool,
                rules=frozenset(), what: str = "line") -> Iterator[Block]:
    """Yield the :class:`Block` s of ``source`` from ``position``.

    ``pieces``: cut long lines into pieces at ``rules`` (txt); else read them
    whole (JSONL). ``what`` names a line in the too-long error.
    """
    with open_stream(source, offset=position["offset"]) as stream:
        yield from _blocks(source, stream, position, chunk_bytes, pieces, rules, what)


def _blocks(source, stream, position, chunk_bytes, pieces, rules, what):
    offset, lines = position["offset"], position["lines"]
    if position.get("line_start") is not None:  # resuming inside a long line
        offset, lines = yield from _pieces(source, stream, b"", offset, lines, position["line_start"],
                                           chunk_bytes, rules)
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            return
        skipped = 0
        if offset == 0 and block.startswith(BOM):
            block, skipped, offset = block[len(BOM):], len(BOM), len(BOM)
        long_line = None
        if not block.endswith(b"\n"):
            start = block.rfind(b"\n") + 1  # where the block's unfinished last line starts
            want = chunk_bytes + cutpoints.MAX_RUN_BYTES - (len(block) - start)
            tail = stream.readline(want)
            if len(tail) == want and not tail.endswith(b"\n"):  # neither a line break nor the end in reach
                long_line, block = block[start:] + tail, block[:start]
            else:
                block += tail
        if len(block) > MAX_LINE_BYTES:  # only with chunk_bytes near the limit: its lines may be too long
            _check_lengths(source, block, lines, what)
        if block:
            yield _whole(source, stream, block, skipped, offset, lines)
            offset, lines = offset + len(block), lines + count_newlines(block)
        if long_line is not None:
            if pieces:
                offset, lines = yield from _pieces(source, stream, long_line, offset, lines, offset,
                                                   chunk_bytes, rules)
            else:
                line = long_line + stream.readline(max(0, MAX_LINE_BYTES + 1 - len(long_line)))
                if len(line) > MAX_LINE_BYTES:
                    raise line_too_long(source, lines + 1, what)
                yield _whole(source, stream, line, 0, offset, lines)
                offset, lines = offset + len(line), lines + count_newlines(line)


def _check_lengths(source, block: bytes, lines: int, what: str) -> None:
    breaks = np.flatnonzero(np.frombuffer(block, np.uint8) == 0x0A)
    lengths = np.diff(np.concatenate(([-1], breaks, [len(block) - 1])))
    if lengths.shape[0] and int(lengths.max()) > MAX_LINE_BYTES:
        raise line_too_long(source, lines + 1 + int(lengths.argmax()), what)


def _whole(source, stream, block: bytes, skipped: int, offset: int, lines: int) -> Block:
    text = decode_utf8(block, source, lines, offset)
    return Block(text, lines + 1, len(block) + skipped, offset + len(block), lines + count_newlines(block),
                 stream.file_offset())


def _pieces(source, stream, carry: bytes, offset: int, lines: int, line_start: int, chunk_bytes: int, rules):
    """Yield the pieces of the long line that started at ``line_start`` (``carry`` holds its bytes from
    ``offset`` already read); return ``(offset, lines)`` after the line."""
    ended = False

    def read(n: int) -> bytes:  # the line's bytes only: the stream "ends" after its \n
        nonlocal ended
        if ended:
            return b""
        data = stream.readline(n)
        ended = len(data) < n or data.endswith(b"\n")
        return data

    held = None  # one piece held back, so a \r that a forced cut left before the final \n is dropped
    for piece, last in cutpoints.iter_pieces(read, chunk_bytes=chunk_bytes, rules=rules, carry=carry):
        end = offset + len(piece)
        if end - line_start > MAX_LINE_BYTES:
            raise line_too_long(source, lines + 1, "line-by-line document",
                                "; or read it as one bulk document (--bulk, line_by_line=False)")
        if last and piece.endswith(b"\n"):  # the line break is not part of the document: \n or \r\n
            piece = piece[:-1]
            if piece.endswith(b"\r"):
                piece = piece[:-1]
            elif not piece and held is not None and held[0].endswith(b"\r"):
                held = (held[0][:-1], *held[1:])
        if held is not None:
            yield _piece(source, stream, *held)
        held = (piece, offset, end, lines, last, line_start)
        offset = end
    if held is not None:
        yield _piece(source, stream, *held)
    return offset, lines + 1


def _piece(source, stream, data: bytes, start: int, end: int, lines: int, last: bool, line_start: int) -> Block:
    text = decode_utf8(data, source, lines, start)
    return Block(text, lines + 1, end - start, end, lines + (1 if last else 0), stream.file_offset(), True,
                 last, None if last else line_start)
