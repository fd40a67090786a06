"""Fault injection: kill mmtok (or fill its disk) at every step of its write paths; prove nothing committed is lost.

    python tools/fault_inject.py            # heavy mode: every fault point, several kill counts, random kills
    python tools/fault_inject.py --quick    # what the default test suite runs (tests/test_faults.py)

Each trial forks a process that runs one write (build, append, import, merge,
export, build_partition, commit: tools/fault_commit.py) with a deterministic fault from ``mmtok.base.faults`` (SIGKILL or an
injected ENOSPC at the N-th pass of a named step of the commit protocol), or
kills a ``mmtok`` command at a random moment. Then it checks, against an
uninterrupted reference run:

- data lost: everything committed before the trial is still readable, equal to the reference;
- store unopenable: a store that had a manifest still opens and verifies;
- resume identical: rerunning the same write (same command, no fault) ends byte-identical to the
  reference, with no leftover file (an append is not applied twice).

It prints a table (scenario, trials, data lost, unopenable, resumes identical).
The machine: see tools/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

import mmtok
from mmtok.base import faults
from mmtok.base.errors import MmtokError, StoreError

from snapshots import snapshot  # noqa: I001 - tools/ is on the path

SETTINGS = dict(shard_tokens=4000, chunk_bytes=6000, workers=1)


def forked(job, fault: str | None = None) -> tuple[int, str]:
    """Run ``job()`` in a forked child with the fault plan ``fault``; return (exit code, error text).

    Exit code -9 is the injected SIGKILL, 1 an MmtokError (its one-line message), 3 anything else.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            faults.inject(fault)
            job()
        except MmtokError as exc:
            os.write(write, str(exc).encode()[-4000:])
            code = 1
        except BaseException:  # noqa: BLE001 - reported to the parent as a crash
            os.write(write, traceback.format_exc().encode()[-4000:])
            code = 3
        os._exit(code)
    os.close(write)
    chunks = []
    while data := os.read(read, 65536):
        chunks.append(data)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


class Corpus:
    """Two real inputs (Python's docs: a bulk text, JSON lines) and the reference results of every write."""

    def __init__(self, folder: str, size: int = 60_000):
        from mmtok.inputs.sampletext import python_docs_prose

        from mmtok.tokenize import load_tokenizer

        self.folder = folder
        self.tok = load_tokenizer()  # loaded once: every forked write reuses it
        os.makedirs(folder, exist_ok=True)
        prose = python_docs_prose()
        self.a = os.path.join(folder, "a.txt")
        with open(self.a, "w", encoding="utf-8") as f:
            f.write(prose[:size])
        self.b = os.path.join(folder, "b.jsonl")
        with open(self.b, "w", encoding="utf-8") as f:
            for para in [p for p in prose[size : 2 * size].split("\n\n") if p.strip()]:
                f.write(json.dumps({"text": para}) + "\n")
        ref = os.path.join(folder, "ref")
        os.makedirs(ref)
        self.full = os.path.join(ref, "full.mmtok")     # build [a, b]
        self.base = os.path.join(ref, "base.mmtok")     # build [a]
        self.appended = os.path.join(ref, "appended.mmtok")  # build [a], then append [b]
        self.cache = os.path.join(ref, "cache.gz")
        self.merged = os.path.join(ref, "merged.mmtok")
        for job in (self.build_full(self.full), self.build_base(self.base), self.build_base(self.appended),
                    self.append(self.appended), self.export(self.cache), self.merge(self.merged)):
            code, message = forked(job)
            if code:
                raise SystemExit(f"reference run failed: {message}")
        self.tokens = {path: mmtok.open(path).tokens[:] for path in (self.full, self.base, self.appended)}

    def build_full(self, out):
        return lambda: mmtok.build([self.a, self.b], out, tokenizer=self.tok, **SETTINGS)

    def build_base(self, out):
        return lambda: mmtok.build([self.a], out, tokenizer=self.tok, **SETTINGS)

    def append(self, out):
        return lambda: mmtok.build([self.b], out, append=True, tokenizer=self.tok, on_note=lambda text: None, **SETTINGS)

    def export(self, out):
        from mmtok.cache import export_store

        return lambda: export_store(self.full, out)

    def import_(self, out):
        from mmtok.cache import import_cache

        return lambda: import_cache(self.cache, out, tokenizer=self.tok)

    def merge(self, out):
        def job():
            from mmtok import TokenDataset, merge_datasets
            from mmtok.views.materialize import materialize

            view = merge_datasets([TokenDataset.open(self.full, block_size=64),
                                   TokenDataset.open(self.base, block_size=64)], seed=1)
            materialize(view, out, shard_tokens=3000, batch_tokens=2000)
        return job


class Tally:
    def __init__(self):
        self.rows: dict[str, list[int]] = {}
        self.failures: list[str] = []

    def add(self, scenario: str, *, lost: bool, unopenable: bool, identical: bool, detail: str) -> None:
        row = self.rows.setdefault(scenario, [0, 0, 0, 0])
        row[0] += 1
        row[1] += lost
        row[2] += unopenable
        row[3] += identical
        if lost or unopenable or not identical:
            self.failures.append(f"{scenario}: {detail} (lost={lost}, unopenable={unopenable}, identical={identical})")

    def miss(self, scenario: str, detail: str) -> None:
        """A planned fault that did not happen (its point was not reached): a harness failure, not a trial."""
        self.failures.append(f"{scenario}: fault missed: {detail}")

    def table(self) -> str:
        lines = ["| scenario | trials | data lost | stores unopenable | resumes byte-identical |",
                 "| --- | --- | --- | --- | --- |"]
        for name, (trials, lost, unopenable, identical) in self.rows.items():
            lines.append(f"| {name} | {trials} | {lost} | {unopenable} | {identical}/{trials} |")
        return "\n".join(lines)


def _state_of_store(path: str, committed: list[np.ndarray]) -> tuple[bool, bool]:
    """(data lost, unopenable) of a store whose committed contents may be any of ``committed`` (a prefix chain)."""
    if not os.path.exists(os.path.join(path, "manifest.json")):
        return (bool(committed) and committed[0] is not None), False
    try:
        mmtok.store.verify_store(path)
        tokens = mmtok.open(path).tokens[:]
    except StoreError:
        return True, True
    return not any(c is not None and np.array_equal(tokens, c) for c in committed), False


def _fault_missed(fault: str, code: int, message: str) -> bool:
    """True when the fault did not happen as planned (its point was never reached, or the error was not one line)."""
    if fault.startswith("kill:"):
        return code != -signal.SIGKILL
    return code != 1 or "\n" in message.strip() or "No space left" not in message


def store_trial(tally, corpus, scenario, workdir, fault, *, prepare, job, reference, committed, expect_error=None):
    """One fault in a store write (build or append), then the same write again without fault."""
    out = os.path.join(workdir, "store.mmtok")
    shutil.rmtree(out, ignore_errors=True)
    prepare(out)
    code, message = forked(job(out), fault)
    detail = f"{fault}: exit {code} {message.strip()[:300]}"
    if code == 0:
        tally.miss(scenario, detail)
        return code
    if code == 3 or _fault_missed(fault, code, message) or (expect_error and expect_error not in message):
        tally.add(scenario, lost=True, unopenable=False, identical=False, detail="crashed: " + detail)
        return code
    lost, unopenable = _state_of_store(out, committed)
    rerun, message2 = forked(job(out))
    identical = rerun == 0 and snapshot(out) == reference
    tally.add(scenario, lost=lost, unopenable=unopenable, identical=identical, detail=f"{detail}; rerun {rerun} {message2[:200]}")
    return code


def faulted(tally, scenario: str, job, fault: str) -> tuple[int, str | None]:
    """Run ``job`` with ``fault``: its exit code and the trial's detail line, or None for the detail when
    the outcome is already tallied (the fault never fired, or the process crashed instead of failing cleanly)."""
    code, message = forked(job, fault)
    detail = f"{fault}: exit {code} {message.strip()[:300]}"
    if code == 0:
        tally.miss(scenario, detail)
        return code, None
    if code == 3 or _fault_missed(fault, code, message):
        tally.add(scenario, lost=True, unopenable=False, identical=False, detail="crashed: " + detail)
        return code, None
    return code, detail


def target_trial(tally, scenario, workdir, fault, *, job, reference, name):
    """One fault in a write that renames a finished result into place (import, merge, export)."""
    out = os.path.join(workdir, name)
    parent = os.path.dirname(out)
    shutil.rmtree(parent, ignore_errors=True)
    os.makedirs(parent)
    code, detail = faulted(tally, scenario, job(out), fault)
    if detail is None:
        return code
    unopenable = False
    if os.path.exists(out):  # it appears whole or not at all
        unopenable = snapshot(out) != reference
    else:
        code2, message2 = forked(job(out))
        detail += f"; rerun {code2} {message2[:200]}"
    leftovers = [n for n in os.listdir(parent) if n != os.path.basename(out)]
    identical = os.path.exists(out) and snapshot(out) == reference and not leftovers
    tally.add(scenario, lost=False, unopenable=unopenable, identical=identical, detail=f"{detail}; leftovers {leftovers}")
    return code


# Passed once per shard (heavy mode: at the 1st, 2nd and 3rd pass) or once per write.
REPEATED_POINTS = ["chunk-written", "shard-synced", "shard-renamed", "journal-written", "journal-replaced", "journal-synced"]
ONCE_POINTS = ["tokenizer-written", "tokenizer-replaced", "tokenizer-synced", "manifest-written", "manifest-replaced",
               "manifest-synced", "journal-removed"]
STORE_POINTS = REPEATED_POINTS + ONCE_POINTS
QUICK_STORE_POINTS = ["chunk-written:3", "journal-replaced", "manifest-written", "manifest-replaced", "journal-removed"]
ENOSPC_POINTS = ["chunk-written", "chunk-written:5", "shard-synced:2", "journal-written", "tokenizer-written",
                 "manifest-written"]


def _counts(points: list[str], counts: list[int]) -> list[str]:
    """Each point at its N-th pass for every N in ``counts`` (points already carrying :N kept as they are)."""
    out = []
    for point in points:
        out += [point] if ":" in point else [f"{point}:{n}" for n in counts]
    return out


def run(quick: bool, random_kills: int, readers: bool, workdir: str | None = None, tmpfs: bool = False) -> Tally:
    tally = Tally()
    workdir = workdir or tempfile.mkdtemp(prefix="mmtok-faults-")
    corpus = Corpus(os.path.join(workdir, "corpus"), size=30_000 if quick else 60_000)
    scratch = os.path.join(workdir, "scratch")
    full_ref, appended_ref = snapshot(corpus.full), snapshot(corpus.appended)
    base_tokens, full_tokens = corpus.tokens[corpus.base], corpus.tokens[corpus.full]
    points = QUICK_STORE_POINTS if quick else _counts(REPEATED_POINTS, [1, 2, 3]) + ["chunk-written:7"] + ONCE_POINTS

    def fresh(out):
        pass

    def from_base(out):
        shutil.copytree(corpus.base, out)

    for point in points:
        store_trial(tally, corpus, "SIGKILL build, at commit step", scratch, f"kill:{point}", prepare=fresh,
                    job=corpus.build_full, reference=full_ref, committed=[None, full_tokens])
        if not point.startswith("tokenizer"):  # an append writes no tokenizer.json
            store_trial(tally, corpus, "SIGKILL append, at commit step", scratch, f"kill:{point}", prepare=from_base,
                        job=corpus.append, reference=appended_ref, committed=[base_tokens, corpus.tokens[corpus.appended]])
    for point in ENOSPC_POINTS if not quick else ENOSPC_POINTS[1:3]:
        store_trial(tally, corpus, "full disk (ENOSPC) in build", scratch, f"enospc:{point}", prepare=fresh,
                    job=corpus.build_full, reference=full_ref, committed=[None, full_tokens], expect_error="disk is full")
        if not point.startswith("tokenizer"):
            store_trial(tally, corpus, "full disk (ENOSPC) in append", scratch, f"enospc:{point}", prepare=from_base,
                        job=corpus.append, reference=appended_ref, committed=[base_tokens, corpus.tokens[corpus.appended]],
                        expect_error="disk is full")
    imports = ["import-section:1", "import-section:3", "import-renamed"] if not quick else ["import-section:2", "import-renamed"]
    for point in imports:
        target_trial(tally, "SIGKILL import", scratch, f"kill:{point}", job=corpus.import_,
                     reference=snapshot(corpus.full), name="dest/imported.mmtok")
    merges = ["merge-batch:1", "merge-batch:4", "merge-batch:7", "merge-renamed"] if not quick else ["merge-batch:5", "merge-renamed"]
    for point in merges:
        target_trial(tally, "SIGKILL merge", scratch, f"kill:{point}", job=corpus.merge,
                     reference=snapshot(corpus.merged), name="dest/merged.mmtok")
    for point in ["export-written", "export-renamed"]:
        target_trial(tally, "SIGKILL export", scratch, f"kill:{point}", job=corpus.export,
                     reference=snapshot(corpus.cache), name="dest/cache.gz")
    target_trial(tally, "full disk (ENOSPC) in export", scratch, "enospc:export-written",
                 job=corpus.export, reference=snapshot(corpus.cache), name="dest/cache.gz")
    from fault_commit import partition_trials  # noqa: PLC0415 - it imports this module

    partition_trials(tally, corpus, scratch, quick)
    if random_kills:
        random_kill_trials(tally, corpus, scratch, random_kills)
    if readers:
        readers_during_appends(tally, corpus, scratch)
    if tmpfs:
        tmpfs_trials(tally, corpus, scratch)
    return tally


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "mmtok", *args]


def random_kill_trials(tally, corpus, scratch, trials: int, seed: int = 0) -> None:
    """SIGKILL of the `mmtok` command at a random moment (the time a real OOM killer picks), then the same command."""
    rng = random.Random(seed)
    opts = ["--shard-tokens", "4000", "--chunk-bytes", "6000", "--workers", "2", "-q"]
    commands = {
        "build": (lambda out: _cli("build", corpus.a, corpus.b, "-o", out, *opts), None, snapshot(corpus.full)),
        "append": (lambda out: _cli("build", corpus.b, "-o", out, "--append", *opts), corpus.base, snapshot(corpus.appended)),
        "import": (lambda out: _cli("import", corpus.cache, "-o", out, "-q"), None, snapshot(corpus.full)),
    }
    # How long each command takes, to spread kills across its whole run, commit and exit included.
    for name, (command, base, reference) in commands.items():
        out = os.path.join(scratch, "timing", "x.mmtok")
        shutil.rmtree(os.path.dirname(out), ignore_errors=True)
        os.makedirs(os.path.dirname(out))
        if base:
            shutil.copytree(base, out)
        started = time.monotonic()
        subprocess.run(command(out), check=True, capture_output=True)
        took = time.monotonic() - started
        for _ in range(trials):
            folder = os.path.join(scratch, "random")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            out = os.path.join(folder, "x.mmtok")
            if base:
                shutil.copytree(base, out)
            proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            delay = rng.uniform(0.2, took * 1.05)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            committed = [None if not base else corpus.tokens[corpus.base], corpus.tokens[corpus.full if name != "append" else corpus.appended]]
            lost, unopenable = _state_of_store(out, committed) if name != "import" else (False, False)
            if name == "import" and os.path.exists(out):
                unopenable = snapshot(out) != reference
            done = subprocess.run(command(out), capture_output=True, text=True)
            ok = done.returncode == 0 or (name == "import" and "already exists" in done.stderr)
            leftovers = [n for n in os.listdir(folder) if n != "x.mmtok"]
            identical = ok and snapshot(out) == reference and not leftovers
            tally.add(f"SIGKILL `mmtok {name}` at a random moment", lost=lost, unopenable=unopenable, identical=identical,
                      detail=f"after {delay:.2f}s of {took:.2f}s; rerun {done.returncode} {done.stderr[-300:]} {leftovers}")


READER = r'''
import sys, numpy as np, mmtok
path, expected_path, seconds, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
import time
expected = np.load(expected_path)
ends = np.load(expected_path.replace(".npy", ".ends.npy"))
rng = np.random.default_rng(seed)
reads = wrong = reopen = 0
seen = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    store = mmtok.open(path)
    reopen += 1
    if store.num_documents < seen:
        wrong += 1
    seen = store.num_documents
    for _ in range(200):
        i = int(rng.integers(store.num_documents))
        start = 0 if i == 0 else ends[i - 1]
        if not np.array_equal(store.documents[i], expected[start:ends[i]]):
            wrong += 1
        reads += 1
print(reads, wrong, reopen, seen)
'''


def readers_during_appends(tally, corpus, scratch, appends: int = 8, readers: int = 3, seconds: float = 6) -> None:
    """Several processes read random documents while appends (some killed) commit; every read must be committed data."""
    folder = os.path.join(scratch, "readers")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    parts = []
    with open(corpus.b, encoding="utf-8") as f:
        lines = f.readlines()
    step = max(1, len(lines) // appends)
    for k in range(appends):
        part = os.path.join(folder, f"part{k}.jsonl")
        with open(part, "w", encoding="utf-8") as f:
            f.writelines(lines[k * step : (k + 1) * step] or lines[:1])
        parts.append(part)
    out = os.path.join(folder, "store.mmtok")
    reference = os.path.join(folder, "reference.mmtok")
    forked(lambda: mmtok.build([corpus.a], reference, **SETTINGS))
    for part in parts:
        forked(lambda part=part: mmtok.build([part], reference, append=True, **SETTINGS))
    ref = mmtok.open(reference)
    expected = os.path.join(folder, "expected.npy")
    np.save(expected, ref.tokens[:])
    np.save(expected.replace(".npy", ".ends.npy"), np.cumsum(ref.documents.lengths()))
    forked(lambda: mmtok.build([corpus.a], out, **SETTINGS))
    procs = [subprocess.Popen([sys.executable, "-c", READER, out, expected, str(seconds), str(i)], stdout=subprocess.PIPE,
                              text=True)
             for i in range(readers)]
    for k, part in enumerate(parts):
        if k % 3 == 1:  # every third append is killed once, somewhere in its commit, then rerun
            forked(lambda part=part: mmtok.build([part], out, append=True, **SETTINGS), f"kill:{STORE_POINTS[k % len(STORE_POINTS)]}")
        forked(lambda part=part: mmtok.build([part], out, append=True, on_note=lambda t: None, **SETTINGS))
    results = [p.communicate()[0].split() for p in procs]
    wrong = sum(int(r[1]) for r in results)
    reads = sum(int(r[0]) for r in results)
    identical = snapshot(out) == snapshot(reference)
    tally.add(f"{readers} readers during {appends} appends ({reads:,} reads)", lost=wrong > 0 or reads == 0, unopenable=False,
              identical=identical, detail=f"{wrong} wrong reads of {reads}")


def tmpfs_trials(tally, corpus, scratch, fills=(0, 20_000, 60_000)) -> bool:  # fill: extra room, so it fails later
    """A real full disk: build and append on a small tmpfs (root only), then free space and rerun.

    Returns False when no tmpfs can be mounted here (not root, or no permission).
    """
    mount = os.path.join(scratch, "tmpfs")
    os.makedirs(mount, exist_ok=True)
    tokenizer_bytes = os.path.getsize(os.path.join(corpus.full, "tokenizer.json"))
    opts = ["--shard-tokens", "4000", "--chunk-bytes", "6000", "--workers", "1", "-q"]
    for command, base, reference in (
        (lambda out: _cli("build", corpus.a, corpus.b, "-o", out, *opts), None, snapshot(corpus.full)),
        (lambda out: _cli("build", corpus.b, "-o", out, "--append", *opts), corpus.base, snapshot(corpus.appended)),
    ):
        for fill in fills:
            used = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(base) for f in fs) if base else tokenizer_bytes
            size = used + 24 * 1024 + fill  # too small for the whole result: the write stops on ENOSPC
            if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mount], capture_output=True).returncode:
                return False
            try:
                out = os.path.join(mount, "x.mmtok")
                if base:
                    shutil.copytree(base, out)
                committed = [corpus.tokens[corpus.base] if base else None]
                full = subprocess.run(command(out), capture_output=True, text=True)
                message = full.stderr.strip()
                lost, unopenable = _state_of_store(out, committed + [corpus.tokens[corpus.full if not base else corpus.appended]])
                one_line = full.returncode == 1 and "\n" not in message and "disk is full" in message
                subprocess.run(["mount", "-o", f"remount,size={size + 4 * 1024 * 1024}", mount], check=True)  # space freed
                again = subprocess.run(command(out), capture_output=True, text=True)
                identical = again.returncode == 0 and snapshot(out) == reference
                tally.add("full disk (real tmpfs), then space freed", lost=lost, unopenable=unopenable,
                          identical=identical and one_line,
                          detail=f"{'append' if base else 'build'} fill {fill}: exit {full.returncode} {message[:300]}; "
                                 f"rerun {again.returncode} {again.stderr[-300:]}")
            finally:
                _umount(mount)
    # export to a disk with (almost) no room: one line, no temporary file left
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mount], capture_output=True).returncode:
        return False
    try:
        done = subprocess.run(_cli("export", corpus.full, "-o", os.path.join(mount, "c.gz"), "-q"), capture_output=True, text=True)
        message = done.stderr.strip()
        clean = os.listdir(mount) == []
        tally.add("full disk (real tmpfs) in export", lost=False, unopenable=False,
                  identical=done.returncode == 1 and "\n" not in message and "No space left" in message and clean,
                  detail=f"exit {done.returncode} {message[:300]}; left {os.listdir(mount)}")
    finally:
        _umount(mount)
    return True


def _umount(mount: str) -> None:
    gc.collect()  # the checks' stores map files of the mount: unmap them first
    if subprocess.run(["umount", mount], capture_output=True).returncode:
        subprocess.run(["umount", "-l", mount], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the default suite's subset")
    parser.add_argument("--random", type=int, default=6, help="random-moment kills per command (heavy mode)")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmtok-faults-") as workdir:
        tally = run(args.quick, 0 if args.quick else args.random, readers=not args.quick, tmpfs=not args.quick,
                    workdir=workdir)
    print(tally.table())
    print(f"\n{sum(r[0] for r in tally.rows.values())} trials in {time.monotonic() - started:.0f} s")
    for failure in tally.failures:
        print("FAILED", failure)
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
