"""Streaming documents out of txt/csv/jsonl/texts: round trips, exact resume, errors that point at the line."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import os
import subprocess
import sys

import pytest
import zstandard

import mmtok
from mmtok.base.errors import InputError
from mmtok.inputs.readers import Chunk, iter_chunks
from mmtok.inputs.sources import resolve_source, texts_source
from mmtok.tokenize.cutpoints import CUT_RULES, sub_cuts

COMPRESSIONS = [None, "gz", "zst"]
BOM = b"\xef\xbb\xbf"


def write(tmp_path, name: str, data: bytes, compression: str | None = None):
    """Write ``data`` as ``name`` (plus .gz/.zst), the zstd one without content size in its frame."""
    if compression == "gz":
        data, name = gzip.compress(data), name + ".gz"
    elif compression == "zst":
        data, name = zstandard.ZstdCompressor(write_content_size=False).compress(data), name + ".zst"
    path = tmp_path / name
    path.write_bytes(data)
    return path


def essence(chunk: Chunk):
    """What a resumed read must reproduce (file_offset is best effort and may differ)."""
    return chunk.texts, chunk.ends, chunk.position, chunk.nbytes


def check_resume(source, chunks, **options):
    """Resuming after any chunk, through a JSON round trip, yields exactly the chunks that followed."""
    assert len(chunks) > 3, "use a smaller chunk_bytes: the test needs several chunks"
    expected = [essence(c) for c in chunks]
    for i, chunk in enumerate(chunks):
        start = json.loads(json.dumps(chunk.position))
        assert [essence(c) for c in iter_chunks(source, start=start, **options)] == expected[i + 1:]


def documents(chunks) -> list[str]:
    return [text for chunk in chunks for text in chunk.texts]


def raises_at(source, line: int, match: str, **options):
    with pytest.raises(InputError, match=match) as info:
        list(iter_chunks(source, **options))
    assert info.value.line == line and info.value.path == source.display
    assert f"{source.display}:{line}:" in str(info.value)
    return info.value


# ---------------------------------------------------------------- bulk text

@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_bulk_pieces_rebuild_the_file_and_resume_exactly(tmp_path, real_text, compression):
    source = resolve_source(write(tmp_path, "corpus.txt", real_text.encode(), compression))
    chunks = list(iter_chunks(source, chunk_bytes=200_000))
    assert "".join(documents(chunks)) == real_text
    # each piece comes as texts cut at safe points (sub_cuts); only the last one of the last piece ends the document
    assert [c.ends for c in chunks] == [[False] * len(c.texts) for c in chunks[:-1]] + [[False] * (len(chunks[-1].texts) - 1) + [True]]
    assert all(len(c.texts) > 1 for c in chunks[:-1])
    assert all(sub_cuts("".join(c.texts).encode(), CUT_RULES) == list(itertools.accumulate(len(t.encode()) for t in c.texts[:-1]))
               for c in chunks)
    assert sum(c.nbytes for c in chunks) == len(real_text.encode())
    assert chunks[-1].file_offset == source.size
    assert [c.file_offset for c in chunks] == sorted(c.file_offset for c in chunks)
    lines = 0
    for chunk in chunks:
        lines += "".join(chunk.texts).count("\n")
        assert chunk.position["lines"] == lines
    check_resume(source, chunks, chunk_bytes=200_000)


def test_bulk_chunks_depend_only_on_bytes_and_start(tmp_path, docs_prose):
    plain = resolve_source(write(tmp_path, "p.txt", docs_prose.encode()))
    zst = resolve_source(write(tmp_path, "p.txt", docs_prose.encode(), "zst"))
    a = [essence(c) for c in iter_chunks(plain, chunk_bytes=3000)]
    assert a == [essence(c) for c in iter_chunks(zst, chunk_bytes=3000)]
    assert a == [essence(c) for c in iter_chunks(plain, chunk_bytes=3000)]
    only_newline = [essence(c) for c in iter_chunks(plain, chunk_bytes=3000, cut_rules={"newline"})]
    assert all(t[0][0].endswith("\n") for t in only_newline[:-1])


def test_bulk_without_rules_or_cuts_is_one_piece(tmp_path):
    source = resolve_source(write(tmp_path, "a.txt", b"word " * 1000))
    assert [c.ends for c in iter_chunks(source, chunk_bytes=10, cut_rules=frozenset())] == [[True]]
    source = resolve_source(write(tmp_path, "b.txt", "漢字".encode() * 10_000))
    assert [c.ends for c in iter_chunks(source, chunk_bytes=10)] == [[True]]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_bom_is_dropped_and_counted(tmp_path, compression):
    source = resolve_source(write(tmp_path, "bom.txt", BOM + b"Hello\nworld\n" * 50, compression))
    chunks = list(iter_chunks(source, chunk_bytes=100))
    assert "".join(documents(chunks)) == "Hello\nworld\n" * 50
    assert sum(c.nbytes for c in chunks) == 3 + 600
    check_resume(source, chunks, chunk_bytes=100)
    lines = resolve_source(write(tmp_path, "bom2.txt", BOM + b"a\nb\n", compression), line_by_line=True)
    assert documents(iter_chunks(lines)) == ["a", "b"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("data", [b"", BOM])
def test_empty_text_files(tmp_path, compression, data):
    for line_by_line in (False, True):
        source = resolve_source(write(tmp_path, "empty.txt", data, compression), line_by_line=line_by_line)
        with pytest.raises(InputError, match="is empty: nothing to tokenize") as info:
            list(iter_chunks(source))
        assert source.display in str(info.value)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_bulk_invalid_utf8_names_the_line_even_after_a_resume(tmp_path, docs_prose, compression):
    data = docs_prose.encode()
    bad = data.index(b"\n", len(data) * 3 // 4) + 1
    data = data[:bad] + b"caf\xe9\n" + data[bad:]
    line = data[:bad].count(b"\n") + 1
    source = resolve_source(write(tmp_path, "latin1.txt", data, compression))
    error = raises_at(source, line, "invalid UTF-8.*0xe9.*iconv", chunk_bytes=5000)
    assert f"byte {bad + 3}" in str(error)
    chunks = []
    with pytest.raises(InputError):
        for chunk in iter_chunks(source, chunk_bytes=5000):
            chunks.append(chunk)
    raises_at(source, line, "invalid UTF-8", chunk_bytes=5000, start=chunks[len(chunks) // 2].position)


# ---------------------------------------------------------- text, line by line

@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_round_trip_skip_empty_lines_and_resume(tmp_path, docs_prose, compression, newline):
    lines = docs_prose.split("\n")[:4000]
    data = (newline.join(lines) + newline).encode()
    source = resolve_source(write(tmp_path, "lines.txt", data, compression), line_by_line=True)
    chunks = list(iter_chunks(source, chunk_bytes=4096))
    assert documents(chunks) == [line for line in lines if line]
    assert all(all(c.ends) and len(c.ends) == len(c.texts) for c in chunks)
    assert sum(c.nbytes for c in chunks) == len(data)
    assert chunks[-1].position["lines"] == len(lines)
    check_resume(source, chunks, chunk_bytes=4096)


def test_many_short_lines_are_batched(tmp_path):
    data = "".join(f"doc {i}\n" for i in range(100_000)).encode()
    source = resolve_source(write(tmp_path, "short.txt", data), line_by_line=True)
    chunks = list(iter_chunks(source, chunk_bytes=64 * 1024))
    assert len(documents(chunks)) == 100_000
    assert len(chunks) == -(-len(data) // (64 * 1024))  # whole lines up to each 64 KiB mark
    assert documents(chunks)[-1] == "doc 99999"


def test_last_line_without_newline_and_blank_only_files(tmp_path):
    source = resolve_source(write(tmp_path, "a.txt", b"one\n\n\ntwo\r\nthree"), line_by_line=True)
    assert documents(iter_chunks(source, chunk_bytes=1)) == ["one", "two", "three"]
    blank = resolve_source(write(tmp_path, "blank.txt", b"\n\r\n\n"), line_by_line=True)
    with pytest.raises(InputError, match="is empty"):
        list(iter_chunks(blank))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_lines_invalid_utf8_names_the_line(tmp_path, compression):
    data = b"".join(b"line %d\n" % i for i in range(1, 5000))
    data = data.replace(b"line 4321\n", b"line \xff\xfe\n")
    source = resolve_source(write(tmp_path, "bad.txt", data, compression), line_by_line=True)
    raises_at(source, 4321, "invalid UTF-8", chunk_bytes=1000)
    start = next(c for c in iter_chunks(source, chunk_bytes=1000) if c.position["lines"] > 3000).position
    raises_at(source, 4321, "invalid UTF-8", chunk_bytes=1000, start=start)


# ---------------------------------------------------------------------- CSV

def csv_bytes(rows) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def csv_texts(docs_prose) -> list[str]:
    paragraphs = [p for p in docs_prose.split("\n\n") if p.strip()][:1500]
    # multi-line fields, quotes, commas, empty fields and one field far past csv's default limit
    return paragraphs[:700] + ["", 'say "hi", then leave', "x" * 300_000, ""] + paragraphs[700:]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_csv_rows_round_trip_and_resume(tmp_path, docs_prose, compression):
    texts = csv_texts(docs_prose)
    source = resolve_source(write(tmp_path, "one.csv", csv_bytes([["text"]] + [[t] for t in texts]), compression))
    chunks = list(iter_chunks(source, chunk_bytes=20_000))
    assert documents(chunks) == texts
    assert chunks[-1].position["rows"] == len(texts) + 1
    check_resume(source, chunks, chunk_bytes=20_000)


def test_csv_columns_by_name_or_index_and_without_header(tmp_path, docs_prose):
    texts = csv_texts(docs_prose)[:300]
    rows = [[str(i), t, "tag, with comma"] for i, t in enumerate(texts)]
    path = write(tmp_path, "wide.csv", csv_bytes([["id", "body", "tag"]] + rows))
    assert documents(iter_chunks(resolve_source(path, column="body"))) == texts
    assert documents(iter_chunks(resolve_source(path, column=1))) == texts
    bare = write(tmp_path, "bare.csv", csv_bytes(rows))
    assert documents(iter_chunks(resolve_source(bare, column=1, header=False), chunk_bytes=500)) == texts
    single = write(tmp_path, "single.csv", csv_bytes([[t] for t in texts]))
    assert documents(iter_chunks(resolve_source(single, header=False))) == texts


@pytest.mark.parametrize("options, match", [
    ({}, r"3 columns \['id', 'body', 'tag'\]; pick the one holding the text .* with --column \(column= in Python\)"),
    ({"column": "text"}, r"no column\(s\) named 'text'.*\['id', 'body', 'tag'\]"),
    ({"column": 3}, "column 3 is out of range"),
    ({"column": "body", "header": False}, "header=False"),
])
def test_csv_column_choice_errors(tmp_path, options, match):
    source = resolve_source(write(tmp_path, "wide.csv", b"id,body,tag\n1,hello,x\n"), **options)
    raises_at(source, 1, match)


def test_csv_duplicate_header_name(tmp_path):
    source = resolve_source(write(tmp_path, "dup.csv", b"text,text\na,b\n"), column="text")
    raises_at(source, 1, r"2 column\(s\) named 'text'")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_csv_wrong_shape_names_row_and_line(tmp_path, compression):
    rows = [["text"]] + [[f"para {i}\nsecond line"] for i in range(1, 400)] + [["a", "b"]]
    data = csv_bytes(rows)  # every data row spans two lines
    source = resolve_source(write(tmp_path, "shape.csv", data, compression))
    error = raises_at(source, 1 + 2 * 399 + 1, "row 401 has 2 field.*first row has 1", chunk_bytes=500)
    assert "shape.csv" in str(error)
    start = next(iter_chunks(source, chunk_bytes=500)).position
    raises_at(source, 800, "row 401", chunk_bytes=500, start=start)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_csv_invalid_utf8_and_header_only(tmp_path, compression):
    data = b"text\n" + b"".join(b"row %d\n" % i for i in range(2, 300)) + b"\xc3(\n"
    raises_at(resolve_source(write(tmp_path, "bad.csv", data, compression)), 300, "invalid UTF-8", chunk_bytes=64)
    for body in (b"text\n", b"text\r\n\r\n", b"", BOM):
        with pytest.raises(InputError, match="is empty"):
            list(iter_chunks(resolve_source(write(tmp_path, "empty.csv", body, compression))))


def test_csv_skips_blank_lines_but_keeps_empty_fields(tmp_path):
    source = resolve_source(write(tmp_path, "blank.csv", BOM + b'text\n\na\n""\n\nb\n'))
    assert documents(iter_chunks(source)) == ["a", "", "b"]


def test_csv_field_size_limit_is_restored_between_chunks(tmp_path):
    rows = [["text"]] + [["y" * 200_000]] * 4
    source = resolve_source(write(tmp_path, "long.csv", csv_bytes(rows)))
    previous = csv.field_size_limit(1000)
    try:
        for chunk in iter_chunks(source, chunk_bytes=1):
            assert csv.field_size_limit() == 1000 and chunk.texts == ["y" * 200_000]
        assert csv.field_size_limit() == 1000
    finally:
        csv.field_size_limit(previous)


# -------------------------------------------------------------------- JSONL

@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_jsonl_round_trip_and_resume(tmp_path, docs_prose, compression):
    texts = [p for p in docs_prose.split("\n\n")][:2000] + ["", "emoji 😀 and \u2028 separator"]
    lines = [json.dumps({"id": i, "text": t}, ensure_ascii=i % 2 == 0) for i, t in enumerate(texts)]
    lines.insert(10, "   ")  # blank lines are not documents
    data = ("\n".join(lines) + "\n\n").encode()
    source = resolve_source(write(tmp_path, "docs.jsonl", data, compression))
    chunks = list(iter_chunks(source, chunk_bytes=8000))
    assert documents(chunks) == texts
    check_resume(source, chunks, chunk_bytes=8000)


def test_jsonl_other_field_and_surrounding_whitespace(tmp_path):
    data = b'{"body": "a", "text": 1}\r\n  {"body": "b"}  \n\t{"body": "\\ud83d\\ude00"}'
    source = resolve_source(write(tmp_path, "b.jsonl", data), field="body")
    assert documents(iter_chunks(source)) == ["a", "b", "\U0001F600"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("bad, match", [
    (b'{"text": "unterminated\n', r"not valid JSON \(Unterminated string starting at: column 10\)"),
    (b'{"text": "a"} {"text": "b"}\n', "not valid JSON .Extra data"),
    (b'{"text": "a",\n', "not valid JSON"),
    (b'NaN\n', "is a JSON number, not an object"),
    (b'["text"]\n', "is a JSON array, not an object"),
    (b'"text"\n', "is a JSON string, not an object"),
    (b'{"body": "x", "id": 3}\n', r"has no 'text' field \(its fields: 'body', 'id'\)"),
    (b'{"text": null}\n', "field 'text' is a JSON null, expected a string"),
    (b'{"text": ["a"]}\n', "field 'text' is a JSON array"),
    (b'{"text": "\\ud800"}\n', "lone surrogate"),
    (b'{"text": "\xff"}\n', "invalid UTF-8"),
])
def test_jsonl_bad_lines_name_file_line_and_field(tmp_path, compression, bad, match):
    good = b"".join(b'{"text": "line %d"}\n' % i for i in range(1, 1000))
    source = resolve_source(write(tmp_path, "bad.jsonl", good + b"\n" + bad, compression))
    raises_at(source, 1001, match, chunk_bytes=700)
    start = next(iter(iter_chunks(source, chunk_bytes=700))).position
    raises_at(source, 1001, match, chunk_bytes=700, start=start)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_jsonl_empty(tmp_path, compression):
    for body in (b"", b"\n  \n\r\n", BOM + b"\n"):
        with pytest.raises(InputError, match="bl.jsonl.*is empty"):
            list(iter_chunks(resolve_source(write(tmp_path, "bl.jsonl", body, compression))))


# -------------------------------------------------------------------- texts

def test_texts_round_trip_batch_and_resume(docs_prose):
    texts = docs_prose.split("\n")[:5000] + ["é" * 10, ""]
    source = texts_source(texts)
    chunks = list(iter_chunks(source, chunk_bytes=10_000))
    assert documents(chunks) == texts
    assert sum(c.nbytes for c in chunks) == sum(len(t.encode()) for t in texts)
    assert len(chunks) < len(texts) / 20
    check_resume(source, chunks, chunk_bytes=10_000)
    from_generator = [essence(c) for c in iter_chunks(texts_source(t for t in texts), chunk_bytes=10_000)]
    assert from_generator == [essence(c) for c in chunks]


@pytest.mark.parametrize("texts, match", [
    (["a", "b", "c", 4], r"texts\[3\] is int, expected str"),
    (["a", b"b"], r"texts\[1\] is bytes, expected str"),
    (["a", None], r"texts\[1\] is NoneType, expected str"),
    (["ok", "bad \ud800"], r"texts\[1\] contains a lone surrogate"),
    ([], "texts is empty"),
])
def test_bad_texts(texts, match):
    with pytest.raises(InputError, match=match):
        list(iter_chunks(texts_source(texts), chunk_bytes=1))


def test_resume_positions_are_checked(tmp_path):
    path = write(tmp_path, "a.txt", b"a\nb\n")
    with pytest.raises(InputError, match="not a position of a txt-lines input"):
        iter_chunks(resolve_source(path, line_by_line=True), start={"reader": "txt-bulk", "offset": 0, "lines": 0})
    with pytest.raises(InputError, match="changed since"):
        list(iter_chunks(texts_source(["a"]), start={"reader": "texts", "index": 5, "bytes": 9}))
    csv_path = write(tmp_path, "a.csv", b"text\nx\n")
    with pytest.raises(InputError, match="not a position of a csv input"):  # lacks the shape of the rows
        iter_chunks(resolve_source(csv_path), start={"reader": "csv", "offset": 5, "lines": 1, "rows": 1})
    with pytest.raises(InputError, match="shorter than the resume position"):
        list(iter_chunks(resolve_source(path), start={"reader": "txt-bulk", "offset": 99, "lines": 0}))
    with pytest.raises(ValueError, match="chunk_bytes"):
        iter_chunks(resolve_source(path), chunk_bytes=0)


# ------------------------------------------------------------------- memory

MEASURE = """
import sys
from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source

def status(key):  # in bytes; VmHWM is this process's peak RSS (ru_maxrss also counts the parent before exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

source = resolve_source(sys.argv[1], line_by_line=sys.argv[2] == "lines")
before = status("VmRSS")
total = sum(chunk.nbytes for chunk in iter_chunks(source, chunk_bytes=1 << 20))
print(total, status("VmHWM") - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
@pytest.mark.parametrize("name, compression, mode", [("big.txt", None, "bulk"), ("big.txt", "zst", "bulk"),
                                                     ("big.txt", "zst", "lines"), ("big.jsonl", "gz", "auto"),
                                                     ("big.csv", None, "auto")])
def test_memory_stays_flat_on_a_50mb_input(tmp_path, docs_prose, name, compression, mode):
    paragraphs = [p for p in docs_prose.split("\n\n") if p.strip()]
    block = {"big.txt": docs_prose.encode(),
             "big.jsonl": b"".join(json.dumps({"text": p}).encode() + b"\n" for p in paragraphs),
             "big.csv": csv_bytes([[p] for p in paragraphs])}[name]
    repeats = 50_000_000 // len(block) + 1
    path = tmp_path / (name + {"gz": ".gz", "zst": ".zst", None: ""}[compression])
    with open(path, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if compression == "gz" else \
            zstandard.ZstdCompressor(level=1).stream_writer(raw) if compression == "zst" else raw
        if name == "big.csv":
            out.write(b"text\n")
        for _ in range(repeats):
            out.write(block)
        if out is not raw:
            out.close()
    root = os.path.dirname(os.path.dirname(os.path.abspath(mmtok.__file__)))
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), mode], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": root}, check=True)
    total, growth = map(int, result.stdout.split())
    assert total == repeats * len(block) + (5 if name == "big.csv" else 0) >= 50_000_000
    # reading the whole input would take more than 50 MB; 1 MiB chunks need a few
    assert growth < 24 << 20, f"peak RSS grew {growth / 2**20:.1f} MiB while reading {total / 2**20:.0f} MiB"
