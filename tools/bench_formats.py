"""Export and import speed of every other-stack format, against a plain np.memmap copy and the peers' writers.

    python tools/bench_formats.py [--mb 100] [--runs 3] [--link-gb 0] [--formats megatron,hf,...] [--workdir DIR]

The store is synthetic (random GPT-2 ids, document lengths drawn from a
log-normal around ~600 tokens, made once through mmtok's store writer and kept
in the work folder): token formats copy ids and never look at the text, so
real text would only make the setup slower. Every figure is the median of
``--runs`` runs, as MB/s of token bytes (uint16) and as a ratio to the limit,
a plain ``np.memmap`` copy of the same token files measured in the same
process. Peers, where they have a writer and are installed: Megatron's
``IndexedDatasetBuilder`` (one ``add_item`` + ``end_document`` per document,
as ``preprocess_data.py``) and ``datasets`` (``Dataset.from_dict`` of the
documents, then ``save_to_disk``). ``--link-gb N`` also makes an N GB store
and times ``--link`` export (then Megatron's ``IndexedDataset`` reads the first
and last sequence of every prefix, when installed).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mmtok.formats import export_format, import_format  # noqa: E402
from mmtok.formats.storewrite import StoreWriter  # noqa: E402
from mmtok.store import Store  # noqa: E402
from mmtok.tokenize.tokenizer import load_tokenizer  # noqa: E402

FORMATS = ["megatron", "hf", "parquet", "nanogpt", "llmc", "olmo", "litdata"]


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def synthetic_store(path: str, megabytes: float, seed: int = 0) -> Store:
    if os.path.exists(os.path.join(path, "manifest.json")):
        return Store(path)
    shutil.rmtree(path, ignore_errors=True)
    tok = load_tokenizer(None)
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path, tok, source="synthetic", kind="synthetic")
    left = int(megabytes * 1e6) // 2
    while left > 0:
        lengths = np.minimum(rng.lognormal(6.0, 1.0, size=4096).astype(np.int64) + 1, 200_000)
        tokens = rng.integers(0, tok.eos_id, size=int(lengths.sum()), dtype=np.uint16)
        ends = np.cumsum(lengths)
        tokens[ends - 1] = tok.eos_id
        writer.write(tokens[:left], ends[ends <= left], "synthetic")
        left -= tokens.shape[0]
    writer.close_document("synthetic")
    return writer.commit()


def timed(fn, runs: int, cleanup) -> float:
    times = []
    for _ in range(runs):
        cleanup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def remove(*paths):
    def clean():
        for path in paths:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
    return clean


def memmap_copy(store: Store, out: str) -> None:
    for i in range(len(store.shards)):
        src = store.shard_tokens(i)
        dst = np.memmap(f"{out}.{i}", dtype=src.dtype, mode="w+", shape=src.shape)
        dst[:] = src
        dst.flush()
        del dst


def megatron_builder(store: Store, out: str) -> None:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builder = IndexedDatasetBuilder(out + ".bin", dtype=np.uint16)
    for i in range(store.num_documents):
        builder.add_item(torch.from_numpy(store.documents[i].astype(np.int64)))
        builder.end_document()
    builder.finalize(out + ".idx")


def datasets_writer(store: Store, out: str) -> None:
    import datasets

    docs = [store.documents[i] for i in range(store.num_documents)]
    datasets.Dataset.from_dict({"input_ids": docs}).save_to_disk(out)


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="token bytes of the synthetic store (default 100)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--link-gb", type=float, default=0, help="also time --link export of a store this big")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated formats to time (default all; 'none' for only --link-gb)")
    parser.add_argument("--workdir", default="/tmp/mmtok-bench-formats")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    work = args.workdir
    print(f"machine: {machine()}")
    store = synthetic_store(os.path.join(work, f"synthetic-{args.mb:g}MB.mmtok"), args.mb)
    size = store.num_tokens * store.dtype.itemsize
    print(f"store: {store.num_tokens:,} tokens ({size / 1e6:,.0f} MB uint16), {store.num_documents:,} documents, "
          f"{len(store.shards)} shards (synthetic ids); median of {args.runs} runs")
    limit = timed(lambda: memmap_copy(store, os.path.join(work, "copy")), args.runs,
                  remove(*(os.path.join(work, f"copy.{i}") for i in range(len(store.shards)))))
    remove(*(os.path.join(work, f"copy.{i}") for i in range(len(store.shards))))()
    print(f"\n{'candidate':<34} {'seconds':>8} {'MB/s':>8} {'vs memmap copy':>15}")

    def row(name, seconds):
        print(f"{name:<34} {seconds:8.2f} {size / 1e6 / seconds:8.0f} {limit / seconds:14.2f}x")

    row("np.memmap copy (the limit)", limit)
    chosen = [f for f in args.formats.split(",") if f in FORMATS]
    for fmt in chosen:
        if fmt in ("hf", "parquet") and not have("pyarrow"):
            print(f"{'export ' + fmt:<34} skipped: pyarrow is not installed")
            continue
        out = os.path.join(work, f"out-{fmt}")
        outs = (out + ".bin", out + ".idx") if fmt == "megatron" else (out,)
        row(f"mmtok export {fmt}", timed(lambda: export_format(store, out, fmt), args.runs, remove(*outs)))
        if fmt == "megatron":
            link = os.path.join(work, "out-link")
            row("mmtok export megatron --link", timed(lambda: export_format(store, link, fmt, link=True), args.runs,
                                                      remove(link)))
            remove(link)()
        if fmt != "litdata":
            back = os.path.join(work, f"back-{fmt}.mmtok")
            row(f"mmtok import {fmt}", timed(lambda: import_format(out, back, fmt), args.runs, remove(back)))
            remove(back)()
        if fmt == "megatron" and have("megatron.core") and have("torch"):
            peer = os.path.join(work, "peer-megatron")
            row("  peer: IndexedDatasetBuilder", timed(lambda: megatron_builder(store, peer), args.runs,
                                                       remove(peer + ".bin", peer + ".idx")))
            remove(peer + ".bin", peer + ".idx")()
        if fmt == "hf" and have("datasets"):
            peer = os.path.join(work, "peer-hf")
            row("  peer: datasets from_dict+save_to_disk", timed(lambda: datasets_writer(store, peer), args.runs,
                                                                 remove(peer)))
            remove(peer)()
        remove(*outs)()
    if args.link_gb:
        big = synthetic_store(os.path.join(work, f"synthetic-{args.link_gb:g}GB.mmtok"), args.link_gb * 1000, seed=1)
        link = os.path.join(work, "big-link")
        seconds = timed(lambda: export_format(big, link, "megatron", link=True), args.runs, remove(link))
        big_size = big.num_tokens * 2
        print(f"\n--link export of a {big_size / 1e9:.2f} GB store ({len(big.shards)} shards, "
              f"{big.num_documents:,} documents): median {seconds:.3f} s "
              f"(a copy at the memmap rate above would take ~{big_size / size * limit:.1f} s)")
        if have("megatron.core") and have("torch"):
            from megatron.core.datasets.indexed_dataset import IndexedDataset

            stream_ok = True
            for i, shard in enumerate(big.shards):
                dataset = IndexedDataset(os.path.join(link, shard["name"]))
                lo = int(big.token_starts[i])
                first, last = dataset[0], dataset[len(dataset) - 1]
                stream_ok &= np.array_equal(first, big.tokens[lo : lo + first.shape[0]])
                hi = int(big.token_starts[i + 1])
                stream_ok &= np.array_equal(last, big.tokens[hi - last.shape[0] : hi])
            print(f"Megatron IndexedDataset reads every linked prefix (first and last sequence match): {stream_ok}")
        remove(link)()


if __name__ == "__main__":
    main()
