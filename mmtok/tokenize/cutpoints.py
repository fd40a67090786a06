"""Where a bulk text may be cut into pieces that are tokenized separately.

A bulk file (one document, possibly larger than RAM) is tokenized piece by
piece.  That only gives the same tokens as tokenizing the whole text if no
pre-tokenizer match can span a cut.  This module knows two byte-level cut
rules; which of them are safe for a given tokenizer is decided elsewhere and
passed in as ``rules``:

``"newline"``
    cut at ``i`` when ``b[i-1]`` is ``\\n`` and both ``b[i-2]`` and ``b[i]`` are
    printable ASCII other than space (0x21..0x7E): the previous line ends in a
    visible character and the next one starts with one.
``"space"``
    cut at ``i`` when ``b[i]`` is a space and ``b[i-1]`` and ``b[i+1]`` are ASCII
    letters: the cut falls between a word and `` word``.

Both rules only ever cut between two ASCII bytes, so a cut never falls inside
a UTF-8 multi-byte sequence and every piece of a valid UTF-8 file decodes on
its own.

Memory stays flat on text without safe cuts (a long run of letters, text in a
script without ASCII spaces, a tokenizer with no safe rule): when no safe cut
lies within :data:`MAX_RUN_BYTES` past ``chunk_bytes``, the piece is *forced*
to end there, after the last newline that a non-space character follows in the
window if there is one (where byte-level BPE pre-tokenizers split anyway),
else at the last UTF-8 character boundary. Tokenizing pieces separately equals
tokenizing the whole text whenever safe cuts are never more than that far
apart; at a forced cut, only the pre-token(s) it splits may be encoded
differently (tests/test_long_runs.py measures this).
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

__all__ = ["CUT_RULES", "MAX_RUN_BYTES", "SUB_PIECE_BYTES", "check_rules", "find_cut", "iter_pieces",
           "lookahead_bytes", "sub_cuts"]

CUT_RULES = frozenset({"newline", "space"})
MAX_RUN_BYTES = 1 << 20  # a piece without a safe cut is forced to end this far past chunk_bytes
SUB_PIECE_BYTES = 1 << 16  # a piece is handed to the engine as texts of about this size (see sub_cuts)
_FORCED_NEWLINE = re.compile(rb"\n(?=[^\s])")

# Patterns start with a literal byte so the regex engine can skip to it with a
# fast search; the lookarounds check the neighbours and fail at buffer edges,
# so a rule is never decided on bytes that are not in the buffer.
_NEWLINE_CUT = re.compile(rb"\n(?<=[\x21-\x7e]\n)(?=[\x21-\x7e])")
_SPACE_CUT = re.compile(rb" (?<=[A-Za-z] )(?=[A-Za-z])")


def check_rules(rules) -> frozenset[str]:
    """Return ``rules`` as a frozenset, refusing names that are not cut rules."""
    if isinstance(rules, str):
        raise ValueError(f"cut_rules must be a set of rule names such as {{'newline'}}, not the string {rules!r}")
    rules = frozenset(rules)
    unknown = rules - CUT_RULES
    if unknown:
        raise ValueError(f"unknown cut rule(s) {sorted(unknown)}; known rules are {sorted(CUT_RULES)}")
    return rules


def find_cut(buf, start: int, rules: frozenset[str]) -> int | None:
    """Return the first offset ``i >= start`` in ``buf`` where a cut is safe, or None.

    ``buf`` is any bytes-like object.  A "newline" cut anywhere in the scanned
    region is preferred over an earlier "space" cut.  Only bytes present in
    ``buf`` are used: a rule that needs a byte beyond the end is not decided.
    """
    start = max(start, 0)
    if "newline" in rules:
        # the match is the newline itself, one byte before the cut
        match = _NEWLINE_CUT.search(buf, max(start - 1, 0))
        if match is not None:
            return match.start() + 1
    if "space" in rules:
        match = _SPACE_CUT.search(buf, start)
        if match is not None:
            return match.start()
    return None


def sub_cuts(buf, rules: frozenset[str], every: int = SUB_PIECE_BYTES) -> list[int]:
    """Safe cuts inside the piece ``buf``, about ``every`` bytes apart (each found in a bounded window).

    Encoding the sub-pieces apart gives the same tokens as encoding the piece
    whole (every cut is safe), and it is faster: a piece decodes to a Python
    string as wide as its widest character, which the engine must turn back
    into UTF-8, while most small sub-pieces of real text are pure ASCII,
    whose strings are their UTF-8 bytes.  A pure function of ``buf``.
    """
    cuts, start, end = [], 0, len(buf)
    window = lookahead_bytes(every)
    with memoryview(buf) as view:
        while end - start > every + window:
            with view[: start + every + window] as scanned:
                cut = find_cut(scanned, start + every, rules)
            if cut is None:  # none near: look again one window further on
                start += every
                continue
            cuts.append(cut)
            start = cut
    return cuts


def forced_cut(buf, limit: int) -> int:
    """Where a piece of ``buf`` with no safe cut before ``limit`` ends: after the last newline that a
    non-space byte follows (past the middle of the window), else at the last UTF-8 character start."""
    window = bytes(buf[limit // 2 : limit])
    newlines = [m.start() for m in _FORCED_NEWLINE.finditer(window)]
    if newlines:
        return limit // 2 + newlines[-1] + 1
    # Only bytes before ``limit`` decide (pieces depend on nothing else): end after the last character
    # that is whole before the limit.
    lead = limit - 1
    while lead > limit - 4 and buf[lead] & 0xC0 == 0x80:
        lead -= 1
    size = 1 if buf[lead] < 0x80 else 2 if buf[lead] < 0xE0 else 3 if buf[lead] < 0xF0 else 4
    return limit if lead + size == limit else lead


def lookahead_bytes(chunk_bytes: int) -> int:
    """How far past the target a piece scans for a cut, per extension step.

    A pure function of ``chunk_bytes``, so cut positions never depend on how
    the underlying stream happened to return data.
    """
    return max(64, min(chunk_bytes // 4, 1 << 18))


def iter_pieces(read: Callable[[int], bytes], *, chunk_bytes: int, rules: frozenset[str],
                carry: bytes = b"") -> Iterator[tuple[bytes, bool]]:
    """Cut the byte stream ``carry + read(...)`` into pieces; yield ``(piece, is_last)``.

    ``read(n)`` must return ``n`` bytes, or fewer only at the end of the stream.
    Each piece ends at the first safe cut at or after ``chunk_bytes`` bytes
    into it, found in the window ``[piece start, piece start + chunk_bytes +
    k * lookahead)`` for the smallest ``k >= 1`` that holds a cut.  Pieces are
    therefore a pure function of the bytes and the piece start.  If the rest of
    the stream holds no safe cut, the rest is one piece if it ends within
    ``chunk_bytes + MAX_RUN_BYTES``; beyond that the piece is forced to end
    there (:func:`forced_cut`), so memory stays bounded.
    """
    step = lookahead_bytes(chunk_bytes)
    buf = bytearray(carry)
    eof = False
    while buf or not eof:
        want = chunk_bytes + step
        searched_from = chunk_bytes
        cut = None
        while True:
            if len(buf) <= want and not eof:
                # one byte past the window, so the end of the stream is known before a piece is forced to
                # end: a forced cut at the very end would leave the last piece without is_last
                need = want + 1 - len(buf)
                more = read(need)
                eof = len(more) < need
                buf += more
            # a window may be shorter than what is buffered (carry from a long scan)
            window = memoryview(buf)[:want]
            try:
                cut = find_cut(window, searched_from, rules)
            finally:
                window.release()
            if cut is not None or (eof and len(buf) <= want):
                break
            if want >= chunk_bytes + MAX_RUN_BYTES:
                cut = forced_cut(buf, chunk_bytes + MAX_RUN_BYTES)
                break
            # Earlier offsets were fully decided (none is a cut) except the last
            # one, whose "space" rule needed the byte we had not yet read.
            searched_from = max(searched_from, want - 1)
            want += step
        if cut is None:
            if buf:  # an empty stream has no pieces at all
                yield bytes(buf), True
            return
        with memoryview(buf) as view:  # one copy; the view must be gone before resizing buf
            piece = view[:cut].tobytes()
        del buf[:cut]
        yield piece, False
