"""Fault injection (tools/fault_inject.py, tools/fault_commit.py): SIGKILL and a full disk at steps of the commit
protocol of build, append, import, merge, export, build_partition and `mmtok commit`; nothing committed is lost,
every store opens, every rerun is byte-identical.

The default suite runs the quick subset; ``-m heavy`` runs every fault point at several counts, random-moment
kills of the CLI and readers during appends (the table of the closing note comes from the tool itself)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, TOOLS)

import fault_commit  # noqa: E402
import fault_inject  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_quick_fault_injection_loses_nothing(tmp_path):
    tally = fault_inject.run(quick=True, random_kills=0, readers=False, workdir=str(tmp_path))
    assert tally.failures == [], "\n".join(tally.failures)
    assert sum(row[0] for row in tally.rows.values()) >= 20
    for scenario in ("SIGKILL append, at commit step", "full disk (ENOSPC) in build", "SIGKILL import", "SIGKILL merge",
                     "SIGKILL export", "SIGKILL `mmtok commit` at each step", "SIGKILL `build_partition` at each step"):
        assert tally.rows[scenario][0] >= 2, scenario
    assert tally.rows["full disk (ENOSPC) in commit"][0] == 1


def test_a_missed_fault_point_is_reported(tmp_path):
    # The harness must be able to fail: a point no write passes is a failure, not a pass.
    tally = fault_inject.Tally()
    corpus = fault_inject.Corpus(str(tmp_path / "corpus"), size=8_000)
    fault_inject.store_trial(tally, corpus, "never", str(tmp_path / "scratch"), "kill:no-such-point",
                             prepare=lambda out: None, job=corpus.build_full,
                             reference=fault_inject.snapshot(corpus.full), committed=[None])
    assert tally.failures and "fault missed" in tally.failures[0] and not tally.rows


def test_a_commit_rerun_that_leaves_partitions_behind_is_reported(tmp_path, monkeypatch):
    # The commit trial must be able to fail: a rerun that no longer removes the partitions of a commit killed
    # after its manifest is not byte-identical to an uninterrupted commit.
    commit_module = sys.modules["mmtok.store.commit"]
    monkeypatch.setattr(commit_module, "_already_committed", lambda backend, root, manifest, finished: backend.open())
    tally = fault_inject.Tally()
    corpus = fault_inject.Corpus(str(tmp_path / "corpus"), size=20_000)
    refs = fault_commit.Partitioned(corpus, str(tmp_path / "refs"))
    fault_commit.commit_trial(tally, refs, str(tmp_path / "scratch"), "kill:commit-partition-removed:1")
    assert tally.rows["SIGKILL `mmtok commit` at each step"] == [1, 0, 0, 0], tally.failures


def test_the_rerun_of_a_killed_append_does_not_append_twice(tmp_path):
    # Found by the black-box attack: killed after the manifest replace, a rerun appended the input again.
    corpus = fault_inject.Corpus(str(tmp_path / "corpus"), size=8_000)
    out = str(tmp_path / "store.mmtok")
    import shutil

    shutil.copytree(corpus.base, out)
    code, _ = fault_inject.forked(corpus.append(out), "kill:journal-removed")
    assert code == -9
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS, os.environ.get("PYTHONPATH", "")]))
    again = subprocess.run([sys.executable, "-m", "mmtok", "build", corpus.b, "-o", out, "--append", "--shard-tokens",
                            "4000", "--chunk-bytes", "6000"], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing appended" in again.stderr and "--again" in again.stderr
    assert fault_inject.snapshot(out) == fault_inject.snapshot(corpus.appended)


@pytest.mark.heavy
def test_heavy_fault_injection_loses_nothing(tmp_path):
    tally = fault_inject.run(quick=False, random_kills=4, readers=True, workdir=str(tmp_path))
    print(tally.table())
    assert tally.failures == [], "\n".join(tally.failures)
    assert sum(row[0] for name, row in tally.rows.items() if "commit step" in name) >= 2 * 20  # >= 20 kill points each


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    tally = fault_inject.Tally()
    corpus = fault_inject.Corpus(str(tmp_path / "corpus"), size=30_000)
    if not fault_inject.tmpfs_trials(tally, corpus, str(tmp_path / "scratch"), fills=(0,)):
        pytest.skip("cannot mount a tmpfs here")
    assert tally.failures == [], "\n".join(tally.failures)
    assert tally.rows["full disk (real tmpfs), then space freed"][0] == 2
    assert tally.rows["full disk (real tmpfs) in export"][0] == 1


def test_readers_during_appends_see_only_committed_data(tmp_path):
    tally = fault_inject.Tally()
    corpus = fault_inject.Corpus(str(tmp_path / "corpus"), size=20_000)
    fault_inject.readers_during_appends(tally, corpus, str(tmp_path / "scratch"), appends=4, readers=2, seconds=3)
    assert tally.failures == [], "\n".join(tally.failures)
    assert len(tally.rows) == 1
