"""Other stacks read mmtok's exports with their own code, and write what mmtok imports (pytest -m interop).

Needs the ``interop`` extra: megatron-core (IndexedDataset, IndexedDatasetBuilder,
with the CPU torch), datasets (load_from_disk, load_dataset("parquet"),
save_to_disk, to_parquet) and litdata (StreamingDataset with TokensLoader).
"""

from __future__ import annotations


import numpy as np
import pytest
from storetools import mixed_store

from mmtok.formats import export_format, import_format
from mmtok.store import verify_store

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def store(tmp_path_factory, docs_prose):
    return mixed_store(tmp_path_factory.mktemp("interop"), docs_prose[:30_000], docs_prose[30_000:60_000], "s.mmtok")


def documents(store):
    return [store.documents[i].tolist() for i in range(store.num_documents)]


def test_megatron_indexed_dataset_reads_the_export_and_the_linked_shards(store, tmp_path):
    pytest.importorskip("torch")
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    export_format(store, tmp_path / "corpus", "megatron")
    dataset = IndexedDataset(str(tmp_path / "corpus"))
    assert len(dataset) == store.num_documents
    assert [dataset[i].tolist() for i in range(len(dataset))] == documents(store)
    assert dataset.document_indices.tolist() == list(range(store.num_documents + 1))
    assert dataset[0].dtype == np.uint16

    export_format(store, tmp_path / "linked", "megatron", link=True)
    stream = store.tokens[:]
    for i, shard in enumerate(store.shards):
        linked = IndexedDataset(str(tmp_path / "linked" / shard["name"]))
        got = np.concatenate([linked[j] for j in range(len(linked))])
        lo, hi = int(store.token_starts[i]), int(store.token_starts[i + 1])
        assert np.array_equal(got, stream[lo:hi])


def test_megatron_builder_output_imports(tmp_path):
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 50000, size=n).tolist() + [50256] for n in (5, 0, 17, 1, 300)]
    builder = IndexedDatasetBuilder(str(tmp_path / "m.bin"), dtype=np.uint16)
    for doc in docs:
        builder.add_item(torch.tensor(doc))
        builder.end_document()
    builder.finalize(str(tmp_path / "m.idx"))
    result = import_format(tmp_path / "m", tmp_path / "s.mmtok", "megatron")
    assert documents(result["store"]) == docs and result["eos_appended"] == 0
    verify_store(result["store"].path)

    builder = IndexedDatasetBuilder(str(tmp_path / "w.bin"), dtype=np.int32)  # without --append-eod
    for doc in docs:
        builder.add_item(torch.tensor(doc[:-1]))
        builder.end_document()
    builder.finalize(str(tmp_path / "w.idx"))
    result = import_format(tmp_path / "w", tmp_path / "w.mmtok", "megatron")
    assert documents(result["store"]) == docs and result["eos_appended"] == len(docs)


def test_datasets_load_from_disk_and_parquet(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    export_format(store, tmp_path / "hf", "hf")
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded.num_rows == store.num_documents
    assert loaded["input_ids"][:] == documents(store)
    assert loaded.features["input_ids"].feature.dtype == "uint16"

    export_format(store, tmp_path / "rows.parquet", "parquet", block_size=128)
    windows = datasets.load_dataset("parquet", data_files=str(tmp_path / "rows.parquet"), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    stream = store.tokens[:]
    assert windows["input_ids"][:] == [stream[i : i + 128].tolist() for i in range(0, stream.shape[0], 128)]


def test_datasets_writers_import(tmp_path):
    datasets = pytest.importorskip("datasets")
    docs = [[1, 2, 50256], [3, 50256], [50256], [4, 5, 6, 50256]]
    data = datasets.Dataset.from_dict({"input_ids": docs, "text": ["a b", "c", "", "déjà vu"]})
    data.save_to_disk(str(tmp_path / "saved"))
    data.to_parquet(str(tmp_path / "rows.parquet"))
    for fmt, source in (("hf", tmp_path / "saved"), ("parquet", tmp_path / "rows.parquet")):
        store = import_format(source, tmp_path / f"{fmt}.mmtok", fmt)["store"]
        assert documents(store) == docs
        texts = import_format(source, tmp_path / f"{fmt}-text.mmtok", fmt, text_column="text")["store"]
        tok = texts.tokenizer
        assert documents(texts) == [list(tok.encode(t)) + [tok.eos_id] for t in ["a b", "c", "", "déjà vu"]]
        verify_store(texts.path)


def test_litdata_streaming_dataset_tokens_loader(store, tmp_path):
    pytest.importorskip("litdata")
    from litdata import StreamingDataset
    from litdata.streaming.item_loader import TokensLoader

    export_format(store, tmp_path / "lit", "litdata", shard_tokens=4000)
    block = 64
    dataset = StreamingDataset(str(tmp_path / "lit"), item_loader=TokensLoader(block_size=block), shuffle=False)
    got = [np.asarray(dataset[i]).tolist() for i in range(len(dataset))]
    stream = store.tokens[:]
    expected, at = [], 0
    while at < stream.shape[0]:
        dim = min(4000, stream.shape[0] - at)
        expected += [stream[at + j * block : at + (j + 1) * block].tolist() for j in range(dim // block)]
        at += dim
    assert got == expected
