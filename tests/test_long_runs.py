"""Long runs between safe cut points and long lines: bounded pieces, and what that costs in ids.

A run longer than MAX_RUN_BYTES without a safe cut (a megabyte of letters, CJK
text, base64) is forced into pieces (mmtok/tokenize/cutpoints.py); a line read
line by line that is longer than that is cut into pieces of one document the
same way (mmtok/inputs/lines.py). These tests shrink the limits to a few kB so
that whole-text encoding stays cheap, and measure against the tokenizer's own
encoding of the whole text.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmtok
from mmtok.base.errors import InputError
from mmtok.inputs import iter_chunks, lines, resolve_source
from mmtok.tokenize import cutpoints
from mmtok.tokenize.tokenizer import default_tokenizer


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(cutpoints, "MAX_RUN_BYTES", 4096)
    return 4096


def _store_ids(tmp_path, text: str, chunk_bytes: int = 1024) -> np.ndarray:
    path = tmp_path / "in.txt"
    path.write_text(text, encoding="utf-8")
    store = mmtok.build(str(path), tmp_path / "s.mmtok", chunk_bytes=chunk_bytes, workers=1)
    return np.asarray(store.tokens[: store.num_tokens - 1])  # without the final eos


def _line_docs(tmp_path, data: bytes, name: str = "lines.txt", chunk_bytes: int = 1024) -> list[np.ndarray]:
    path = tmp_path / name
    path.write_bytes(data)
    store = mmtok.build(str(path), tmp_path / f"{name}.mmtok", chunk_bytes=chunk_bytes, workers=1,
                        line_by_line=True)
    return [np.asarray(store.documents[i])[:-1] for i in range(store.num_documents)]  # without eos


def _whole_ids(text: str) -> np.ndarray:
    return np.asarray(default_tokenizer().encode_arrays([text])[0])


def test_text_with_safe_cuts_is_unchanged_by_the_limit(tmp_path, small_limit, docs_prose):
    text = docs_prose[:60_000]
    assert np.array_equal(_store_ids(tmp_path, text), _whole_ids(text))


def test_cjk_lines_are_forced_after_a_newline_and_keep_whole_text_ids(tmp_path, small_limit):
    """No ASCII cut points at all; the forced cut after a newline keeps GPT-2's ids exact."""
    text = "".join(f"第{i}行：中文文本没有空格，也没有可以安全切开的地方。\n" for i in range(2000))
    assert len(text.encode()) > 20 * small_limit
    assert np.array_equal(_store_ids(tmp_path, text), _whole_ids(text))


def test_a_run_of_letters_deviates_only_inside_the_run(tmp_path, small_limit):
    """50 kB of 'a' between ordinary text: ids before and after the run are exact; the run itself is
    encoded as its forced pieces (each piece's own BPE), the bounded deviation FORMAT/README document."""
    head, tail = "Some ordinary words.\n" * 200, "\nAnd more ordinary words after it.\n" * 200
    run = "a" * 50_000
    got, whole = _store_ids(tmp_path, head + run + tail), _whole_ids(head + run + tail)
    head_ids, tail_ids = _whole_ids(head), _whole_ids(tail)
    assert np.array_equal(got[: len(head_ids)], head_ids)
    assert np.array_equal(got[len(got) - len(tail_ids):], tail_ids)
    assert np.array_equal(whole[: len(head_ids)], head_ids)  # the cut between head and run is a safe one
    middle = got[len(head_ids): len(got) - len(tail_ids)]
    # the run's forced pieces, re-derived: each encodes on its own
    pieces = [p.decode() for p, _ in cutpoints.iter_pieces(io.BytesIO(run.encode()).read,
                                                           chunk_bytes=1024, rules=frozenset())]
    assert len(pieces) > 5
    expected = np.concatenate([_whole_ids(p) for p in pieces])
    assert np.array_equal(middle, expected)
    # how far that is from encoding the run whole: a handful of tokens per forced cut
    run_whole = _whole_ids(run)
    assert abs(len(middle) - len(run_whole)) <= 2 * len(pieces)


def _long_line(docs_prose: str, size: int) -> str:
    return " ".join(docs_prose.split())[:size]  # prose without line breaks: safe cuts every few bytes


def test_a_long_line_is_one_document_with_the_whole_line_ids(tmp_path, small_limit, docs_prose):
    """A line far longer than a piece is cut at safe points: one document, the whole line's exact ids."""
    long = _long_line(docs_prose, 60_000)
    texts = ["a short line", long, "the next line", long[:5000], "last, without a line break"]
    data = (texts[0] + "\n" + texts[1] + "\r\n" + texts[2] + "\n\n" + texts[3] + "\n" + texts[4]).encode()
    docs = _line_docs(tmp_path, b"\xef\xbb\xbf" + data)
    assert len(docs) == len(texts)
    for got, text in zip(docs, texts):
        assert np.array_equal(got, _whole_ids(text))
    # it really was read in pieces: many chunks of the long line, only the last ends the document
    chunks = list(iter_chunks(resolve_source(tmp_path / "lines.txt", line_by_line=True), chunk_bytes=1024))
    pieces = [chunk for chunk in chunks if "line_start" in chunk.position]
    assert len(pieces) > 50 and all(chunk.ends == [False] for chunk in pieces)
    assert max(len(text.encode()) for chunk in chunks for text in chunk.texts) < 1024 + small_limit


def test_a_long_line_without_safe_cuts_is_forced_like_bulk_text(tmp_path, small_limit):
    """A 50 kB run of letters as one line: the bulk reader's forced pieces, so the same ids as that text in
    bulk mode (the bounded deviation documented for bulk text), and still one document."""
    run = "a" * 50_000
    docs = _line_docs(tmp_path, f"before\n{run}\nafter\n".encode())
    assert len(docs) == 3
    assert np.array_equal(docs[1], _store_ids(tmp_path, run))
    assert np.array_equal(docs[0], _whole_ids("before")) and np.array_equal(docs[2], _whole_ids("after"))


def test_a_cr_left_by_a_forced_cut_before_the_line_break_is_dropped(tmp_path, small_limit):
    """The forced cut may fall between \\r and \\n (a run of exactly the piece limit): the \\r is dropped
    as it is in a short line."""
    run = "a" * (1024 + small_limit - 1)
    docs = _line_docs(tmp_path, f"{run}\r\nnext\n".encode())
    assert len(docs) == 2 and np.array_equal(docs[1], _whole_ids("next"))
    assert "\r" not in default_tokenizer().decode(docs[0].tolist())


def test_a_build_resumed_inside_a_long_line_reads_the_same_pieces(tmp_path, small_limit, docs_prose):
    """Every position inside a long line carries where the line started: resuming from any of them gives
    exactly the chunks an uninterrupted read gives."""
    path = tmp_path / "lines.txt"
    path.write_bytes(("head\n" + _long_line(docs_prose, 20_000) + "\n" + "a" * 12_000 + "\ntail\n").encode())
    source = resolve_source(path, line_by_line=True)
    chunks = list(iter_chunks(source, chunk_bytes=1024))
    inside = [k for k, chunk in enumerate(chunks) if "line_start" in chunk.position]
    assert len(inside) > 20
    for k in inside[::3]:
        rest = list(iter_chunks(source, start=chunks[k].position, chunk_bytes=1024))
        assert [(c.texts, c.ends, c.position) for c in rest] == [(c.texts, c.ends, c.position) for c in chunks[k + 1:]]
    bad = {**chunks[inside[0]].position, "line_start": chunks[inside[0]].position["offset"] + 1}
    with pytest.raises(InputError, match="not a position"):
        list(iter_chunks(source, start=bad, chunk_bytes=1024))


@pytest.fixture
def small_line_limit(monkeypatch, small_limit):
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 64 * 1024)
    return 64 * 1024


@pytest.mark.parametrize("name, data", [
    ("a.txt", b"fine\n" + b"word " * 20_000 + b"\n"),
    ("a.jsonl", b'{"text": "fine"}\n{"text": "' + b"word " * 20_000 + b'"}\n'),
    ("a.csv", b"text\nfine\n" + b"word " * 20_000 + b"\n"),
])
def test_a_line_longer_than_the_maximum_is_an_error_naming_it(tmp_path, small_line_limit, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError, match=r":[23]: the line is longer than 65,536 bytes"):
        mmtok.build(str(path), tmp_path / "s.mmtok", chunk_bytes=1024, workers=1, line_by_line=True)
    assert not (tmp_path / "s.mmtok").exists()


def test_a_long_json_line_under_the_maximum_is_read_whole(tmp_path, small_line_limit, docs_prose):
    """JSON lines are parsed whole: one longer than a piece (but under the maximum) is one exact document."""
    import json
    text = _long_line(docs_prose, 30_000)
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ("x", text, "y")) + "\n")
    store = mmtok.build(str(path), tmp_path / "s.mmtok", chunk_bytes=1024, workers=1)
    assert store.num_documents == 3
    assert np.array_equal(np.asarray(store.documents[1])[:-1], _whole_ids(text))


def test_dev_zero_line_by_line_ends_with_an_error(tmp_path, small_line_limit):
    """/dev/zero has no line break: line by line it is one endless line, refused once past the maximum."""
    with pytest.raises(InputError, match=r"/dev/zero:1: the line is longer than 65,536 bytes.*--bulk"):
        mmtok.build("/dev/zero", tmp_path / "z.mmtok", chunk_bytes=1024, workers=1, line_by_line=True)
    assert not (tmp_path / "z.mmtok").exists()


@pytest.mark.parametrize("line_by_line", [False, True])
def test_text_that_ends_exactly_at_a_forced_cut_still_ends_its_document(tmp_path, small_limit, line_by_line):
    """Found by the property test below: a run ending exactly where a piece is forced to end (1024 + 4096 bytes
    here, 2 MiB by default) was cut there without being known as the last piece: no eos, 0 documents."""
    path = tmp_path / "exact.txt"
    path.write_bytes(b"a" * (1024 + small_limit))
    store = mmtok.build(str(path), tmp_path / "s.mmtok", chunk_bytes=1024, workers=1, line_by_line=line_by_line)
    assert store.num_documents == 1 and int(store.tokens[store.num_tokens - 1]) == store.eos_id


_RSS_PROBE = """
import os, sys, mmtok
path, out, line_by_line = sys.argv[1], sys.argv[2], sys.argv[3] == "lines"
mmtok.build(path, out, workers=1, line_by_line=line_by_line)
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024)
"""


@pytest.mark.heavy
@pytest.mark.parametrize("mode", ["bulk", "lines"])
def test_memory_is_flat_on_10_mb_without_whitespace(tmp_path, mode):
    """Issue 15: 10 MB of 'a' took 585 MB RSS in bulk mode (growing with the run), a 200 MB line read line by
    line 1.57 GB; now pieces end within 2 MiB, and a long line is cut into pieces of one document."""
    (tmp_path / "a.txt").write_bytes(b"a" * 10_000_000 + b"\n")
    (tmp_path / "small.txt").write_bytes(b"a" * 2_000_000 + b"\n")
    peaks = {}
    for name in ("a", "small"):
        done = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(tmp_path / f"{name}.txt"),
                               str(tmp_path / f"{name}.mmtok"), mode], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        peaks[name] = int(done.stdout.split()[-1])
    # 5x the input, same peak: memory does not grow with the run
    assert peaks["a"] < peaks["small"] * 1.3 + 50, peaks
    if mode == "lines":
        assert mmtok.open(tmp_path / "a.mmtok").num_documents == 1


@pytest.mark.heavy
def test_dev_zero_line_by_line_stops_at_the_maximum_line(tmp_path):
    """`mmtok build /dev/zero --line-by-line` used to grow until the OOM killer; now one line, exit 1."""
    done = subprocess.run([sys.executable, "-m", "mmtok", "build", "/dev/zero", "--line-by-line", "-o",
                           str(tmp_path / "z.mmtok"), "-q"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "/dev/zero:1: the line is longer than 268,435,456 bytes" in done.stderr
    assert not (tmp_path / "z.mmtok").exists()


def test_the_maximum_holds_with_chunks_larger_than_it(tmp_path, small_line_limit):
    """--chunk-bytes above the maximum reads lines whole in blocks: the longest line is still checked."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "fine"}\n' * 3 + b'{"text": "' + b"word " * 20_000 + b'"}\n{"text": "end"}\n')
    with pytest.raises(InputError, match=r"a\.jsonl:4: the line is longer than 65,536 bytes"):
        mmtok.build(str(path), tmp_path / "s.mmtok", chunk_bytes=1 << 20, workers=1)


_PARTS = st.sampled_from(["word ", "a", "é", "\r\n", "\n", "\r", " ", "xyz.", "日本", "\t"])


@settings(max_examples=60, deadline=None)  # 1,500 examples passed once (with the 2 findings above fixed)
@given(parts=st.lists(st.tuples(_PARTS, st.integers(1, 900)), max_size=12), bom=st.booleans())
def test_line_pieces_join_into_the_lines_and_resume_anywhere(tmp_path_factory, parts, bom):
    """Any text, long lines included: joining each document's pieces gives exactly its non-empty lines (without
    their \\n or \\r\\n), no piece exceeds the bound, and resuming from any chunk's position gives the same chunks."""
    text = "".join(part * count for part, count in parts)
    path = tmp_path_factory.mktemp("lines") / "t.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cutpoints, "MAX_RUN_BYTES", 256)
        source = resolve_source(path, line_by_line=True)
        try:
            chunks = list(iter_chunks(source, chunk_bytes=64, cut_rules={"newline", "space"}))
        except InputError as exc:
            assert "empty" in str(exc) and not [line for line in text.split("\n") if line.rstrip("\r")]
            return
        documents, current = [], ""
        for chunk in chunks:
            for piece, end in zip(chunk.texts, chunk.ends):
                if len(chunk.texts) == 1 and not end or "line_start" in chunk.position:
                    assert len(piece.encode()) <= 64 + 256
                current += piece
                if end:
                    documents.append(current)
                    current = ""
        assert current == ""
        expected = [line for line in text.replace("\r\n", "\n").split("\n") if line]
        assert documents == expected
        for k in range(0, len(chunks) - 1, 3):
            rest = list(iter_chunks(source, start=chunks[k].position, chunk_bytes=64, cut_rules={"newline", "space"}))
            assert [(c.texts, c.ends, c.position) for c in rest] == [(c.texts, c.ends, c.position) for c in chunks[k + 1:]]
