"""Single-column CSV in bulk: a block of rows parsed with numpy and a few C-level string passes.

The ``csv`` module costs about a microsecond of Python per row, which on short
rows is slower than tokenizing them.  Most one-column CSV files have a strict
RFC 4180 shape that can be parsed a block at a time instead:

- a record ends at a ``\\n`` preceded by an even number of ``"`` bytes (counted
  from the block start, which is a record start): the parity of every newline
  is one ``numpy.searchsorted`` of the newline offsets into the quote offsets;
- a record is either unquoted (no ``"`` and no ``,``) and taken as it is, or
  quoted: ``"`` at its first byte and its last, every ``"`` between them
  doubled; its text is ``record[1:-1].replace('""', '"')``;
- an empty record is a blank line (no row).

:func:`parse_block` says whether a block has exactly that shape (checked with
numpy on the quote and comma offsets: every opening quote starts a record,
every closing one ends it, no comma outside quotes, no ``\\r`` or NUL byte, valid
UTF-8, no field over the field limit).  Under those conditions the grammar is
unambiguous and ``csv.reader`` returns the same rows, so anything else
(dialect oddities, a quote inside an unquoted field, CRLF line ends, a file
with several columns, an unclosed quote, invalid UTF-8) is left to the
``csv`` module, which also writes the error messages (tests/test_csvfast.py
checks the identity against ``csv.reader`` with hypothesis).
"""

from __future__ import annotations

import numpy as np

__all__ = ["PushbackReader", "parse_block"]

_QUOTE, _NEWLINE, _COMMA, _CR = 0x22, 0x0A, 0x2C, 0x0D


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

    No Python runs per row: the syntax bytes (the quotes around a field, one
    of each doubled quote, the ``\r`` of ``\r\n``, blank lines) are deleted
    with one numpy mask, every record end becomes a NUL byte (a block holding
    NUL is left to csv), and one ``str.split`` makes the rows.
    """
    if not block:
        return None
    data = np.frombuffer(block, dtype=np.uint8)
    newlines = np.flatnonzero(data == _NEWLINE)
    quotes = np.flatnonzero(data == _QUOTE)
    # Newlines outside quotes end records; with no quote in the block, every newline does.
    ends = newlines[(np.searchsorted(quotes, newlines) & 1) == 0] if quotes.shape[0] else newlines
    if at_eof and (quotes.shape[0] & 1) == 0 and not block.endswith(b"\n"):
        consumed, lines = len(block), int(newlines.shape[0]) + 1  # the last line has no newline
    elif ends.shape[0]:
        consumed = int(ends[-1]) + 1
        lines = int(np.searchsorted(newlines, consumed))
    else:
        return None
    body = data[:consumed]
    if line_limit is not None and np.diff(newlines[newlines < consumed], prepend=-1, append=consumed - 1).max() > line_limit:
        return None  # a line longer than the line-based readers take: csv's path says so
    if np.count_nonzero(body == 0) or (not block[:consumed].isascii() and not _utf8(block[:consumed])):
        return None  # NUL bytes, invalid UTF-8 (csv's path names the line)
    quotes = quotes[quotes < consumed]
    drop = np.zeros(consumed, dtype=bool)
    if not _crs_end_lines(body, quotes, drop) or not _quotes_and_commas_strict(body, quotes, consumed, drop):
        return None
    # a blank line is no row: its record (nothing, or a lone \r) goes, newline and all
    starts = np.concatenate(([0], ends[:-1] + 1))
    blank = (ends == starts) | ((ends == starts + 1) & (body[starts] == _CR))
    drop[ends[blank]] = True
    out = body.copy()
    out[ends] = 0  # the record separator
    kept = out[~drop]
    separators = np.flatnonzero(kept == 0)
    longest = int(np.diff(separators, prepend=-1, append=kept.shape[0]).max()) - 1
    if longest > field_limit:
        return None  # csv's path raises the field-limit error with its line (bytes >= characters)
    texts = kept.tobytes().decode("utf-8").split("\0")
    if body[-1] == _NEWLINE:
        texts.pop()  # the empty string after the last separator (else the last record ended the file)
    return texts, consumed, lines


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _crs_end_lines(body: np.ndarray, quotes: np.ndarray, drop: np.ndarray) -> bool:
    """Mark the \r of every \r\n line end in ``drop``; False for a \r outside quotes that is not one."""
    is_cr = body == _CR
    if not is_cr.any():
        return True
    crs = np.flatnonzero(is_cr)
    if quotes.shape[0]:
        crs = crs[(np.searchsorted(quotes, crs) & 1) == 0]  # inside quotes a \r is text
    if crs.shape[0] == 0:
        return True
    if crs[-1] + 1 >= body.shape[0] or np.any(body[crs + 1] != _NEWLINE):
        return False  # a \r ending a row inside a line (csv refuses it) or at the file end: left to csv
    drop[crs] = True
    return True


def _quotes_and_commas_strict(body: np.ndarray, quotes: np.ndarray, size: int, drop: np.ndarray) -> bool:
    """Every opening quote starts a record, every closing quote ends one, no comma lies outside quotes.

    Marks in ``drop`` the quotes that are syntax: around a field, and the first of each doubled one."""
    if quotes.shape[0] & 1:
        return False  # a quote never closed within the records
    is_comma = body == _COMMA
    if quotes.shape[0] == 0:
        return not is_comma.any()
    commas = np.flatnonzero(is_comma)
    if commas.shape[0] and np.any((np.searchsorted(quotes, commas) & 1) == 0):
        return False  # a comma outside quotes: a second field
    opens, closes = quotes[0::2], quotes[1::2]
    # A doubled quote inside a field is a close immediately followed by an open: not a field boundary.
    doubled = opens[1:] == closes[:-1] + 1
    real_opens = opens[np.concatenate(([True], ~doubled))]
    real_closes = closes[np.concatenate((~doubled, [True]))]
    opens_ok = (real_opens == 0) | (body[np.maximum(real_opens - 1, 0)] == _NEWLINE)
    # a field ends at its closing quote: the line (or file) ends right after it, with or without \r
    after = np.minimum(real_closes + 1, size - 1)
    closes_ok = (real_closes + 1 == size) | (body[after] == _NEWLINE) | (body[after] == _CR)
    if not (opens_ok.all() and closes_ok.all()):
        return False
    drop[real_opens] = drop[real_closes] = True
    drop[closes[:-1][doubled]] = True  # "" inside a field: one quote of the two stays
    return True
