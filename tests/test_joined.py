"""Documents encoded joined by the eos text (mmtok/tokenize/joined.py) equal them encoded one by one, or are declined.

The oracle is the ``tokenizers`` reference, one document at a time, with eos
after each; the build's bytes with joining switched off are the other.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmtok
from mmtok.tokenize import joined as joined_module
from mmtok.tokenize.fastpath import FastPathRefused, probe_texts
from mmtok.tokenize.joined import GIVE_UP_AFTER, RETRY_EVERY, build_joined_documents
from mmtok.tokenize.tokenizer import Tokenizer, load_tokenizer
from storetools import snapshot
from zoo import llama3_style, sentencepiece_style

pytest.importorskip("fastokens")


def reference(tok: Tokenizer, texts: list[str]) -> list[int]:
    out = []
    for encoding in tok.backend.encode_batch(texts, add_special_tokens=False):
        out += encoding.ids + [tok.eos_id]
    return out


@pytest.fixture(scope="module")
def tokenizers(docs_prose) -> dict[str, Tokenizer]:
    found = {"gpt2 fastokens": load_tokenizer(), "gpt2 tiktoken": load_tokenizer(engine="tiktoken"),
             "gpt2 allow_special": load_tokenizer(allow_special=True),
             "llama3-style": Tokenizer(llama3_style(docs_prose[:2_000_000]), name="llama3-style", engine="fastokens"),
             "gpt2 + chat tokens": _with_chat_tokens(load_tokenizer())}
    for name, tok in found.items():
        assert tok._joined is not None, name  # every one of these is proven: the tests below are not vacuous
    return found


PARTS = st.sampled_from(["a", " ", "\n", "\r", "\t", "é", "日", "😀", "'s", "<", "|", ">", "1", "endoftext",
                         "<|endoftext|>", "<|begin_of_text|>", "<|im_start|>", "\xa0", "  ", " x", "The"])
def _with_chat_tokens(gpt2: Tokenizer) -> Tokenizer:
    """GPT-2 plus added tokens its model never makes: seen in a joined output, they were cut out of a text."""
    from tokenizers import AddedToken

    backend = type(gpt2.backend).from_str(gpt2.backend.to_str())
    backend.add_special_tokens([AddedToken("<|im_start|>", special=True), AddedToken("<|im_end|>", special=True)])
    return Tokenizer(backend, name="gpt2 + chat tokens", engine="fastokens")


TEXTS = st.lists(st.lists(PARTS, max_size=12).map("".join), min_size=2, max_size=30)


@given(texts=TEXTS)
@settings(max_examples=300, deadline=None)
def test_joined_equals_one_by_one_or_declines(tokenizers, texts):
    for name, tok in tokenizers.items():
        found = tok._joined._encode(texts)  # the proof's checks alone (encode_documents may skip declining input)
        want = reference(tok, texts)
        if found is None:
            assert any(token in text for text in texts for token in (tok.eos_token, "<|b", "<|im_start|>")), name
            continue
        ids, ends = found
        assert ids.dtype == np.uint32 and ids.tolist() == want, name
        lengths = [len(e.ids) + 1 for e in tok.backend.encode_batch(texts, add_special_tokens=False)]
        assert ends.tolist() == np.cumsum(lengths).tolist(), name


def test_real_rows_are_joined(tokenizers, docs_prose):
    rows = [line for line in docs_prose.splitlines()[:20_000] if line.strip()]
    for name, tok in tokenizers.items():
        found = tok.encode_documents(rows)
        assert found is not None and found[0].tolist() == reference(tok, rows), name


def test_a_document_holding_the_eos_text_declines_the_call(tokenizers):
    tok = tokenizers["gpt2 fastokens"]
    texts = ["plain", "a <|endoftext|> inside", "more"]
    assert tok.encode_documents(texts) is None  # one eos too many: encoded one by one instead
    assert tok.encode_documents(["x", "<|endoftext"]) is not None  # a part of it is plain text


def test_an_added_token_the_model_also_makes_is_looked_for_in_the_text(tokenizers):
    tok = tokenizers["llama3-style"]
    assert tok._joined._prefixes == ["<|b"]  # the trainer put <|begin_of_text|> in the model's vocabulary too
    assert tok.encode_documents(["x", "see <|b here"]) is None
    assert tok.encode_documents(["x", "see <|e here"])[0].tolist() == reference(tok, ["x", "see <|e here"])


def test_a_tokenizer_whose_segments_are_not_independent_is_refused(docs_prose):
    # Metaspace(prepend_scheme="first") marks only the first word of the whole input: joined, the
    # documents after the first lose their mark. An engine that recognizes added tokens on request,
    # here the reference itself, shows it to the probe.
    backend = sentencepiece_style(docs_prose[:1_000_000])
    special = type(backend).from_str(backend.to_str())
    special.encode_special_tokens = False

    class ReferenceEngine:
        def encode_marked(self, text, marker):
            return np.array(special.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    tok = Tokenizer(backend, name="sp", engine="tokenizers")
    spec_added = [{"content": t.content, "id": i, "normalized": False} for i, t in
                  backend.get_added_tokens_decoder().items()]
    with pytest.raises(FastPathRefused, match="differ from one by one"):
        build_joined_documents(ReferenceEngine(), backend, spec_added, [], eos_text=tok.eos_token, eos_id=tok.eos_id,
                               vocab_size=tok.vocab_size)


@pytest.mark.parametrize("eos, entry, why", [
    ("abab", {"content": "abab", "id": 5}, "border"),
    ("<mask>", {"content": "<mask>", "id": 5, "lstrip": True}, "lstrip"),
    ("</s>", {"content": "</s>", "id": 5, "normalized": True}, "normalized"),
    ("</s>", {"content": "<s>", "id": 5}, "not an added token"),
])
def test_eos_tokens_that_could_move_are_refused(eos, entry, why):
    engine = type("Engine", (), {"encode_marked": lambda self, text, marker: np.zeros(0, np.uint32)})()
    with pytest.raises(FastPathRefused, match=why):
        build_joined_documents(engine, None, [entry], [], eos_text=eos, eos_id=5, vocab_size=10)


def test_a_joiner_declined_again_and_again_tries_less_often_until_taken_again():
    tok = load_tokenizer(engine="fastokens")
    joiner, calls = tok._joined, []
    engine = joiner.engine
    counting = {"encode_marked": lambda self, text, marker: calls.append(1) or engine.encode_marked(text, marker)}
    joiner.engine = type("Counting", (), counting)()
    for _ in range(GIVE_UP_AFTER + RETRY_EVERY - 1):
        assert tok.encode_documents(["a<|endoftext|>", "b"]) is None
    assert len(calls) == GIVE_UP_AFTER  # then no wasted engine calls ...
    assert tok.encode_documents(["a", "b"]) is not None and len(calls) == GIVE_UP_AFTER + 1  # ... but one in 64
    assert tok.encode_documents(["c", "d"]) is not None and len(calls) == GIVE_UP_AFTER + 2  # taken: tries again


def test_the_probe_uses_no_text_holding_an_added_token():
    texts = probe_texts()
    assert any("<|endoftext|>" in text for text in texts)  # the probe texts hold one: they are filtered out
    tok = load_tokenizer(engine="fastokens")
    assert build_joined_documents(tok._fast, tok.backend, [{"content": "<|endoftext|>", "id": 50256}], [],
                                  eos_text="<|endoftext|>", eos_id=50256, vocab_size=tok.vocab_size) is not None


@pytest.mark.parametrize("workers", [1, 2])
def test_row_builds_write_the_same_bytes_joined_or_not(tmp_path, docs_prose, workers, monkeypatch):
    path = tmp_path / "rows.csv"
    rows = [line for line in docs_prose.splitlines()[:30_000]]
    rows[100:100] = ["", "holds <|endoftext|> text", " ", "<|endoftext|>", "\r\n"]  # one chunk declined
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text"])
        writer.writerows([row] for row in rows)
    calls = []
    original = joined_module.JoinedDocuments._encode
    monkeypatch.setattr(joined_module.JoinedDocuments, "_encode",
                        lambda self, texts: calls.append(original(self, texts) is not None) or original(self, texts))
    joined = mmtok.build(str(path), str(tmp_path / "joined.mmtok"), workers=workers, chunk_bytes=50_000,
                         shard_tokens=40_000)
    assert calls.count(True) > 5 and calls.count(False) == 1  # joined, but for the chunk holding the eos text
    monkeypatch.setattr(Tokenizer, "encode_documents", lambda self, texts: None)
    one_by_one = mmtok.build(str(path), str(tmp_path / "one.mmtok"), workers=workers, chunk_bytes=50_000,
                             shard_tokens=40_000)
    assert joined.num_documents == one_by_one.num_documents == len(rows)  # an empty row is an empty document
    files = [snapshot(tmp_path / name) for name in ("joined.mmtok", "one.mmtok")]
    assert len(files[0]) > 4 and files[0] == files[1]  # every file: shards, document ends, manifest
