"""JSON lines in bulk with msgspec: each line decoded straight into a record holding only ``field``.

msgspec decodes a line into a ``gc=False`` struct with one member,
``field``, checking the rest of the line as JSON and skipping it: 2-3x
faster than the ``json`` module's bulk parse of :mod:`mmtok.inputs.jsonlfast`
on short rows (``python tools/bench_stages.py --jsonl``).  Each non-empty line
is decoded on its own (``Decoder.decode`` fails on anything but exactly one
JSON value with whitespace around it), so a record is a line.  A block is
taken only when its result is what the line-by-line reference
(:func:`mmtok.inputs.jsonlreader.reference_texts`) gives; otherwise
:meth:`MsgspecLines.texts` returns None and the block goes on to the next
parser:

- *A line msgspec does not decode*: not JSON, not an object, no string
  ``field``; also what Python's json reads and msgspec does not: ``NaN`` and
  ``Infinity``, lone ``\\uD800``-style surrogates (the reference then refuses
  one in ``field``), a line of whitespace only (the reference skips it).
- *Integers of any length*: msgspec reads them, and so does the reference
  (numbers are never converted).
- *Depth*: msgspec reads ~1,000 levels, mmtok refuses more than
  :data:`~mmtok.base.jsonlimits.JSON_MAX_DEPTH`.  A line holding more
  brackets than that is decoded again, whole, and its containers walked
  (a regular-expression pass over the line, :func:`~mmtok.base.jsonlimits.json_too_deep`,
  cost 3x the parse on source code, whose lines hold hundreds of brackets
  inside the text).

msgspec is imported on first use; without it (or with a ``field`` name msgspec
cannot match, one holding ``"``, ``\\`` or a control character) every block
goes to the next parser.  tests/test_jsonlfast.py checks the identity with
hypothesis.
"""

from __future__ import annotations

import operator

from ..base.jsonlimits import JSON_MAX_DEPTH

__all__ = ["MsgspecLines"]


class MsgspecLines:
    """The ``field`` strings of blocks of JSON lines, or None for a block another parser must read."""

    def __init__(self, field: str):
        self.field, self._decoder = field, _decoder(field)
        self._any = None if self._decoder is None else _any_decoder()

    def texts(self, text: str) -> list[str] | None:
        """The texts of the non-blank lines of ``text`` (whole lines split at ``\\n``), or None."""
        if self._decoder is None:
            return None
        if "\r" in text:  # \r\n line ends: a \r left before a line break is whitespace after the value
            text = text.replace("\r\n", "\n")
        lines = list(filter(None, text.split("\n")))
        try:
            records = list(map(self._decoder.decode, lines))
        except (ValueError, RecursionError):  # msgspec's DecodeError and ValidationError are ValueErrors
            return None
        if any(self._too_deep(line) for line in lines if len(line) > 2 * JSON_MAX_DEPTH):
            return None
        return list(map(_TEXT, records))

    def _too_deep(self, line: str) -> bool:
        """Whether the JSON ``line`` (decoded before) nests deeper than JSON_MAX_DEPTH."""
        if line.count("[") + line.count("{") <= JSON_MAX_DEPTH:
            return False
        try:
            value = self._any(line)
        except RecursionError:  # far deeper than the limit
            return True
        level, containers = 0, [value]
        while containers:  # one level of containers at a time
            level += 1
            if level > JSON_MAX_DEPTH:
                return True
            containers = [item for container in containers
                          for item in (container.values() if type(container) is dict else container)
                          if type(item) is dict or type(item) is list]
        return False


_TEXT = operator.attrgetter("text")


def _any_decoder():
    import msgspec

    return msgspec.json.Decoder().decode


def _decoder(field: str):
    """A msgspec decoder of records holding ``field`` (a string), or None without msgspec or for such a name."""
    try:
        import msgspec
    except ImportError:
        return None
    try:
        record = msgspec.defstruct("Record", [("text", str)], rename={"text": field}, gc=False)
    except (ValueError, TypeError):  # a name msgspec cannot match: '"', '\\' or a control character
        return None
    return msgspec.json.Decoder(record)
