"""The build's pipeline: this tree against an earlier checkout, and where a build's wall time goes.

```
python tools/bench_pipeline.py --before /path/to/old/checkout [--megabytes 200] [--tokenizer llama3-style.json] [--runs 5]
python tools/bench_pipeline.py --timeline [--megabytes 200] [--tokenizer ...] [--runs 3]
python tools/bench_pipeline.py --before DIR --input rows.jsonl   # another input, e.g. rows built line by line
```

``--before``: ``mmtok.build`` of the same text in fresh processes, the old
checkout (on ``PYTHONPATH``) and this tree alternated, medians of wall and
CPU seconds (tokenizer load excluded). ``--timeline``: in one process, the
time the encoding threads spend in ``encode_chunk`` (decode, engine, eos and
cast), the main thread's writes and shard closes (fsync), and the tail after
the last chunk is encoded (the last shard's checksums, the manifest).
The text is tools/corpus.py's.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from corpus import machine, make_text_file  # noqa: E402

_ONE_BUILD = """
import json, os, shutil, sys, time
os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
import mmtok
from mmtok.tokenize.tokenizer import load_tokenizer
text, store, tokenizer = sys.argv[1:4]
tok = load_tokenizer(tokenizer) if tokenizer else load_tokenizer()
_ = tok.cut_rules
shutil.rmtree(store, ignore_errors=True)
start, cpu = time.perf_counter(), time.process_time()
mmtok.build(text, store, tokenizer=tok)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "from": mmtok.__file__}))
"""


def before_after(args, text: str, size: int) -> None:
    trees = {"before": os.path.abspath(args.before), "this tree": os.path.dirname(HERE)}
    found: dict[str, list] = {label: [] for label in trees}
    store = os.path.join(args.workdir, "pipeline.mmtok")
    for _ in range(args.runs):
        for label, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run([sys.executable, "-c", _ONE_BUILD, text, store, args.tokenizer or ""],
                                 env=env, cwd=args.workdir, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if not result["from"].startswith(tree):
                raise SystemExit(f"{label}: imported mmtok from {result['from']}, not from {tree}")
            found[label].append(result)
    shutil.rmtree(store, ignore_errors=True)
    print(f"## mmtok.build of {os.path.basename(text)}, {size / 1e6:,.1f} MB, fresh processes alternated "
          f"(medians of {args.runs})\n")
    print("| tree | MB/s | wall s | CPU s | cores busy | vs before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = statistics.median(r["seconds"] for r in found["before"])
    for label, rows in found.items():
        wall, cpu = statistics.median(r["seconds"] for r in rows), statistics.median(r["cpu"] for r in rows)
        print(f"| {label} ({trees[label]}) | {size / wall / 1e6:,.1f} | {wall:.3f} | {cpu:.3f} | {cpu / wall:.2f} | "
              f"{base / wall:.2f}x |")


def timeline(args, text: str, size: int) -> None:
    import mmtok
    import mmtok.store.buildrun as buildrun
    import mmtok.store.writer as writer
    from mmtok.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer) if args.tokenizer else load_tokenizer()
    _ = tok.cut_rules
    spans: list = []

    def timed(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spans.append((label, threading.current_thread().name, start, time.perf_counter()))
        setattr(owner, name, wrapper)
        return original

    originals = [(buildrun, "encode_chunk", timed(buildrun, "encode_chunk", "encode_chunk (decode, engine, cast)")),
                 (writer.ShardSink, "write", timed(writer.ShardSink, "write", "main: write tokens")),
                 (writer.ShardSink, "_finish_shard", timed(writer.ShardSink, "_finish_shard", "main: close a shard (fsync)"))]
    store = os.path.join(args.workdir, "timeline.mmtok")
    rows = collections.defaultdict(list)
    try:
        for _ in range(args.runs):
            spans.clear()
            shutil.rmtree(store, ignore_errors=True)
            start = time.perf_counter()
            mmtok.build(text, store, tokenizer=tok)
            wall = time.perf_counter() - start
            encoding = [s for s in spans if s[0].startswith("encode_chunk")]
            last = max(end for *_, end in encoding)
            rows["wall"].append(wall)
            rows["tail after the last chunk is encoded (checksums, manifest)"].append(start + wall - last)
            per_thread = collections.defaultdict(float)
            for label, thread, begin, end in spans:
                per_thread[label if label.startswith("main") else f"{label}, per encoding thread"] += end - begin
            threads = len({thread for label, thread, *_ in encoding})
            for label, seconds in per_thread.items():
                rows[label].append(seconds / threads if "per encoding thread" in label else seconds)
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
        shutil.rmtree(store, ignore_errors=True)
    print(f"## Where the wall time of a build of {size / 1e6:,.0f} MB goes (one process, medians of {args.runs})\n")
    print("| part | seconds | share of the wall |")
    print("| --- | ---: | ---: |")
    wall = statistics.median(rows.pop("wall"))
    print(f"| the build | {wall:.3f} | 100 % |")
    for label, found in rows.items():
        seconds = statistics.median(found)
        print(f"| {label} | {seconds:.3f} | {seconds / wall:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None, help="an earlier checkout of the repository to compare with")
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--megabytes", type=float, default=200)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json (default: the bundled GPT-2)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--input", default=None, help="build this file instead of the text")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-pipeline")
    args = parser.parse_args()
    if not (args.before or args.timeline):
        parser.error("give --before DIR, --timeline, or both")
    if args.before and not os.path.isdir(os.path.join(args.before, "mmtok")):
        parser.error(f"--before {args.before}: not a checkout of mmtok (no mmtok/ folder in it)")
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    os.makedirs(args.workdir, exist_ok=True)
    if args.input:
        text, size = os.path.abspath(args.input), os.path.getsize(args.input)
    else:
        text = os.path.join(args.workdir, f"text-{args.megabytes:g}mb.txt")
        size = make_text_file(text, args.megabytes)
    print(f"# {machine()}; tokenizer {args.tokenizer or 'GPT-2 (bundled)'}; load {os.getloadavg()[0]:.1f}\n")
    if args.before:
        before_after(args, text, size)
    if args.timeline:
        print()
        timeline(args, text, size)
    print(f"\nload {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
