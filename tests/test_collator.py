"""mmtok.torch.Collator and the sample formats: padding, labels, masks, position ids, cu_seqlens, DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest

import mmtok
from mmtok import TokenDataset
from mmtok.base.errors import InputError
from mmtok.torch import Collator, collate

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTOK_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def rows_store(tmp_path_factory, docs_prose):
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:200]
    return mmtok.build(None, tmp_path_factory.mktemp("rows") / "s.mmtok", texts=rows, shard_tokens=3_000)


def test_output_formats_hold_the_same_tokens(rows_store):
    plain = TokenDataset.open(rows_store.path, block_size=64)
    as_torch = TokenDataset.open(rows_store.path, block_size=64, output="torch")
    as_dict = TokenDataset.open(rows_store.path, block_size=64, output="dict", position_ids=True)
    sample = as_torch[3]
    assert isinstance(sample, torch.Tensor) and sample.dtype == torch.int64
    np.testing.assert_array_equal(sample.numpy(), plain[3])
    d = as_dict[3]
    assert set(d) == {"input_ids", "labels", "attention_mask", "position_ids"}
    np.testing.assert_array_equal(d["input_ids"], plain[3])
    np.testing.assert_array_equal(d["labels"], plain[3])  # eos included: it is a target
    assert d["labels"][-1] == rows_store.eos_id or len(d["labels"]) == 64
    np.testing.assert_array_equal(d["position_ids"], np.arange(len(plain[3])))
    assert isinstance(as_torch[0:4], torch.Tensor) and as_torch[0:4].shape == plain[0:4].shape


def test_padding_is_masked_by_position_and_eos_stays_a_target(rows_store):
    ds = TokenDataset.open(rows_store.path, block_size=64)  # pads with eos by default
    batch = ds.collator()([ds[i] for i in range(8)])
    lengths = [len(ds[i]) for i in range(8)]
    eos = rows_store.eos_id
    for r, n in enumerate(lengths):
        assert batch["attention_mask"][r].sum().item() == n
        assert (batch["labels"][r, n:] == -100).all() and (batch["input_ids"][r, n:] == eos).all()
        np.testing.assert_array_equal(batch["labels"][r, :n].numpy(), ds[r])
    short = [r for r, n in enumerate(lengths) if n < 64]
    assert short and all(batch["labels"][r, lengths[r] - 1] == eos for r in short)  # the document's own eos is learned


def test_samples_of_every_format_collate_alike(rows_store):
    formats = {out: TokenDataset.open(rows_store.path, block_size=64, output=out) for out in ("numpy", "torch", "dict")}
    batches = {out: ds.collator()([ds[i] for i in range(5)]) for out, ds in formats.items()}
    lists = Collator(pad_id=formats["numpy"].pad_id)([formats["numpy"][i].tolist() for i in range(5)])
    for batch in (*batches.values(), lists):
        for key in ("input_ids", "labels", "attention_mask"):
            assert torch.equal(batch[key], batches["numpy"][key])


def test_own_labels_are_kept():
    batch = Collator(pad_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8]}])
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]


def test_position_ids_and_cu_seqlens_of_packed_rows(rows_store):
    ds = TokenDataset.open(rows_store.path, block_size=128, packing="bfd", output="dict", position_ids=True)
    picked = [ds[i] for i in range(6)]
    batch = ds.collator(position_ids=True, cu_seqlens=True)(picked)
    width = batch["input_ids"].shape[1]
    bounds = batch["cu_seqlens"].tolist()
    assert batch["cu_seqlens"].dtype == torch.int32 and bounds[0] == 0 and bounds[-1] == 6 * width
    # Reference: segments are the documents of each row (from the dataset), then the row's padding.
    expected = []
    for r, sample in enumerate(picked):
        starts = ds.document_starts(r).tolist() + ([len(sample["input_ids"])] if len(sample["input_ids"]) < width else [])
        expected += [r * width + s for s in starts]
        np.testing.assert_array_equal(batch["position_ids"][r, : len(sample["input_ids"])].numpy(), sample["position_ids"])
    assert bounds == expected + [6 * width]
    assert batch["max_seqlen"] == max(np.diff(bounds))


def test_line_by_line_rows_are_one_document_each(rows_store):
    ds = TokenDataset.open(rows_store.path, block_size=64)
    batch = ds.collator(position_ids=True)([ds[0], ds[1]])
    n = len(ds[0])
    assert batch["position_ids"][0, :n].tolist() == list(range(n))


def test_mistakes_get_clear_errors(rows_store):
    with pytest.raises(InputError, match="sample 0 carries no document boundaries"):
        Collator(position_ids=True)([np.array([1, 2, 3])])
    with pytest.raises(InputError, match="without 'input_ids'"):
        Collator()([{"ids": [1]}])
    with pytest.raises(InputError, match="empty list"):
        collate([])
    with pytest.raises(InputError, match="1-D sequence of integer ids"):
        Collator()([np.zeros((2, 2), dtype=np.int64)])
    with pytest.raises(InputError, match="3 input_ids but 2 labels"):
        Collator()([{"input_ids": [1, 2, 3], "labels": [1, 2]}])


def test_pad_to_multiple_of():
    batch = Collator(pad_id=0, pad_to_multiple_of=8)([[1, 2, 3], [4]])
    assert batch["input_ids"].shape == (2, 8)


@pytest.mark.parametrize("kind", ["bulk", "lines", "packed"])
def test_dataloader_with_two_workers(rows_store, kind):
    from torch.utils.data import DataLoader

    options = {"bulk": {"line_by_line": False}, "lines": {}, "packed": {"packing": "bfd"}}[kind]
    ds = TokenDataset.open(rows_store.path, block_size=32, output="dict", position_ids=True, **options)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=ds.collator(position_ids=True),
                        sampler=ds.sampler(seed=1))
    seen = 0
    for batch in loader:
        assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape
        seen += batch["input_ids"].shape[0]
    assert seen == len(ds)
