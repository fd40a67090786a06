"""Regenerate tests/golden/: a small store (and its cache file) that tests read without mmtok.

    python tools/make_golden.py

Run it only when the store format version changes (then also bump FORMAT.md);
tests/test_golden.py checks that today's code still writes the same shard bytes.
"""

from __future__ import annotations

import json
import os
import shutil

import mmtok
from mmtok.cache.export import export_store

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden")
SETTINGS = {"shard_tokens": 60, "chunk_bytes": 64}


def train_tokenizer(path: str) -> None:
    """A tiny byte-level BPE trained on the golden text: a small tokenizer.json, deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    with open(os.path.join(GOLDEN, "input.txt"), encoding="utf-8") as f:
        backend.train_from_iterator([f.read()], trainer=trainer)
    backend.save(path)


def main() -> None:
    tokenizer = os.path.join(GOLDEN, "tokenizer.json")
    train_tokenizer(tokenizer)
    store_path = os.path.join(GOLDEN, "store.mmtok")
    shutil.rmtree(store_path, ignore_errors=True)
    inputs = [os.path.join(GOLDEN, "input.txt"), os.path.join(GOLDEN, "input.jsonl")]
    store = mmtok.build(inputs, store_path, tokenizer=tokenizer, workers=1, **SETTINGS)
    tok = store.tokenizer
    with open(inputs[0], encoding="utf-8") as f:
        documents = [f.read()]
    with open(inputs[1], encoding="utf-8") as f:
        documents += [json.loads(line)["text"] for line in f if line.strip()]
    expected = {"eos_id": tok.eos_id, "documents": [tok.encode(text) + [tok.eos_id] for text in documents]}
    with open(os.path.join(GOLDEN, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f)
    cache = os.path.join(GOLDEN, "store.cache.gz")
    if os.path.exists(cache):
        os.unlink(cache)
    export_store(store, cache, codec="gzip", view={"block_size": 16, "line_by_line": False, "stride": 16})
    print(f"{store_path}: {store.num_tokens} tokens, {store.num_documents} documents, {len(store.shards)} shards")


if __name__ == "__main__":
    main()
