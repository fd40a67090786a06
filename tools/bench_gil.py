"""What the GIL switch interval costs the build: the engine next to a Python thread, and mmtok.build, per interval.

```
python tools/bench_gil.py [--megabytes 100] [--tokenizer llama3-style.json] [--intervals 0.005,0.0005,0.0002,0.0001] [--runs 5]
python tools/bench_gil.py --input rows.csv    # part 2 on another input, e.g. a CSV built line by line
```

An engine call (fastokens, tiktoken, tokenizers) releases the GIL while it
encodes and takes it back to hand over each text and its result. While
another thread runs Python, taking it back waits up to the interpreter's
switch interval (5 ms by default). Part 1 encodes the same ~64 KiB texts on
one thread, alone and next to a thread that only runs Python, per interval;
part 2 builds the same file with ``mmtok.build`` per interval, interleaved in
one process, medians. mmtok leaves the interval alone (a process-wide
setting): part 2 is why (tools/README.md). The text is tools/corpus.py's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import threading
import time

os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from corpus import machine, make_text_file  # noqa: E402


def encode_next_to_python(tok, texts: list[str], interval: float) -> tuple[float, float]:
    """Seconds to encode ``texts`` (16 per call) alone, then next to a thread that only runs Python."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        batches = [texts[i:i + 16] for i in range(0, len(texts), 16)]
        start = time.perf_counter()
        for batch in batches:
            tok.encode_flat(batch)
        alone = time.perf_counter() - start
        stop = threading.Event()

        def spin():
            while not stop.is_set():
                pass

        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            start = time.perf_counter()
            for batch in batches:
                tok.encode_flat(batch)
            beside = time.perf_counter() - start
        finally:
            stop.set()
            spinner.join()
        return alone, beside
    finally:
        sys.setswitchinterval(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json (default: the bundled GPT-2)")
    parser.add_argument("--intervals", default="0.005,0.0005,0.0002,0.0001")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--input", default=None, help="part 2 builds this file instead of the text")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-gil")
    args = parser.parse_args()
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    os.makedirs(args.workdir, exist_ok=True)
    text_path = os.path.join(args.workdir, f"text-{args.megabytes:g}mb.txt")
    size = make_text_file(text_path, args.megabytes)

    import mmtok
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    _ = tok.cut_rules
    intervals = [float(value) for value in args.intervals.split(",")]
    print(f"# {machine()}; {size / 1e6:,.1f} MB, engine {tok.engine}, load {os.getloadavg()[0]:.1f}\n")

    with open(text_path, "rb") as f:
        data = f.read(20 << 20)
    texts = [data[i:i + 65536].decode("utf-8", "ignore") for i in range(0, len(data), 65536)]
    encode_next_to_python(tok, texts, intervals[0])  # warm the engine's caches
    print(f"## The engine on one thread, {len(data) / 1e6:.0f} MB in 64 KiB texts (medians of {args.runs})\n")
    print("| switch interval | alone s | next to a Python thread s | slowdown |")
    print("| ---: | ---: | ---: | ---: |")
    for interval in intervals:
        found = [encode_next_to_python(tok, texts, interval) for _ in range(args.runs)]
        alone, beside = (statistics.median(f[i] for f in found) for i in (0, 1))
        print(f"| {interval * 1000:g} ms | {alone:.3f} | {beside:.3f} | {beside / alone:.2f}x |")
    del texts, data

    store = os.path.join(args.workdir, "gil.mmtok")
    walls: dict[float, list] = {interval: [] for interval in intervals}
    cpus: dict[float, list] = {interval: [] for interval in intervals}
    default = sys.getswitchinterval()
    try:
        for _ in range(args.runs):
            for interval in intervals:
                sys.setswitchinterval(interval)
                shutil.rmtree(store, ignore_errors=True)
                start, cpu = time.perf_counter(), time.process_time()
                mmtok.build(text_path, store, tokenizer=tok)
                walls[interval].append(time.perf_counter() - start)
                cpus[interval].append(time.process_time() - cpu)
    finally:
        sys.setswitchinterval(default)
        shutil.rmtree(store, ignore_errors=True)
    if args.input:
        text_path, size = args.input, os.path.getsize(args.input)
    print(f"\n## mmtok.build of {size / 1e6:,.0f} MB ({os.path.basename(text_path)}) per switch interval during the build "
          f"(interleaved, medians of {args.runs})\n")
    print("| switch interval | MB/s | CPU s | cores busy | vs 5 ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    base = statistics.median(walls[intervals[0]])
    for interval in intervals:
        wall, cpu = statistics.median(walls[interval]), statistics.median(cpus[interval])
        print(f"| {interval * 1000:g} ms | {size / wall / 1e6:,.1f} | {cpu:.2f} | {cpu / wall:.2f} | {base / wall:.2f}x |")


if __name__ == "__main__":
    main()
