"""Bulk text with long runs between safe cut points: bounded pieces, and what that costs in ids.

A run longer than MAX_RUN_BYTES without a safe cut (a megabyte of letters, CJK
text, base64) is forced into pieces (mmtok/tokenize/cutpoints.py). These tests
shrink the limit to a few kB so that whole-text encoding stays cheap, and
measure against the tokenizer's own encoding of the whole text.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import mmtok
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


_RSS_PROBE = """
import os, sys, mmtok
path, out = sys.argv[1], sys.argv[2]
mmtok.build(path, out, workers=1)
with open("/proc/self/status") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024)
"""


@pytest.mark.heavy
def test_memory_is_flat_on_10_mb_without_whitespace(tmp_path):
    """Issue 15: 10 MB of 'a' took 585 MB RSS (growing with the run); now pieces end within 2 MiB."""
    (tmp_path / "a.txt").write_bytes(b"a" * 10_000_000)
    (tmp_path / "small.txt").write_bytes(b"a" * 2_000_000)
    peaks = {}
    for name in ("a", "small"):
        done = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(tmp_path / f"{name}.txt"),
                               str(tmp_path / f"{name}.mmtok")], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        peaks[name] = int(done.stdout.split()[-1])
    # 5x the input, same peak: memory does not grow with the run
    assert peaks["a"] < peaks["small"] * 1.3 + 50, peaks
