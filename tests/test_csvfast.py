"""The bulk one-column CSV path (mmtok/inputs/csvfast.py) gives exactly what the csv module gives.

Two oracles: ``csv.reader`` itself for every block :func:`parse_block`
accepts, and mmtok's csv-only reader (the fast path switched off) for whole
files read in chunks of any size: the same documents, or the same error with
the same line.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from mmtok.base.errors import InputError
from mmtok.inputs import csvreader
from mmtok.inputs.csvfast import PushbackReader, parse_block
from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source

# Bytes that matter to CSV: quotes, commas, line ends, NUL, a BOM, multi-byte and invalid UTF-8.
ATOMS = st.sampled_from([b'"', b'""', b",", b"\n", b"\r\n", b"\r", b" ", b"a", b"word", "é".encode(), "日本".encode(),
                         b"\x00", b"\xef\xbb\xbf", b"'", b"\xff", b"\xe6\x97"])
RAW = st.lists(ATOMS, max_size=60).map(b"".join)
# fields the fast path takes (a \r\n inside quotes included), and fields with the bytes it leaves to csv
CLEAN = st.lists(st.sampled_from(["a", "b", " ", ",", '"', "\n", "\r\n", "\xe9", "\u65e5"]), max_size=10).map("".join)
DIRTY = st.text(alphabet=st.sampled_from('ab ,"\n\r\xe9\x00'), max_size=12)


def _written(fields: list[str], quoting: int, ending: str) -> bytes:
    out = io.StringIO(newline="")
    try:
        csv.writer(out, quoting=quoting, lineterminator=ending).writerows([[f] for f in fields])
    except csv.Error:  # Python 3.10's writer refuses NUL ("need to escape"): quote every field by hand, as 3.11+ would
        return "".join('"' + f.replace('"', '""') + '"' + ending for f in fields).encode("utf-8")
    return out.getvalue().encode("utf-8")


WRITTEN = st.builds(_written, st.one_of(st.lists(CLEAN, max_size=12), st.lists(DIRTY, max_size=6)),
                    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]), st.sampled_from(["\n", "\r\n"]))
CSV_BYTES = st.one_of(WRITTEN, st.tuples(WRITTEN, RAW, WRITTEN).map(b"".join), RAW)


def csv_rows(data: bytes) -> list[str] | None:
    """The texts csv.reader gives for ``data`` fed line by line as mmtok feeds it; None if it fails."""
    try:
        lines = [line.decode("utf-8") for line in io.BytesIO(data)]
        rows = list(csv.reader(line if line.endswith("\n") else line + "\n" for line in lines))
    except (UnicodeDecodeError, csv.Error):
        return None
    if any(len(row) > 1 for row in rows):
        return None
    return [row[0] for row in rows if row]


@given(data=CSV_BYTES, cut=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
       limit=st.sampled_from([6, 1 << 24, 1 << 24]))
@settings(max_examples=1000, deadline=None)
def test_an_accepted_block_is_parsed_as_csv_parses_it(data, cut, limit):
    block = data if cut is None else data[:cut]
    at_eof = not block.endswith(b"\n")
    parsed = parse_block(block, at_eof=at_eof, field_limit=limit)
    event("accepted" if parsed else "left to csv")  # --hypothesis-show-statistics: both happen often
    if parsed is None:
        return
    texts, consumed, lines = parsed
    assert 0 < consumed <= len(block) and (consumed == len(block) or block[consumed - 1:consumed] == b"\n")
    assert texts == csv_rows(block[:consumed])
    assert all(len(text) <= limit for text in texts)
    assert lines == block[:consumed].count(b"\n") + (not block[:consumed].endswith(b"\n"))


@pytest.mark.parametrize("block", [
    b"plain\nrows\n", b'"quoted, with comma"\n"and ""quotes"""\n', b'"multi\nline"\nnext\n', b"\n\nx\n\n",
    b'""\n', b"last without newline", b'"last, quoted"', b"crlf\r\n\r\nrows\r\n", b'"q ""\r\n"" in"\r\nx\n',
])
def test_strict_blocks_are_accepted(block):
    assert parse_block(block, at_eof=not block.endswith(b"\n"), field_limit=1 << 24) is not None


@pytest.mark.parametrize("block, why", [
    (b"a,b\n", "two fields"), (b'5" screen\n', "a quote inside an unquoted field"), (b'"a" b\n', "text after a close"),
    (b"cr\rinside\n", "a \\r ending a row inside a line"), (b"cr at the end\r", "a \\r at the end"), (b"nul\x00\n", "NUL"), (b'"never closed\n', "no record ends"),
    (b"\xff\n", "invalid UTF-8"), (b"toolong\n", "over the field limit"),
])
def test_other_blocks_are_left_to_csv(block, why):
    assert parse_block(block, at_eof=False, field_limit=5) is None, why


@pytest.mark.parametrize("block", [
    b'"\xc3""\xa9"\n', b'\xc3\r\n\xa9\n', b'"\xc3"\r\n\xa9\n', b'\xc3\n\n\xa9\n', b'\xc3\r\n\r\n\xa9\n',
    b'"\xe6\x97"\n"\xa5"\n', b'ok\n\xc3\xa9\xa9\n',
])
def test_deleted_syntax_bytes_never_join_an_invalid_character_into_a_valid_one(block):
    """UTF-8 is checked once, on the kept bytes: invalid where the block is (each deleted run has a kept ASCII neighbour)."""
    with pytest.raises(UnicodeDecodeError):
        block.decode("utf-8")
    assert parse_block(block, at_eof=False, field_limit=1 << 20) is None


@pytest.mark.parametrize("block, rows", [
    (b"plain\nrows: no copy\n", ["plain", "rows: no copy"]),  # nothing deleted: decoded and split as it is
    (b"crlf\r\nrows\r\n", ["crlf", "rows"]),  # \r deleted, split on \n
    (b'"a\nb"\nc\n', ["a\nb", "c"]),  # a field holds a newline: records end at NUL
    (b'"a\r\nb"\r\n\r\n"c"\r\n', ["a\r\nb", "c"]),  # ... with \r\n inside the field kept, a blank line dropped
    (b'"a\rb"\r\n', ["a\rb"]),  # a \r inside quotes is text
    (b'"""a"""\n""""\n""\n', ['"a"', '"', ""]),  # doubled quotes at a field's ends; an empty quoted field is a row
    (b'"x""y"', ['x"y']),  # starts and ends with a quote (at the file end, no newline)
    (b'"a"\n\n\r\n"b"', ["a", "b"]),
    (b'a\r\nb\r\n"cut, ""here\r\nstill', ["a", "b"]),  # quotes and commas only in the record left for later
    (b"\n\r\n", []),
])
def test_each_shape_gives_the_rows_csv_gives(block, rows):
    at_eof = block.endswith(b'"')
    texts, consumed, _ = parse_block(block, at_eof=at_eof, field_limit=1 << 24)
    assert texts == csv_rows(block[:consumed]) == rows


@pytest.mark.parametrize("block, why", [
    (b'"a\xffb"\n', "0xFF (the deletion mark) inside a field"), (b"ok\n\xff\n", "0xFF in a plain row"),
    (b'x\n"a"b\n', "text after a close"), (b'x\n"a"\rb\n', "a \\r after a close that is no line end"),
    (b'x\na"b"\n', "a quote opening inside a field"), (b'"a",\n', "a comma after a close"),
    (b'"a"\n,\n', "a comma outside quotes after a quoted row"), (b'"a\x00"\n', "NUL inside quotes"),
])
def test_blocks_with_syntax_errors_anywhere_are_left_to_csv(block, why):
    assert parse_block(block, at_eof=False, field_limit=1 << 24) is None, why


def test_a_record_cut_by_the_block_end_is_left_for_the_next_block():
    texts, consumed, lines = parse_block(b'one\n"two\nstill two', at_eof=False, field_limit=100)
    assert (texts, consumed, lines) == (["one"], 4, 1)


def test_pushback_reader_serves_pushed_bytes_first():
    reader = PushbackReader(io.BytesIO(b"c\nd\n"))
    reader.unread(b"a\nb")
    assert [reader.readline(), reader.read(3), reader.readline(), reader.read(9)] == [b"a\n", b"bc\n", b"d\n", b""]
    reader = PushbackReader(io.BytesIO(b"xyz\nw\n"))
    reader.unread(b"abc\ndef")
    assert [reader.readline(2), reader.readline(5), reader.readline(3), reader.readline(2), reader.readline(-1),
            reader.readline()] == [b"ab", b"c\n", b"def", b"xy", b"z\n", b"w\n"]


def test_a_line_over_the_line_limit_is_left_to_csv():
    assert parse_block(b"short\nmuch longer\n", at_eof=False, field_limit=100, line_limit=6) is None
    assert parse_block(b"short\nlonger\n", at_eof=False, field_limit=100, line_limit=7) is not None


def _documents(path, chunk_bytes, **options):
    try:
        return [t for chunk in iter_chunks(resolve_source(str(path), **options), chunk_bytes=chunk_bytes)
                for t in chunk.texts]
    except InputError as error:
        return ("error", str(error), error.line)


@given(body=CSV_BYTES, chunk_bytes=st.integers(min_value=1, max_value=120), header=st.booleans(),
       limit=st.sampled_from([4, 1 << 24]))
@settings(max_examples=300, deadline=None)
def test_files_read_in_chunks_equal_the_csv_only_reader(tmp_path_factory, body, chunk_bytes, header, limit):
    path = tmp_path_factory.mktemp("csvfast") / "t.csv"
    path.write_bytes(b"text\n" + body)
    options = {"header": header, "csv_field_limit": limit}
    fast = _documents(path, chunk_bytes, **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csvreader, "_fast_chunk", lambda *args: None)  # csv for every row
        slow = _documents(path, chunk_bytes, **options)
    assert fast == slow


def test_errors_after_bulk_blocks_name_the_right_line_and_row(tmp_path):
    path = tmp_path / "t.csv"
    good = b"".join(b'"row %d, quoted"\nplain %d\n' % (i, i) for i in range(5000))
    path.write_bytes(b"text\n" + good + b"a,b\n" + good)
    with pytest.raises(InputError) as info:
        list(iter_chunks(resolve_source(str(path)), chunk_bytes=4096))
    assert info.value.line == 10_002 and "row 10002 has 2 field(s)" in str(info.value)
    path.write_bytes(b"text\n" + good + b'"never closed\n' + b"more\n" * 10)
    with pytest.raises(InputError, match="never closed") as info:
        list(iter_chunks(resolve_source(str(path)), chunk_bytes=4096))
    assert info.value.line == 10_002


def test_resuming_at_any_chunk_gives_the_chunks_that_followed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"text\n" + b"".join(b'"r%d, ""q""\nmulti"\nplain %d\n\n' % (i, i) for i in range(3000)))
    source = resolve_source(str(path))
    chunks = list(iter_chunks(source, chunk_bytes=2000))
    assert len(chunks) > 20 and sum(len(c.texts) for c in chunks) == 6000
    assert chunks[0].texts[:2] == ['r0, "q"\nmulti', "plain 0"]
    for i in (0, 7, len(chunks) - 2):
        again = list(iter_chunks(source, start=chunks[i].position, chunk_bytes=2000))
        assert [(c.texts, c.position) for c in again] == [(c.texts, c.position) for c in chunks[i + 1:]]
