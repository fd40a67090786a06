"""Engines and pipeline: mmtok.build against the raw engines it uses, same text, same run.

    python tools/bench_engines.py [--megabytes 200] [--zoo-megabytes 10] [--csv-megabytes 8] [--runs 3]
                                  [--parts bulk,zoo,rows,limits] [--limits-megabytes 50] [--tokenizers llama3-style,...] [--aitextgen]
                                  [--workdir /tmp/mmtok-bench-engines]

Every candidate runs in a fresh process (tools/peers.py, tools/peers_engines.py
say what each does), --runs times, interleaved round-robin so that a change of
the machine's load hits all alike; tables print medians of MB/s (input bytes /
seconds of the work; loading the tokenizer is setup, excluded) and ratios.

- bulk: mmtok.build of --megabytes of real text (GPT-2, defaults) vs raw
  tiktoken encode_ordinary_batch on all cores (the issue-6 limit) and raw
  fastokens on a pool of all cores, with peak RSS.
- zoo: tokenizers users bring, trained here with `tokenizers` on real text
  (tests/zoo.py): a Llama-3/cl100k-style byte-level BPE, a SentencePiece-style
  BPE (byte fallback, Metaspace), a WordPiece. For each, the fastest engine
  mmtok proves identical, raw on all cores, vs mmtok.build with it.
- rows: a one-column CSV of short rows (the lines of the same text), the
  same rows as JSON lines ({"text": ...}) and as JSON lines with three other
  fields: mmtok.build of each (line by line) vs the same engine's batch API
  on the same rows; the store floors (tools/peers_engines.py); and with
  --aitextgen aitextgen 0.6.0's own TokenDataset(line_by_line=True) (slow;
  fetched with pip on first use).
- limits: in one process, on --limits-megabytes of the text: `cat file >
  /dev/null`, reading + UTF-8 decoding, the engine alone on one thread,
  mmtok.build, and a raw np.save (+ fsync) of the tokens it made.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # tests/zoo.py: the tokenizers trained there

from corpus import machine, make_text_file  # noqa: E402
from peers import run_child  # noqa: E402


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def interleaved(candidates: dict[str, tuple[str, dict]], runs: int, cleanup: list[str], log: str) -> dict[str, list]:
    """{label: [result per run]}; each run starts every candidate once, in turn, in a fresh process."""
    results = {label: [] for label in candidates}
    for run in range(runs):
        for label, (name, options) in candidates.items():
            for path in cleanup:
                remove(path)
            result = run_child(name, options, log=log)
            results[label].append(result)
            print(f"  run {run + 1}: {label:<34} {result['seconds']:7.2f} s", file=sys.stderr, flush=True)
    return results


def median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def bulk(args, log: str) -> None:
    text = os.path.join(args.workdir, f"text-{args.megabytes}mb.txt")
    size = make_text_file(text, args.megabytes)
    store = os.path.join(args.workdir, "bulk.mmtok")
    results = interleaved({
        "mmtok.build (defaults)": ("mmtok", {"input": text, "output": store}),
        "tiktoken encode_ordinary_batch": ("tiktoken", {"input": text}),
        "fastokens encode_batch_flat pool": ("fastokens", {"input": text}),
    }, args.runs, [store], log)
    print(f"\n## Bulk build, {size / 1e6:,.0f} MB of real text, GPT-2 (medians of {args.runs})\n")
    print("| candidate | engine | MB/s | Mtok/s | cores busy | peak RSS MB | mmtok / this |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    mmtok_speed = size / median(results["mmtok.build (defaults)"], "seconds")
    for label, rows in results.items():
        seconds = median(rows, "seconds")
        print(f"| {label} | {rows[0].get('engine', label.split()[0])} | {size / seconds / 1e6:,.1f} | "
              f"{median(rows, 'tokens') / seconds / 1e6:,.2f} | {median(rows, 'cpu_seconds') / seconds:.2f} | "
              f"{median(rows, 'peak_rss_mb'):,.0f} | {mmtok_speed / (size / seconds):.2f}x |")


def zoo(args, log: str) -> None:
    from zoo import ZOO

    from mmtok.inputs.sampletext import python_docs_prose

    text = os.path.join(args.workdir, f"text-{args.zoo_megabytes}mb.txt")
    size = make_text_file(text, args.zoo_megabytes)
    prose = python_docs_prose()
    print(f"\n## Tokenizers users bring, {size / 1e6:,.0f} MB of real text (medians of {args.runs})\n")
    print("| tokenizer | fastest identical engine | raw MB/s | mmtok.build MB/s | ratio | CPU s raw | CPU s mmtok | "
          "CPU ratio | store floor MB/s | floor / raw |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, make in ZOO.items():
        if args.tokenizers and name not in args.tokenizers.split(","):
            continue
        tokenizer_json = os.path.join(args.workdir, f"{name}.json")
        make(prose).save(tokenizer_json)
        store, floor_out = (os.path.join(args.workdir, f"{name}.{suffix}") for suffix in ("mmtok", "floor"))
        results = interleaved({
            f"{name} raw": ("engine-raw", {"input": text, "tokenizer_json": tokenizer_json}),
            f"{name} mmtok": ("mmtok-tok", {"input": text, "output": store, "tokenizer_json": tokenizer_json}),
            f"{name} store floor": ("store-floor", {"input": text, "output": floor_out,
                                                    "tokenizer_json": tokenizer_json}),
        }, args.runs, [store, floor_out], log)
        raw, built, floor = results[f"{name} raw"], results[f"{name} mmtok"], results[f"{name} store floor"]
        floor_speed = size / median(floor, "seconds")
        raw_speed, built_speed = size / median(raw, "seconds"), size / median(built, "seconds")
        # CPU seconds (all threads): on cores kept busy, wall ratio <= raw CPU / mmtok CPU (reading, decoding,
        # writing and hashing are mmtok's alone: the raw peer reads and cuts the text before its clock starts)
        raw_cpu, built_cpu = median(raw, "cpu_seconds"), median(built, "cpu_seconds")
        print(f"| {name} | {raw[0]['engine']} | {raw_speed / 1e6:,.1f} | {built_speed / 1e6:,.1f} | "
              f"{built_speed / raw_speed:.2f}x | {raw_cpu:.2f} | {built_cpu:.2f} | {raw_cpu / built_cpu:.2f}x | "
              f"{floor_speed / 1e6:,.1f} | {floor_speed / raw_speed:.2f}x |")


def rows(args, log: str) -> None:
    text = os.path.join(args.workdir, f"text-{args.zoo_megabytes}mb.txt")
    make_text_file(text, max(args.zoo_megabytes, args.csv_megabytes))
    table = os.path.join(args.workdir, f"rows-{args.csv_megabytes}mb.csv")
    if not os.path.exists(table):
        budget = int(args.csv_megabytes * 1e6)
        with open(text, encoding="utf-8") as source, open(table, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["text"])
            for line in source:
                line = line.strip()
                if line:
                    writer.writerow([line])
                    budget -= len(line) + 1
                    if budget <= 0:
                        break
    lines = os.path.join(args.workdir, f"rows-{args.csv_megabytes}mb.jsonl")  # the same rows, {"text": ...} each
    if not os.path.exists(lines):
        with open(table, encoding="utf-8", newline="") as source, open(lines + ".tmp", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"text": row[0]}) + "\n" for row in itertools.islice(csv.reader(source), 1, None))
        os.replace(lines + ".tmp", lines)
    wide = os.path.join(args.workdir, f"rows-{args.csv_megabytes}mb-fields.jsonl")  # the same, among other fields
    if not os.path.exists(wide):
        with open(lines, encoding="utf-8") as source, open(wide + ".tmp", "w", encoding="utf-8") as out:
            out.writelines(json.dumps({"id": number, "text": json.loads(line)["text"], "source": "pydoc",
                                       "meta": {"lang": "en"}}) + "\n" for number, line in enumerate(source))
        os.replace(wide + ".tmp", wide)
    size = os.path.getsize(table)
    store = os.path.join(args.workdir, "rows.mmtok")
    candidates = {
        "mmtok.build (line by line)": ("mmtok-tok", {"input": table, "output": store}),
        "mmtok.build (JSONL, same rows)": ("mmtok-tok", {"input": lines, "output": store}),
        "mmtok.build (JSONL, same rows among 3 other fields)": ("mmtok-tok", {"input": wide, "output": store}),
        "engine batch API, same rows": ("rows-engine", {"input": table}),
        "store floor (CSV)": ("rows-floor", {"input": table, "output": store}),
        "store floor (JSONL)": ("rows-floor", {"input": lines, "output": store}),
    }
    if args.aitextgen:
        candidates["aitextgen 0.6.0 line_by_line"] = ("aitextgen", {
            "input": table, "output": os.path.join(args.workdir, "aitextgen.npy"),
            "cache": os.path.join(args.workdir, "aitextgen"), "line_by_line": True})
    results = interleaved(candidates, args.runs, [store], log)
    documents = results["mmtok.build (line by line)"][0]["documents"]
    if results["mmtok.build (JSONL, same rows)"][0]["documents"] != documents:
        raise SystemExit("the JSONL build has not as many documents as the CSV one: not the same rows")
    print(f"\n## Line by line: a CSV of {documents:,} short rows, {size / 1e6:,.1f} MB, and the same rows as JSON "
          f"lines, {os.path.getsize(lines) / 1e6:,.1f} MB, GPT-2 (medians of {args.runs})\n")
    print("| candidate | rows/s | MB/s | CPU s | peak RSS MB | mmtok / this | this / engine |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    mmtok_seconds = median(results["mmtok.build (line by line)"], "seconds")
    engine_seconds = median(results["engine batch API, same rows"], "seconds")
    for label, found in results.items():
        seconds = median(found, "seconds")
        megabytes = os.path.getsize(wide if "fields" in label else lines if "JSONL" in label else table) / 1e6
        print(f"| {label} | {documents / seconds:,.0f} | {megabytes / seconds:,.1f} | "
              f"{median(found, 'cpu_seconds'):.2f} | {median(found, 'peak_rss_mb'):,.0f} | "
              f"{seconds / mmtok_seconds:.2f}x | {engine_seconds / seconds:.2f}x |")


def limits(args, log: str) -> None:
    """What bounds the build now: reading the file, the encoder alone, writing the tokens, all in one process."""
    import subprocess
    import time

    import numpy as np

    import mmtok
    from mmtok.tokenize.tokenizer import default_tokenizer

    text_path = os.path.join(args.workdir, f"text-{args.limits_megabytes}mb.txt")
    size = make_text_file(text_path, args.limits_megabytes)
    tok = default_tokenizer()
    _ = tok.cut_rules
    store, saved = os.path.join(args.workdir, "limits.mmtok"), os.path.join(args.workdir, "limits.npy")
    rows = {"cat file > /dev/null": [], "read + decode UTF-8 (1 MiB pieces)": [],
            f"{tok.engine} encode_flat, 1 thread, 1 MiB pieces": [], "mmtok.build (defaults)": [],
            "np.save + fsync of the same tokens": []}
    for _ in range(args.runs):
        timings = {}
        start = time.perf_counter()
        subprocess.run(["cat", text_path], stdout=subprocess.DEVNULL, check=True)
        timings["cat file > /dev/null"] = time.perf_counter() - start
        start = time.perf_counter()
        pieces = []
        with open(text_path, "rb") as f:
            while block := f.read(1 << 20):
                pieces.append(block.decode("utf-8", "ignore"))
        timings["read + decode UTF-8 (1 MiB pieces)"] = time.perf_counter() - start
        start = time.perf_counter()
        for piece in pieces:
            tok.encode_flat([piece])
        timings[f"{tok.engine} encode_flat, 1 thread, 1 MiB pieces"] = time.perf_counter() - start
        del pieces
        remove(store)
        start = time.perf_counter()
        built = mmtok.build(text_path, store)
        timings["mmtok.build (defaults)"] = time.perf_counter() - start
        tokens = np.concatenate([built.shard_tokens(i) for i in range(len(built.shards))])
        start = time.perf_counter()
        with open(saved, "wb") as f:
            np.save(f, tokens)
            f.flush()
            os.fsync(f.fileno())
        timings["np.save + fsync of the same tokens"] = time.perf_counter() - start
        del tokens, built
        for label, seconds in timings.items():
            rows[label].append(seconds)
    remove(saved)
    print(f"\n## Where the limit is: {size / 1e6:,.0f} MB of real text, GPT-2, one process (medians of {args.runs})\n")
    print("| step | MB of text/s | build / this |")
    print("| --- | ---: | ---: |")
    build_seconds = statistics.median(rows["mmtok.build (defaults)"])
    for label, found in rows.items():
        seconds = statistics.median(found)
        print(f"| {label} | {size / seconds / 1e6:,.1f} | {seconds / build_seconds:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=200)
    parser.add_argument("--zoo-megabytes", type=float, default=10)
    parser.add_argument("--csv-megabytes", type=float, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default="bulk,zoo,rows,limits")
    parser.add_argument("--limits-megabytes", type=float, default=50)
    parser.add_argument("--tokenizers", default="", help="zoo: only these (comma-separated names of tests/zoo.py)")
    parser.add_argument("--aitextgen", action="store_true", help="also run aitextgen's line-by-line build (slow)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-engines")
    args = parser.parse_args()
    parts = {"bulk": bulk, "zoo": zoo, "rows": rows, "limits": limits}
    unknown = [part for part in args.parts.split(",") if part not in parts]
    if unknown:
        parser.error(f"--parts: {', '.join(unknown)} unknown; use some of {','.join(parts)}")
    os.makedirs(args.workdir, exist_ok=True)
    log = os.path.join(args.workdir, "children.log")
    print(f"# mmtok engines benchmark\n\nmachine: {machine()}; every figure from one run of this script, "
          "candidates interleaved in fresh processes.")
    for part in args.parts.split(","):
        parts[part](args, log)


if __name__ == "__main__":
    main()
