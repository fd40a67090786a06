"""Stores on object storage, against a local S3 endpoint (moto's server on 127.0.0.1, started here).

Partitions built to s3://, committed there, read back through the bounded local
cache (several processes at once), equal to the local store. Marker ``s3``,
extra ``s3``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

import numpy as np
import pytest

import mmtok
from mmtok.base.errors import CorruptStoreError, StoreError
from mmtok.inputs.sources import resolve_source
from mmtok.inputs.split import split_sources
from mmtok.remote import FileCache, filesystem
from mmtok.tokenize.tokenizer import default_tokenizer

pytestmark = pytest.mark.s3
moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

SMALL = {"shard_tokens": 20_000, "chunk_bytes": 16_384}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with a fresh bucket; credentials and endpoint in the environment."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = dict(os.environ)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    fs, _ = filesystem("s3://corpora")
    fs.mkdir("corpora")
    yield os.environ["AWS_ENDPOINT_URL"]
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, docs_prose):
    folder = tmp_path_factory.mktemp("s3-inputs")
    (folder / "prose.txt").write_text(docs_prose[:300_000], encoding="utf-8")
    lines = [line for line in docs_prose[300_000:].splitlines() if line.strip()]
    (folder / "lines.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(folder / "prose.txt"), str(folder / "lines.txt")]


@pytest.fixture(scope="module")
def local(inputs, tmp_path_factory):
    return mmtok.build(inputs, tmp_path_factory.mktemp("s3-local") / "local.mmtok", line_by_line=None, **SMALL)


@pytest.fixture(scope="module")
def remote(endpoint, inputs):
    """Three partitions built straight to s3:// (one retried), committed there."""
    url = "s3://corpora/docs.mmtok"
    parts = split_sources([resolve_source(p) for p in inputs], 3, cut_rules=default_tokenizer().cut_rules)
    for rank, part in enumerate(parts):
        mmtok.build_partition(part, url, rank, **SMALL)
    mmtok.build_partition(parts[1], url, 1, **SMALL)  # a retried task overwrites its partition
    return url


def test_partitions_committed_on_s3_equal_the_local_build(remote, local, tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(StoreError, match="not an mmtok store"):
        mmtok.open(remote)  # nothing is readable before the commit
    store = mmtok.commit(remote, expect=3)
    assert len(store.manifest["build"]["partitions"]) == 3
    fs, path = filesystem(remote)
    assert not fs.exists(path + "/partitions")
    assert np.array_equal(store.tokens[:], local.tokens[:])
    ends = lambda s: np.concatenate([s.shard_docs(i) for i in range(len(s.shards))])
    assert np.array_equal(ends(store), ends(local))
    assert mmtok.commit(remote).num_tokens == store.num_tokens  # committing again changes nothing
    data = mmtok.TokenDataset.open(remote, block_size=128)
    mine = mmtok.TokenDataset.open(local.path, block_size=128)
    assert len(data) == len(mine)
    picks = np.random.default_rng(0).choice(len(data), 50, replace=False)
    assert np.array_equal(data[picks], mine[picks])
    assert data.decode(3) == mine.decode(3)


def _read_all(url, cache_folder, max_bytes, out):
    """In another process: read every shard through a small shared cache; report a hash and the cache size."""
    os.environ["MMTOK_REMOTE_CACHE"] = cache_folder
    os.environ["MMTOK_REMOTE_CACHE_BYTES"] = str(max_bytes)
    store = mmtok.open(url)
    peak, total = 0, 0
    for i in range(len(store.shards)):
        total += int(np.asarray(store.shard_tokens(i), dtype=np.int64).sum())
        peak = max(peak, FileCache().total_bytes())
    out.put((total, peak))


def test_reading_a_store_larger_than_the_cache_from_several_processes(remote, local, tmp_path):
    store = mmtok.commit(remote, expect=3)
    limit = 2 * (max(s["tokens"] for s in store.shards) * 2 + 4096)  # two shards' worth
    assert store.num_tokens * 2 > 2 * limit  # the store is much larger than the cache
    folder = str(tmp_path / "shared-cache")
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    readers = [context.Process(target=_read_all, args=(remote, folder, limit, out)) for _ in range(3)]
    for reader in readers:
        reader.start()
    results = [out.get(timeout=300) for _ in readers]
    for reader in readers:
        reader.join(60)
    expected = int(local.tokens[:].astype(np.int64).sum())
    assert [total for total, _ in results] == [expected] * 3
    assert all(peak <= limit for _, peak in results)
    assert FileCache(folder, limit).total_bytes() <= limit
    assert not [n for n in os.listdir(os.path.join(folder, "objects")) if n.startswith(".tmp-")]


def test_a_damaged_download_is_refused_and_not_cached(endpoint, local, tmp_path, monkeypatch):
    from mmtok.remote import upload_folder

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    url = "s3://corpora/damaged.mmtok"
    upload_folder(local.path, url, last=("manifest.json",))
    fs, path = filesystem(url)
    name = f"{path}/shards/{local.shards[1]['name']}.tokens.npy"
    data = bytearray(fs.cat_file(name))
    data[-1] ^= 0xFF
    fs.pipe_file(name, bytes(data))
    store = mmtok.open(url)
    assert np.array_equal(store.shard_tokens(0), local.shard_tokens(0))
    with pytest.raises(CorruptStoreError, match=r"damaged.mmtok/shards/000001.tokens.npy: downloaded bytes have sha256"):
        store.shard_tokens(1)
    cached = os.listdir(tmp_path / "cache" / "objects")
    assert local.shards[1]["tokens_sha256"] not in cached and not [n for n in cached if n.startswith(".tmp-")]


def test_export_and_import_through_s3(endpoint, local, tmp_path, monkeypatch):
    from storetools import snapshot

    from mmtok.cache import export_store, import_cache

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    summary = export_store(local, "s3://corpora/exports/docs.tar.gz")
    assert summary["path"] == "s3://corpora/exports/docs.tar.gz" and summary["tokens"] == local.num_tokens
    store, _ = import_cache("s3://corpora/exports/docs.tar.gz", tmp_path / "back.mmtok")
    assert snapshot(store.path) == snapshot(local.path)  # byte for byte
    remote_store, _ = import_cache("s3://corpora/exports/docs.tar.gz", "s3://corpora/imported.mmtok")
    assert remote_store.path == "s3://corpora/imported.mmtok"
    assert np.array_equal(mmtok.open("s3://corpora/imported.mmtok").tokens[:], local.tokens[:])
    with pytest.raises(mmtok.StoreExistsError):
        import_cache("s3://corpora/exports/docs.tar.gz", "s3://corpora/imported.mmtok")
