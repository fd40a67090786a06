"""The threaded import: decompression ahead, files written/hashed/fsynced on helper threads, the stream hashed apart.

Each helper must end with the import (success or error), an error on a helper
must reach the caller as the usual one-line error at the right place, and every
restored file must be durable before the manifest that names it.
"""

from __future__ import annotations

import errno
import os
import threading

import pytest

from mmtok.base.errors import CacheError, StoreError
from mmtok.cache import filewriter, gzipcodec
from mmtok.cache.export import export_store
from mmtok.cache.hashing import BackgroundSha256
from mmtok.cache.importer import import_cache
from mmtok.cache.readahead import ReadAhead
from mmtok.store.build import build
from storetools import snapshot


@pytest.fixture(scope="module")
def store(tmp_path_factory, real_text):
    folder = tmp_path_factory.mktemp("pipe")
    lines = [line for line in real_text[:600_000].splitlines() if line.strip()]
    (folder / "in.txt").write_text("\n".join(lines), encoding="utf-8")
    return build(folder / "in.txt", folder / "s.mmtok", line_by_line=True, shard_tokens=20_000,
                 chunk_bytes=50_000)


def _helpers() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("mmtok-") and t.is_alive())


@pytest.mark.parametrize("codec", ["gzip", "gzip module", "zstd", "none"])
def test_imports_back_and_no_helper_thread_outlives_it(codec, store, tmp_path, monkeypatch):
    if codec == "gzip module":  # the path without zlib-ng
        monkeypatch.setattr(gzipcodec, "accelerator", lambda: None)
        codec = "gzip"
    cache = tmp_path / f"c.{codec}"
    export_store(store, cache, codec=codec)
    assert len(store.shards) >= 4
    back = import_cache(cache, tmp_path / "back.mmtok").store
    assert snapshot(back.path) == snapshot(store.path)
    assert _helpers() == []
    data = cache.read_bytes()
    for damaged, what in ((data[: len(data) * 2 // 3], "truncated"),
                          (data[:-200] + bytes(b ^ 0x5A for b in data[-200:]), None)):
        cache.write_bytes(damaged)
        with pytest.raises(CacheError, match=what):
            import_cache(cache, tmp_path / "bad.mmtok")
        assert _helpers() == []
        assert sorted(os.listdir(tmp_path)) == ["back.mmtok", f"c.{codec}"]


def test_every_restored_file_is_fsynced_before_the_manifest(store, tmp_path, monkeypatch):
    cache = tmp_path / "c.tar.gz"
    export_store(store, cache)
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append(os.path.relpath(path, os.path.dirname(os.path.dirname(path)))
                      if "/shards/" in path else os.path.basename(path))
        real_fsync(fd)

    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to name the file of a descriptor")
    monkeypatch.setattr(os, "fsync", recording_fsync)
    back = import_cache(cache, tmp_path / "back.mmtok").store
    files = sorted(os.path.join("shards", name) for name in os.listdir(os.path.join(back.path, "shards")))
    manifest_at = synced.index("manifest.json")
    assert sorted(name for name in synced[:manifest_at] if name.startswith("shards")) == files
    assert "tokenizer.json" in synced[:manifest_at]


def test_a_full_disk_on_the_writer_thread_is_one_line_and_leaves_nothing(store, tmp_path, monkeypatch):
    cache = tmp_path / "c.tar.gz"
    export_store(store, cache)
    writes = {"n": 0}

    class FullDisk:
        def __init__(self, file):
            self._file = file

        def write(self, data):
            writes["n"] += 1
            if writes["n"] == 5:  # on the writer thread, inside the second shard
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self._file.write(data)

        def __getattr__(self, name):
            return getattr(self._file, name)

    real_open = open
    monkeypatch.setattr(filewriter, "open", lambda path, mode: FullDisk(real_open(path, mode)), raising=False)
    with pytest.raises(StoreError, match="import failed, nothing was left there .No space left on device") as caught:
        import_cache(cache, tmp_path / "back.mmtok")
    assert "\n" not in str(caught.value)
    assert writes["n"] == 5
    assert sorted(os.listdir(tmp_path)) == ["c.tar.gz"]
    assert _helpers() == []


class _Pieces:
    def __init__(self, pieces, error=None):
        self.pieces, self.error, self.calls = list(pieces), error, 0

    def read(self, n):
        self.calls += 1
        if self.pieces:
            return self.pieces.pop(0)[:n]
        if self.error is not None:
            raise self.error
        return b""


def test_read_ahead_gives_the_stream_in_order_then_its_error_where_it_broke():
    ahead = ReadAhead(_Pieces([b"abc", b"defg", b"h"], CacheError("x: corrupt gzip data")), piece=4, depth=2)
    got = [ahead.read(2), ahead.read(5), ahead.read(4), ahead.read(4)]
    assert got == [b"ab", b"c", b"defg", b"h"]
    with pytest.raises(CacheError, match="corrupt gzip data"):
        ahead.read(4)
    assert ahead.read(4) == b""
    ahead.close()
    assert _helpers() == []


def test_read_ahead_stays_bounded_and_closes_mid_stream():
    source = _Pieces([bytes([i % 256]) * 8 for i in range(1000)])
    ahead = ReadAhead(source, piece=8, depth=3)
    assert ahead.read(8) == bytes(8)
    threading.Event().wait(0.2)  # let the helper run ahead as far as it may
    assert source.calls <= 1 + 3 + 1  # the piece handed over, `depth` waiting, one in the helper's hands
    ahead.close()
    assert _helpers() == []


def test_background_sha256_equals_hashlib():
    import hashlib

    pieces = [os.urandom(n) for n in (0, 1, 5000, 1 << 20, 77)]
    sha = BackgroundSha256(depth=2)
    for piece in pieces:
        sha.update(memoryview(piece))
    assert sha.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    sha.close()
    assert _helpers() == []
    assert sha.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()  # still answers once closed
