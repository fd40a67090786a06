"""The bulk JSONL parses (mmtok/inputs/jsonlmsgspec.py, jsonlfast.py) give what reading one line at a time gives.

Two oracles: :func:`reference_texts` (per-line ``json`` scanning, the path that
writes the error messages) for every block :class:`MsgspecLines` or
:class:`BlockParser` accepts, and the whole reader with the bulk parses
switched off for whole files read in chunks of any size: the same documents,
or the same error at the same line.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import mmtok
from mmtok.base.errors import InputError
from mmtok.inputs import jsonlfast, jsonlmsgspec
from mmtok.inputs.jsonlfast import GROUP_LINES, BlockParser
from mmtok.inputs.chunk import SeparatedTexts
from mmtok.inputs.jsonlmsgspec import MsgspecLines
from mmtok.inputs.jsonlreader import reference_texts
from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source

FIELD = "text"
# strings with what JSON escapes, non-ASCII, astral (a surrogate pair when ensure_ascii), brackets and quotes
STRINGS = st.text(st.sampled_from(['a', ' ', '"', '\\', '\n', '\r', '\t', '\x00', '{', '}', '[', ']', ',', ':',
                                   'é', '日', '😀', '\u2028', '\xa0', 'u', 'd', '8']), max_size=8)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), STRINGS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(STRINGS, inner, max_size=3)), max_leaves=6)

RARE = st.sampled_from(range(30)).map(lambda n: n == 0)  # True once in 30 (st.integers draws its bounds often)
SOMETIMES = st.sampled_from(range(4)).map(lambda n: n == 0)


@st.composite
def records(draw) -> str:
    """One JSON object with the field (usually a string), other members, any spacing, as one line."""
    members = draw(st.dictionaries(STRINGS, VALUES, max_size=3))
    members.pop(FIELD, None)
    value = draw(VALUES if draw(RARE) else STRINGS)
    items = list(members.items())
    at = draw(st.integers(0, len(items)))
    if not draw(RARE):  # mostly with the field
        items.insert(at, (FIELD, value))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    return json.dumps(dict(items), ensure_ascii=draw(st.booleans()), separators=separators)


# whitespace JSON allows around a value, and what it does not (which str.isspace takes: \xa0, \x1c)
SPACE = st.sampled_from(["", "", "", "", "", " ", " ", "\t", "\r", "  ", "\r\t ", "\xa0", "\x1c"])
ODD_LINES = st.sampled_from([
    "", "", " ", "\r", "NaN", "1", "[1]", '"text"', "null", "{", "}", "[", "]", '{"text": null}', '{"other": "x"}',
    '{"text": "a"} {"text": "b"}', '{"text": "a"},{"text": "b"}', '{"text": "\\ud800"}', '{"text": "\\uDC00 x"}',
    '{"text": "\\ud83d\\ude00"}', '"\\u0000"', '{"text": "\\u0000"}', '{"text": ""}', '""', '{"text": "a", "x": [1',
    '2]}, {"text": "b"}', '{"a": 1', '"text": "b"}', '{"text": "x", "a": [{"x": 1}', '{"y": 2}]}',
    '{"text": "' + "[" * 130 + '"}', '{"text": "a", "d": ' + "[" * 129 + "]" * 129 + "}",
    '{"text": "a", "d": ' + "[" * 128 + "]" * 128 + "}", '{"text": "a", "n": 1' + "0" * 5000 + "}",
])
GOOD_LINES = st.one_of(records(), st.builds(lambda a, r, b: a + r + b, SPACE, records(), SPACE))
LINES = st.one_of(GOOD_LINES, GOOD_LINES, GOOD_LINES, ODD_LINES)
ENDINGS = st.sampled_from(["\n", "\n", "\n", "\r\n"])


# several values on one line: with a line break in place of one of their commas, the lines a naive join misreads
MULTI = st.lists(st.one_of(records(), VALUES.map(json.dumps)), min_size=2, max_size=3).map(", ".join)


@st.composite
def traps(draw) -> list[str]:
    """Invalid lines that joined make valid JSON with one element per line, if no proof is asked for.

    An object or array cut in two lines at a comma (the joint puts a comma back), and a line of several
    values to make up the count: with ``,``-joined lines (``object``), or with the marker join,
    whose marker the cut array swallows (``array``).
    """
    def member(item):
        return f"{json.dumps(item[0])}: {json.dumps(item[1])}"

    first = [(FIELD, draw(STRINGS)), *draw(st.dictionaries(STRINGS, SCALARS, min_size=1, max_size=3)).items()]
    extra = [json.dumps({FIELD: draw(STRINGS)}) for _ in range(2)]
    if draw(st.booleans()):  # object
        cut = draw(st.integers(1, len(first) - 1))
        lines = ["{" + ", ".join(map(member, first[:cut])), ", ".join(map(member, first[cut:])) + "}",
                 ", ".join(extra)]
    else:  # array
        values = [json.dumps(v) for v in draw(st.lists(VALUES, min_size=2, max_size=3))]
        cut = draw(st.integers(1, len(values) - 1))
        lines = ["{" + member(first[0]) + ', "m": [' + ", ".join(values[:cut]),
                 ", ".join(values[cut:]) + "]}, " + json.dumps(draw(st.one_of(st.just("\0"), VALUES))) + ", "
                 + extra[0]]
    return lines


@st.composite
def blocks(draw) -> str:
    """Lines joined by \\n or \\r\\n (sometimes mixed); sometimes a line break put in, or put for a comma."""
    lines = draw(st.lists(GOOD_LINES if draw(st.booleans()) else LINES, max_size=12))
    lines += draw(st.lists(MULTI, max_size=2)) if draw(SOMETIMES) else []
    lines = draw(st.permutations(lines))
    if draw(SOMETIMES):
        at = draw(st.integers(0, len(lines)))
        lines[at:at] = draw(traps())
    ending = draw(ENDINGS)
    text = "".join(line + (draw(ENDINGS) if draw(st.integers(0, 5)) == 0 else ending) for line in lines)
    cuts = draw(st.lists(st.integers(0, max(0, len(text) - 1)), min_size=1, max_size=3)) if draw(SOMETIMES) else []
    for cut in cuts:  # lines that split a value
        comma = text.find(",", cut)
        if comma >= 0 and draw(st.booleans()):
            text = text[:comma] + "\n" + text[comma + 1:]
        else:
            text = text[:cut] + "\n" + text[cut:]
    if draw(st.booleans()):
        text = text.rstrip("\n")  # the last line of a file may have no line break
    return text


def _no_bulk_parse(patch: pytest.MonkeyPatch) -> None:
    for parser in (jsonlfast.BlockParser, jsonlmsgspec.MsgspecLines):
        patch.setattr(parser, "texts", lambda self, text: None)


def reference(text: str):
    try:
        return reference_texts(text, 1, FIELD, "t.jsonl")
    except InputError:
        return None


@given(text=blocks(), nested=st.booleans(), group_lines=st.sampled_from([GROUP_LINES, 1, 2, 3]))
@settings(max_examples=1000, deadline=None)
def test_an_accepted_block_reads_as_its_lines_do(text, nested, group_lines):
    parser = BlockParser(FIELD, group_lines=group_lines)  # small groups: a block parsed in several calls
    parser.nested = nested  # True: straight to the marker join
    parsed = parser.texts(text)
    expected = reference(text)
    event("accepted" if parsed is not None else "left to the lines")  # --hypothesis-show-statistics
    event("nested" if parser.nested else "flat")
    if parsed is not None:
        assert expected is not None, "accepted a block the line-by-line path refuses"
        assert parsed == expected


@given(text=blocks(), joint=st.sampled_from(["\0", "<|endoftext|>", "[SEP]", "n", "aba"]))
@settings(max_examples=1000, deadline=None)
def test_a_block_msgspec_accepts_reads_as_its_lines_do(text, joint):
    parsed = MsgspecLines(FIELD, joint=joint).texts(text)
    expected = reference(text)
    event("accepted" if parsed is not None else "left to the next parser")
    event("as one text" if isinstance(parsed, SeparatedTexts) else "line by line")
    if parsed is not None:
        assert expected is not None, "accepted a block the line-by-line path refuses"
        assert list(parsed) == expected and len(parsed) == len(expected)


@pytest.mark.parametrize("text, joint, expected", [
    ('{"text": "a"}\n{"text": "b\\n\\"q\\" \\u00e9 \\ud83d\\ude00"}\n', "<|endoftext|>", ["a", 'b\n"q" é 😀']),
    ('{"text":"a\\\\"}\n{"text":"b"}', "<|endoftext|>", ["a\\", "b"]),  # an escaped backslash, the file's last line
    ('{"text": "a"}\n{"text": "b"}\n', "\0", ["a", "b"]),
    ('{"text": ""}\n{"text": ""}\n', "</s>", ["", ""]),
    ('{"text": "xab"}\n{"text": "ay"}\n', "aba", ["xab", "ay"]),  # a joint with a border: NUL is used
])
def test_one_member_lines_are_read_as_one_text(text, joint, expected):
    parsed = MsgspecLines(FIELD, joint=joint).texts(text)
    assert isinstance(parsed, SeparatedTexts) and parsed == expected == reference(text)


@pytest.mark.parametrize("text, joint, why", [
    ('{"text": "a\\"}\n{"text": "\\u0000"}\n', "\0", "a dangling backslash taking the NUL joint, a NUL to match"),
    ('{"text": "a\\"}\n{"text": "b"}\n', "<|endoftext|>", "a dangling backslash"),
    ('{"text": "a<|endoftext|>b"}\n{"text": "c"}\n', "<|endoftext|>", "a value holding the joint"),
    ('{"text": "a"}\n{"text": "b", "x": 1}\n', "<|endoftext|>", "a line of another shape"),
    ('{"text": "a"}\n\n{"text": "b"}\n', "<|endoftext|>", "a blank line"),
    ('{"text": "\\ud800"}\n', "<|endoftext|>", "a lone surrogate"),
])
def test_other_blocks_are_not_read_as_one_text(text, joint, why):
    assert not isinstance(MsgspecLines(FIELD, joint=joint).texts(text), SeparatedTexts), why


@pytest.mark.parametrize("lines, joint, elements", [
    (['{"text": "a", "x": [1', '2]}, {"text": "b"}'], ",", 2),  # 2 elements out of 2 invalid lines
    (['{"text": "x", "a": [{"x": 1}', '{"y": 2}]}', '{"text": "a"},{"text": "b"}'], ",\n", 3),  # each starts with {
    (['{"a": 1', '"text": "b"}', '{"text": "c"},{"text": "d"}'], ",\n", 3),  # an object spanning lines
    (['{"text": "a", "m": [1', '2]}, "\\u0000", {"text": "b"}'], ',"\\u0000",', 3),  # a forged marker
])
@pytest.mark.parametrize("nested", [False, True])
def test_values_that_span_lines_are_never_taken_for_lines(lines, joint, elements, nested):
    assert len(json.loads("[" + joint.join(lines) + "]")) == elements  # the trap: joined, the count looks right
    text = "\n".join(lines) + "\n"
    parser = BlockParser(FIELD)
    parser.nested = nested
    assert reference(text) is None and parser.texts(text) is None
    assert MsgspecLines(FIELD).texts(text) is None


@pytest.mark.parametrize("text, path", [
    ('{"text": "a"}\n{"text": "b", "n": 1.5, "t": true}\n', "flat"),
    ('{"text": "a"}\r\n\r\n{"text": "b"}  \r\n', "flat"),
    ('{"text": "a", "meta": {"id": [1, 2]}}\n{"text": "\\ud83d\\ude00"}\n', "nested"),
    ('  {"text": "leading spaces"}\n{"text": "b"}\n', "marker join"),
    ('{"text": "a", "m": ""}\n{"text": "\\u0000"}\n', "flat"),
])
def test_usual_blocks_are_accepted(text, path):
    parser = BlockParser(FIELD)
    assert parser.texts(text) == reference(text) is not None, path
    assert parser.nested == (path == "nested")


@pytest.mark.parametrize("text, why", [
    ('{"text": "a"}\xa0\n', "Unicode whitespace after the value (the line-by-line path takes it)"),
    ('{"text": "a", "m": [1]}\n"\\u0000"\n', "the marker's own text in the block"),
    ('{"text": "a", "m": [' + "[" * 130 + "]" * 130 + "]}\n", "nested deeper than 128"),
    ('{"text": "\\ud800"}\n', "a lone surrogate"),
    ('{"text": "a", "n": 1' + "0" * 5000 + "}\n", "an integer Python will not convert"),
    ('{"text": "a", "m": [' + "[" * 5000 + "]" * 5000 + "]}\n", "nesting too deep for Python's parser"),
])
def test_other_blocks_are_left_to_the_lines(text, why):
    parser = BlockParser(FIELD)
    assert parser.texts(text) is None, why


@pytest.mark.parametrize("text", [
    '{"text": "a"}\n{"text": "b", "n": 1.5, "t": true}\n',
    '{"text": "a"}\r\n\r\n{"text": "b"}  \r\n',
    '{"text": "a", "meta": {"id": [1, 2]}}\n{"text": "\\ud83d\\ude00"}\n',
    '  {"text": "leading spaces"}\n{"text": "b"}\n',
    '{"text": "a", "m": ""}\n{"text": "\\u0000"}\n',
    '{"text": "a", "n": 1' + "0" * 5000 + "}\n",  # any integer: numbers are never converted
    '{"text": "' + "[{" * 300 + '", "m": ' + "[" * 127 + "]" * 127 + "}\n",  # brackets in text, 128 deep
    '{"text": "x", "text": "last wins"}\n',
])
def test_usual_blocks_are_accepted_by_msgspec(text):
    assert MsgspecLines(FIELD).texts(text) == reference(text) is not None


@pytest.mark.parametrize("text, why", [
    ('{"text": "a"}\xa0\n', "Unicode whitespace after the value (the line-by-line path takes it)"),
    ('{"text": "a"}\n \n', "a line of whitespace"),
    ('{"text": "a", "m": [' + "[" * 128 + "]" * 128 + "]}\n", "nested deeper than 128"),
    ('{"text": "a", "m": [' + "[" * 5000 + "]" * 5000 + "]}\n", "nesting too deep for msgspec"),
    ('{"text": "\\ud800"}\n', "a lone surrogate"),
    ('{"text": "a", "x": "\\udc00"}\n', "a lone surrogate elsewhere (the line-by-line path takes it)"),
    ('{"text": "a", "x": NaN}\n', "NaN (the line-by-line path takes it)"),
    ('{"text": "a"} {"text": "b"}\n', "two values on a line"),
    ('{"text": 1}\n', "a number"),
])
def test_other_blocks_are_left_by_msgspec(text, why):
    assert MsgspecLines(FIELD).texts(text) is None, why


@pytest.mark.parametrize("field", ['a"b', "back\\slash", "tab\there"])
def test_a_field_msgspec_cannot_match_goes_to_the_next_parser(field):
    text = json.dumps({field: "x"}) + "\n"
    assert MsgspecLines(field).texts(text) is None
    assert BlockParser(field).texts(text) == ["x"]


def _documents(path, chunk_bytes, lazy=False):
    try:
        return [(chunk.decoded(), chunk.position, chunk.nbytes) for chunk in
                iter_chunks(resolve_source(str(path)), chunk_bytes=chunk_bytes, lazy=lazy)]
    except InputError as error:
        return ("error", str(error), error.line)


@given(text=blocks(), chunk_bytes=st.integers(min_value=1, max_value=200), bom=st.booleans())
@settings(max_examples=300, deadline=None)
def test_files_read_in_chunks_equal_the_line_by_line_reader_lazy_or_not(tmp_path_factory, text, chunk_bytes, bom):
    path = tmp_path_factory.mktemp("jsonlfast") / "t.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" * bom + text.encode("utf-8", "surrogatepass"))
    fast = _documents(path, chunk_bytes)
    with pytest.MonkeyPatch.context() as patch:
        _no_bulk_parse(patch)  # every line on its own
        slow = _documents(path, chunk_bytes)
    assert fast == slow
    assert _documents(path, chunk_bytes, lazy=True) == fast  # parsed where the build encodes: the same chunks


def test_errors_after_bulk_blocks_name_the_right_line(tmp_path):
    path = tmp_path / "t.jsonl"
    good = "".join(json.dumps({"text": f"row {i}", "meta": {"i": [i]} if i % 2 else i}) + "\n" for i in range(5000))
    for bad, match in [('{"body": "x"}', "has no 'text' field"), ('{"text": "a"', "not valid JSON"),
                       ('{"text": "\\udfff"}', "lone surrogate"), ("[" * 200 + "]" * 200, "deeper than 128")]:
        path.write_text(good + "\n" + bad + "\n" + good)
        with pytest.raises(InputError, match=match) as info:
            list(iter_chunks(resolve_source(str(path)), chunk_bytes=4096))
        assert info.value.line == 5002


def test_resuming_at_any_chunk_gives_the_chunks_that_followed(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"r{i} \u00e9", "id": i}) + "\r\n\n" for i in range(3000)))
    source = resolve_source(str(path))
    chunks = list(iter_chunks(source, chunk_bytes=2000))
    assert len(chunks) > 20 and sum(len(c.texts) for c in chunks) == 3000
    for i in (0, 7, len(chunks) - 2):
        again = list(iter_chunks(source, start=chunks[i].position, chunk_bytes=2000))
        assert [(c.texts, c.position) for c in again] == [(c.texts, c.position) for c in chunks[i + 1:]]


def _mixed_jsonl(docs_prose: str) -> str:
    """Flat, nested and indented records (blocks of each kind of parse), blank and CRLF lines."""
    out = []
    for i, para in enumerate(p for p in docs_prose.split("\n") if p.strip()):
        record = {"text": para, "id": i} if i % 3000 < 2000 else {"meta": {"i": [i]}, "text": para}
        out.append((" " if i % 3000 >= 2900 else "") + json.dumps(record, ensure_ascii=i % 2 == 0)
                   + ("\r\n" if i % 7 == 0 else "\n") + ("\n" if i % 11 == 0 else ""))
    return "".join(out)


def test_threaded_jsonl_builds_write_the_same_bytes_as_one_thread_and_as_line_by_line(tmp_path, docs_prose):
    path = tmp_path / "mixed.jsonl"
    path.write_text(_mixed_jsonl(docs_prose), encoding="utf-8")
    stores = [mmtok.build(str(path), str(tmp_path / f"w{w}.mmtok"), chunk_bytes=20_000, shard_tokens=30_000,
                          workers=w) for w in (1, 2, 3)]
    with pytest.MonkeyPatch.context() as patch:
        _no_bulk_parse(patch)  # every line on its own
        stores.append(mmtok.build(str(path), str(tmp_path / "lines.mmtok"), chunk_bytes=20_000,
                                  shard_tokens=30_000, workers=2))
    assert len(stores[0].shards) > 2 and stores[0].num_documents == path.read_text().count('"text"') > 6000
    shards = [[p.read_bytes() for p in sorted((tmp_path / store.path).glob("shards/*"))] for store in stores]
    assert all(other == shards[0] for other in shards[1:])


@pytest.mark.parametrize("workers", [1, 3])
def test_a_bad_line_deep_in_a_threaded_jsonl_build_names_its_line_and_leaves_no_store(tmp_path, docs_prose, workers):
    lines = _mixed_jsonl(docs_prose).split("\n")
    at = len(lines) * 3 // 4
    lines.insert(at, '{"text": "a", "body": 1')
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    store = tmp_path / "s.mmtok"
    with pytest.raises(InputError, match=rf"bad.jsonl:{at + 1}: not valid JSON"):
        mmtok.build(str(path), str(store), chunk_bytes=10_000, workers=workers)
    assert not store.exists()
