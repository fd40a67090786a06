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
