"""Fault injection for partitioned builds (part of tools/fault_inject.py): `build_partition` and `mmtok commit`.

The corpus's two inputs become partitions 0 and 1 of a root. Each trial copies a
root in the state it needs, runs one step with a fault (SIGKILL or an injected
ENOSPC at a named point of :mod:`mmtok.base.faults`), then checks:

- commit: the root is either still uncommitted (no manifest, both partitions
  intact) or committed and it verifies with the reference tokens; rerunning the
  commit ends byte-identical to an uninterrupted commit, nothing else left.
- build_partition: the partition is either unfinished or finished and equal to
  the reference; rerunning it, then committing, ends byte-identical to the
  reference commit.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

import mmtok
from mmtok.base.errors import StoreError
from mmtok.store.commit import commit
from mmtok.store.partition import build_partition

from fault_inject import SETTINGS, faulted, forked, snapshot  # noqa: I001 - tools/ is on the path

PARTITION_SETTINGS = {key: SETTINGS[key] for key in ("shard_tokens", "chunk_bytes", "workers")}
# Passed once per shard or partition (kill at the 1st and a later pass), or once per commit.
COMMIT_POINTS = ["commit-begun", "commit-linked:1", "commit-linked:3", "commit-docs-written:1",
                 "commit-docs-written:4", "commit-shards-synced", "manifest-written", "manifest-replaced",
                 "manifest-synced", "commit-partition-removed:1", "commit-partition-removed:2"]
QUICK_COMMIT_POINTS = ["commit-linked:2", "commit-docs-written:3", "manifest-replaced", "commit-partition-removed:1"]
COMMIT_ENOSPC = ["commit-docs-written:2", "manifest-written"]
# build_partition is a build into root/partitions/PPPPPP: its own commit steps, and replacing a stale partition.
PARTITION_POINTS = ["chunk-written:2", "shard-renamed:1", "journal-replaced:1", "tokenizer-replaced", "manifest-written",
                    "manifest-replaced", "journal-removed", "partition-removed"]
QUICK_PARTITION_POINTS = ["shard-renamed:1", "manifest-replaced", "partition-removed"]


class Partitioned:
    """References: the root with both partitions built (uncommitted) and committed, and a stale partition 0."""

    def __init__(self, corpus, folder: str):
        self.corpus, self.folder = corpus, folder
        self.parts = os.path.join(folder, "parts.mmtok")
        self.committed = os.path.join(folder, "committed.mmtok")
        self.stale = os.path.join(folder, "stale.mmtok")  # partition 0 built from the other input
        for job in (self.build(self.parts, 0), self.build(self.parts, 1), self.build(self.stale, 0, corpus.b)):
            code, message = forked(job)
            if code:
                raise SystemExit(f"reference partition failed: {message}")
        shutil.copytree(self.parts, self.committed)
        code, message = forked(self.commit(self.committed))
        if code:
            raise SystemExit(f"reference commit failed: {message}")
        self.parts_ref, self.committed_ref = snapshot(self.parts), snapshot(self.committed)
        self.tokens = mmtok.open(self.committed).tokens[:]
        self.part0 = os.path.join(self.parts, "partitions", "000000")

    def build(self, root: str, pid: int, path: str | None = None):
        inputs = [path or (self.corpus.a if pid == 0 else self.corpus.b)]
        return lambda: build_partition(inputs, root, pid, tokenizer=self.corpus.tok, **PARTITION_SETTINGS)

    def commit(self, root: str):
        return lambda: commit(root, expect=2)


def _verified_tokens(path: str) -> np.ndarray | None:
    try:
        mmtok.store.verify_store(path)
        return mmtok.open(path).tokens[:]
    except StoreError:
        return None


def commit_trial(tally, refs: Partitioned, scratch: str, fault: str) -> None:
    scenario = "SIGKILL `mmtok commit` at each step" if fault.startswith("kill") else "full disk (ENOSPC) in commit"
    out = os.path.join(scratch, "commit", "root.mmtok")
    shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    shutil.copytree(refs.parts, out)
    _, detail = faulted(tally, scenario, refs.commit(out), fault)
    if detail is None:
        return
    if os.path.exists(os.path.join(out, "manifest.json")):  # committed: it must verify, whole
        tokens = _verified_tokens(out)
        unopenable = tokens is None
        lost = unopenable or not np.array_equal(tokens, refs.tokens)
    else:  # not committed: both partitions untouched
        unopenable = False
        lost = any(snapshot(os.path.join(out, "partitions", p)) != snapshot(os.path.join(refs.parts, "partitions", p))
                   for p in ("000000", "000001"))
    rerun, message2 = forked(refs.commit(out))
    identical = rerun == 0 and snapshot(out) == refs.committed_ref and os.listdir(os.path.dirname(out)) == ["root.mmtok"]
    tally.add(scenario, lost=lost, unopenable=unopenable, identical=identical,
              detail=f"{detail}; rerun {rerun} {message2[:200]}")


def partition_trial(tally, refs: Partitioned, scratch: str, fault: str) -> None:
    """Kill build_partition(0) (over a stale partition 0 for `partition-removed`), rerun it, then commit."""
    scenario = "SIGKILL `build_partition` at each step"
    out = os.path.join(scratch, "partition", "root.mmtok")
    shutil.rmtree(os.path.dirname(out), ignore_errors=True)
    shutil.copytree(refs.parts, out)
    part0 = os.path.join(out, "partitions", "000000")
    shutil.rmtree(part0)
    if fault.startswith("kill:partition-removed"):
        shutil.copytree(os.path.join(refs.stale, "partitions", "000000"), part0)
    _, detail = faulted(tally, scenario, refs.build(out, 0), fault)
    if detail is None:
        return
    lost = unopenable = False
    if os.path.exists(os.path.join(part0, "manifest.json")):  # finished: the reference partition, or the stale one
        tokens = _verified_tokens(part0)
        unopenable = tokens is None
        stale = "partition-removed" in fault and snapshot(part0) == snapshot(os.path.join(refs.stale, "partitions", "000000"))
        lost = unopenable or not (stale or np.array_equal(tokens, mmtok.open(refs.part0).tokens[:]))
    rerun, message2 = forked(refs.build(out, 0))
    same_parts = rerun == 0 and snapshot(out) == refs.parts_ref
    committed, message3 = forked(refs.commit(out))
    identical = same_parts and committed == 0 and snapshot(out) == refs.committed_ref
    tally.add(scenario, lost=lost, unopenable=unopenable, identical=identical,
              detail=f"{detail}; rerun {rerun} {message2[:200]}; same partitions {same_parts}; commit {committed} "
                     f"{message3[:200]}")


def partition_trials(tally, corpus, scratch: str, quick: bool) -> None:
    refs = Partitioned(corpus, os.path.join(scratch, "partition-refs"))
    for point in QUICK_COMMIT_POINTS if quick else COMMIT_POINTS:
        commit_trial(tally, refs, scratch, f"kill:{point}")
    for point in COMMIT_ENOSPC[:1] if quick else COMMIT_ENOSPC:
        commit_trial(tally, refs, scratch, f"enospc:{point}")
    for point in QUICK_PARTITION_POINTS if quick else PARTITION_POINTS:
        partition_trial(tally, refs, scratch, f"kill:{point}")
