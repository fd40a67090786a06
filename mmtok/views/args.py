"""Checking TokenDataset's arguments: aitextgen's legacy options, sizes and pad ids."""

from __future__ import annotations

import numpy as np

from ..base.argcheck import as_int
from ..base.errors import InputError, StoreError, TokenizerError
from ..store.store import Store

__all__ = ["legacy_options", "positive_int", "resolve_pad", "check_pad"]

_AITEXTGEN_TOKEN = "<|endoftext|>"  # aitextgen's default for bos/eos/unk/pad_token
_LEGACY_OPTIONS = ("bos_token", "unk_token", "pad_token", "progress_bar_refresh_rate", "text_delim", "tokenized_texts")


def legacy_options(kwargs: dict) -> tuple[str | None, bool | None]:
    """Check aitextgen's remaining arguments; return (pad_token, show_progress)."""
    unknown = sorted(set(kwargs) - set(_LEGACY_OPTIONS))
    if unknown:
        raise TypeError(f"TokenDataset() got unexpected keyword arguments: {', '.join(unknown)}")
    for name, what in (("bos_token", "inserts a beginning-of-string token"), ("unk_token", "sets an unknown token")):
        if kwargs.get(name) not in (None, _AITEXTGEN_TOKEN):
            raise TokenizerError(f"{name}={kwargs[name]!r}: mmtok never {what} (aitextgen's TokenDataset encoded "
                                 "with add_special_tokens=False, so it had no effect on the ids there either); "
                                 f"remove {name}=, and use eos_token= for the token that ends every document")
    if kwargs.get("text_delim", "\n") != "\n":
        raise InputError(f"text_delim={kwargs['text_delim']!r}: mmtok splits line-by-line text files at newlines "
                         "only; to split at another delimiter, split the text yourself and pass texts=[...]")
    if kwargs.get("tokenized_texts"):
        raise InputError("tokenized_texts was aitextgen's internal hook for merge_datasets; mmtok datasets view "
                         "stores: build one with mmtok.build(...) and open it with TokenDataset.open(path)")
    rate = kwargs.get("progress_bar_refresh_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate < 0):
        raise TypeError(f"progress_bar_refresh_rate must be a non-negative int, not {rate!r}")
    # mmtok redraws its progress line at its own pace (10 times a second at most); 0 turns it off.
    return kwargs.get("pad_token"), (False if rate == 0 else None)


def positive_int(name: str, value) -> int:
    number = as_int(name, value)
    if number < 1:
        raise StoreError(f"{name} must be at least 1, got {number}")
    return number


def resolve_pad(store: Store, pad_id, pad_token: str | None, dtype: np.dtype) -> int:
    if pad_token is not None:
        token_id = store.tokenizer.backend.token_to_id(pad_token)
        if token_id is None:
            raise TokenizerError(f"pad_token {pad_token!r} is not in the store's vocabulary; pass pad_id= an id instead")
        if pad_id is not None and pad_id != token_id:
            raise TokenizerError(f"pad_token {pad_token!r} is id {token_id}, but pad_id={pad_id}; give only one")
        pad_id = token_id
    return check_pad(store.eos_id if pad_id is None else pad_id, dtype)


def check_pad(pad_id, dtype: np.dtype) -> int:
    pad = as_int("pad_id", pad_id)
    limits = np.iinfo(dtype)
    if not limits.min <= pad <= limits.max:
        raise StoreError(f"pad_id {pad} does not fit dtype {dtype}; use a signed dtype such as np.int64 for "
                         "negative pad ids like -100")
    return pad
