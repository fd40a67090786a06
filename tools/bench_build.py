"""Build throughput and memory: mmtok.build against the raw tokenizers, aitextgen and HF datasets, same text, same run.

    python tools/bench_build.py [--megabytes 100] [--peer-megabytes 20] [--runs 3]
                                [--workdir /tmp/mmtok-bench-build] [--sizes 100,1000] [--profile]

Input: real text found on every machine (Python's reference documentation and
standard-library sources, repeated with a light variation; tools/corpus.py),
--megabytes of it, and its first --peer-megabytes for the slow peers. Every
candidate runs in a fresh process of its own (tools/peers.py says exactly what
each one does), --runs times, interleaved round-robin so that a change of load
hits all of them alike; the table prints medians:

- mmtok.build with default settings (all cores), on both inputs;
- the build limit: the same tiktoken GPT-2 encoding mmtok builds, 64 KB chunks
  through encode_ordinary_batch(num_threads=cores) (and, for reference, the
  encode_to_numpy loop on a thread pool that mmtok's engine runs);
- tokenizers' encode_batch of the same chunks (slow: on the peer input);
- aitextgen 0.6.0's own TokenDataset.py building from the text file (slow);
- the Hugging Face datasets pipeline: load_dataset("text") -> map(tokenize,
  batched=True, num_proc=2) -> group into 1024-token blocks -> save_to_disk (slow).

Columns: MB/s = input bytes / seconds of the work (imports and one-time setup
such as loading a tokenizer excluded: mmtok's is printed apart); Mtok/s; cores
busy = CPU seconds / wall seconds of the work (threads and worker processes);
peak RSS = the exact peak of the candidate's main process (ru_maxrss, imports
included); tree peak = the peak of the summed proportional set size of its
process tree (num_proc workers included), sampled every 50 ms; out MB = what it
wrote (mmtok: the store; aitextgen: its token array saved as .npy, untimed;
datasets: save_to_disk's folder, plus its Arrow cache files). Ratios compare
MB/s on the same input. --sizes runs mmtok alone at each size (once each) to
show that its peak RSS does not grow with the input (as tools/bench_build_memory.py).
--profile adds one profiled mmtok build: CPU seconds per thread and the main
thread's cProfile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from corpus import machine, make_text_file  # noqa: E402
from peers import cores, run_child  # noqa: E402

TARGETS = {"tiktoken": 0.85, "aitextgen": 8.0, "datasets": 8.0}
LABELS = {
    "mmtok": "mmtok.build (defaults)",
    "tiktoken": "tiktoken encode_ordinary_batch",
    "tiktoken-numpy": "tiktoken encode_to_numpy pool",
    "tokenizers": "tokenizers encode_batch",
    "aitextgen": "aitextgen 0.6.0 TokenDataset",
    "datasets": "HF datasets pipeline",
}


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("tiktoken", "tokenizers", "transformers", "datasets", "numpy", "torch"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)


def median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=100, help="text for mmtok and the raw tiktoken peer (default 100)")
    parser.add_argument("--peer-megabytes", type=float, default=20,
                        help="text for the slow peers: tokenizers, aitextgen, datasets; mmtok runs on it too (default 20)")
    parser.add_argument("--runs", type=int, default=3, help="runs per candidate; medians are printed (default 3)")
    parser.add_argument("--only", default="", help="comma-separated candidates to run (default: all): "
                        + ",".join(LABELS))
    parser.add_argument("--num-proc", type=int, default=2, help="num_proc of the datasets pipeline (default 2)")
    parser.add_argument("--sizes", default="", help="also build these sizes in MB with mmtok alone, once each, "
                        "for peak RSS against input size (e.g. 100,1000)")
    parser.add_argument("--profile", action="store_true", help="also profile one mmtok build of --megabytes")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-build")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    work = lambda name: os.path.join(args.workdir, name)  # noqa: E731
    log = work("children.log")
    remove(log)
    started = time.perf_counter()

    print(f"machine: {machine()}")
    print(f"libraries: {versions()}")
    big = work(f"text-{args.megabytes:g}MB.txt")
    small = work(f"text-{args.peer_megabytes:g}MB.txt")
    if args.peer_megabytes >= args.megabytes:
        small = big
    big_bytes, small_bytes = make_text_file(big, args.megabytes), make_text_file(small, args.peer_megabytes)
    same = small == big
    print(f"input: {big_bytes / 1e6:.1f} MB of real text (Python docs + stdlib sources, repeated with variation); "
          f"slow peers on its first {small_bytes / 1e6:.1f} MB")

    only = set(filter(None, args.only.split(","))) or set(LABELS)
    unknown = only - set(LABELS)
    if unknown:
        parser.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    import importlib.util

    for name, module in (("datasets", "datasets"), ("aitextgen", "transformers")):
        if name in only and importlib.util.find_spec(module) is None:
            only.discard(name)
            print(f"skipping {name}: {module} is not installed (pip install -e '.[bench]')")
    hf_env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": work("hf-home"),
              "HF_DATASETS_CACHE": work("hf-home/datasets"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    # (key, candidate, input path, input bytes, options, env, paths to clear before and after each run)
    plan = []
    if "mmtok" in only:
        plan.append(("mmtok@big", "mmtok", big, big_bytes, {"output": work("store.mmtok")}, None, [work("store.mmtok")]))
    if "tiktoken" in only:
        plan.append(("tiktoken@big", "tiktoken", big, big_bytes, {}, None, []))
    if "tiktoken-numpy" in only:
        plan.append(("tiktoken-numpy@big", "tiktoken-numpy", big, big_bytes, {}, None, []))
    if "mmtok" in only and not same:
        plan.append(("mmtok@small", "mmtok", small, small_bytes, {"output": work("store-small.mmtok")}, None,
                     [work("store-small.mmtok")]))
    if "tokenizers" in only:
        plan.append(("tokenizers@small", "tokenizers", small, small_bytes, {}, None, []))
    if "aitextgen" in only:
        plan.append(("aitextgen@small", "aitextgen", small, small_bytes,
                     {"output": work("aitextgen-tokens.npy"), "cache": work("aitextgen-sdist")}, None,
                     [work("aitextgen-tokens.npy")]))
    if "datasets" in only:
        plan.append(("datasets@small", "datasets", small, small_bytes,
                     {"output": work("hf-blocks"), "cache": work("hf-home/datasets"), "num_proc": args.num_proc},
                     hf_env, [work("hf-blocks"), work("hf-home")]))

    results: dict[str, list[dict]] = {key: [] for key, *_ in plan}
    for round_ in range(args.runs):
        for key, name, path, nbytes, options, env, scratch in plan:
            for item in scratch:
                remove(item)
            result = run_child(name, dict(options, input=path), env=env, log=log)
            for item in scratch:
                remove(item)
            result["bytes"] = nbytes
            results[key].append(result)
            print(f"  round {round_ + 1}/{args.runs}: {key:20s} {result['seconds']:7.2f} s", file=sys.stderr, flush=True)

    print(f"runs: {args.runs} per candidate, each in a fresh process, interleaved round-robin; medians\n")
    header = (f"{'candidate':32s} {'input':>7s} {'seconds':>8s} {'min-max':>11s} {'MB/s':>6s} {'Mtok/s':>6s} "
              f"{'CPU s':>6s} {'cores':>5s} {'peak RSS':>8s} {'tree peak':>9s} {'out MB':>7s}")
    print(header)
    print(f"{'':32s} {'MB':>7s} {'':>8s} {'seconds':>11s} {'':>6s} {'':>6s} {'':>6s} {'busy':>5s} {'MB':>8s} "
          f"{'MB':>9s} {'(+cache)':>7s}")
    rates = {}
    for key, name, path, nbytes, *_ in plan:
        rows = results[key]
        seconds = median(rows, "seconds")
        rates[key] = nbytes / 1e6 / seconds
        tokens = statistics.median(row["tokens"] for row in rows)
        busy = median(rows, "cpu_seconds") / seconds
        spread = f"{min(r['seconds'] for r in rows):.2f}-{max(r['seconds'] for r in rows):.2f}"
        out = rows[-1].get("output_bytes")
        out_text = "-" if out is None else f"{out / 1e6:.1f}"
        if "cache_bytes" in rows[-1]:
            out_text += f" +{rows[-1]['cache_bytes'] / 1e6:.0f}"
        print(f"{LABELS[name]:32s} {nbytes / 1e6:7.1f} {seconds:8.2f} {spread:>11s} {rates[key]:6.2f} "
              f"{tokens / 1e6 / seconds:6.2f} {median(rows, 'cpu_seconds'):6.1f} {busy:5.2f} {median(rows, 'peak_rss_mb'):8.0f} "
              f"{median(rows, 'tree_peak_mb'):9.0f} {out_text:>7s}")

    print("\nratios of MB/s, same input, same run (median / median):")

    def ratio_line(label: str, mine: str, peer: str, target: float | None) -> None:
        if mine not in rates or peer not in rates:
            return
        value = rates[mine] / rates[peer]
        verdict = "" if target is None else f"  target >= {target:<4g} {'PASS' if value >= target else 'FAIL'}"
        print(f"  {label:58s} {value:6.2f}{verdict}")

    mb_big, mb_small = f"{big_bytes / 1e6:.0f} MB", f"{small_bytes / 1e6:.0f} MB"
    if same and "mmtok@big" in rates:
        rates["mmtok@small"] = rates["mmtok@big"]
    ratio_line(f"mmtok / raw tiktoken encode_ordinary_batch ({mb_big})", "mmtok@big", "tiktoken@big",
               TARGETS["tiktoken"])
    ratio_line(f"mmtok / tiktoken encode_to_numpy pool ({mb_big})", "mmtok@big", "tiktoken-numpy@big", None)
    ratio_line(f"mmtok / tokenizers encode_batch ({mb_small})", "mmtok@small", "tokenizers@small", None)
    ratio_line(f"mmtok / aitextgen 0.6.0 TokenDataset ({mb_small})", "mmtok@small", "aitextgen@small",
               TARGETS["aitextgen"])
    ratio_line(f"mmtok / HF datasets pipeline ({mb_small})", "mmtok@small", "datasets@small", TARGETS["datasets"])
    if "mmtok@big" in results:
        peak = median(results["mmtok@big"], "tree_peak_mb")
        print(f"  {f'mmtok peak memory, MB ({mb_big})':58s} {peak:6.0f}  target < 500  {'PASS' if peak < 500 else 'FAIL'}")
    if "mmtok@big" in rates and not same:
        for peer in ("aitextgen", "datasets"):
            if f"{peer}@small" in rates:
                ratio_line(f"  (mmtok at {mb_big} / {peer} at {mb_small})", "mmtok@big", f"{peer}@small", None)

    notes = []
    if "mmtok@big" in results:
        rows = results["mmtok@big"]
        notes.append(f"mmtok: engine {rows[0]['engine']}, {rows[0]['shards']} shard(s); one-time setup (load the "
                     f"bundled tokenizer, prove its tiktoken fast path and cut rules) {median(rows, 'setup_seconds'):.2f} s,"
                     " not in its seconds")
    if "aitextgen@small" in results:
        notes.append(f"aitextgen: {results['aitextgen@small'][0]['how']}; tokenizer "
                     "transformers.GPT2Tokenizer(vocab=..., merges=...); reads the file line by line "
                     "(1024 lines per tokenizer call), so its token count differs slightly")
    if "datasets@small" in results:
        row = results["datasets@small"][0]
        notes.append(f"datasets {row['datasets']}: keep_linebreaks=True, num_proc={args.num_proc}, input_ids only "
                     f"(run_clm.py also stores attention_mask and labels); out MB is save_to_disk + Arrow cache")
    if any(key.endswith("@small") and not key.startswith("mmtok") for key in results) and not same:
        notes.append(f"the slow peers ran on the first {mb_small} only (their MB/s does not depend on size); "
                     f"mmtok ran on it too, for same-input ratios")
    for note in notes:
        print(f"note: {note}")

    if args.sizes:
        print("\nmmtok peak RSS against input size (one build each, fresh process):")
        print(f"{'input':>10s} {'seconds':>8s} {'MB/s':>7s} {'Mtok/s':>7s} {'peak RSS':>9s}")
        for size in (float(s) for s in args.sizes.split(",")):
            path = work(f"text-{size:g}MB.txt")
            nbytes = make_text_file(path, size)
            remove(work("store-size.mmtok"))
            row = run_child("mmtok", {"input": path, "output": work("store-size.mmtok")}, log=log)
            remove(work("store-size.mmtok"))
            print(f"{nbytes / 1e6:8.0f}MB {row['seconds']:8.1f} {nbytes / 1e6 / row['seconds']:7.1f} "
                  f"{row['tokens'] / 1e6 / row['seconds']:7.2f} {row['peak_rss_mb']:7.0f}MB")

    if args.profile:
        remove(work("store-profile.mmtok"))
        row = run_child("mmtok-profile", {"input": big, "output": work("store-profile.mmtok")}, log=log)
        remove(work("store-profile.mmtok"))
        wall = row["seconds"]
        print(f"\nprofile of one mmtok.build of {mb_big}: {wall:.2f} s wall, {row['cpu_seconds']:.2f} CPU s "
              f"({row['cpu_seconds'] / wall:.2f} of {cores()} cores busy)")
        for thread in row["threads"]:
            print(f"  thread {thread['thread']:20s} {thread['cpu_seconds']:6.2f} CPU s  "
                  f"({thread['cpu_seconds'] / wall:4.0%} of the wall time)")
        print("main thread, cProfile by own time:")
        print("\n".join("  " + line for line in row["main_profile"].rstrip().splitlines()))

    print(f"\ntotal time of this benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
