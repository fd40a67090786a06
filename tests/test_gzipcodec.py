"""gzip caches: zlib-ng when installed, the gzip module otherwise; standard gzip and deterministic either way."""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess

import numpy as np
import pytest

from mmtok.base.errors import CacheError
from mmtok.cache import gzipcodec
from mmtok.cache.export import export_store
from mmtok.cache.importer import import_cache
from mmtok.store.build import build
from storetools import snapshot


@pytest.fixture(scope="module")
def store(tmp_path_factory, real_text):
    folder = tmp_path_factory.mktemp("gz")
    (folder / "in.txt").write_text(real_text[:1_500_000], encoding="utf-8")
    return build(folder / "in.txt", folder / "s.mmtok", shard_tokens=100_000)


@pytest.fixture(params=["zlib-ng", "gzip module"])
def codec(request, monkeypatch):
    if request.param == "zlib-ng":
        pytest.importorskip("zlib_ng")
    else:
        monkeypatch.setattr(gzipcodec, "accelerator", lambda: None)
    return request.param


def test_export_is_standard_gzip_deterministic_and_imports_back(codec, store, tmp_path):
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    export_store(store, first)
    export_store(store, second)
    assert first.read_bytes() == second.read_bytes()
    raw = gzip.decompress(first.read_bytes())  # any gzip reader opens it: the standard library's here
    assert len(raw) > store.num_tokens * 2
    back = import_cache(first, tmp_path / "back.mmtok").store
    assert snapshot(back.path) == snapshot(store.path)


@pytest.mark.parametrize("level", [5, 6])
def test_zlib_ng_bytes_do_not_depend_on_the_thread_count(store, level):
    pytest.importorskip("zlib_ng")
    data = np.concatenate([store.shard_tokens(i) for i in range(len(store.shards))]).tobytes()
    outputs = []
    for threads in (1, 2, 3):
        sink = io.BytesIO()
        writer = gzipcodec.gzip_writer(sink, level, threads)
        for start in range(0, len(data), 700_000):  # writes that do not line up with the 1 MiB blocks
            writer.write(data[start : start + 700_000])
        writer.close()
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert gzip.decompress(outputs[0]) == data
    # no worse than 2 % larger than the gzip module at the same level
    assert len(outputs[0]) <= 1.02 * len(gzip.compress(data, level, mtime=0))


def test_default_level_is_within_5_percent_of_gzip_6_and_passes_gzip_t(codec, store, tmp_path):
    default, plain = tmp_path / "d.tar.gz", tmp_path / "plain.msgpack"
    summary = export_store(store, default)
    assert summary["level"] == 5
    export_store(store, plain, codec="none")
    gzip6 = len(gzip.compress(plain.read_bytes(), 6, mtime=0))
    assert default.stat().st_size <= 1.05 * gzip6, (default.stat().st_size, gzip6)
    assert gzip.decompress(default.read_bytes()) == plain.read_bytes()
    if shutil.which("gzip"):
        subprocess.run(["gzip", "-t", str(default)], check=True)


def test_caches_cross_between_the_two_paths(store, tmp_path, monkeypatch):
    pytest.importorskip("zlib_ng")
    accelerated = tmp_path / "fast.tar.gz"
    export_store(store, accelerated)
    with monkeypatch.context() as patched:
        patched.setattr(gzipcodec, "accelerator", lambda: None)
        plain = tmp_path / "plain.tar.gz"
        export_store(store, plain)
        from_fast = import_cache(accelerated, tmp_path / "x.mmtok").store
    from_plain = import_cache(plain, tmp_path / "y.mmtok").store
    assert snapshot(from_fast.path) == snapshot(from_plain.path) == snapshot(store.path)


def test_damaged_gzip_is_a_clear_error(codec, store, tmp_path):
    path = tmp_path / "c.tar.gz"
    export_store(store, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="c.tar.gz"):
        import_cache(path, tmp_path / "bad.mmtok")
    path.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(CacheError, match="truncated|corrupt"):
        import_cache(path, tmp_path / "bad2.mmtok")
