"""Where a tokenizer comes from: the bundled GPT-2, a tokenizer.json, a model folder, vocab + merges, an object.

Each source becomes a ``tokenizers.Tokenizer`` owned by mmtok (objects are
copied, never changed), with a name and the eos token the source declares.
``tokenizers`` is imported only when a tokenizer is loaded.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from ..base.errors import TokenizerError

__all__ = ["resolve_backend", "is_gpt2_name", "BUNDLED_NAME"]

_DATA = pathlib.Path(__file__).parent.parent / "data"
BUNDLED_NAME = "gpt2 (bundled)"


def _byte_level_bpe(vocab_file: Any, merges_file: Any) -> Any:
    """A GPT-2-style byte-level BPE built directly with tokenizers (not transformers: see DESIGN.md)."""
    from tokenizers import AddedToken, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as Backend

    for label, path in (("vocab_file", vocab_file), ("merges_file", merges_file)):
        if path is None or not os.path.isfile(path):
            raise TokenizerError(f"{label} {path} is not a file; pass both vocab_file= (vocab.json) and "
                                 "merges_file= (merges.txt) of a GPT-2-style byte-level BPE")
    try:
        backend = Backend(models.BPE.from_file(os.fspath(vocab_file), os.fspath(merges_file)))
    except Exception as error:  # tokenizers raises a bare Exception for unreadable files
        raise TokenizerError(f"cannot read BPE vocab {vocab_file} with merges {merges_file}: {error}; "
                             "check they are a GPT-2 vocab.json and merges.txt") from None
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    return backend


def _from_tokenizer_json(path: Any) -> Any:
    from tokenizers import Tokenizer as Backend

    try:
        return Backend.from_file(os.fspath(path))
    except Exception as error:  # tokenizers raises a bare Exception for bad JSON or unknown types
        raise TokenizerError(f"{path} is not a readable tokenizer.json: {error}") from None


def _folder_eos_hint(folder: pathlib.Path) -> str | None:
    """The eos token a transformers model folder declares, if any."""
    for file_name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / file_name
        if path.is_file():
            try:
                eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token")
            except (ValueError, AttributeError) as error:
                raise TokenizerError(f"{path} is not a JSON object ({error}); fix or remove it") from None
            eos = eos.get("content") if isinstance(eos, dict) else eos
            if isinstance(eos, str):
                return eos
    return None


def _from_path(path: Any) -> tuple[Any, str, str | None]:
    folder = pathlib.Path(path)
    if folder.is_file():
        return _from_tokenizer_json(folder), str(path), None
    if not folder.is_dir():
        raise TokenizerError(f"tokenizer {str(path)!r} is neither 'gpt2' nor an existing tokenizer.json or model "
                             "folder (nothing is downloaded: save the tokenizer locally and pass its path)")
    if (folder / "tokenizer.json").is_file():
        return _from_tokenizer_json(folder / "tokenizer.json"), str(path), _folder_eos_hint(folder)
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return _byte_level_bpe(folder / "vocab.json", folder / "merges.txt"), str(path), _folder_eos_hint(folder)
    raise TokenizerError(f"model folder {path} has no tokenizer.json and no vocab.json + merges.txt; "
                         "save the tokenizer there with tokenizer.save_pretrained(folder)")


def is_gpt2_name(tokenizer: Any) -> bool:
    return isinstance(tokenizer, str) and tokenizer == "gpt2"


def resolve_backend(tokenizer: Any, tokenizer_file: Any, vocab_file: Any, merges_file: Any) -> tuple[Any, str, str | None]:
    """(tokenizers.Tokenizer owned by mmtok, name, eos hint) for any accepted input."""
    if tokenizer_file is not None:
        return _from_tokenizer_json(tokenizer_file), str(tokenizer_file), None
    if vocab_file is not None or merges_file is not None:
        return _byte_level_bpe(vocab_file, merges_file), str(vocab_file), None
    if tokenizer is None or is_gpt2_name(tokenizer):
        return _byte_level_bpe(_DATA / "gpt2_vocab.json", _DATA / "gpt2_merges.txt"), BUNDLED_NAME, None
    if isinstance(tokenizer, (str, os.PathLike)):
        return _from_path(tokenizer)
    from tokenizers import Tokenizer as Backend

    # Copies, so that mmtok's settings (special-token parsing, no truncation) never change the caller's object.
    if isinstance(tokenizer, Backend):
        return Backend.from_str(tokenizer.to_str()), type(tokenizer).__name__, None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if isinstance(backend, Backend):
        eos = getattr(tokenizer, "eos_token", None)
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        return Backend.from_str(backend.to_str()), name, str(eos) if eos is not None else None
    raise TokenizerError(f"cannot use a {type(tokenizer).__name__} as a tokenizer; pass None or 'gpt2', a "
                         "tokenizers.Tokenizer, a transformers fast tokenizer, a tokenizer.json path, a model folder, "
                         "or vocab_file= and merges_file=")
