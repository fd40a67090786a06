"""The tokenizer fingerprint: one hash of everything that determines token ids.

Stores record it, and appends, merges and blends compare it, so it must be the
same for the same tokenizer across processes, machines and tokenizers versions
(which spell some options differently), and differ when any id could differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["fingerprint_of"]

# Fingerprint canonicalisation: options at these values mean "off" in every tokenizers version.
_BPE_DEFAULTS = {"continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                 "byte_fallback": False, "ignore_merges": False}
_OFFSET_ONLY_KEYS = {"trim_offsets"}
_ADDED_TOKEN_KEYS = ("id", "content", "special", "single_word", "lstrip", "rstrip", "normalized")


def _fingerprint_node(node: Any) -> Any:
    """Drop what does not change ids and what tokenizers versions spell differently."""
    if isinstance(node, list):
        return [_fingerprint_node(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _fingerprint_node(value) for key, value in node.items()
           if value is not None and key not in _OFFSET_ONLY_KEYS}
    if out.get("type") == "ByteLevel" and out.get("use_regex", True) is True:
        out.pop("use_regex", None)  # absent in old versions, where it meant True
    if out.get("type") == "Metaspace":  # tokenizers < 0.15 spelled prepend_scheme as add_prefix_space
        out.pop("str_rep", None)
        if "add_prefix_space" in out:
            out["prepend_scheme"] = "always" if out.pop("add_prefix_space") else "never"
        out.setdefault("split", True)
    return out


def fingerprint_of(spec: dict) -> str:
    """sha256 of the canonical JSON of the id-determining parts of a parsed tokenizer.json."""
    model = _fingerprint_node({key: value for key, value in spec["model"].items() if key not in ("vocab", "merges")})
    if model.get("type") == "BPE":
        model = {key: value for key, value in model.items() if _BPE_DEFAULTS.get(key, object()) != value}
        # Old tokenizer.json files store merges as "a b" strings, new ones as pairs.
        model["merges"] = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in spec["model"]["merges"]]
    vocab = spec["model"].get("vocab")
    # A dict vocab as [token, id] pairs in id order: canonical, and much faster than sorting 50k keys.
    model["vocab"] = sorted(vocab.items(), key=lambda item: (item[1], item[0])) if isinstance(vocab, dict) else vocab
    added = [{key: token.get(key, key == "normalized" and not token.get("special")) for key in _ADDED_TOKEN_KEYS}
             for token in spec.get("added_tokens") or []]
    canonical = {"mmtok_fingerprint": 1, "model": model, "added_tokens": sorted(added, key=lambda t: t["id"]),
                 "normalizer": _fingerprint_node(spec.get("normalizer")),
                 "pre_tokenizer": _fingerprint_node(spec.get("pre_tokenizer"))}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
