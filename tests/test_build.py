"""Building stores: token ids equal the reference, chunking and sharding change nothing, appends, reruns."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
from storetools import snapshot

import mmtok
from mmtok.tokenize.tokenizer import default_tokenizer

DATA = os.path.join(os.path.dirname(mmtok.__file__), "data")


@pytest.fixture(scope="module")
def reference():
    from transformers import GPT2Tokenizer

    return GPT2Tokenizer(vocab=os.path.join(DATA, "gpt2_vocab.json"), merges=os.path.join(DATA, "gpt2_merges.txt"))


def test_bulk_build_equals_whole_text_reference(tmp_path, real_text, real_text_file, reference):
    # Tiny shards and chunks: hundreds of cuts, and documents crossing shard boundaries.
    store = mmtok.build(real_text_file, tmp_path / "s", shard_tokens=50_000, chunk_bytes=30_000)
    expected = reference(real_text, add_special_tokens=False)["input_ids"] + [50256]
    assert len(store.shards) > 10
    assert store.num_tokens == len(expected)
    assert store.num_documents == 1
    assert store.dtype == np.uint16
    np.testing.assert_array_equal(store.tokens[:], np.array(expected, dtype=np.uint16))
    np.testing.assert_array_equal(store.documents[0], store.tokens[:])


def test_shard_and_chunk_sizes_do_not_change_the_stream(tmp_path, real_text_file):
    a = mmtok.build(real_text_file, tmp_path / "a", shard_tokens=1 << 20, chunk_bytes=1 << 20)
    b = mmtok.build(real_text_file, tmp_path / "b", shard_tokens=7_777, chunk_bytes=5_000)
    np.testing.assert_array_equal(a.tokens[:], b.tokens[:])


def test_csv_rows_are_documents(tmp_path, docs_prose, reference):
    rows = [p for p in docs_prose.split("\n\n") if p.strip()][:500]
    rows[3] = 'quoted "text", with commas,\nand a newline'
    rows[7] = "a literal <|endoftext|> stays text"
    path = tmp_path / "politics.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([r] for r in rows)
    store = mmtok.build(path, tmp_path / "s", chunk_bytes=4096, shard_tokens=3000)
    assert store.num_documents == len(rows)
    assert store.line_by_line
    for i in (0, 3, 7, 250, len(rows) - 1):
        ids = reference(rows[i], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        np.testing.assert_array_equal(store.documents[i], ids + [50256])
    assert 50256 not in store.documents[7][:-1].tolist()


def test_texts_and_jsonl(tmp_path):
    texts = ["Lorem", "Ipsum", "Dolor sit amet"]
    store = mmtok.build(None, tmp_path / "t", texts=texts)
    tok = default_tokenizer()
    for i, text in enumerate(texts):
        assert store.documents[i].tolist() == tok.encode(text) + [tok.eos_id]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    np.testing.assert_array_equal(mmtok.build(path, tmp_path / "j").tokens[:], store.tokens[:])


def test_worker_count_does_not_change_bytes(tmp_path, real_text_file):
    one = mmtok.build(real_text_file, tmp_path / "one", workers=1, shard_tokens=100_000, chunk_bytes=50_000)
    two = mmtok.build(real_text_file, tmp_path / "two", workers=2, shard_tokens=100_000, chunk_bytes=50_000)
    a, b = snapshot(one.path), snapshot(two.path)
    assert a == b and len(a) > 4


def test_rerun_of_a_finished_build_changes_nothing(tmp_path, real_text_file):
    store = mmtok.build(real_text_file, tmp_path / "s", shard_tokens=200_000)
    before = snapshot(store.path)
    again = mmtok.build(real_text_file, tmp_path / "s", shard_tokens=200_000)
    assert snapshot(store.path) == before
    assert again.num_tokens == store.num_tokens


def test_append_adds_at_the_end_and_keeps_old_shards(tmp_path, real_text_file):
    first = tmp_path / "first.txt"
    first.write_text("First document.\n")
    store = mmtok.build(first, tmp_path / "s")
    before = snapshot(store.path)
    grown = mmtok.build(real_text_file, tmp_path / "s", append=True, shard_tokens=300_000)
    after = snapshot(grown.path)
    assert all(after[name] == digest for name, digest in before.items() if name.startswith("shards"))
    assert grown.num_documents == 2
    tok = default_tokenizer()
    assert grown.documents[0].tolist() == tok.encode("First document.\n") + [tok.eos_id]
    solo = mmtok.build(real_text_file, tmp_path / "solo")
    np.testing.assert_array_equal(grown.documents[1], solo.documents[0])
    inputs = grown.manifest["inputs"]
    assert [e["first_document"] for e in inputs] == [0, 1]
    assert inputs[1]["first_token"] == store.num_tokens


def test_existing_store_needs_append(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha\n")
    b.write_text("beta\n")
    mmtok.build(a, tmp_path / "s")
    before = snapshot(tmp_path / "s")
    with pytest.raises(mmtok.StoreExistsError, match="--append"):
        mmtok.build(b, tmp_path / "s")
    assert snapshot(tmp_path / "s") == before


def test_append_with_another_tokenizer_is_refused(tmp_path, docs_prose):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([docs_prose[:50_000]], trainer)
    a = tmp_path / "a.txt"
    a.write_text("alpha\n")
    mmtok.build(a, tmp_path / "s")
    before = snapshot(tmp_path / "s")
    with pytest.raises(mmtok.TokenizerMismatchError, match="tokenizer"):
        mmtok.build(a, tmp_path / "s", append=True, tokenizer=backend)
    assert snapshot(tmp_path / "s") == before


def test_small_vocabulary_and_large_vocabulary_dtypes(tmp_path, docs_prose):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([docs_prose[:20_000]], trainer)
    backend.add_tokens([f"<extra_{i}>" for i in range(70_000)])  # pushes ids past uint16
    store = mmtok.build(None, tmp_path / "big", texts=["hello there"], tokenizer=backend)
    assert store.dtype == np.uint32
    assert store.tokens[-1] == store.eos_id
    assert np.load(os.path.join(store.path, "shards", "000000.tokens.npy")).dtype == np.dtype("<u4")


def test_store_slicing_matches_the_stream(tmp_path, real_text_file):
    store = mmtok.build(real_text_file, tmp_path / "s", shard_tokens=10_000, chunk_bytes=8_000)
    whole = store.tokens[:]
    for key in (slice(0, 5), slice(9_990, 10_050), slice(-30, None), slice(5, 40_000, 7), slice(40_000, 5, -3), slice(7, 7)):
        np.testing.assert_array_equal(store.tokens[key], whole[key])
    assert store.tokens[-1] == whole[-1]
    with pytest.raises(IndexError):
        store.tokens[len(whole)]
    with pytest.raises(IndexError):
        store.documents[1]


def test_documents_take_slices_and_index_arrays(tmp_path, docs_prose):
    """Issue 10, item 9: store.documents[3:5] raised TypeError."""
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(p.replace("\n", " ") for p in docs_prose.split("\n\n")[:50] if p.strip()) + "\n")
    store = mmtok.build(lines, tmp_path / "s", line_by_line=True, shard_tokens=500, chunk_bytes=600)  # across shards
    assert len(store.shards) > 2
    every = [store.documents[i] for i in range(store.num_documents)]
    for got, want in zip(store.documents[3:5], every[3:5]):
        np.testing.assert_array_equal(got, want)
    assert [d.tolist() for d in store.documents[::-7]] == [d.tolist() for d in every[::-7]]
    picks = np.array([0, -1, 7, 7, 2])
    assert [d.tolist() for d in store.documents[picks]] == [every[i].tolist() for i in picks]
    assert [d.tolist() for d in store.documents[[1, 2]]] == [every[1].tolist(), every[2].tolist()]
    assert store.documents[[]] == [] and store.documents[10:3] == []
    tokens, lengths = store.documents.ragged(slice(0, 6))
    np.testing.assert_array_equal(tokens, np.concatenate(every[:6]))
    assert lengths.tolist() == [len(d) for d in every[:6]]
    assert store.documents.ragged(4)[0].tolist() == every[4].tolist()
    with pytest.raises(IndexError, match="document index 999"):
        store.documents[[0, 999]]
    with pytest.raises(TypeError, match="documents"):
        store.documents[1.5]
    with pytest.raises(TypeError, match="documents"):
        store.documents[np.array([[1, 2]])]


@pytest.mark.parametrize("size", [0, 1, (1 << 24) - 1, 1 << 24, (1 << 24) + 5])
def test_a_closed_shard_is_hashed_through_a_map_like_a_plain_read(tmp_path, size):
    import hashlib

    from mmtok.store.npyfile import file_sha256, own_file_sha256

    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert own_file_sha256(str(path)) == file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
