"""Which chunk-cut rules are safe for a tokenizer, proven by probing it.

The bulk reader cuts huge files at "newline" or "space" points (see
:mod:`mmtok.tokenize.cutpoints`); a rule is used for a tokenizer only if encoding every
adversarial (left, right) pair around such a cut in one piece equals encoding
the two sides apart.
"""

from __future__ import annotations

import itertools
import string
from typing import Any

__all__ = ["probe_cut_rules"]

# Normalizers that act on one character at a time, so cannot join across a cut between ASCII characters.
_LOCAL_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Nmt", "BertNormalizer"}
_CUT_LEFT = ("", "a", "the quick", "x  \t ", "x\r\n", "\r\n\r\n", "end.\u00a0", "\u3000", "日本語", "é", "12",
             "it'", "🙂", "'", " ", "\n", "  \n  ", "<|endoftext|>", "\t", "Zürich ")
_CUT_RIGHT = ("", "s", "ll", "S rest", "'s", "123", " word", "  \n", "\r\n", "\t\tx", "\u00a0y", "é", "🙂",
              "  ", "\u2003z", "'LL be", "\n\nx", "<|endoftext|>", ".", " 42")



def _normalizer_is_local(node: dict | None) -> bool:
    if node is None:
        return True
    kind = node.get("type")
    if kind == "Sequence":
        return all(_normalizer_is_local(child) for child in node.get("normalizers", []))
    if kind == "Replace":
        return len((node.get("pattern") or {}).get("String", "")) == 1
    return kind in _LOCAL_NORMALIZERS


def _cut_pairs(rule: str) -> list[tuple[str, str]]:
    """(left, right) pairs whose join point satisfies ``rule``, around every character pair it allows."""
    chars = [chr(c) for c in range(0x21, 0x7F)] if rule == "newline" else list(string.ascii_letters)
    glue_left, glue_right = ("\n", "") if rule == "newline" else ("", " ")
    # Every character meets a third of the others on the far side of the cut (all of them, for letters),
    # in rotating contexts: 3-4k pairs, a fraction of a second to encode.
    stride = 3 if rule == "newline" else 1
    around = [(before, after) for i, before in enumerate(chars) for after in chars[i % stride :: stride]]
    pairs = []
    for i, (before, after) in enumerate(around):
        left, right = _CUT_LEFT[i % len(_CUT_LEFT)], _CUT_RIGHT[(i * 7) % len(_CUT_RIGHT)]
        pairs.append((left + before + glue_left, glue_right + after + right))
    for left, right, (before, after) in itertools.product(_CUT_LEFT, _CUT_RIGHT, ("aB", "'s", "1Z")):
        pairs.append((left + before + glue_left, glue_right + after + right))
    return pairs


def probe_cut_rules(backend: Any, spec: dict, *, allow_special: bool) -> frozenset[str]:
    """The cut rules ("newline", "space") under which chunked encoding equals whole-text encoding.

    ``backend`` is configured for ``allow_special``; ``spec`` is its parsed tokenizer.json.
    """
    if not _normalizer_is_local(spec.get("normalizer")):
        return frozenset()
    rules = {"newline", "space"}
    for token in spec.get("added_tokens") or []:
        if token.get("special") and not allow_special:
            continue  # never matched: encoded as plain text
        if token.get("lstrip") or token.get("rstrip"):
            return frozenset()  # would swallow the whitespace on the other side of a cut
        rules -= {rule for rule, glue in (("newline", "\n"), ("space", " ")) if glue in token["content"]}
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)

    def ids(texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]

    def safe(rule: str) -> bool:
        pairs = _cut_pairs(rule)
        whole = ids([left + right for left, right in pairs])
        lefts, rights = ids([left for left, _ in pairs]), ids([right for _, right in pairs])
        return all(w == l + r for w, l, r in zip(whole, lefts, rights))

    return frozenset(rule for rule in sorted(rules) if safe(rule))
