"""Reading JSON lines: one non-blank line = one document, the string in its ``source.field``.

A block of whole lines (:mod:`mmtok.inputs.lines`) goes to the bulk parses of
:mod:`mmtok.inputs.jsonlmsgspec` and :mod:`mmtok.inputs.jsonlfast` first; a
block both decline is read line by line here (:func:`reference_texts`, the
reference the bulk parses are tested against), which also writes every error
message: invalid JSON, a line that is not an object, a missing or non-string
field, nesting deeper than :data:`~mmtok.base.jsonlimits.JSON_MAX_DEPTH`, a
lone surrogate written as a ``\\uD800``-style escape, each naming the file
and the 1-based line.

Numbers are never kept (``field`` must be a string), so they are read without
conversion: an integer longer than Python's ``int()`` takes (4,300 digits) is
read like any other.
"""

from __future__ import annotations

import functools
import json

from ..base.errors import InputError
from ..base.jsonlimits import depth_message, json_too_deep
from .chunk import Chunk, check_unicode, empty_input
from .jsonlfast import BlockParser
from .jsonlmsgspec import MsgspecLines
from .lines import line_blocks

__all__ = ["jsonl_chunks", "reference_texts"]


def _any_integer(digits: str) -> int:
    return 0  # numbers are never kept: not converting them reads integers of any length


_DECODER = json.JSONDecoder(parse_int=_any_integer)
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def jsonl_chunks(source, position, chunk_bytes, rules, *, lazy: bool = False, joint: str = "\0"):
    """The reader of ``iter_chunks`` for JSONL (``rules`` do not apply: a JSON line is read whole).

    With ``lazy``, a chunk is parsed by :meth:`Chunk.decoded`, on the build's
    encoding threads; which blocks make chunks does not depend on it: those
    with a non-blank line (each such line is a document, or an error).
    """
    parsers, blocks = (MsgspecLines(source.field, joint=joint), BlockParser(source.field)), 0
    for text, first_line, nbytes, offset, lines, file_offset, *_ in line_blocks(
            source, position, chunk_bytes, pieces=False, what="JSON line"):
        if not text or text.isspace():
            continue  # blank lines only
        blocks += 1
        decode = functools.partial(_parse, parsers, text, first_line, source.display)
        yield Chunk.deferred(decode, {"reader": "jsonl", "offset": offset, "lines": lines}, nbytes, file_offset,
                             lazy=lazy)
    if position["offset"] == 0 and not blocks:
        raise empty_input(source, " (it has no non-blank line)")


def _parse(parsers: tuple, text: str, first_line: int, display: str) -> tuple[list[str], list[bool]]:
    """A block's ``(texts, ends)``: in bulk, or line by line where the bulk parses decline it."""
    for parser in parsers:
        texts = parser.texts(text)
        if texts is not None:
            break
    else:
        texts = reference_texts(text, first_line, parsers[0].field, display)
    return texts, [True] * len(texts)


def reference_texts(text: str, first_line: int, field: str, display: str) -> list[str]:
    """The ``field`` strings of the lines of ``text`` (line ``first_line`` first), one line at a time.

    Blank lines (empty or whitespace only) are skipped; any other line must be
    one JSON object with a string ``field``, else InputError names the line.
    """
    # The C scanner skips json.loads' Python wrappers (about 2x faster on short
    # lines); anything it does not take cleanly goes to _json_text for the message.
    scan = _DECODER.scan_once
    texts = []
    deep = json_too_deep(text)  # a whole block is cleared by two counts; a flagged one line by line
    for number, line in enumerate(text.split("\n"), first_line):
        if deep and json_too_deep(line):
            raise InputError(depth_message("the JSON"), path=display, line=number)
        try:
            record, end = scan(line, 0)
        except (StopIteration, ValueError):
            record, end = None, -1
        value = record.get(field) if type(record) is dict else None
        if type(value) is not str or (end != len(line) and not line[end:].isspace()):
            if not line or line.isspace():
                continue
            value = _json_text(line, field, display, number)
        # only a \uD800-style escape can put a lone surrogate into a decoded line
        if "\\ud" in line or "\\uD" in line:
            check_unicode(value, display, number, f"field {field!r}")
        texts.append(value)
    return texts


def _json_text(line: str, field: str, display: str, number: int) -> str:
    """The text of one JSON line, or the InputError that says what is wrong with it."""
    example = json.dumps({field: "..."})
    try:
        record = _DECODER.decode(line)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg}: column {e.colno}); each line must be one "
                         f"JSON object such as {example}", path=display, line=number) from None
    if type(record) is not dict:
        raise InputError(f"is a JSON {_JSON_TYPES.get(type(record), 'value')}, not an object; each "
                         f"line must be one JSON object such as {example}", path=display, line=number)
    if field not in record:
        names = ", ".join(map(repr, list(record)[:10])) or "none"
        raise InputError(f"has no {field!r} field (its fields: {names}); read the text "
                         "from another field with --field (field= in Python)", path=display, line=number)
    value = record[field]
    if type(value) is not str:
        raise InputError(f"field {field!r} is a JSON {_JSON_TYPES.get(type(value), 'value')}, "
                         "expected a string", path=display, line=number)
    return value  # e.g. a line with leading whitespace, which the scanner refuses
