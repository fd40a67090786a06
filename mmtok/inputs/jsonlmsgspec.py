"""JSON lines in bulk with msgspec: the ``field`` strings of a block, as one text or decoded line by line.

A block is taken only when the result is what the line-by-line reference
(:func:`mmtok.inputs.jsonlreader.reference_texts`) gives; otherwise
:meth:`MsgspecLines.texts` returns None and the block goes on to the next
parser (:mod:`mmtok.inputs.jsonlfast`).  Two ways, the first tried first:

- *One member per line, as one text.*  When every line is ``{"field":
  "..."}`` spelt alike (json.dumps' ``{"text": "`` or ``{"text":"``, then the
  value, then ``"}``), each line break with what surrounds it, ``"}\\n{"text":
  "``, is replaced by the *joint* (the build gives the tokenizer's eos text)
  and the whole is decoded as ONE JSON string: ``"v1<joint>v2..."``.  That
  decode succeeds only if every value is the content of a JSON string (no
  unescaped quote, valid escapes, no raw control character; msgspec also
  refuses lone surrogates), so each line is a one-member object whose value
  the reference reads alike.  A value ending in a lone backslash (an invalid
  line) could take the joint's first character as an escape: joints starting
  with a JSON escape letter, or with a border (a proper prefix that is also
  a suffix, which could straddle a value's end), are replaced by NUL
  (``\\u0000``, in a block that does not hold that text); then the decoded
  text must hold exactly one joint per line break, so no value holds the
  joint's text.  The result, :class:`~mmtok.inputs.chunk.SeparatedTexts`,
  makes no object per row: the build encodes it joined
  (:mod:`mmtok.tokenize.joined`) without splitting it.
- *Line by line*: each non-empty line decoded on its own into a ``gc=False``
  struct with one member, ``field`` (msgspec checks the rest of the line as
  JSON and skips it; ``Decoder.decode`` fails on anything but exactly one
  JSON value with whitespace around it), 2-3x faster than the ``json``
  module's bulk parse on short rows.  What it does not take goes on: anything
  msgspec does not decode (not JSON, not an object, no string ``field``),
  and what Python's json reads and msgspec does not: ``NaN`` and
  ``Infinity``, lone ``\\uD800``-style surrogates (the reference then refuses
  one in ``field``), a line of whitespace only (the reference skips it).
  Integers of any length: msgspec reads them, and so does the reference
  (numbers are never converted).  Depth: msgspec reads ~1,000 levels, mmtok
  refuses more than :data:`~mmtok.base.jsonlimits.JSON_MAX_DEPTH`; a line
  holding more brackets than that is decoded again, whole, and its
  containers walked (a regular-expression pass over the line,
  :func:`~mmtok.base.jsonlimits.json_too_deep`, costs 3x the parse on source
  code, whose lines hold hundreds of brackets inside the text).

msgspec is imported on first use; without it (or with a ``field`` name msgspec
cannot match, one holding ``"``, ``\\`` or a control character) every block
goes to the next parser.  tests/test_jsonlfast.py checks the identity with
hypothesis.
"""

from __future__ import annotations

import json
import operator

from ..base.jsonlimits import JSON_MAX_DEPTH
from ..tokenize.joined import has_border
from .chunk import SeparatedTexts
from .jsonlfast import too_deep

__all__ = ["MsgspecLines"]


class MsgspecLines:
    """The ``field`` strings of blocks of JSON lines, or None for a block another parser must read."""

    def __init__(self, field: str, *, joint: str = "\0"):
        self.field, self._decoder = field, _decoder(field)
        self._any = self._string = None
        if self._decoder is not None:
            self._any, self._string = _any_decoder(), _string_decoder()
        name = json.dumps(field)
        self._prefixes = ("{" + name + ': "', "{" + name + ':"')  # json.dumps' spellings of a one-member line
        self._joint, self._joint_json = joint, json.dumps(joint, ensure_ascii=False)[1:-1]
        # A value ending in a lone backslash (an invalid line) would take a joint starting with an escape
        # letter, or a backslash, for the end of an escape (only NUL's, \u0000, is made safe, by its count);
        # a joint with a border could be found straddling a value's end: NUL is used instead of those.
        if joint != "\0" and (not joint or has_border(joint) or self._joint_json[:1] in tuple('"\\/bfnrtu')):
            self._joint, self._joint_json = "\0", _NUL_ESCAPE

    def texts(self, text: str) -> list[str] | SeparatedTexts | None:
        """The texts of the non-blank lines of ``text`` (whole lines split at ``\\n``), or None."""
        if self._decoder is None:
            return None
        if "\r" in text:  # \r\n line ends: a \r left before a line break is whitespace after the value
            text = text.replace("\r\n", "\n")
        one_member = self._one_member(text)
        if one_member is not None:
            return one_member
        lines = list(filter(None, text.split("\n")))
        try:
            records = list(map(self._decoder.decode, lines))
        except (ValueError, RecursionError):  # msgspec's DecodeError and ValidationError are ValueErrors
            return None
        if too_deep(lines, self._too_deep):
            return None
        return list(map(_TEXT, records))

    def _one_member(self, text: str) -> SeparatedTexts | None:
        """Every line ``{"field": "..."}``, spelt alike: the values as one JSON string (the first way above)."""
        prefix = next((prefix for prefix in self._prefixes if text.startswith(prefix)), None)
        body = text[:-1] if text.endswith("\n") else text
        if prefix is None or not body.endswith('"}') or (self._joint == "\0" and _NUL_ESCAPE in body):
            return None
        joint, values = '"}\n' + prefix, body[len(prefix):-2]
        joints = values.count(joint)
        inner = values.replace(joint, self._joint_json)
        if "\n" in inner:
            return None  # a line break that is no joint: a line of another shape (the decode would refuse it)
        try:
            joined = self._string('"' + inner + '"')
        except ValueError:  # msgspec.DecodeError: a value that is no JSON string's content
            return None
        if joined.count(self._joint) != joints:
            return None  # a value holds the joint's text (or, NUL's, ends in a lone backslash taking it for an escape)
        return SeparatedTexts(joined, self._joint, joints + 1)

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
_NUL_ESCAPE = "\\u0000"  # the joint of the one-member way: JSON's only spelling of NUL, absent from the block


def _string_decoder():
    import msgspec

    return msgspec.json.Decoder(str).decode


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
