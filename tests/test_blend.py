"""blend: token proportions at every prefix, repetition, determinism, default length, chunking, pickles."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from test_merge import csv_store, distinct_rows, random_documents, synthetic_store

from mmtok import TokenDataset, blend, merge_datasets
from mmtok.views.blending import BlendedDataset

BLOCK = 64


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, docs_prose):
    """A small line-by-line input (1,000 documents of 10..64 tokens) and a large bulk one (~47,000 windows)."""
    folder = tmp_path_factory.mktemp("blend")
    paragraphs = [p.strip() for p in docs_prose.split("\n\n") if p.strip()]
    rows = distinct_rows(paragraphs, "doc", 1_000)
    rows = [row[: 20 + (i * 37) % 400] for i, row in enumerate(rows)]  # lengths from a few tokens to past 64
    small = csv_store(folder, "docs", rows, shard_tokens=7_000)
    tokens, ends = random_documents(np.random.default_rng(1), 3_000_000)
    large = synthetic_store(folder / "bulk.mmtok", small, tokens, ends)
    return small, large


@pytest.fixture()
def docs(inputs):
    return TokenDataset.open(inputs[0], block_size=BLOCK)


@pytest.fixture()
def windows(inputs):
    return TokenDataset.open(inputs[1], block_size=BLOCK)


def _token_deviation(view: BlendedDataset, count: int) -> np.ndarray:
    """``|t_i - w_i T|`` after every prefix of ``count`` samples, one row per prefix, one column per input."""
    which, _ = view.locate(np.arange(count))
    lengths = view.sample_lengths(np.arange(count))
    per_input = np.zeros((count, len(view.inputs)))
    per_input[np.arange(count), which] = lengths
    tokens = np.cumsum(per_input, axis=0)
    return np.abs(tokens - np.asarray(view.weights) * tokens.sum(axis=1, keepdims=True))


def test_token_proportions_hold_at_every_prefix(docs, windows):
    assert len(windows) > 40 * len(docs)  # very different sizes
    for weights in ([0.7, 0.3], [0.3, 0.7]):
        view = blend([docs, windows], weights, num_samples=5_000, seed=3)
        lengths = view.sample_lengths(np.arange(5_000))
        assert lengths.min() < BLOCK // 4 and lengths.max() == BLOCK  # documents of very different lengths
        deviation = _token_deviation(view, 5_000)
        # Within one sample at every prefix; in fact within half of the longest sample (see mmtok.views.blending).
        assert deviation.max() <= BLOCK / 2 + 1e-6, deviation.max()
        tokens = view.sample_lengths(np.arange(5_000))
        share = tokens[view.locate(np.arange(5_000))[0] == 0].sum() / tokens.sum()
        assert abs(share - weights[0]) < BLOCK / tokens.sum()


def test_three_inputs_stay_within_the_documented_bound(docs, windows, inputs):
    strided = TokenDataset.open(inputs[1], block_size=BLOCK, stride=5)
    view = blend([docs, windows, strided], [0.6, 0.1, 0.3], num_samples=4_000, seed=1)
    deviation = _token_deviation(view, 4_000)
    bound = (1 + np.asarray(view.weights)) * BLOCK / 2  # (1 + w_i (n - 2)) L / 2 with n = 3: under one sample
    assert (deviation.max(axis=0) <= bound + 1e-6).all(), deviation.max(axis=0)


def test_equal_length_samples_follow_the_weights_within_half_a_sample(windows, inputs):
    other = TokenDataset.open(inputs[1], block_size=BLOCK, stride=3)
    view = blend([windows, other], [0.7, 0.3], num_samples=3_000, seed=0)
    which, _ = view.locate(np.arange(3_000))
    counts = np.cumsum(which == 0)
    assert np.abs(counts - 0.7 * np.arange(1, 3_001)).max() <= 0.5 + 1e-9


def test_samples_are_their_sources_and_small_inputs_repeat_pass_by_pass(docs, windows):
    view = blend([docs, windows], [0.7, 0.3], num_samples=6_000, seed=5)
    which, inner = view.locate(np.arange(6_000))
    batch, lengths = view.get_batch(np.arange(6_000), return_lengths=True)
    for k in range(0, 6_000, 7):
        expected = [docs, windows][which[k]][int(inner[k])]
        np.testing.assert_array_equal(view[k], expected)
        np.testing.assert_array_equal(batch[k, : lengths[k]], expected)
    draws = view.draws()
    assert draws == np.bincount(which, minlength=2).tolist() and draws[0] > 3 * len(docs)
    from_docs = inner[which == 0]
    passes = [from_docs[p * 1_000 : (p + 1) * 1_000] for p in range(draws[0] // 1_000)]
    for one in passes:  # every full pass is a permutation of the input, each pass a different one
        np.testing.assert_array_equal(np.sort(one), np.arange(1_000))
    assert not np.array_equal(passes[0], passes[1])
    assert len(set(inner[which == 1].tolist())) == draws[1]  # the large input is not repeated
    text = repr(view)
    assert f"repeated {draws[0] / 1_000:.1f}x" in text and "docs.mmtok" in text and "seed 5" in text


def test_same_seed_same_blend_another_seed_another(docs, windows):
    a = blend([docs, windows], [0.5, 0.5], num_samples=2_000, seed=9)
    b = blend([docs, windows], [0.5, 0.5], num_samples=2_000, seed=9)
    c = blend([docs, windows], [0.5, 0.5], num_samples=2_000, seed=10)
    np.testing.assert_array_equal(np.stack(a.locate(np.arange(2_000))), np.stack(b.locate(np.arange(2_000))))
    assert not np.array_equal(a.locate(np.arange(2_000))[1], c.locate(np.arange(2_000))[1])
    fresh = blend([docs, windows], [0.5, 0.5], num_samples=100)
    again = blend([docs, windows], [0.5, 0.5], num_samples=100, seed=fresh.seed)
    np.testing.assert_array_equal(fresh[:], again[:])


def test_default_length_stops_before_any_input_repeats(docs, windows):
    view = blend([docs, windows], [0.7, 0.3], seed=2)
    assert view.until_exhausted and "until the first input is exhausted" in repr(view)
    draws = view.draws()
    assert draws[0] == len(docs) and draws[1] < len(windows) and sum(draws) == len(view)
    longer = blend([docs, windows], [0.7, 0.3], num_samples=len(view) + 1, seed=2)
    np.testing.assert_array_equal(longer[: len(view)], view[:])
    assert longer.draws()[0] == len(docs) + 1  # the next sample would have repeated the documents


def test_the_interleave_does_not_depend_on_the_chunk_size(docs, windows, monkeypatch):
    expected = blend([docs, windows], [0.2, 0.8], num_samples=9_000, seed=4)
    whole = np.stack(expected.locate(np.arange(9_000)))
    monkeypatch.setattr(sys.modules["mmtok.views.blending"], "CHUNK", 1_000)
    small_steps = blend([docs, windows], [0.2, 0.8], num_samples=9_000, seed=4)
    np.testing.assert_array_equal(np.stack(small_steps.locate(np.arange(9_000))), whole)
    first_exhausted = blend([docs, windows], [0.7, 0.3], seed=2)
    monkeypatch.undo()
    default = blend([docs, windows], [0.7, 0.3], seed=2)
    assert len(first_exhausted) == len(default)
    np.testing.assert_array_equal(first_exhausted[:], default[:])


def test_pickles_are_small_and_workers_recompute_the_same_interleave(docs, windows):
    for view in (blend([docs, windows], [0.7, 0.3], num_samples=200_000, seed=1),
                 blend([docs, windows], [0.01, 0.99], seed=1)):
        view[len(view) - 1]  # the interleave is built in this process...
        data = pickle.dumps(view)
        assert len(data) < 10_000, len(data)  # ...but never pickled
        back = pickle.loads(data)
        picks = np.array([len(view) - 1, 0, 777, len(view) // 3])
        np.testing.assert_array_equal(back[picks], view[picks])
        assert back.draws() == view.draws()


def test_blends_nest_with_merges(docs, windows, inputs):
    merged = merge_datasets([docs, windows], seed=1)
    view = blend([merged, windows], [0.5, 0.5], num_samples=3_000, seed=2)
    which, inner = view.locate(np.arange(3_000))
    for k in (0, 1, 2_999, int(np.flatnonzero(which == 0)[-1])):
        np.testing.assert_array_equal(view[k], [merged, windows][which[k]][int(inner[k])])
    again = merge_datasets([view, docs], seed=3)
    assert len(again) == 2_000 and again[1_999].shape[0] <= BLOCK
    assert "a merge of 2 datasets" in repr(view)


def test_bad_weights_and_lengths(docs, windows):
    for weights, error in (([1.0], ValueError), ([0.5, 0.0], ValueError), ([1, -1], ValueError),
                           ([1, float("nan")], ValueError), ("0.5,0.5", TypeError), ([1, "a"], TypeError),
                           ([True, 1], TypeError)):
        with pytest.raises(error):
            blend([docs, windows], weights)
    with pytest.raises(ValueError, match="num_samples"):
        blend([docs, windows], [1, 1], num_samples=-1)
    with pytest.raises(TypeError):
        blend([docs, windows], [1, 1], num_samples=2.5)
    assert blend([docs, windows], [3, 1], num_samples=0).weights == (0.75, 0.25)
