"""How deep JSON from outside may nest, checked before it is parsed.

How much nesting Python's ``json`` survives depends on the Python: before 3.13
a few thousand levels raise ``RecursionError``, 3.13 parses far deeper. mmtok
promises the same answer on every Python: JSON nesting deeper than
:data:`JSON_MAX_DEPTH` levels (objects and arrays) is refused before parsing,
wherever mmtok reads JSON it did not write in the same process (a store's
manifest and build journal, a cache's embedded manifest, every JSONL line).
A manifest nests 3 levels deep; real JSONL records rarely pass 20.
"""

from __future__ import annotations

import itertools
import re

JSON_MAX_DEPTH = 128

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_too_deep(text: str, limit: int = JSON_MAX_DEPTH) -> bool:
    """True when the JSON ``text`` opens more than ``limit`` arrays/objects inside one another.

    Brackets inside strings do not count. Cheap when ``text`` holds at most
    ``limit`` opening brackets (two ``str.count`` calls), linear otherwise.
    Text that is not valid JSON gets an answer too; its parse fails anyway.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def depth_message(what: str) -> str:
    """The shared wording of the refusal: ``"{what} nests deeper than ..."``."""
    return (f"{what} nests arrays/objects deeper than {JSON_MAX_DEPTH} levels, the limit mmtok reads "
            "(damaged or hostile data)")
