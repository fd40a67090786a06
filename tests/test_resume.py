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


class _Counted:
    """A progress receiver that counts the tokens a build actually encodes."""

    def __init__(self):
        self.tokens = 0

    def update(self, index, chunk, tokens):
        self.tokens += tokens


def test_a_killed_build_redoes_only_what_its_journal_had_not_committed(tmp_path, corpus):
    """One shard for the whole build: the journal must commit mid-shard (here every 100 kB of input)."""
    inputs, _ = corpus
    settings = dict(shard_tokens=10**9, chunk_bytes=20_000)
    clean = mmtok.build(inputs, tmp_path / "clean", **settings)
    expected = snapshot(clean.path)
    out = tmp_path / "store"
    journal = out / "build-journal.json"
    code = (f"import mmtok\nmmtok.build({[str(p) for p in inputs]!r}, {str(out)!r}, workers=2, "
            f"shard_tokens={settings['shard_tokens']}, chunk_bytes={settings['chunk_bytes']}, commit_bytes=100_000)\n")
    committed = 0
    for target in (0.3, 0.6):  # two kills, each once the journal has committed this fraction of the tokens
        proc = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            state = _journal_state(journal)
            if state is not None and state[0] >= target * clean.num_tokens:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists(), "the build finished before the kill: use a larger corpus"
        state = _journal_state(journal)
        assert state is not None and state[1] is not None, "no mid-shard commit in the journal"
        assert state[0] >= committed  # each rerun went on from the previous commit
        committed = state[0]
    counted = _Counted()
    mmtok.build(inputs, out, progress=counted, **settings)
    # The rerun encodes exactly the tokens the journal had not committed: nothing committed is redone.
    assert counted.tokens == clean.num_tokens - committed
    assert committed >= 0.6 * clean.num_tokens
    assert snapshot(out) == expected


def _journal_state(journal):
    """(tokens committed, the open shard entry) of a journal, or None while there is none."""
    import json

    try:
        data = json.loads(journal.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    done = sum(s["tokens"] for s in data["shards"]) + (data["open_shard"] or {}).get("tokens", 0)
    return done, data.get("open_shard")


def test_the_journal_commits_mid_shard_on_time_and_on_bytes(tmp_path, monkeypatch, real_text_file):
    import copy
    import importlib

    build_module = importlib.import_module("mmtok.store.buildrun")  # the module that writes the journal

    journals = []
    real = build_module.write_journal
    monkeypatch.setattr(build_module, "write_journal", lambda path, j: (journals.append(copy.deepcopy(j)), real(path, j)))
    one_shard = dict(shard_tokens=10**9, chunk_bytes=50_000, workers=1)
    mmtok.build(real_text_file, tmp_path / "t", commit_seconds=0.0, commit_bytes=10**12, **one_shard)
    chunks = len(journals)
    assert chunks >= 20 and all(j["open_shard"] and not j["shards"] for j in journals)  # time: after every chunk
    assert [j["open_shard"]["tokens"] for j in journals] == sorted(j["open_shard"]["tokens"] for j in journals)
    journals.clear()
    mmtok.build(real_text_file, tmp_path / "b", commit_seconds=1e9, commit_bytes=500_000, **one_shard)
    assert 3 <= len(journals) <= chunks // 5  # bytes: about every 500 kB of input (10 chunks)
    journals.clear()
    mmtok.build(real_text_file, tmp_path / "d", **one_shard)
    assert journals == []  # the defaults (30 s, 256 MB) do not commit a 3 MB build mid-shard
    assert snapshot(tmp_path / "t") == snapshot(tmp_path / "b") == snapshot(tmp_path / "d")


def test_a_journal_naming_shards_without_checksums_resumes_to_identical_bytes(tmp_path, corpus):
    """Closed shards are journaled before their background checksums finish; a rerun reads them from the files."""
    import json
    import os

    inputs, expected = corpus
    out = tmp_path / "store"
    env = dict(os.environ, MMTOK_FAULT="kill:chunk-written:12")  # well after the first shard closed
    proc = subprocess.run(_build_script(inputs, out), env=env)
    assert proc.returncode != 0
    journal_path = out / "build-journal.json"
    journal = json.loads(journal_path.read_text())
    assert journal["shards"], "the kill came before any shard closed: raise the chunk number"
    for entry in journal["shards"]:
        entry.pop("tokens_sha256", None)
        entry.pop("docs_sha256", None)
    journal_path.write_text(json.dumps(journal))
    subprocess.run(_build_script(inputs, out), check=True)
    assert snapshot(out) == expected
