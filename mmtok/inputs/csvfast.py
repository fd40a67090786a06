"""Single-column CSV in bulk: a block of rows parsed with numpy and a few C-level string passes.

The ``csv`` module costs about a microsecond of Python per row, which on short
rows is slower than tokenizing them.  Most one-column CSV files have a strict
RFC 4180 shape that can be parsed a block at a time instead:

- a record ends at a ``\\n`` preceded by an even number of ``"`` bytes (counted
  from the block start, which is a record start): one numpy pass finds the
  offsets of the few bytes that matter (newline, quote, ``\\r``, comma), and a
  running count of the quotes among them gives the parity of each;
- a record is either unquoted (no ``"`` and no ``,``) and taken as it is, or
  quoted: ``"`` at its first byte and its last, every ``"`` between them
  doubled; its text is ``record[1:-1].replace('""', '"')``;
- a record may end with ``\\r\\n`` (the ``\\r`` is no text);
- an empty record is a blank line (no row).

:func:`parse_block` says whether a block has exactly that shape (checked with
numpy on those offsets: every opening quote starts a record, every closing one
ends it, no comma outside quotes, no ``\\r`` outside quotes but those of
``\\r\\n``, no NUL or 0xFF byte, valid UTF-8, no field over the field limit).
Under those conditions the grammar is unambiguous and ``csv.reader`` returns
the same rows, so anything else (dialect oddities, a quote inside an unquoted
field, a lone ``\\r`` line end, a file with several columns, an unclosed quote,
invalid UTF-8) is left to the ``csv`` module, which also writes the error
messages (tests/test_csvfast.py checks the identity against ``csv.reader`` with
hypothesis).
"""

from __future__ import annotations

import numpy as np

from .chunk import SeparatedTexts

__all__ = ["PushbackReader", "parse_block"]

_QUOTE, _NEWLINE, _COMMA, _CR = 0x22, 0x0A, 0x2C, 0x0D
_DELETED = 0xFF  # never a byte of valid UTF-8: marks the syntax bytes that one bytes.translate deletes


class PushbackReader:
    """A byte stream's ``read``/``readline`` with bytes pushed back in front (see :meth:`unread`)."""

    def __init__(self, stream):
        self.stream, self._back, self._at = stream, b"", 0

    def unread(self, data: bytes) -> None:
        self._back, self._at = data + self._back[self._at:], 0

    def read(self, n: int) -> bytes:
        back = self._back[self._at:self._at + n]
        self._at += len(back)
        return back + self.stream.read(n - len(back)) if len(back) < n else back

    def readline(self, limit: int = -1) -> bytes:
        """One line (with its ``\\n``), or at most ``limit`` bytes of it when ``limit >= 0``."""
        stop = len(self._back) if limit < 0 else min(len(self._back), self._at + limit)
        end = self._back.find(b"\n", self._at, stop) + 1
        if end or stop < len(self._back):
            end = end or stop
            line, self._at = self._back[self._at:end], end
            return line
        line, self._back, self._at = self._back[self._at:], b"", 0
        return line + self.stream.readline(-1 if limit < 0 else limit - len(line))

    def file_offset(self) -> int:
        return self.stream.file_offset()


def parse_block(block: bytes, *, at_eof: bool, field_limit: int,
                line_limit: int | None = None) -> tuple[list[str], int, int] | None:
    """The rows of a one-column CSV ``block`` that starts at a record start, or None to use ``csv``.

    Returns ``(texts, consumed, lines)``: the text of every row in the block's
    complete records, the bytes those records take (through the newline that
    ends the last), and the lines they span.  A record cut by the block end
    is left for the next block (``consumed`` stops before it), unless
    ``at_eof``: then the block ends the file and its last record too.  None
    when no record is complete, the block is not strictly shaped, or a line
    (line break included) is longer than ``line_limit`` bytes.

    No Python runs per row, and only one numpy pass per byte class runs over
    the whole block: it finds the bytes that matter (newline, quote, ``\\r``,
    comma); the rest works on those few.  The syntax bytes (the quotes around
    a field, one of each doubled quote, the ``\\r`` of ``\\r\\n``, blank lines)
    are overwritten with 0xFF, never a byte of valid UTF-8, and deleted by one
    ``bytes.translate`` (no copy at all when there are none); one
    ``str.split`` on the newline (or, when a field holds one, on a NUL byte
    written at every record end: a block holding NUL is left to csv) makes
    the rows.
    """
    if not block:
        return None
    data = np.frombuffer(block, dtype=np.uint8)
    special = data == _NEWLINE
    scratch = np.empty_like(special)
    for byte in b'"\r,':  # a byte absent from the block costs one memchr, not a pass
        if block.find(byte) >= 0:
            special |= np.equal(data, byte, out=scratch)
    at = np.flatnonzero(special)
    del special, scratch
    kind = data.take(at)  # (np.compress and take, not boolean indexing: several times faster here)
    is_quote, is_newline = kind == _QUOTE, kind == _NEWLINE
    if is_quote.any():
        # outside quotes: an even number of quotes before (an opening quote is outside, a closing one inside)
        odd = np.cumsum(is_quote, dtype=np.int32)
        odd &= 1
        outside = odd == is_quote
        end_mask = is_newline & outside  # newlines outside quotes end records
        even_quotes = odd[-1] == 0
    else:
        outside, end_mask, even_quotes = None, is_newline, True
    if at_eof and even_quotes and block[-1] != _NEWLINE:
        consumed, used = len(block), at.shape[0]  # the last record ends the file, with no newline
    elif end_mask.any():
        used = at.shape[0] - int(np.argmax(end_mask[::-1]))  # through the last record end
        consumed = int(at[used - 1]) + 1
    else:
        return None
    if used < at.shape[0]:  # the specials of the record left for the next block
        at, kind, is_quote, is_newline, end_mask = at[:used], kind[:used], is_quote[:used], is_newline[:used], \
            end_mask[:used]
        outside = None if outside is None else outside[:used]
    newline_count = int(np.count_nonzero(is_newline))
    lines = newline_count + (consumed == len(block) and block[-1] != _NEWLINE)
    if line_limit is not None and consumed > line_limit and np.diff(
            np.compress(is_newline, at), prepend=-1, append=consumed - 1).max() > line_limit:
        return None  # a line longer than the line-based readers take: csv's path says so
    if block.find(b"\0", 0, consumed) >= 0 or block.find(b"\xff", 0, consumed) >= 0:
        return None  # NUL (the record separator below), or 0xFF (invalid UTF-8: csv's path names the line)
    ends = np.compress(end_mask, at)
    syntax = _syntax_bytes(data, at, kind, is_quote, outside, consumed)
    if syntax is None:
        return None
    # a blank line is no row: its record (nothing, or a lone \r) goes, newline and all
    starts = np.concatenate(([0], ends[:-1] + 1))
    blank = np.compress((ends == starts) | ((ends == starts + 1) & (data.take(starts) == _CR)), ends)
    own_newlines = ends.shape[0] < newline_count  # a field holds a newline: records end at NUL
    try:
        if syntax[0].shape[0] or syntax[1].shape[0] or blank.shape[0] or own_newlines:
            out = bytearray(memoryview(block)[:consumed])
            edit = np.frombuffer(out, dtype=np.uint8)
            crs, quotes, kept = syntax
            edit[crs] = edit[quotes] = _DELETED
            edit[kept] = _QUOTE  # one quote of each doubled one stays
            if own_newlines:
                edit[ends] = 0
            edit[blank] = _DELETED
            del edit
            # Valid exactly when the block is: every run of deleted (ASCII) bytes has a kept ASCII byte
            # beside it, so no deletion can join the bytes of one character.
            text = out.translate(None, b"\xff").decode("utf-8")
            del out
        else:
            text = str(memoryview(block)[:consumed], "utf-8")
    except UnicodeDecodeError:
        return None  # invalid UTF-8: csv's path names the line
    separator = "\0" if own_newlines else "\n"
    if block[consumed - 1] == _NEWLINE:
        text = text[:-1]  # the last separator (else the last record ended the file)
    texts = SeparatedTexts(text, separator, int(ends.shape[0]) + (block[consumed - 1] != _NEWLINE) - int(blank.shape[0]))
    # a field is no longer (in characters) than its record (in bytes): only a long record needs a look
    if consumed > field_limit and np.diff(ends, prepend=-1, append=consumed - 1).max() > field_limit \
            and max(map(len, texts)) > field_limit:
        return None  # csv's path raises the field-limit error (in characters, as here) with its line
    return texts, consumed, lines


def _syntax_bytes(data: np.ndarray, at: np.ndarray, kind: np.ndarray, is_quote: np.ndarray,
                  outside: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The syntax bytes: ``(crs, quotes, kept)``, the offsets of the \\r of each \\r\\n, of every quote, and of
    the one quote kept of each doubled quote.

    ``at`` holds the offsets of the block's special bytes, ``kind`` those bytes, ``outside`` whether each
    lies outside quotes (None: the block has no quote).  None when the block is not strictly shaped: a
    comma outside quotes, a \\r outside quotes that does not end a line, a quote that does not open at a
    record start or close at a record end."""
    is_cr, is_comma = kind == _CR, kind == _COMMA
    if outside is not None:
        is_cr &= outside
        is_comma &= outside
    if is_comma.any():
        return None  # a comma outside quotes: a second field
    crs = np.compress(is_cr, at)
    if crs.shape[0] and (crs[-1] + 1 >= size or np.any(data.take(crs + 1) != _NEWLINE)):
        return None  # a \r ending a row inside a line (csv refuses it) or at the file end: left to csv
    quotes = crs[:0] if outside is None else np.compress(is_quote, at)
    if quotes.shape[0] & 1:
        return None  # a quote never closed within the records
    if quotes.shape[0] == 0:
        return crs, quotes, quotes
    # Quotes alternate opening, closing (by the parity of the ones before).  An opening quote follows a
    # record end (a newline outside quotes), or a closing quote just before it: the two are a doubled quote
    # inside the field.  A closing quote is followed by the line end (\n, or \r that must be a \r\n's) or the
    # file end, or by an opening quote (doubled).
    opens, closes = quotes[0::2], quotes[1::2]
    before = data.take(opens - 1)
    if opens[0] == 0:
        before[0] = _NEWLINE  # the block starts with an opening quote (take read the last byte)
    doubled = before == _QUOTE
    opens_ok = (before == _NEWLINE) | doubled
    after = data.take(np.minimum(closes + 1, size - 1))
    closes_ok = (after == _NEWLINE) | (after == _CR) | (after == _QUOTE)
    closes_ok[-1] |= closes[-1] + 1 == size
    if not (opens_ok.all() and closes_ok.all()):
        return None
    return crs, quotes, np.compress(doubled, opens)
