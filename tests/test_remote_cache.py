"""The local cache of remote store files: content-addressed, verified, bounded (LRU), shared by processes.

No object storage needed: downloads are functions writing bytes.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time

import pytest

from mmtok.base.errors import CorruptStoreError, StoreError
from mmtok.remote import FileCache, is_remote


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def writer(data: bytes, calls: list | None = None):
    def download(out):
        if calls is not None:
            calls.append(1)
        out.write(data[: len(data) // 2])
        out.write(data[len(data) // 2:])
    return download


def test_fetched_once_then_served_from_the_cache(tmp_path):
    cache = FileCache(tmp_path, 10_000)
    data, calls = b"x" * 300, []
    path = cache.get(sha(data), len(data), writer(data, calls), "s3://b/f")
    assert open(path, "rb").read() == data
    assert cache.get(sha(data), len(data), writer(data, calls), "s3://b/f") == path
    assert cache.lookup(sha(data)) == path and len(calls) == 1


def test_wrong_bytes_are_refused_and_leave_nothing(tmp_path):
    cache = FileCache(tmp_path, 10_000)
    with pytest.raises(CorruptStoreError, match="s3://b/shard: downloaded bytes have sha256"):
        cache.get(sha(b"right"), 5, writer(b"wrong"), "s3://b/shard")
    assert os.listdir(cache.objects) == [] and cache.lookup(sha(b"right")) is None


def test_least_recently_used_files_are_evicted_to_stay_under_the_limit(tmp_path):
    cache = FileCache(tmp_path, 250)
    blobs = [bytes([i]) * 100 for i in range(4)]
    for blob in blobs[:2]:
        cache.get(sha(blob), 100, writer(blob), "f")
        time.sleep(0.01)
    cache.lookup(sha(blobs[0]))  # used again: now blobs[1] is the least recently used
    time.sleep(0.01)
    cache.get(sha(blobs[2]), 100, writer(blobs[2]), "f")
    assert cache.lookup(sha(blobs[1])) is None
    assert cache.lookup(sha(blobs[0])) and cache.lookup(sha(blobs[2]))
    assert cache.total_bytes() <= 250
    with pytest.raises(StoreError, match="do not fit the remote-store cache of 250 bytes"):
        cache.get(sha(b"y" * 300), 300, writer(b"y" * 300), "s3://b/big")


def _fetch(folder, data, log):
    cache = FileCache(folder, 10_000)

    def download(out):
        with open(log, "a") as f:
            f.write("x")
        time.sleep(0.2)  # long enough for the other processes to arrive and wait
        out.write(data)

    return cache.get(sha(data), len(data), download, "f")


def test_processes_sharing_the_cache_download_each_file_once(tmp_path):
    data = os.urandom(5000)
    log = tmp_path / "downloads.log"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        paths = pool.starmap(_fetch, [(str(tmp_path / "cache"), data, str(log))] * 3)
    assert len(set(paths)) == 1 and open(paths[0], "rb").read() == data
    assert log.read_text() == "x"


def test_urls_and_paths():
    assert is_remote("s3://bucket/corpus.mmtok") and is_remote("gs://b/c")
    assert not is_remote("corpus.mmtok") and not is_remote("file:///tmp/x") and not is_remote(b"s3://x")
