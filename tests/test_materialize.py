"""materialize, save and `mmtok merge`: the new store equals the view sample by sample, verifies, streams, is atomic."""

from __future__ import annotations

import json
import os
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner
from test_merge import csv_store, distinct_rows, random_documents, synthetic_store

from mmtok import TokenDataset, blend, merge_datasets
from mmtok.base.errors import StoreError, StoreExistsError
from mmtok.cli import main
from mmtok.store.verify import verify_store
from mmtok.views.materialize import materialize

EOS = 50256
BLOCK = 64


@pytest.fixture(scope="module")
def stores(tmp_path_factory, docs_prose):
    folder = tmp_path_factory.mktemp("materialize")
    paragraphs = [p.strip() for p in docs_prose.split("\n\n") if p.strip()]
    small = csv_store(folder, "small", distinct_rows(paragraphs, "small", 1_000), shard_tokens=9_000)
    large = csv_store(folder, "large", distinct_rows(paragraphs, "large", 4_000, 300), shard_tokens=30_000)
    return small, large


def _assert_same_samples(store_path, view):
    """The store read back as documents cut at the view's block size holds exactly the view's samples."""
    back = TokenDataset.open(store_path, block_size=view.block_size)
    assert back.line_by_line and len(back) == len(view)
    everything = np.arange(len(view))
    rows, lengths = back.get_batch(everything, return_lengths=True)
    expected, expected_lengths = view.get_batch(everything, return_lengths=True)
    np.testing.assert_array_equal(lengths, expected_lengths)
    np.testing.assert_array_equal(rows, expected)
    for k in range(0, len(view), max(1, len(view) // 50)):
        np.testing.assert_array_equal(back[k], view[k])


def test_a_materialised_merge_is_the_view_and_verifies(tmp_path, stores):
    small, large = (TokenDataset.open(s, block_size=BLOCK) for s in stores)
    view = merge_datasets([small, large], seed=21)
    store = materialize(view, tmp_path / "merged.mmtok", shard_tokens=20_000)
    assert len(store.shards) > 2 and store.num_documents == 2_000
    assert verify_store(store.path)["leftovers"] == []
    _assert_same_samples(store.path, view)
    # Samples shorter than block_size are their whole original documents, eos included.
    which, inner = view.locate(np.arange(2_000))
    k = int(np.flatnonzero(view.sample_lengths(np.arange(2_000)) < BLOCK)[0])
    np.testing.assert_array_equal(store.documents[k], [small, large][which[k]].store.documents[int(inner[k])])
    entry = store.manifest["inputs"][0]
    assert len(store.manifest["inputs"]) == 1 and entry["kind"] == "merge" and entry["line_by_line"]
    assert entry["documents"] == 2_000 and entry["tokens"] == store.num_tokens and entry["block_size"] == BLOCK
    recorded = entry["view"]
    assert recorded["seed"] == 21 and recorded["equalize"] and recorded["counts"] == [1_000, 1_000]
    assert [source["path"] for source in recorded["inputs"]] == [stores[0].path, stores[1].path]
    assert {source["fingerprint"] for source in recorded["inputs"]} == {stores[0].fingerprint}
    assert store.manifest["tokenizer"] == stores[0].manifest["tokenizer"]


def test_bulk_windows_gain_one_eos_unless_they_end_with_it(tmp_path, stores):
    windows = TokenDataset.open(stores[0], block_size=BLOCK, stride=3, line_by_line=False)
    store = materialize(windows, tmp_path / "windows.mmtok")
    lengths = store.documents.lengths()
    ends_with_eos = windows.get_batch(np.arange(len(windows)))[:, -1] == EOS
    assert ends_with_eos.any() and not ends_with_eos.all()
    np.testing.assert_array_equal(lengths, BLOCK + ~ends_with_eos)
    assert store.manifest["inputs"][0]["kind"] == "samples"
    verify_store(store.path)
    _assert_same_samples(store.path, windows)


def test_a_materialised_blend_of_bulk_and_documents_is_the_view(tmp_path, stores):
    docs = TokenDataset.open(stores[0], block_size=BLOCK)
    bulk = TokenDataset.open(stores[1], block_size=BLOCK, line_by_line=False)
    view = blend([docs, bulk], [0.7, 0.3], num_samples=4_000, seed=8)
    store = materialize(view, tmp_path / "blend.mmtok", shard_tokens=50_000)
    verify_store(store.path)
    _assert_same_samples(store.path, view)
    recorded = store.manifest["inputs"][0]["view"]
    assert recorded["kind"] == "blend" and recorded["weights"] == pytest.approx([0.7, 0.3])
    assert recorded["draws"] == view.draws() and recorded["seed"] == 8
    assert [source["line_by_line"] for source in recorded["inputs"]] == [True, False]


def _peak_memory(view, path) -> tuple[int, int]:
    """Bytes written and peak bytes allocated (numpy included) while materialising ``view``."""
    tracemalloc.start()
    try:
        store = materialize(view, path, batch_tokens=1 << 15, shard_tokens=1 << 18)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    verify_store(store.path)
    picks = [0, len(view) // 2, len(view) - 1]
    np.testing.assert_array_equal(TokenDataset.open(store, block_size=view.block_size)[picks], view[picks])
    return store.num_tokens * store.dtype.itemsize, peak


def test_materialising_streams_in_constant_memory(tmp_path, stores):
    tokens, ends = random_documents(np.random.default_rng(2), 8_000_000)
    source = synthetic_store(tmp_path / "source.mmtok", stores[0], tokens, ends, shard_tokens=1 << 22)
    windows = TokenDataset.open(source, block_size=256)
    sparse = TokenDataset.open(source, block_size=256, stride=8_192)
    small_written, small_peak = _peak_memory(merge_datasets([windows, sparse], seed=1), tmp_path / "small.mmtok")
    big_written, big_peak = _peak_memory(merge_datasets([windows, sparse], equalize=False), tmp_path / "big.mmtok")
    assert big_written > 10 * small_written and big_written > 15_000_000
    # The peak (batches of 32 Ki tokens, 512 KiB shards) does not grow with the output.
    assert big_peak < small_peak + 1_000_000 and big_peak < big_written, (small_peak, big_peak, big_written)


def test_the_destination_appears_whole_or_not_at_all(tmp_path, stores, monkeypatch):
    view = merge_datasets([TokenDataset.open(s, block_size=BLOCK) for s in stores], seed=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("mine")
    with pytest.raises(StoreExistsError, match="already exists"):
        materialize(view, taken)
    assert os.listdir(taken) == ["file"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert materialize(view, empty).num_documents == 2_000
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk on fire")
        return type(view).get_batch(view, *args, **kwargs)

    monkeypatch.setattr(view, "get_batch", failing)
    with pytest.raises(StoreError, match="disk on fire"):
        materialize(view, tmp_path / "failed.mmtok", batch_tokens=BLOCK * 300, shard_tokens=5_000)
    assert sorted(os.listdir(tmp_path)) == ["empty", "taken"]  # no store, no temporary folder


def test_save_writes_a_cache_that_reads_back_as_the_view(tmp_path, stores):
    view = merge_datasets([TokenDataset.open(s, block_size=BLOCK) for s in stores], seed=4)
    summary = view.save(str(tmp_path / "merged.tar.gz"))
    assert summary["documents"] == 2_000
    assert [p.name for p in tmp_path.iterdir()] == ["merged.tar.gz"]  # the temporary store is gone
    back = TokenDataset(str(tmp_path / "merged.tar.gz"), from_cache=True, store=str(tmp_path / "imported"))
    assert back.block_size == BLOCK and back.line_by_line
    np.testing.assert_array_equal(back[:], view[:])


# ----------------------------------------------------------------------------- mmtok merge


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_cli_merge_equals_the_view_and_verifies(tmp_path, stores):
    out = tmp_path / "merged.mmtok"
    result = _invoke("merge", stores[0].path, stores[1].path, "-o", out, "--seed", 3, "--block-size", BLOCK,
                     "--shard-tokens", 25_000)
    assert result.exit_code == 0, result.output
    assert "2,000 samples" in result.output and "seed 3" in result.output
    view = merge_datasets([TokenDataset.open(s, block_size=BLOCK) for s in stores], seed=3)
    _assert_same_samples(out, view)
    verify = _invoke("verify", out)
    assert verify.exit_code == 0 and "OK" in verify.output
    info = json.loads(_invoke("info", out, "--json").output)
    assert info["documents"] == 2_000 and info["inputs"][0]["kind"] == "merge"


def test_cli_merge_all_samples_and_blends(tmp_path, stores):
    out = tmp_path / "all.mmtok"
    assert _invoke("merge", stores[0].path, stores[1].path, "-o", out, "--no-equalize", "-q", "--block-size",
                   BLOCK).exit_code == 0
    assert TokenDataset.open(out, block_size=BLOCK).num_subsets == 5_000
    out = tmp_path / "blend.mmtok"
    result = _invoke("merge", stores[0].path, stores[1].path, "-o", out, "--weights", "0.7,0.3", "--num-samples",
                     3_000, "--seed", 5, "--block-size", BLOCK)
    assert result.exit_code == 0, result.output
    view = blend([TokenDataset.open(s, block_size=BLOCK) for s in stores], [0.7, 0.3], num_samples=3_000, seed=5)
    _assert_same_samples(out, view)
    assert _invoke("verify", out).exit_code == 0


def test_cli_merge_errors(tmp_path, stores):
    a, b = stores[0].path, stores[1].path
    usage = _invoke("merge", a, b, "-o", tmp_path / "x", "--num-samples", 5)
    assert usage.exit_code == 2 and "--weights" in usage.output
    usage = _invoke("merge", a, b, "-o", tmp_path / "x", "--weights", "0.5,0.5", "--no-equalize")
    assert usage.exit_code == 2
    bad = _invoke("merge", a, b, "-o", tmp_path / "x", "--weights", "0.5,x")
    assert bad.exit_code == 2 and "0.5,x" in bad.output
    count = _invoke("merge", a, b, "-o", tmp_path / "x", "--weights", "1,2,3")
    assert count.exit_code == 2 and "3 weights" in count.output
    zero = _invoke("merge", a, b, "-o", tmp_path / "x", "--weights", "1,0")
    assert zero.exit_code == 2 and "positive" in zero.output
    existing = _invoke("merge", a, b, "-o", a)
    assert existing.exit_code == 1 and "already exists" in existing.output
    assert not (tmp_path / "x").exists()
