"""Bad input: a clear error naming the file and line/row, and the store left exactly as it was."""

from __future__ import annotations

import gzip

import pytest
from storetools import snapshot

import mmtok

GOOD_LINES = "".join(f"Line number {i} of a good corpus.\n" for i in range(2000))


def _bad_inputs(tmp_path):
    """(file, error pattern) for every kind of bad input, each failing at a known line/row."""
    cases = []
    p = tmp_path / "bad_utf8.txt"
    p.write_bytes(GOOD_LINES.encode() + b"fine\nbroken \xff\xfe here\n")
    cases.append((p, r"bad_utf8\.txt:2002\b"))
    p = tmp_path / "bad_utf8_lines.txt.gz"
    p.write_bytes(gzip.compress(b"one\ntwo\nthr\xc3ee\n"))
    cases.append((p, r"bad_utf8_lines\.txt\.gz:3\b"))
    p = tmp_path / "wrong_shape.csv"
    p.write_text("text,label\na,1\nb,2\nc\nd,4\n")
    cases.append((p, r"wrong_shape\.csv.*\b4\b"))
    p = tmp_path / "empty.txt"
    p.write_text("")
    cases.append((p, r"empty\.txt.*empty"))
    p = tmp_path / "not_json.jsonl"
    p.write_text('{"text": "ok"}\n{"text": broken}\n')
    cases.append((p, r"not_json\.jsonl:2\b"))
    p = tmp_path / "no_field.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "ok"}\n{"body": "no text field"}\n')
    cases.append((p, r"no_field\.jsonl:3\b.*text"))
    return cases


def _options(path) -> dict:
    if path.name.startswith("bad_utf8_lines"):
        return {"line_by_line": True}
    return {"column": "text"} if path.suffix == ".csv" else {}


@pytest.mark.parametrize("case", range(6))
def test_bad_input_leaves_no_new_store(tmp_path, case):
    path, pattern = _bad_inputs(tmp_path)[case]
    with pytest.raises(mmtok.InputError, match=pattern):
        mmtok.build(path, tmp_path / "out", **_options(path), shard_tokens=500, chunk_bytes=1000)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", range(6))
def test_bad_input_leaves_an_existing_store_unchanged(tmp_path, case):
    good = tmp_path / "good.txt"
    good.write_text(GOOD_LINES)
    mmtok.build(good, tmp_path / "out", shard_tokens=5000)
    before = snapshot(tmp_path / "out")
    path, pattern = _bad_inputs(tmp_path)[case]
    # Tiny shards: several shards are committed to the journal before the error is met.
    with pytest.raises(mmtok.InputError, match=pattern):
        mmtok.build(path, tmp_path / "out", append=True, **_options(path), shard_tokens=500, chunk_bytes=1000)
    assert snapshot(tmp_path / "out") == before
    assert mmtok.open(tmp_path / "out").num_documents == 1


def test_missing_input(tmp_path):
    with pytest.raises(mmtok.InputNotFoundError, match="nope.txt") as info:
        mmtok.build(tmp_path / "nope.txt", tmp_path / "out")
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("hello\n")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(mmtok.StoreError, match="a_file"):
        mmtok.build(good, blocker / "store")
    with pytest.raises(mmtok.StoreError, match="not an mmtok store"):
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "precious.txt").write_text("keep me")
        mmtok.build(good, tmp_path / "busy")
    assert (tmp_path / "busy" / "precious.txt").read_text() == "keep me"
