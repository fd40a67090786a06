"""Resource bounds: thousands of shards under a low open-file limit, a 10^9-sample view in constant memory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import mmtok
from mmtok.store.manifest import write_manifest
from mmtok.store.npyfile import npy_header
from mmtok.store.writer import ShardSink


def _like(tmp_path):
    return mmtok.build(texts=["hello world", "more text"], path=tmp_path / "like.mmtok", workers=1)


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory):
    """A store of 3,000 shards of 3 documents each (written with the shard writer, like a long build's)."""
    folder = tmp_path_factory.mktemp("many")
    like = _like(folder)
    path = folder / "many.mmtok"
    os.makedirs(path)
    (path / "tokenizer.json").write_bytes(open(os.path.join(like.path, "tokenizer.json"), "rb").read())
    sink, shards = ShardSink(os.fspath(path), dtype=like.dtype.str, next_index=0, token_offset=0), []
    rng = np.random.default_rng(0)
    for _ in range(3000):
        tokens = rng.integers(0, like.eos_id, size=12).astype(like.dtype)
        tokens[[3, 7, 11]] = like.eos_id
        sink.write(tokens, np.array([4, 8, 12]))
        shards.append(sink.close_shard())
    write_manifest(os.fspath(path), dict(like.manifest, shards=shards, num_tokens=12 * 3000, num_documents=9000,
                                         inputs=[], history=[]))
    return path


READ_ALL = r'''
import resource, sys, os, numpy as np, mmtok
from mmtok import TokenDataset
resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
store = mmtok.open(sys.argv[1])
docs = [store.documents[i] for i in range(store.num_documents)]
assert all(d[-1] == store.eos_id and d.shape[0] == 4 for d in docs), "wrong documents"
data = TokenDataset.open(store, block_size=8, stride=1)
rng = np.random.default_rng(1)
for _ in range(20):
    data[rng.integers(0, len(data), size=64)]
print(len(docs), len(os.listdir("/proc/self/fd")), store._maps.limit)
'''


def test_thousands_of_shards_read_under_a_low_open_file_limit(many_shards):
    done = subprocess.run([sys.executable, "-c", READ_ALL, os.fspath(many_shards)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    documents, open_fds, limit = map(int, done.stdout.split())
    assert documents == 9000
    # 6,000 shard files were read through at most 128 // 8 = 16 maps per open store (two files each): without the
    # bound they would all stay mapped, one descriptor each, far past the limit of 128.
    assert limit == 16 and open_fds < 100


def test_a_billion_sample_view_costs_constant_memory(tmp_path):
    # A sparse 2 GB shard of 10^9 tokens (no disk used): one document, read as windows with stride 1.
    like = _like(tmp_path)
    path = tmp_path / "huge.mmtok"
    (path / "shards").mkdir(parents=True)
    n = 10**9
    (path / "tokenizer.json").write_bytes(open(os.path.join(like.path, "tokenizer.json"), "rb").read())
    with open(path / "shards" / "000000.tokens.npy", "wb") as f:
        f.write(npy_header("<u2", n))
        f.truncate(len(npy_header("<u2", n)) + 2 * n)
        f.seek(-2, os.SEEK_END)
        f.write(np.array([like.eos_id], dtype="<u2").tobytes())
    with open(path / "shards" / "000000.docs.npy", "wb") as f:
        f.write(npy_header("<i8", 1) + np.array([n], dtype="<i8").tobytes())
    shard = {"name": "000000", "tokens": n, "documents": 1, "tokens_sha256": "0" * 64, "docs_sha256": "0" * 64}
    write_manifest(os.fspath(path), dict(like.manifest, shards=[shard], num_tokens=n, num_documents=1, inputs=[],
                                         history=[]))
    code = (
        "import sys, tracemalloc, numpy as np\n"
        "from mmtok import TokenDataset\n"
        "tracemalloc.start()\n"
        "data = TokenDataset.open(sys.argv[1], block_size=1024, stride=1)\n"
        "rng = np.random.default_rng(0)\n"
        "for _ in range(50):\n    data[rng.integers(0, len(data), size=32)]\n"
        "order = data.sampler(seed=3, rank=1, world_size=4)\n"
        "it = iter(order)\n"
        "picked = [next(it) for _ in range(1000)]\n"
        "print(len(data), tracemalloc.get_traced_memory()[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code, os.fspath(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    samples, peak = map(int, done.stdout.split())
    assert samples == n - 1024 + 1
    assert peak < 20_000_000, peak  # a few MB whatever the number of samples (an index array would be 8 GB)
