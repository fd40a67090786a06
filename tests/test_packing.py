"""Packing (best-fit decreasing) and document starts: against references that scan for eos or pack naively."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmtok
from mmtok import TokenDataset
from mmtok.base.errors import InputError, StoreError
from mmtok.views import packing
from mmtok.views.packing import pack_bfd

WORDS = ["the", " cat", " sat", ".", "\n", " on", " a", " mat", "!", " x"]


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))


def reference_bfd(lengths, block_size):
    """Best-fit decreasing written the obvious way (a scan of every open row per item): the rows' contents."""
    items = []
    for doc, n in enumerate(lengths):
        start = sum(lengths[:doc])
        full, rest = divmod(n, block_size)
        items += [(block_size, start + k * block_size) for k in range(full)]
        if rest:
            items.append((rest, start + full * block_size))
    rows = []  # [room, pieces]
    for size, start in sorted(items, key=lambda item: -item[0]):  # sorted() is stable: ties in document order
        fits = [row for row in rows if row[0] >= size]
        if fits:
            best = min(fits, key=lambda row: row[0])  # the least room; of equal rooms, the first opened
        else:
            best = [block_size, []]
            rows.append(best)
        best[0] -= size
        best[1].append((start, size))
    return sorted(tuple(row[1]) for row in rows)


def rows_of(row_offsets, starts, lengths):
    return [tuple(zip(starts[a:b].tolist(), lengths[a:b].tolist())) for a, b in zip(row_offsets[:-1], row_offsets[1:])]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=0, max_size=60), st.integers(1, 24), st.integers(0, 3))
def test_bfd_covers_every_token_once_and_fills_rows_like_the_reference(lengths, block_size, seed):
    row_offsets, starts, sizes = pack_bfd(np.array(lengths, dtype=np.int64), block_size, seed)
    rows = rows_of(row_offsets, starts, sizes)
    # every token of every document exactly once
    covered = sorted((s, n) for row in rows for s, n in row)
    position = 0
    for s, n in covered:
        assert s == position and n >= 1
        position += n
    assert position == sum(lengths)
    # never more than block_size in a row; no empty row
    assert all(0 < sum(n for _, n in row) <= block_size for row in rows)
    # the same rows as best-fit decreasing done by hand (up to row order, which the seed decides)
    assert sorted(rows) == reference_bfd(lengths, block_size)
    # deterministic: the same seed gives the same bytes
    again = pack_bfd(np.array(lengths, dtype=np.int64), block_size, seed)
    for a, b in zip((row_offsets, starts, sizes), again):
        np.testing.assert_array_equal(a, b)


def test_a_document_no_longer_than_block_size_is_never_split():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=500)
    row_offsets, starts, sizes = pack_bfd(lengths, 100, 0)
    doc_starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    assert sorted(starts.tolist()) == sorted(doc_starts.tolist())  # one piece per document, at its start
    padding = (len(row_offsets) - 1) * 100 - lengths.sum()
    assert padding < 0.08 * lengths.sum()  # best-fit decreasing leaves little room on many small items


def test_other_seeds_reorder_rows_only():
    lengths = np.random.default_rng(1).integers(1, 50, size=300)
    a = rows_of(*pack_bfd(lengths, 64, 0))
    b = rows_of(*pack_bfd(lengths, 64, 1))
    assert a != b and sorted(a) == sorted(b)


def eos_scan_positions(row, eos_id):
    """Reference: positions count from 0 at the row start and right after every eos."""
    out, p = [], 0
    for j, token in enumerate(row):
        if j and row[j - 1] == eos_id:
            p = 0
        out.append(p)
        p += 1
    return out


def build(texts, shard_tokens):
    folder = tempfile.mkdtemp(prefix="mmtok-test-")
    return folder, mmtok.build(None, os.path.join(folder, "s.mmtok"), texts=texts, shard_tokens=shard_tokens)


documents = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=30).map("".join), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.integers(2, 40), st.integers(1, 40), st.sampled_from([7, 50, 10_000]))
def test_bulk_window_positions_equal_an_eos_scan(texts, block_size, stride, shard_tokens):
    folder, store = build(texts, shard_tokens)
    try:
        if store.num_tokens < block_size:
            return
        ds = TokenDataset.open(store.path, block_size=block_size, stride=stride, line_by_line=False,
                               output="dict", position_ids=True)
        batch = ds[:]
        for i in range(len(ds)):
            sample = ds[i]
            expected = eos_scan_positions(sample["input_ids"].tolist(), store.eos_id)
            assert sample["position_ids"].tolist() == expected
            assert batch["position_ids"][i].tolist() == expected
            starts = [j for j, p in enumerate(expected) if p == 0]
            assert ds.document_starts(i).tolist() == starts
    finally:
        shutil.rmtree(folder)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.integers(1, 40), st.integers(0, 2), st.sampled_from([7, 10_000]))
def test_packed_rows_hold_every_document_once_with_eos_scan_positions(texts, block_size, seed, shard_tokens):
    folder, store = build(texts, shard_tokens)
    try:
        ds = TokenDataset.open(store.path, block_size=block_size, packing="bfd", packing_seed=seed,
                               output="dict", position_ids=True)
        rows = [ds[i] for i in range(len(ds))]
        assert all(1 <= len(r["input_ids"]) <= block_size for r in rows)
        # the rows' tokens, split at eos, are the documents (long ones cut into pieces and rejoined)
        flat = np.concatenate([r["input_ids"] for r in rows])
        assert sorted(flat.tolist()) == sorted(store.tokens[:].tolist())
        pieces = sorted(tuple(r["input_ids"][s:e].tolist()) for r in rows
                        for s, e in zip(*_segments(r["position_ids"])))
        whole = [tuple(store.documents[d].tolist()) for d in range(store.num_documents)]
        expected = sorted(tuple(doc[k : k + block_size]) for doc in whole for k in range(0, len(doc), block_size))
        assert pieces == expected
        for r in rows:
            ids = r["input_ids"].tolist()
            # a row starts a segment at position 0 and after every eos (a cut long document fills a row alone)
            assert r["position_ids"].tolist() == eos_scan_positions(ids, store.eos_id)
        batch = ds[:]
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            assert batch["input_ids"][i, :n].tolist() == r["input_ids"].tolist()
            assert (batch["labels"][i, n:] == -100).all() and batch["attention_mask"][i].sum() == n
            assert batch["position_ids"][i, :n].tolist() == r["position_ids"].tolist()
    finally:
        shutil.rmtree(folder)


def _segments(positions):
    starts = np.flatnonzero(positions == 0)
    return starts, np.concatenate((starts[1:], [positions.shape[0]]))


@pytest.fixture
def docs_store(tmp_path, docs_prose):
    paragraphs = [p for p in docs_prose.split("\n\n") if p.strip()][:400]
    return mmtok.build(None, tmp_path / "docs.mmtok", texts=paragraphs, shard_tokens=5_000)


def test_packing_is_computed_once_and_mapped_afterwards(docs_store, monkeypatch, tmp_path):
    first = TokenDataset.open(docs_store.path, block_size=128, packing="bfd", packing_seed=3)
    files = os.listdir(tmp_path / "cache" / "packing")
    assert len(files) == 1 and "bfd-128-3" in files[0]

    def refuse(*args, **kwargs):
        raise AssertionError("packed again although the packing file exists")

    monkeypatch.setattr(packing, "pack_bfd", refuse)
    second = TokenDataset.open(docs_store.path, block_size=128, packing="bfd", packing_seed=3)
    np.testing.assert_array_equal(first[:], second[:])
    clone = pickle.loads(pickle.dumps(second))
    assert len(pickle.dumps(second)) < 2_000
    np.testing.assert_array_equal(clone[:], first[:])
    assert "packed (bfd, seed 3)" in repr(first)


def test_a_damaged_packing_file_is_named(docs_store, tmp_path):
    TokenDataset.open(docs_store.path, block_size=64, packing="bfd")
    (path,) = (tmp_path / "cache" / "packing").iterdir()
    np.save(path, np.arange(10, dtype=np.int64))
    with pytest.raises(StoreError, match="not an mmtok packing file.*delete it"):
        TokenDataset.open(docs_store.path, block_size=64, packing="bfd")


def test_options_that_do_not_apply_are_refused(docs_store, real_text_file, tmp_path):
    with pytest.raises(StoreError, match="packing='bfd' packs whole documents"):
        TokenDataset.open(docs_store.path, block_size=64, packing="bfd", line_by_line=False)
    with pytest.raises(InputError, match="packing='ffd'"):
        TokenDataset.open(docs_store.path, block_size=64, packing="ffd")
    with pytest.raises(InputError, match="output='tensor'"):
        TokenDataset.open(docs_store.path, output="tensor")
    with pytest.raises(InputError, match="pass output='dict'"):
        TokenDataset.open(docs_store.path, position_ids=True)
    bulk = TokenDataset.open(docs_store.path, block_size=64, line_by_line=False)
    with pytest.raises(InputError, match="output='dict', position_ids=True"):
        bulk.collator(position_ids=True)


def test_packed_datasets_are_not_merged(docs_store):
    packed = TokenDataset.open(docs_store.path, block_size=64, packing="bfd")
    plain = TokenDataset.open(docs_store.path, block_size=64)
    with pytest.raises(StoreError, match=r"datasets\[1\] .* is packed: merge the unpacked"):
        mmtok.merge_datasets([plain, packed])


def test_a_bad_training_option_is_refused_before_tokenizing(tmp_path):
    with pytest.raises(InputError, match="output='jax'"):
        TokenDataset(texts=["a", "b"], store=str(tmp_path / "s.mmtok"), output="jax")
    assert not (tmp_path / "s.mmtok").exists()
