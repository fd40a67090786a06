"""What an input is: kind, compression by magic, options, identity, and its byte stream."""

from __future__ import annotations

import gzip
import json
import os
import random

import pytest
import zstandard

from mmtok.base.errors import InputError, InputNotFoundError
from mmtok.inputs.sources import Source, open_stream, resolve_source, texts_source


def compress(data: bytes, compression: str | None) -> bytes:
    if compression == "gz":
        return gzip.compress(data)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def write(tmp_path, name: str, data: bytes, compression: str | None = None):
    path = tmp_path / name
    path.write_bytes(compress(data, compression))
    return path


@pytest.mark.parametrize("name, kind, compression", [
    ("a.txt", "txt", None), ("a.md", "txt", None), ("noext", "txt", None), ("a.TXT", "txt", None),
    ("a.csv", "csv", None), ("a.jsonl", "jsonl", None), ("a.json", "jsonl", None), ("a.ndjson", "jsonl", None),
    ("a.txt.gz", "txt", "gz"), ("a.csv.gz", "csv", "gz"), ("a.jsonl.zst", "jsonl", "zst"), ("a.gz", "txt", "gz"),
])
def test_kind_from_suffix_and_compression_from_magic(tmp_path, name, kind, compression):
    path = write(tmp_path, name, b"text\n", compression)
    source = resolve_source(path)
    assert (source.kind, source.compression) == (kind, compression)
    assert source.display == str(path) and source.path == os.path.abspath(path)
    assert source.line_by_line is (kind != "txt")


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_magic_wins_over_a_suffix_that_does_not_say_compressed(tmp_path, compression):
    source = resolve_source(write(tmp_path, "plain-looking.txt", b"hello\n", compression))
    assert source.compression == compression


def test_zstd_skippable_frame_magic_is_zstd(tmp_path):
    skippable = (0x184D2A5E).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    path = tmp_path / "a.jsonl"
    path.write_bytes(skippable + zstandard.ZstdCompressor().compress(b'{"text": "x"}\n'))
    source = resolve_source(path)
    assert source.compression == "zst"
    with open_stream(source) as stream:
        assert stream.read(100) == b'{"text": "x"}\n'


@pytest.mark.parametrize("name", ["broken.txt.gz", "broken.csv.zst"])
def test_a_compressed_name_on_uncompressed_bytes_is_an_error(tmp_path, name):
    with pytest.raises(InputError, match=rf"{name}.*does not start with"):
        resolve_source(write(tmp_path, name, b"plain text\n"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.txt") as info:
        resolve_source(tmp_path / "nope.txt")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, InputError)
    with pytest.raises(InputError, match="is a directory"):
        resolve_source(tmp_path)


def test_display_is_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "rel.txt", b"x")
    source = resolve_source("rel.txt")
    assert source.display == "rel.txt" and source.path == str(tmp_path / "rel.txt")


def test_options_apply_to_their_kind_only(tmp_path):
    txt = write(tmp_path, "a.txt", b"x\n")
    assert resolve_source(txt, line_by_line=True).line_by_line is True
    assert resolve_source(txt, line_by_line=False).line_by_line is False
    # options for other kinds are ignored, so one set of options serves mixed inputs
    ignored = resolve_source(txt, column="body", field="body", header=False)
    assert (ignored.column, ignored.field, ignored.header) == (None, "text", True)
    assert ignored.identity() == resolve_source(txt).identity()
    csv_source = resolve_source(write(tmp_path, "a.csv", b"x\n"), line_by_line=False, column=1, header=False)
    assert (csv_source.line_by_line, csv_source.column, csv_source.header) == (True, 1, False)
    assert resolve_source(write(tmp_path, "a.jsonl", b"{}\n"), field="body").field == "body"


@pytest.mark.parametrize("options, message", [
    ({"line_by_line": "yes"}, "line_by_line must be"),
    ({"column": -1}, "column must be"),
    ({"column": True}, "column must be"),
    ({"column": 1.5}, "column must be"),
    ({"header": "no"}, "header must be"),
    ({"field": ""}, "field must be"),
])
def test_bad_option_values(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        resolve_source(write(tmp_path, "a.csv", b"x\n"), **options)


def test_identity_is_json_and_tracks_the_file(tmp_path):
    path = write(tmp_path, "a.csv.gz", b"text\nhello\n", "gz")
    source = resolve_source(path, column="text")
    identity = source.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert set(identity) == {"path", "size", "mtime_ns", "kind", "compression", "line_by_line", "column",
                             "field", "header"}
    assert identity["size"] == path.stat().st_size and identity["compression"] == "gz"
    assert resolve_source(path, column="text") == source and hash(resolve_source(path, column="text")) == hash(source)
    assert resolve_source(path, column=0).identity() != identity
    path.write_bytes(gzip.compress(b"text\nhello, changed\n"))
    assert resolve_source(path, column="text").identity() != identity


def test_texts_source():
    texts = ["a", "b"]
    source = texts_source(texts)
    assert (source.kind, source.display, source.path, source.line_by_line) == ("texts", "texts", None, True)
    assert source.texts is texts
    assert source == texts_source(["other"])  # texts are not part of equality
    assert json.loads(json.dumps(source.identity()))["kind"] == "texts"
    assert texts_source(t for t in texts).kind == "texts"


@pytest.mark.parametrize("bad, message", [("one text", "wrap a single text in a list"),
                                          (b"bytes", "wrap a single text in a list"),
                                          (42, "iterable of strings")])
def test_texts_source_refuses_non_lists(bad, message):
    with pytest.raises(InputError, match=message):
        texts_source(bad)


def test_source_is_frozen(tmp_path):
    source = resolve_source(write(tmp_path, "a.txt", b"x"))
    with pytest.raises(AttributeError):
        source.kind = "csv"
    assert isinstance(source, Source)


@pytest.mark.parametrize("compression", [None, "gz", "zst"])
def test_open_stream_from_any_offset(tmp_path, compression):
    data = bytes(range(256)) * 3000 + b"end\nline two\n"
    source = resolve_source(write(tmp_path, "bytes.txt", data, compression))
    for offset in (0, 1, 255, 100_000, len(data) - 3, len(data)):
        with open_stream(source, offset=offset) as stream:
            assert stream.read(len(data)) == data[offset:]
            assert stream.read(10) == b""
            assert 0 < stream.file_offset() <= source.size
    with open_stream(source, offset=len(data) - 13) as stream:
        assert stream.readline() == b"end\n" and stream.readline() == b"line two\n" and stream.readline() == b""
    with pytest.raises(InputError, match="shorter than the resume position"):
        open_stream(source, offset=len(data) + 1)


def test_multi_member_gzip_and_multi_frame_zstd(tmp_path):
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"first\n") + gzip.compress(b"second\n"))
    frames = [zstandard.ZstdCompressor(write_content_size=False).compress(b"first\n"),
              zstandard.ZstdCompressor().compress(b"second\n" * 100_000)]
    (tmp_path / "a.txt.zst").write_bytes(b"".join(frames))
    with open_stream(resolve_source(tmp_path / "a.txt.gz")) as stream:
        assert stream.read(100) == b"first\nsecond\n"
    with open_stream(resolve_source(tmp_path / "a.txt.zst")) as stream:
        assert stream.read(10**7) == b"first\n" + b"second\n" * 100_000


def zstd_without_content_size(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    return compressor.compress(data)


@pytest.mark.parametrize("name, damage, message", [
    ("t.txt.gz", lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
    ("t.txt.gz", lambda b: b[:-4], "corrupt or truncated gzip"),
    ("t.txt.gz", lambda b: b[:20] + bytes(x ^ 0x55 for x in b[20:40]) + b[40:], "corrupt or truncated gzip"),
    ("t.txt.zst", lambda b: b[: len(b) // 2], "truncated zstd"),
    ("t.txt.zst", lambda b: b[:-3], "truncated zstd"),
    ("t.txt.zst", lambda b: b + b"garbage!", "corrupt zstd"),
])
def test_damaged_compressed_streams_name_the_file(tmp_path, name, damage, message):
    data = random.Random(185).randbytes(50_000).hex().encode()
    good = compress(data, "gz") if name.endswith(".gz") else zstd_without_content_size(data)
    path = tmp_path / name
    path.write_bytes(damage(good))
    with pytest.raises(InputError, match=message) as info:
        with open_stream(resolve_source(path)) as stream:
            while stream.read(1 << 16):
                pass
    assert str(path) in str(info.value) and "re-download" in str(info.value)
