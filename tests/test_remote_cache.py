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


def _fetch_many(folder, limit, seed, blobs, started):
    """In another process: fetch ``blobs`` in a shuffled order, each written slowly in pieces."""
    import random

    cache = FileCache(folder, limit)
    order = list(range(len(blobs)))
    random.Random(seed).shuffle(order)
    started.wait()

    def slow(data):
        def download(out):
            for lo in range(0, len(data), 100):
                out.write(data[lo : lo + 100])
                time.sleep(0.002)
        return download

    for i in order * 2:
        for _ in range(10):  # another process may evict the file before it is opened here (readers retry so)
            try:
                with open(cache.get(sha(blobs[i]), len(blobs[i]), slow(blobs[i]), f"s3://b/{i}"), "rb") as f:
                    assert f.read() == blobs[i]
                break
            except FileNotFoundError:
                continue
        else:
            raise AssertionError(f"blob {i} evicted ten times before it could be opened")


def test_the_bound_holds_with_downloads_in_flight_in_several_processes(tmp_path):
    """Four processes download files of 300-700 bytes into a 1,500-byte cache at once; a watcher
    takes the cache's lock every few milliseconds and measures objects plus partial downloads."""
    limit, folder = 1500, str(tmp_path / "cache")
    blobs = [os.urandom(300 + 50 * i) for i in range(9)]
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    workers = [context.Process(target=_fetch_many, args=(folder, limit, seed, blobs, started)) for seed in range(4)]
    for worker in workers:
        worker.start()
    cache = FileCache(folder, limit)
    started.set()
    peak, looks, in_flight = 0, 0, 0
    while any(worker.is_alive() for worker in workers):
        with cache.locked():
            used = cache.used_bytes()
            downloading = len(os.listdir(cache.incoming))
        peak, looks, in_flight = max(peak, used), looks + 1, max(in_flight, downloading)
        time.sleep(0.003)
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert looks > 20 and in_flight >= 2  # the watcher saw several downloads running at once
    assert 0 < peak <= limit
    assert os.listdir(cache.incoming) == [] and os.listdir(cache.reservations.folder) == []


def test_a_failed_download_gives_its_room_back(tmp_path):
    cache = FileCache(tmp_path, 1000)

    def broken(out):
        out.write(b"x" * 400)
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        cache.get(sha(b"y" * 800), 800, broken, "s3://b/f")
    assert os.listdir(cache.incoming) == [] and os.listdir(cache.reservations.folder) == []
    data = os.urandom(1000)  # the whole cache: possible only if nothing is still reserved
    assert open(cache.get(sha(data), 1000, writer(data), "s3://b/g"), "rb").read() == data


def test_a_download_longer_than_listed_is_cut_off(tmp_path):
    cache = FileCache(tmp_path, 1000)
    with pytest.raises(CorruptStoreError, match="s3://b/f: the download is longer than the 100 bytes"):
        cache.get(sha(b"z" * 100), 100, writer(b"z" * 150), "s3://b/f")
    assert os.listdir(cache.incoming) == []


def _hang(folder):
    cache = FileCache(folder, 1000)

    def download(out):
        out.write(b"x" * 10)
        time.sleep(600)

    cache.get(sha(b"a" * 900), 900, download, "s3://b/hung")


def test_the_room_of_a_killed_download_is_taken_back(tmp_path):
    context = multiprocessing.get_context("spawn")
    hung = context.Process(target=_hang, args=(str(tmp_path),))
    hung.start()
    cache = FileCache(tmp_path, 1000)
    deadline = time.monotonic() + 60
    while not os.listdir(cache.incoming) and time.monotonic() < deadline:
        time.sleep(0.01)
    with cache.locked():
        assert cache.reservations.total() == 900  # held while its owner lives
    hung.kill()
    hung.join()
    data = os.urandom(500)
    assert open(cache.get(sha(data), 500, writer(data), "s3://b/g"), "rb").read() == data
    assert os.listdir(cache.incoming) == [] and len(os.listdir(cache.reservations.folder)) == 0
