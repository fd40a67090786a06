"""TokenDataset across processes: spawn/fork pools, PyTorch DataLoader workers, memory of a large store."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mmtok
from mmtok import TokenDataset
from mmtok.store.manifest import write_manifest
from mmtok.store.npyfile import file_sha256, npy_header
from mmtok.store.verify import verify_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "tokenizers", "transformers", "tiktoken")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, real_text_file):
    return mmtok.build(real_text_file, tmp_path_factory.mktemp("workers") / "s.mmtok", shard_tokens=100_000,
                       chunk_bytes=50_000)


@pytest.fixture(scope="module")
def rows_store(tmp_path_factory, docs_prose):
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:300]
    return mmtok.build(None, tmp_path_factory.mktemp("rows") / "s.mmtok", texts=rows, shard_tokens=2_000)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_process_pool_reads_the_right_samples(small_store, rows_store, method):
    bulk = TokenDataset.open(small_store.path, block_size=256, stride=100)
    docs = TokenDataset.open(rows_store.path, block_size=64, pad_id=-100)
    picked = [0, 5, len(bulk) - 1, -7, 1234]
    with multiprocessing.get_context(method).Pool(2) as pool:
        singles = pool.map(bulk.__getitem__, picked)
        batches = pool.map(docs.get_batch, [[0, 1, 2], [len(docs) - 1, 3]])
        lengths = pool.apply(len, (docs,))
    np.testing.assert_array_equal(np.stack(singles), bulk[picked])
    np.testing.assert_array_equal(batches[0], docs[[0, 1, 2]])
    np.testing.assert_array_equal(batches[1], docs[[len(docs) - 1, 3]])
    assert lengths == len(docs)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_torch_dataloader_workers(small_store, method):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    ds = TokenDataset.open(small_store.path, block_size=128, stride=128)
    loader = DataLoader(ds, batch_size=16, num_workers=2, multiprocessing_context=method)
    batches = list(loader)
    assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int64 for b in batches)
    np.testing.assert_array_equal(torch.cat(batches).numpy(), ds[:])


def test_torch_dataloader_with_whole_batches(rows_store):
    torch = pytest.importorskip("torch")
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    # One vectorised get_batch per worker call, documents padded per batch: the recipe the docstring gives.
    docs = TokenDataset.open(rows_store.path, block_size=64)
    sampler = BatchSampler(SequentialSampler(docs), batch_size=32, drop_last=False)
    loader = DataLoader(docs, sampler=sampler, batch_size=None, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert len(batches) == len(sampler) and all(isinstance(b, torch.Tensor) for b in batches)
    for indices, batch in zip(list(sampler), batches):
        np.testing.assert_array_equal(batch.numpy(), docs[indices])


def _write_large_store(path: str, base: mmtok.Store, shard_tokens: int, shards: int) -> None:
    """A valid store of ``shards`` shards, each the base stream repeated to about ``shard_tokens`` tokens.

    Written with numpy directly: tokenizing hundreds of MB would take minutes.
    """
    base_tokens = base.tokens[:]
    copies = max(1, shard_tokens // base_tokens.shape[0])
    block = np.tile(base_tokens, copies)
    ends = np.cumsum(np.tile(np.diff(np.concatenate([[0], base.documents.lengths().cumsum()])), copies))
    os.makedirs(os.path.join(path, "shards"))
    shutil.copy(os.path.join(base.path, "tokenizer.json"), os.path.join(path, "tokenizer.json"))
    entries = []
    for i in range(shards):
        name = f"{i:06d}"
        tokens_file, docs_file = (os.path.join(path, "shards", name + suffix) for suffix in (".tokens.npy", ".docs.npy"))
        for file_name, array, dtype in ((tokens_file, block, base.dtype.str), (docs_file, ends + i * block.shape[0], "<i8")):
            with open(file_name, "wb") as f:
                f.write(npy_header(dtype, array.shape[0]))
                array.astype(dtype).tofile(f)
        entries.append({"name": name, "tokens": int(block.shape[0]), "documents": int(ends.shape[0]),
                        "tokens_sha256": file_sha256(tokens_file), "docs_sha256": file_sha256(docs_file)})
    manifest = dict(base.manifest, shards=entries, inputs=[], num_tokens=shards * int(block.shape[0]),
                    num_documents=shards * int(ends.shape[0]))
    write_manifest(path, manifest)


_MEASURE = """
import json, sys
import numpy as np

def memory():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return np.array([int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "RssAnon", "RssFile")])

import mmtok
before = memory()
ds = mmtok.TokenDataset.open(sys.argv[1], block_size=1024, stride=1)
for shard in range(len(ds.store.shards)):
    ds.store.shard_tokens(shard)  # map every shard
opened = memory()
starts = np.random.default_rng(0).integers(0, len(ds), 264)
for i in starts[:200]:
    ds[int(i)]
ds.get_batch(starts[200:])
read = memory()
# The same windows through plain np.memmap: what any memory-mapped reader pays in mapped page cache.
maps = [np.load(f"{sys.argv[1]}/shards/{s['name']}.tokens.npy", mmap_mode="r") for s in ds.store.shards]
bounds = ds.store.token_starts
mark = memory()
for start in starts:
    shard = int(np.searchsorted(bounds, start, side="right")) - 1
    local = int(start - bounds[shard])
    np.array(maps[shard][local:local + 1024])  # a window crossing shards is cut short: a slight undercount
baseline = memory()
print(json.dumps({"opened": (opened - before).tolist(), "read": (read - before).tolist(),
                  "plain": (baseline - mark).tolist(), "samples": len(ds),
                  "heavy": sorted(set(sys.modules) & set(%r))}))
""" % (HEAVY,)


def test_opening_a_large_store_costs_little_memory(tmp_path, small_store):
    path = str(tmp_path / "large.mmtok")
    _write_large_store(path, small_store, shard_tokens=60_000_000, shards=3)
    store = mmtok.open(path)
    assert store.num_tokens * store.dtype.itemsize > 300_000_000
    assert mmtok.open(path).documents[-1].shape[0] == small_store.num_tokens
    out = subprocess.run([sys.executable, "-c", _MEASURE, path], cwd=ROOT, capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout)  # [VmRSS, RssAnon, RssFile] growth in bytes
    assert figures["samples"] == store.num_tokens - 1023
    assert figures["opened"][0] < 4 << 20, figures
    # Reading copies 264 windows (0.5 MB) into private memory; the page cache the reads map is shared with
    # every process reading the store, and no more than a plain np.memmap maps for the same windows.
    assert figures["read"][1] < 8 << 20, figures
    assert figures["read"][2] <= figures["plain"][2] + (4 << 20), figures
    assert figures["heavy"] == [], "reading samples must not import torch or a tokenizer library"


def test_the_large_store_writer_makes_a_valid_store(tmp_path, small_store):
    path = str(tmp_path / "check.mmtok")
    _write_large_store(path, small_store, shard_tokens=3 * small_store.num_tokens, shards=2)
    report = verify_store(path)
    assert report["tokens"] == 6 * small_store.num_tokens


def test_import_mmtok_loads_numpy_only():
    script = "import sys, mmtok; print(sorted(set(sys.modules) & set(%r)))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
