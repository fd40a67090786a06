"""A store's own tokenizer as a ``transformers.PreTrainedTokenizerFast``, built offline from its tokenizer.json."""

from __future__ import annotations

import os

from ..base.constants import TOKENIZER_FILE
from ..base.errors import TokenizerError

__all__ = ["hf_tokenizer"]


def hf_tokenizer(store, pad_id: int | None = None):
    """``store``'s tokenizer for training and generation code (``Trainer(processing_class=...)``).

    eos is the store's eos token; pad is ``pad_id``'s token (default: eos, as
    for GPT-2, which has no pad token). Nothing is fetched from a hub.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_file(os.path.join(store.path, TOKENIZER_FILE))
    eos = backend.id_to_token(store.eos_id)
    pad = backend.id_to_token(store.eos_id if pad_id is None else pad_id)
    if eos is None or pad is None:
        missing = store.eos_id if eos is None else pad_id
        raise TokenizerError(f"{store.path}/{TOKENIZER_FILE}: id {missing} has no token in the vocabulary, so it "
                             "cannot be the tokenizer's eos/pad token; pass a pad_id that is a real token")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=pad)
    if tokenizer.eos_token_id != store.eos_id:
        raise TokenizerError(f"{store.path}: eos token {eos!r} maps to id {tokenizer.eos_token_id}, not the "
                             f"store's eos id {store.eos_id}")
    return tokenizer
