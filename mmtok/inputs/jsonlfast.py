"""JSON lines in bulk: a block of lines parsed by one ``json.loads`` call, with a proof it read them one by one.

Reading a JSON line costs about a microsecond of Python (the scanner's call,
its memo, a tuple, the checks), more than tokenizing a short line.  Joining
the block's lines into one JSON array and parsing that once runs the same C
scanner with no Python per line, but an array element need not be a line:
the lines ``{"text": "a", "x": [1`` and ``2]}, {"text": "b"}`` make the array
``[{"text": "a", "x": [1,2]}, {"text": "b"}]``, two elements out of two
invalid lines.  :class:`BlockParser` therefore takes a parse only with a proof
that every element is exactly one line (``N`` non-blank lines, ``A`` the
parsed list; ``strict`` JSON, so no string holds a raw line break):

- *Flat records* (the usual case): the lines are joined with ``",\\n"``; every
  line starts with ``{``; ``A`` holds ``N`` objects and no value in them is an
  object or array.  The parse then made exactly ``N`` objects and the outer
  array, so the ``N`` ``{`` characters outside strings are the ``N`` line
  starts (a line start follows a ``\\n``, which no string contains): object
  ``i`` opens at the start of line ``i``, holds no other object, and closes
  before object ``i + 1`` opens, so within line ``i`` (the joint, ``,\\n``,
  holds no ``}``); what follows it on the line can hold no second separator,
  so it is whitespace.  Line ``i`` is object ``i`` alone.
- *Any records* (nested values): the lines are joined with a marker element,
  ``,"\\u0000",``, in a block that does not contain the text ``"\\u0000"``.  A
  string whose value is exactly NUL can only be written ``"\\u0000"`` (JSON
  has no other way to write NUL), so every such string in the parse is one
  of the ``N - 1`` markers put in.  When ``A`` has ``2N - 1`` elements of which
  ``N - 1`` are that string, every marker was parsed as an element of the
  outer array, and the text between two of them, ``,line,``, is exactly one
  element (JSON has no empty elements): each line is one JSON value with
  JSON whitespace around it, which is what ``json.loads(line)`` reads.

The elements must then be objects with a string ``field``, and a block with a
``\\uD800``-style escape must decode to text without lone surrogates.  Depth:
a flat object nests one level; after the marker join, every line long
enough to nest deeper than :data:`~mmtok.base.jsonlimits.JSON_MAX_DEPTH` is
measured (``json_too_deep``) and a block holding a deeper line is left alone
(the reader's whole-block ``json_too_deep`` is a regular-expression pass,
slower than the parse itself, that these checks avoid; a parse too deep
for Python fails, and the block is left alone too).  Anything else, and every
block with an invalid line, goes back to the reader's line-by-line path
(:func:`mmtok.inputs.jsonlreader.reference_texts`), which writes the error
messages; tests/test_jsonlfast.py checks the identity with hypothesis.
"""

from __future__ import annotations

import gc
import itertools
import json
import operator
from typing import Callable

from ..base.jsonlimits import JSON_MAX_DEPTH, json_too_deep

__all__ = ["BlockParser", "too_deep"]

_MARKER, _MARKER_JSON = "\0", '"\\u0000"'
_FLAT_JOINT, _MARKED_JOINT = ",\n", "," + _MARKER_JSON + ","
_CONTAINERS = frozenset({dict, list})
#: Lines parsed per json.loads call. The call holds the GIL from start to end, so the other encoding
#: thread cannot take its engine's results meanwhile; 2,000 short lines (~70 KB) parse in about a
#: millisecond. A block of ~1 MiB in one call took 1.17x the wall time and 1.13x the CPU of the
#: same block in such groups (tools/README.md, "JSON lines").
GROUP_LINES = 2000
_FIRST = operator.itemgetter(0)


class BlockParser:
    """The ``field`` strings of blocks of JSON lines, or None for a block to read line by line.

    Remembers whether an earlier block had nested values, so that a file of
    nested records goes straight to the marker join instead of parsing each
    block twice.
    """

    def __init__(self, field: str, *, group_lines: int = GROUP_LINES):
        self.field, self.nested, self._get = field, False, operator.itemgetter(field)
        self.group_lines = group_lines

    def texts(self, text: str) -> list[str] | None:
        """The texts of the non-blank lines of ``text`` (whole lines split at ``\\n``), or None."""
        if "\r" in text:  # \r\n line ends: a \r left before a line break is whitespace after the value
            text = text.replace("\r\n", "\n")
        lines = list(filter(None, text.split("\n")))
        values: list[str] = []
        for start in range(0, len(lines), self.group_lines):
            group = self._group(text, lines[start:start + self.group_lines])
            if group is None:
                return None
            values += group
        return values

    def _group(self, text: str, lines: list[str]) -> list[str] | None:
        """The texts of ``lines``, whole non-blank lines of the block ``text``, or None."""
        records = None if self.nested else self._flat(lines)
        if records is None:
            records = self._marked(text, lines)
            if records is None:
                return None
        try:
            values = list(map(self._get, records))  # TypeError: not an object; KeyError: no such field
            joined = "".join(values)  # TypeError: a value that is not a string
        except (KeyError, TypeError):
            return None  # the line-by-line path says which line and what is wrong
        # only a \uD800-style escape can put a lone surrogate (never ASCII) into a decoded value
        if not joined.isascii() and ("\\ud" in text or "\\uD" in text) and not _encodable(joined):
            return None
        return values

    def _flat(self, lines: list[str]) -> list | None:
        """The records of a block of flat objects, each starting its line (first proof above), or None.

        Flat: every record has one member (whose value ``texts`` then checks
        is a string), or no member value is an object or array.
        """
        if set(map(_FIRST, lines)) != {"{"}:
            return None  # a non-blank line that does not start with {
        records = _loads("[" + _FLAT_JOINT.join(lines) + "]")
        if records is None or len(records) != len(lines):
            return None
        try:
            if set(map(len, records)) != {1} and _CONTAINERS & set(
                    map(type, itertools.chain.from_iterable(map(dict.values, records)))):
                self.nested = True
                return None
        except TypeError:  # an element that is not an object
            return None
        return records

    def _marked(self, text: str, lines: list[str]) -> list | None:
        """The records of a block of any JSON values, one per line (second proof above), or None."""
        if _MARKER_JSON in text:
            return None
        parsed = _loads("[" + _MARKED_JOINT.join(lines) + "]")
        if parsed is None or len(parsed) != 2 * len(lines) - 1 or parsed.count(_MARKER) != len(lines) - 1:
            return None
        if too_deep(lines):
            return None  # the line-by-line path refuses the line
        return parsed[0::2]


def too_deep(lines: list[str], deeper: Callable[[str], bool] = json_too_deep) -> bool:
    """Whether a line (each one JSON value) nests deeper than JSON_MAX_DEPTH, by ``deeper(line)``.

    Such a value has at least two brackets per level, so only a line longer
    than twice the limit can, and only those are measured (a C-level ``max``
    first: no Python per line in a block of short lines).
    """
    short = 2 * JSON_MAX_DEPTH + 1
    return max(map(len, lines), default=0) > short and any(deeper(line) for line in lines if len(line) > short)


def _loads(text: str) -> list | None:
    """``json.loads(text)``, or None when it fails, with the cyclic GC paused while it runs.

    The parse holds the GIL from start to end. Nested records are objects the
    collector tracks; created by the tens of thousands in one call, they made
    it run full collections of the whole process again and again (4x the
    parse time here); paused, it looks at them once, later.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError; a number Python refuses; hostile nesting
        return None
    finally:
        if paused:
            gc.enable()


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
