"""Read speed: TokenDataset samples against a plain np.memmap of the same tokens, same run; and cold open time.

    python tools/bench_read.py [--megabytes 100] [--repeats 7] [--reads 20000] [--batches 2000]
                               [--open-repeats 5] [--workdir /tmp/mmtok-bench-read]

Builds once (cached in --workdir) stores of at least --megabytes of uint16
tokens from real text (Python docs + stdlib sources, tools/corpus.py): a bulk
store with mmtok's default shard size (one shard at 100 MB), the same text with
4 Mi-token shards (so batches straddle many shards), and the same text read line
by line (one document per non-empty line). The peer is a plain np.memmap of a
flat uint16 .npy holding exactly the same token stream (checked), with the
document offsets in RAM. Block size 1024, output int64 (what PyTorch wants):

- random window:  ds[i]                 vs  mm[s : s + 1024].astype(np.int64)
- batch of 64:    ds[indices]           vs  mm[starts[:, None] + np.arange(1024)].astype(np.int64)
- document:       ds[i] (line by line)  vs  mm[start : min(end, start + 1024)].astype(np.int64)
- 64 documents:   ds[indices], padded with eos to the longest row  vs  the same with a Python loop
                  of memmap slices into np.full((64, longest), eos, np.int64)

Each repetition draws new random indices, shared by mmtok and the peer, and
times them back to back (interleaved, so load changes hit both); the table
prints medians over --repeats repetitions. Reads come from the page cache
(the stores fit in RAM): this measures the per-read overhead over memory speed.

--profile adds a cProfile of one repetition of each mmtok case (where its time goes).

Cold open: in a fresh process, after dropping the page cache (`sync; echo 1 >
/proc/sys/vm/drop_caches`, root only; without it the figures are warm and say
so), time mmtok.open / TokenDataset.open / np.load(mmap_mode="r") and the first
read after it. Imports are not timed (see tools/bench_startup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from corpus import machine, make_text_file  # noqa: E402

import mmtok  # noqa: E402
from mmtok import TokenDataset  # noqa: E402

BLOCK = 1024
BATCH = 64
SMALL_SHARDS = 1 << 22
TEXT_PER_TOKEN_BYTE = 1.25  # this corpus: ~2.3 bytes of text per token, 2 bytes per uint16 token


def ensure_store(text: str, path: str, **options) -> mmtok.Store:
    """The store built from ``text`` with ``options``; mmtok.build returns an earlier run's store untouched."""
    if not os.path.exists(os.path.join(path, "manifest.json")):
        print(f"building {os.path.basename(path)} (once; kept in the work folder) ...", file=sys.stderr, flush=True)
    return mmtok.build(text, path, **options)


def ensure_flat(store: mmtok.Store, path: str) -> np.memmap:
    """A flat uint16 .npy of the store's whole token stream, np.load-ed with mmap_mode="r"."""
    if not (os.path.exists(path) and np.load(path, mmap_mode="r").shape == (store.num_tokens,)):
        tmp = path + ".tmp.npy"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=store.dtype, shape=(store.num_tokens,))
        step = 1 << 24
        for start in range(0, store.num_tokens, step):
            out[start : start + step] = store.tokens[start : min(start + step, store.num_tokens)]
        out.flush()
        del out
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def document_ends(store: mmtok.Store) -> np.ndarray:
    return np.concatenate([np.asarray(store.shard_docs(i)) for i in range(len(store.shards))]).astype(np.int64)


# --- the timed loops: each returns the number of samples it read --------------------------------------------

def windows_mmtok(ds, picks):
    for i in picks:
        ds[i]
    return len(picks)


def windows_peer(mm, picks):
    for i in picks:
        s = i * BLOCK
        mm[s : s + BLOCK].astype(np.int64)
    return len(picks)


def batches_mmtok(ds, batches):
    for indices in batches:
        ds[indices]
    return len(batches) * BATCH


def batches_peer(mm, batches):
    columns = np.arange(BLOCK)
    for indices in batches:
        mm[(indices * BLOCK)[:, None] + columns].astype(np.int64)
    return len(batches) * BATCH


def documents_peer(peer, picks):
    mm, starts, ends = peer
    for i in picks:
        s = int(starts[i])
        mm[s : min(int(ends[i]), s + BLOCK)].astype(np.int64)
    return len(picks)


def document_batch(peer, indices) -> np.ndarray:
    mm, starts, ends, eos = peer
    first = starts[indices]
    lengths = np.minimum(ends[indices], first + BLOCK) - first
    out = np.full((len(indices), int(lengths.max())), eos, dtype=np.int64)
    for row, (s, n) in enumerate(zip(first.tolist(), lengths.tolist())):
        out[row, :n] = mm[s : s + n]
    return out


def document_batches_peer(peer, batches):
    for indices in batches:
        document_batch(peer, indices)
    return len(batches) * BATCH


# --- cold open -------------------------------------------------------------------------------------------------

OPEN_CHILD = r"""
import json, sys, time
import numpy as np
import mmtok
from mmtok import TokenDataset
kind, path, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
if kind == "mmtok.open":
    store = mmtok.open(path)
    t1 = time.perf_counter()
    x = store.tokens[i * 1024 : i * 1024 + 1024].astype(np.int64)
elif kind == "TokenDataset.open":
    ds = TokenDataset.open(path, block_size=1024)
    t1 = time.perf_counter()
    x = ds[i]
else:
    mm = np.load(path, mmap_mode="r")
    t1 = time.perf_counter()
    x = mm[i * 1024 : i * 1024 + 1024].astype(np.int64)
t2 = time.perf_counter()
print(json.dumps({"open": t1 - t0, "first": t2 - t0, "sum": int(x.sum())}))
"""


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def cold_open(candidates, repeats: int, count: int, rng) -> tuple[dict, bool]:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    timings = {(label, cold): [] for label, *_ in candidates for cold in (True, False)}
    dropped = True
    sums = set()
    for _ in range(repeats):
        i = int(rng.integers(count))
        for cold in (True, False):
            for label, kind, path in candidates:
                if cold:
                    dropped = drop_caches() and dropped
                done = subprocess.run([sys.executable, "-c", OPEN_CHILD, kind, path, str(i)], env=env,
                                      capture_output=True, text=True, check=True)
                row = json.loads(done.stdout)
                sums.add((i, row["sum"]))
                timings[(label, cold)].append(row)
    if len(sums) != len({i for i, _ in sums}):
        raise AssertionError("cold open: the candidates read different tokens")
    return timings, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100, help="MB of uint16 tokens in the store (default 100)")
    parser.add_argument("--repeats", type=int, default=7, help="repetitions; medians are printed (default 7)")
    parser.add_argument("--reads", type=int, default=20000, help="single reads per repetition (default 20000)")
    parser.add_argument("--batches", type=int, default=2000, help="batches of 64 per repetition (default 2000)")
    parser.add_argument("--open-repeats", type=int, default=5, help="fresh processes per cold-open candidate (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of each mmtok case")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-read")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    work = lambda name: os.path.join(args.workdir, name)  # noqa: E731
    started = time.perf_counter()

    print(f"machine: {machine()}")
    print(f"libraries: numpy {np.__version__}, mmtok {mmtok.__version__}")
    text_mb = args.megabytes * TEXT_PER_TOKEN_BYTE
    while True:
        text = work(f"text-{text_mb:g}MB.txt")
        make_text_file(text, text_mb)
        bulk = ensure_store(text, work(f"bulk-{text_mb:g}MB.mmtok"))
        if bulk.num_tokens * bulk.dtype.itemsize >= args.megabytes * 1e6:
            break
        text_mb *= 1.2 * args.megabytes * 1e6 / (bulk.num_tokens * bulk.dtype.itemsize)
        text_mb = float(f"{text_mb:.0f}")
    sharded = ensure_store(text, work(f"bulk-{text_mb:g}MB-4Mi.mmtok"), shard_tokens=SMALL_SHARDS)
    lines = ensure_store(text, work(f"lines-{text_mb:g}MB.mmtok"), line_by_line=True)
    flat = ensure_flat(bulk, work(f"flat-{text_mb:g}MB.npy"))
    flat_lines = ensure_flat(lines, work(f"flat-lines-{text_mb:g}MB.npy"))
    ends = document_ends(lines)
    starts = np.concatenate([[0], ends[:-1]])

    ds = TokenDataset.open(bulk.path, block_size=BLOCK)
    ds_sharded = TokenDataset.open(sharded.path, block_size=BLOCK)
    ds_lines = TokenDataset.open(lines.path, block_size=BLOCK)
    assert ds.line_by_line is False and ds_lines.line_by_line is True and len(ds) == len(ds_sharded)
    print(f"stores: {bulk.num_tokens:,} tokens ({bulk.num_tokens * bulk.dtype.itemsize / 1e6:.1f} MB as "
          f"{bulk.dtype.name}) from {os.path.getsize(text) / 1e6:.0f} MB of text; bulk: {len(ds):,} windows of "
          f"{BLOCK}, in {len(bulk.shards)} shard(s) (default size) and in {len(sharded.shards)} shards "
          f"({SMALL_SHARDS:,} tokens each); line by line: {len(ds_lines):,} documents, {lines.num_tokens:,} tokens, "
          f"{len(lines.shards)} shard(s)")

    rng = np.random.default_rng(args.seed)
    # The peer reads the same tokens: check a few samples of each kind before timing anything.
    for i in rng.integers(len(ds), size=50).tolist():
        want = flat[i * BLOCK : i * BLOCK + BLOCK].astype(np.int64)
        assert np.array_equal(ds[i], want) and np.array_equal(ds_sharded[i], want) and ds[i].dtype == np.int64
    picks = rng.integers(len(ds), size=BATCH)
    want = flat[(picks * BLOCK)[:, None] + np.arange(BLOCK)].astype(np.int64)
    assert np.array_equal(ds[picks], want) and np.array_equal(ds_sharded[picks], want)
    for i in rng.integers(len(ds_lines), size=50).tolist():
        s = int(starts[i])
        assert np.array_equal(ds_lines[i], flat_lines[s : min(int(ends[i]), s + BLOCK)].astype(np.int64))
    picks = rng.integers(len(ds_lines), size=BATCH)
    assert np.array_equal(ds_lines[picks], document_batch((flat_lines, starts, ends, lines.eos_id), picks))

    peer_docs = (flat_lines, starts, ends)
    peer_doc_batches = (flat_lines, starts, ends, lines.eos_id)
    # (label, unit, candidates: [(name, function, data)], kind of indices, target)
    cases = [
        ("random window ds[i], 1 shard", "windows", "single", len(ds),
         [("mmtok", windows_mmtok, ds), ("np.memmap", windows_peer, flat)], 0.5),
        (f"random window ds[i], {len(sharded.shards)} shards", "windows", "single", len(ds),
         [("mmtok", windows_mmtok, ds_sharded), ("np.memmap", windows_peer, flat)], 0.5),
        ("batch of 64 windows ds[idx], 1 shard", "windows", "batch", len(ds),
         [("mmtok", batches_mmtok, ds), ("np.memmap", batches_peer, flat)], 0.8),
        (f"batch of 64 windows ds[idx], {len(sharded.shards)} shards", "windows", "batch", len(ds),
         [("mmtok", batches_mmtok, ds_sharded), ("np.memmap", batches_peer, flat)], 0.8),
        ("document ds[i], line by line", "docs", "single", len(ds_lines),
         [("mmtok", windows_mmtok, ds_lines), ("np.memmap", documents_peer, peer_docs)], None),
        ("batch of 64 documents ds[idx], padded", "docs", "batch", len(ds_lines),
         [("mmtok", batches_mmtok, ds_lines), ("np.memmap", document_batches_peer, peer_doc_batches)], None),
    ]
    # Warm the page cache and every lazy map once.
    for _, _, kind, count, candidates, _ in cases:
        for _, function, data in candidates:
            function(data, rng.integers(count, size=(200, BATCH)) if kind == "batch" else rng.integers(count, size=2000).tolist())
    rates = {(case[0], name): [] for case in cases for name, *_ in case[4]}
    for repetition in range(args.repeats):
        for label, _, kind, count, candidates, _ in cases:
            if kind == "batch":
                indices = list(rng.integers(count, size=(args.batches, BATCH)))
            else:
                indices = rng.integers(count, size=args.reads).tolist()
            for name, function, data in candidates[:: 1 if repetition % 2 == 0 else -1]:  # who goes first alternates
                begin = time.perf_counter()
                n = function(data, indices)
                rates[(label, name)].append(n / (time.perf_counter() - begin))

    print(f"random reads from the page cache; {args.repeats} repetitions of {args.reads:,} single reads or "
          f"{args.batches:,} batches of {BATCH}, mmtok and peer interleaved; medians\n")
    print(f"{'access (block 1024, int64 out)':44s} {'mmtok':>10s} {'np.memmap':>10s} {'unit':>12s} "
          f"{'ratio':>6s} {'spread':>7s}  target")
    for label, unit, kind, _, candidates, target in cases:
        mine = statistics.median(rates[(label, "mmtok")])
        peer = statistics.median(rates[(label, candidates[1][0])])
        ratios = [a / b for a, b in zip(rates[(label, "mmtok")], rates[(label, candidates[1][0])])]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        per = f"{unit}/s"
        if kind == "batch":
            mine, peer, per = mine / BATCH, peer / BATCH, "batches/s"
        verdict = "" if target is None else f">= {target:g} {'PASS' if mine / peer >= target else 'FAIL'}"
        print(f"{label:44s} {mine:10,.0f} {peer:10,.0f} {per:>12s} {mine / peer:6.2f} {spread:>7s}  {verdict}")
    print("ratio = median mmtok rate / median peer rate; spread = range of the per-repetition ratios")

    if args.profile:
        import cProfile
        import io
        import pstats

        for label, _, kind, count, candidates, _ in cases:
            _, function, data = candidates[0]
            indices = (list(rng.integers(count, size=(args.batches, BATCH))) if kind == "batch"
                       else rng.integers(count, size=args.reads).tolist())
            profile = cProfile.Profile()
            profile.runcall(function, data, indices)
            buffer = io.StringIO()
            pstats.Stats(profile, stream=buffer).sort_stats("tottime").print_stats(8)
            text = buffer.getvalue()
            text = text[text.find("ncalls"):].replace(REPO + os.sep, "")
            print(f"\nprofile of mmtok, {label} (one repetition, cProfile by own time):")
            print("\n".join("  " + line for line in text.rstrip().splitlines()))

    candidates = [("mmtok.open(store)", "mmtok.open", bulk.path),
                  ("TokenDataset.open(store)", "TokenDataset.open", bulk.path),
                  ('np.load(flat, mmap_mode="r")', "np.load", flat.filename)]
    timings, dropped = cold_open(candidates, args.open_repeats, len(ds), rng)
    how = "page cache dropped before each" if dropped else "page cache NOT dropped (needs root): cold = warm"
    print(f"\nopen time in a fresh process, median of {args.open_repeats}, ms ({how}; imports not timed):")
    print(f"{'':30s} {'cold open':>10s} {'+ 1st read':>11s} {'warm open':>10s} {'+ 1st read':>11s}")
    for label, *_ in candidates:
        cold, warm = timings[(label, True)], timings[(label, False)]
        print(f"{label:30s} {statistics.median(r['open'] for r in cold) * 1e3:10.2f} "
              f"{statistics.median(r['first'] for r in cold) * 1e3:11.2f} "
              f"{statistics.median(r['open'] for r in warm) * 1e3:10.2f} "
              f"{statistics.median(r['first'] for r in warm) * 1e3:11.2f}")
    print(f"\ntotal time of this benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
