"""Property: reading a bulk file in chunks of any size gives the ids of tokenizing it whole."""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtok.inputs.readers import iter_chunks
from mmtok.inputs.sources import resolve_source
from mmtok.store.pipeline import encode_chunk
from mmtok.tokenize.cutpoints import sub_cuts
from mmtok.tokenize.tokenizer import load_tokenizer

# Characters that stress GPT-2's pre-tokenizer around cut points: whitespace runs, \r\n,
# contractions, digits, punctuation, accents, CJK, emoji, unicode spaces.
PIECES = st.sampled_from(["a", "B", "the", " ", "  ", "\n", "\n\n", "\r\n", "\t", "'s", "'LL", "12", "3.5", ".",
                          "!?", "-", "é", "日本", "🙂", "\u00a0", "\u2003", "x\n", " \n", "word ", "<|endoftext|>"])
TEXTS = st.lists(PIECES, min_size=1, max_size=120).map("".join)


@functools.cache
def _tokenizer(engine: str):
    return load_tokenizer(engine=engine)


@given(text=TEXTS, chunk_bytes=st.integers(min_value=1, max_value=200), engine=st.sampled_from(["fastokens", "tiktoken", "tokenizers"]))
@settings(max_examples=150, deadline=None)
def test_chunked_bulk_reading_equals_whole_text(text, chunk_bytes, engine):
    tok = _tokenizer(engine)
    assert tok.engine == engine
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        source = resolve_source(path)
        parts = [encode_chunk(tok, chunk.texts, chunk.ends)[0]
                 for chunk in iter_chunks(source, chunk_bytes=chunk_bytes, cut_rules=tok.cut_rules)]
    whole = tok.backend.encode(text, add_special_tokens=False).ids + [tok.eos_id]
    assert np.concatenate(parts).tolist() == whole


@given(text=TEXTS, every=st.integers(min_value=1, max_value=60), engine=st.sampled_from(["fastokens", "tiktoken", "tokenizers"]))
@settings(max_examples=150, deadline=None)
def test_sub_pieces_in_one_engine_call_equal_the_whole_text(text, every, engine):
    """The bulk reader hands each piece to the engine as sub-pieces cut at safe points (cutpoints.sub_cuts)."""
    tok = _tokenizer(engine)
    data = text.encode("utf-8")
    bounds = [0, *sub_cuts(data, tok.cut_rules, every), len(data)]
    tokens, _ = encode_chunk(tok, [data[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:])], [False] * (len(bounds) - 1))
    assert tokens.tolist() == tok.backend.encode(text, add_special_tokens=False).ids
