"""A build killed with SIGKILL at arbitrary moments, then rerun, ends byte-identical to a clean build."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from storetools import snapshot

import mmtok

SETTINGS = dict(shard_tokens=40_000, chunk_bytes=20_000)


def _build_script(inputs, out) -> list[str]:
    code = (
        "import sys, mmtok\n"
        f"mmtok.build({[str(p) for p in inputs]!r}, {str(out)!r}, workers=2, "
        f"shard_tokens={SETTINGS['shard_tokens']}, chunk_bytes={SETTINGS['chunk_bytes']})\n"
    )
    return [sys.executable, "-c", code]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_text):
    folder = tmp_path_factory.mktemp("resume")
    bulk = folder / "bulk.txt"
    bulk.write_text(real_text, encoding="utf-8")
    lines = folder / "lines.jsonl"
    import json

    with open(lines, "w", encoding="utf-8") as f:
        for para in real_text.split("\n\n")[:20_000]:
            f.write(json.dumps({"text": para}) + "\n")
    clean = folder / "clean"
    mmtok.build([bulk, lines], clean, **SETTINGS)
    return [bulk, lines], snapshot(clean)


@pytest.mark.parametrize("kills", [1, 3])
def test_killed_build_resumes_to_identical_bytes(tmp_path, corpus, kills):
    inputs, expected = corpus
    out = tmp_path / "store"
    journal = out / "build-journal.json"
    for round_ in range(kills):
        seen = journal.read_bytes() if journal.exists() else None
        proc = subprocess.Popen(_build_script(inputs, out))
        # Kill once this run has committed a new shard, at a moment that varies by round.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if journal.exists() and journal.read_bytes() != seen:
                break
            time.sleep(0.002)
        time.sleep(0.03 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists() or proc.returncode == 0
    subprocess.run(_build_script(inputs, out), check=True)
    assert snapshot(out) == expected
    mmtok.open(out)  # and it opens


def test_partial_files_of_a_killed_build_are_invisible_and_cleaned(tmp_path, corpus):
    inputs, expected = corpus
    out = tmp_path / "store"
    proc = subprocess.Popen(_build_script(inputs, out))
    while not (out / "build-journal.json").exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises(mmtok.StoreError, match="interrupted"):
        mmtok.open(out)
    subprocess.run(_build_script(inputs, out), check=True)
    assert snapshot(out) == expected
