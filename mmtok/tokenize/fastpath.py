"""The tiktoken fast path: GPT-2-style byte-level BPE encoded by tiktoken.

tiktoken encodes GPT-2 2-4x faster than the ``tokenizers`` backend.  It is used
only when it is *shown* to give the same ids as the backend: the tokenizer must
have the shape tiktoken can express (checked from its tokenizer.json), and then
both engines must agree on a probe of adversarial and generated text, piece by
piece, in batch and as one text.  ``tokenizers`` stays the reference.

tiktoken is imported only when a fast path is built.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

__all__ = ["FastPathRefused", "FastEncoder", "build_fast_encoder", "probe_texts", "vocabulary_texts", "verify",
           "HF_BYTE_LEVEL_PATTERN"]

#: The split regex of ``tokenizers``' ByteLevel pre-tokenizer (use_regex=True);
#: equivalent to tiktoken's own "gpt2" pat_str.
HF_BYTE_LEVEL_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

_BPE_OFF_OPTIONS = ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix")

# Hand-picked pieces where regex dialects, BPE implementations and special-token
# handling are most likely to disagree.
_PROBE_PIECES = (
    " ", "  ", "   x", "\n", "\n\n", "\r\n", "\r\n\r\n", "a\r\nb", "\t", "\t\tx", "a \nB", "x  \n  y",
    "x\u00a0y", "\u2003em", "\u3000全角", "a\u0085b", "a\u2028b", "a\u200bb", "\ufeffbom", "\x0b\x0c",
    "\x1c\x1d\x1e\x1f", "nul\x00", "del\x7f", "  \t \n \r\n", "a\u202fb\u205fc", "end   ",
    "1", "12345678901234567890", "3.14159", "1,000,000", " 42", "x2y", "٣٤٥", "²³", "Ⅻ", "①②",
    "it's", "IT'S", "we'll", "WE'LL", "I'm", "I'M", "they're", "THEY'VE", "I'd", "don't",
    "'s", "'S", "''s", "'ll've", "rock'n'roll", "it’s", " 's", "x'", "'",
    "!!!", "...", "?!", "(a)", "[x]", "{y}", "<s>", "</s>", "@#$%^&*", "—–-", "«»", "a_b", "__init__",
    "http://example.com/a?b=c&d=e#f", "def f(x):\n    return x**2\n", "<|endoftext|>", "x<|endoftext|>y",
    "café", "naïve", "ÜNÏCÖDÉ", "e\u0301", "日本語のテキスト", "中文", "한국어", "Привет мир",
    "مرحبا بالعالم", "שלום", "ไทย", "हिन्दी", "🙂", "👨\u200d👩\u200d👧", "🇫🇷", "𝔘𝔫𝔦", "\U0010fffd",
)
_WORDS = (
    "the", "of", "and", "a", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "The", "THE", "Hello", "world", "tokenizer", "memory", "mapped", "store", "éclair", "Zürich",
    "naïveté", "東京", "данные", "λόγος", "x", "y", "z", "foo_bar", "camelCase", "ALLCAPS",
)
_SEPARATORS = (" ", " ", " ", " ", "  ", "\n", "\n\n", "\r\n", "\t", ", ", ". ", "; ", " - ", "...\n", "  \n")


def probe_texts(*, seed: int = 0, n_generated: int = 400) -> list[str]:
    """Deterministic adversarial texts: the hand-picked pieces plus generated prose."""
    rng = random.Random(seed)
    texts = list(_PROBE_PIECES)
    for _ in range(n_generated):
        parts = []
        for _ in range(rng.randrange(1, 30)):
            roll = rng.random()
            if roll < 0.6:
                parts.append(rng.choice(_WORDS))
            elif roll < 0.75:
                parts.append(str(rng.randrange(10 ** rng.randrange(1, 12))))
            else:
                parts.append(rng.choice(_PROBE_PIECES))
            parts.append(rng.choice(_SEPARATORS))
        texts.append("".join(parts))
    return texts


def vocabulary_texts(spec: dict, *, count: int = 1500) -> list[str]:
    """A sample of the vocabulary as text: catches tokens an engine would not rebuild from their own bytes.

    Each sampled token is given as its byte-level decoding (GPT-2-style
    vocabularies) and as itself with word markers ("##", "▁") undone.
    """
    table, vocab = _byte_decoder(), list((spec.get("model") or {}).get("vocab") or [])
    if vocab and isinstance(vocab[0], list):  # Unigram: [[piece, score], ...]
        vocab = [piece for piece, _ in vocab]
    texts = []
    for token in vocab[:: max(1, len(vocab) // count)]:
        decoded = token.translate(table).encode("latin-1", "ignore").decode("utf-8", "ignore")
        plain = token.removeprefix("##").replace("\u2581", " ")
        texts.extend(text for text in {decoded, plain} if text)
    return texts


class FastPathRefused(Exception):
    """Internal: the tokenizer cannot be encoded by a fast engine with provably equal ids."""


class FastEncoder:
    """Encodes like the backend tokenizer, with tiktoken.  Build it with :func:`build_fast_encoder`."""

    name = "tiktoken"

    def __init__(self, encoding: Any, rank_to_id: np.ndarray | None, *, allow_special: bool):
        self.encoding = encoding
        self._rank_to_id = rank_to_id  # None when every rank already equals its id (GPT-2)
        self._allow_special = allow_special
        # sched_getaffinity respects container CPU limits; cpu_count does not.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self._threads = max(1, cpus or 1)

    def _ids(self, ranks: list[int]) -> list[int]:
        if self._rank_to_id is None:
            return ranks
        return self._rank_to_id[np.asarray(ranks, dtype=np.int64)].tolist()

    def encode(self, text: str) -> list[int]:
        """Ids of one text (tiktoken releases the GIL while encoding)."""
        if self._allow_special:
            return self._ids(self.encoding.encode(text, allowed_special="all"))
        return self._ids(self.encoding.encode_ordinary(text))

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """Ids of each text as a uint32 array, never built as Python ints (the build's hot path).

        Runs in the calling thread with the GIL released while encoding; the
        build gets its parallelism from its own thread pool.
        """
        allowed = self.encoding.special_tokens_set if self._allow_special else set()
        arrays = [self.encoding.encode_to_numpy(text, allowed_special=allowed, disallowed_special=()) for text in texts]
        if self._rank_to_id is None:
            return arrays
        return [self._rank_to_id[ranks] for ranks in arrays]

    def encode_marked(self, text: str, marker: str) -> np.ndarray:
        """uint32 ids of ``text`` with the special token ``marker`` recognized (every one if allow_special)."""
        allowed = self.encoding.special_tokens_set if self._allow_special else {marker}
        ranks = self.encoding.encode_to_numpy(text, allowed_special=allowed, disallowed_special=())
        return ranks if self._rank_to_id is None else self._rank_to_id[ranks].astype(np.uint32)

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every text's ids concatenated, int64 offsets of len(texts) + 1)."""
        arrays = self.encode_arrays(texts)
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum([array.shape[0] for array in arrays], out=offsets[1:])
        return (np.concatenate(arrays) if arrays else np.empty(0, np.uint32)), offsets

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of many texts, encoded on a thread pool of one thread per usable CPU."""
        texts = list(texts)
        if len(texts) <= 1:
            return [self.encode(text) for text in texts]
        threads = min(self._threads, len(texts))
        if self._allow_special:
            batches = self.encoding.encode_batch(texts, num_threads=threads, allowed_special="all")
        else:
            batches = self.encoding.encode_ordinary_batch(texts, num_threads=threads)
        return [self._ids(ranks) for ranks in batches]


def _byte_decoder() -> dict[int, str]:
    """str.translate table from GPT-2's printable stand-in characters back to latin-1 bytes.

    Characters that stand for no byte map to U+FFFF, which fails ``.encode("latin-1")``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in, extra = {b: b for b in printable}, 0
    for b in range(256):
        if b not in stand_in:
            stand_in[b] = 256 + extra
            extra += 1
    table = {code: "\uffff" for code in range(0x144)}
    table.update({char: chr(byte) for byte, char in stand_in.items()})
    return table


def _token_bytes(token: str, table: dict[int, str]) -> bytes:
    try:
        return token.translate(table).encode("latin-1")
    except UnicodeEncodeError:
        raise FastPathRefused(f"the token {token!r} is not byte-level") from None


def _split_pattern(pre: dict | None) -> str:
    """The regex that splits text before BPE, if the pre-tokenizer is one tiktoken can mirror."""
    steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre]
    if not steps or steps[-1] is None or steps[-1].get("type") != "ByteLevel":
        raise FastPathRefused("the pre-tokenizer is not byte-level")
    byte_level = steps[-1]
    if byte_level.get("add_prefix_space"):
        raise FastPathRefused("ByteLevel add_prefix_space=True adds a space tiktoken would not")
    if len(steps) == 1 and byte_level.get("use_regex", True):
        return HF_BYTE_LEVEL_PATTERN
    if len(steps) == 2 and not byte_level.get("use_regex", True):
        split = steps[0]
        pattern = (split.get("pattern") or {}).get("Regex") if split.get("type") == "Split" else None
        if pattern is not None and split.get("behavior") == "Isolated" and not split.get("invert"):
            return pattern
    raise FastPathRefused(f"the pre-tokenizer {pre} is not a single regex split followed by ByteLevel")


def _check_shape(spec: dict, *, allow_special: bool) -> str:
    """Refuse every tokenizer feature tiktoken has no equivalent for; return the split regex."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise FastPathRefused(f"the model is {model.get('type')}, not BPE")
    if spec.get("normalizer") is not None:
        raise FastPathRefused("the tokenizer has a normalizer")
    for option in _BPE_OFF_OPTIONS:
        if model.get(option) not in (None, ""):
            raise FastPathRefused(f"the BPE model sets {option}={model[option]!r}")
    if model.get("byte_fallback"):
        raise FastPathRefused("the BPE model uses byte_fallback")
    for added in spec.get("added_tokens") or []:
        if not added.get("special"):
            raise FastPathRefused(f"the non-special added token {added['content']!r} is matched inside text")
        if allow_special and (added.get("lstrip") or added.get("rstrip") or added.get("single_word")):
            raise FastPathRefused(f"the special token {added['content']!r} strips or matches whole words")
    return _split_pattern(spec.get("pre_tokenizer"))


def _ranks(spec: dict) -> tuple[dict[bytes, int], dict[str, int], np.ndarray | None]:
    """tiktoken ranks from vocab and merges, and the rank -> id table when they differ."""
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    table = _byte_decoder()
    singles = sorted((token_id, _token_bytes(token, table)) for token, token_id in vocab.items() if len(token) == 1)
    singles = [(token_id, piece) for token_id, piece in singles if len(piece) == 1]
    if len({piece for _, piece in singles}) != 256:
        raise FastPathRefused("the vocabulary lacks some of the 256 byte tokens")
    # Singles first, in id order (so GPT-2 ranks equal ids), then merges in merge order.
    ranks = {piece: rank for rank, (_, piece) in enumerate(singles)}
    ids = [token_id for token_id, _ in singles]
    for merge in model["merges"]:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token_id = vocab.get(left + right)
        if token_id is None:
            raise FastPathRefused(f"the merge {left!r} + {right!r} makes a token missing from the vocabulary")
        piece = _token_bytes(left + right, table)
        if piece in ranks:
            # tiktoken ranks a token once; a second merge producing it would rank differently.
            raise FastPathRefused(f"the token {left + right!r} is produced by two merges")
        ranks[piece] = len(ids)
        ids.append(token_id)
    added_contents = {added["content"] for added in spec.get("added_tokens") or []}
    if model.get("ignore_merges") and len(ranks) < len(set(vocab) - added_contents):
        raise FastPathRefused("ignore_merges=True with tokens that no merge produces")
    specials = {}
    for added in spec.get("added_tokens") or []:
        specials[added["content"]] = len(ids)
        ids.append(added["id"])
    table = np.asarray(ids, dtype=np.int64)
    return ranks, specials, None if np.array_equal(table, np.arange(len(ids))) else table


def _first_difference(reference: list[list[int]], candidate: list[list[int]], texts: list[str]) -> str | None:
    for text, want, got in zip(texts, reference, candidate):
        if want != got:
            return f"on {text[:60]!r}: tokenizers gives {want[:12]}..., the engine {got[:12]}..."
    return None


def verify(fast: Any, backend: Any, texts: list[str]) -> None:
    """Raise FastPathRefused unless both engines give equal ids: per piece, in batch and joined."""
    def one(text: str) -> list[int]:
        return backend.encode(text, add_special_tokens=False).ids

    pieces, joined = list(_PROBE_PIECES), "".join(texts)
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)
    checks = (
        ([e.ids for e in encode_batch(texts, add_special_tokens=False)], fast.encode_batch(texts), texts),
        ([one(text) for text in pieces], [fast.encode(text) for text in pieces], pieces),
        ([one(joined)], [fast.encode(joined)], [joined]),
    )
    for want, got, shown in checks:
        difference = _first_difference(want, got, shown)
        if difference:
            raise FastPathRefused(f"{fast.name} and tokenizers disagree " + difference)


def build_fast_encoder(backend: Any, spec: dict, *, allow_special: bool) -> FastEncoder:
    """A tiktoken encoder equal to ``backend`` (configured for ``allow_special``), or FastPathRefused.

    ``spec`` is the parsed tokenizer.json of ``backend``.
    """
    pattern = _check_shape(spec, allow_special=allow_special)
    ranks, specials, rank_to_id = _ranks(spec)
    import tiktoken  # lazily: importing mmtok.tokenize.tokenizer must stay light

    try:
        encoding = tiktoken.Encoding("mmtok-byte-level-bpe", pat_str=pattern, mergeable_ranks=ranks,
                                     special_tokens=specials)
    except (ValueError, RuntimeError) as error:  # e.g. a regex tiktoken's engine cannot compile
        raise FastPathRefused(f"tiktoken rejects this tokenizer: {error}") from None
    fast = FastEncoder(encoding, rank_to_id, allow_special=allow_special)
    texts = probe_texts() + [f"a{added['content']}b {added['content']}" for added in spec.get("added_tokens") or []]
    verify(fast, backend, texts + vocabulary_texts(spec))
    return fast
