"""The tokenizer layer: load any supported tokenizer into one :class:`Tokenizer`.

A :class:`Tokenizer` wraps a ``tokenizers.Tokenizer`` (the reference) and adds
what a store needs: the eos id, the token dtype, a fingerprint of everything
that determines ids, the chunk-cut rules proven safe for bulk reading, and the
tiktoken fast path when it is proven identical (see :mod:`mmtok.fastpath`).

Importing this module imports neither transformers nor tiktoken.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import pathlib
import string
from typing import Any

import numpy as np

from mmtok.errors import TokenizerError

__all__ = ["Tokenizer", "load_tokenizer", "tokenizer_from_json", "default_tokenizer", "fingerprint_of"]

_DATA = pathlib.Path(__file__).with_name("data")
_BUNDLED_NAME = "gpt2 (bundled)"
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
_ENGINES = ("auto", "tiktoken", "tokenizers")

# Fingerprint canonicalisation: options at these values mean "off" in every tokenizers version.
_BPE_DEFAULTS = {"continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                 "byte_fallback": False, "ignore_merges": False}
_OFFSET_ONLY_KEYS = {"trim_offsets"}
_ADDED_TOKEN_KEYS = ("id", "content", "special", "single_word", "lstrip", "rstrip", "normalized")

# Normalizers that act on one character at a time, so cannot join across a cut between ASCII characters.
_LOCAL_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Nmt", "BertNormalizer"}
_CUT_LEFT = ("", "a", "the quick", "x  \t ", "x\r\n", "\r\n\r\n", "end.\u00a0", "\u3000", "日本語", "é", "12",
             "it'", "🙂", "'", " ", "\n", "  \n  ", "<|endoftext|>", "\t", "Zürich ")
_CUT_RIGHT = ("", "s", "ll", "S rest", "'s", "123", " word", "  \n", "\r\n", "\t\tx", "\u00a0y", "é", "🙂",
              "  ", "\u2003z", "'LL be", "\n\nx", "<|endoftext|>", ".", " 42")


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


class Tokenizer:
    """A loaded tokenizer plus what mmtok needs to know about it.  Make one with :func:`load_tokenizer`.

    Attributes: ``name`` (a label), ``backend`` (the ``tokenizers.Tokenizer``
    reference, owned by this object), ``vocab_size`` (max id + 1), ``eos_id`` and
    ``eos_token``, ``dtype`` (uint16 or uint32, little-endian), ``fingerprint``
    ("sha256:..." of what determines ids), ``engine`` ("tiktoken" only when
    proven identical, else "tokenizers"), ``fast_path_refusal`` (why not
    tiktoken, or None), ``allow_special`` and ``cut_rules``.
    """

    def __init__(self, backend: Any, *, name: str, eos_token: str | None = None, eos_hint: str | None = None,
                 allow_special: bool = False, engine: str = "auto"):
        if engine not in _ENGINES:
            raise TokenizerError(f"engine={engine!r} is unknown; use one of {', '.join(_ENGINES)}")
        self.name, self.backend, self.allow_special = name, backend, allow_special
        # mmtok cuts and pads nothing, and user text is data unless allow_special says otherwise.
        backend.no_truncation()
        backend.no_padding()
        backend.encode_special_tokens = not allow_special
        vocab = backend.get_vocab(with_added_tokens=True)
        if not vocab or backend.get_vocab_size(with_added_tokens=False) == 0:
            raise TokenizerError(f"{name} has an empty vocabulary (as transformers 5's GPT2TokenizerFast(vocab_file=...)"
                                 " builds); pass vocab_file= and merges_file= to load_tokenizer instead")
        self.vocab_size = max(vocab.values()) + 1
        self.eos_token = _resolve_eos(vocab, eos_token or eos_hint, name, strict=eos_token is not None)
        self.eos_id = vocab[self.eos_token]
        self.dtype = np.dtype("<u2") if self.vocab_size <= 65536 else np.dtype("<u4")
        self._json = backend.to_str()
        spec = json.loads(self._json)
        self.fingerprint = fingerprint_of(spec)
        self._cut_spec = (spec.get("normalizer"), spec.get("added_tokens"))  # the rest is not kept: 10s of MB
        self._engine_request, self._fast, self.engine = engine, None, "tokenizers"
        self.fast_path_refusal: str | None = "engine='tokenizers' was asked for" if engine == "tokenizers" else None
        if engine != "tokenizers":
            from mmtok import fastpath

            try:
                self._fast = fastpath.build_fast_encoder(backend, spec, allow_special=allow_special)
                self.engine = "tiktoken"
            except fastpath.FastPathRefused as why:
                if engine == "tiktoken":
                    raise TokenizerError(f"engine='tiktoken' cannot encode {name} with ids identical to tokenizers: "
                                         f"{why}. Use engine='auto' or engine='tokenizers'.") from None
                self.fast_path_refusal = str(why)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, eos={self.eos_token!r}, engine={self.engine!r})"

    def __reduce__(self):
        # Rebuild from JSON in the receiving process: tiktoken objects are not portable.
        return _rebuild, (self._json, self.name, self.eos_token, self.allow_special, self._engine_request)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; no special tokens are added (mmtok appends eos itself)."""
        if self._fast is not None:
            return self._fast.encode(text)
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, encoded in parallel with the GIL released."""
        if self._fast is not None:
            return self._fast.encode_batch(texts)
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        return [encoding.ids for encoding in encode(list(texts), add_special_tokens=False)]

    def decode(self, ids: Any) -> str:
        """Text of a list or numpy array of ids (special tokens kept)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return self.backend.decode(ids, skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer.json text, stored in every store so that it decodes on its own."""
        return self._json

    @functools.cached_property
    def cut_rules(self) -> frozenset[str]:
        """Cut rules ("newline", "space") under which chunked encoding equals whole-text encoding.

        Proven for this tokenizer by a probe of adversarial pairs, on first use (about 0.3 s).
        """
        spec = {"normalizer": self._cut_spec[0], "added_tokens": self._cut_spec[1]}
        return probe_cut_rules(self.backend, spec, allow_special=self.allow_special)


def _rebuild(text: str, name: str, eos_token: str, allow_special: bool, engine: str) -> Tokenizer:
    tokenizer = tokenizer_from_json(text, eos_token=eos_token, allow_special=allow_special, engine=engine)
    tokenizer.name = name
    return tokenizer


def _resolve_eos(vocab: dict[str, int], wanted: str | None, name: str, *, strict: bool) -> str:
    if wanted is not None and wanted in vocab:
        return wanted
    if strict:
        raise TokenizerError(f"eos_token {wanted!r} is not in the vocabulary of {name}; "
                             "pass eos_token= a token the tokenizer has")
    for candidate in _EOS_CANDIDATES:
        if candidate in vocab:
            return candidate
    raise TokenizerError(f"{name} has none of the usual end-of-text tokens ({', '.join(_EOS_CANDIDATES)}); "
                         "pass eos_token= the token that separates documents")


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


def _is_gpt2_name(tokenizer: Any) -> bool:
    return isinstance(tokenizer, str) and tokenizer == "gpt2"


def _resolve(tokenizer: Any, tokenizer_file: Any, vocab_file: Any, merges_file: Any) -> tuple[Any, str, str | None]:
    """(tokenizers.Tokenizer owned by mmtok, name, eos hint) for any accepted input."""
    if tokenizer_file is not None:
        return _from_tokenizer_json(tokenizer_file), str(tokenizer_file), None
    if vocab_file is not None or merges_file is not None:
        return _byte_level_bpe(vocab_file, merges_file), str(vocab_file), None
    if tokenizer is None or _is_gpt2_name(tokenizer):
        return _byte_level_bpe(_DATA / "gpt2_vocab.json", _DATA / "gpt2_merges.txt"), _BUNDLED_NAME, None
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


def load_tokenizer(tokenizer: Any = None, *, tokenizer_file: Any = None, vocab_file: Any = None,
                   merges_file: Any = None, eos_token: str | None = None, allow_special: bool = False,
                   engine: str = "auto") -> Tokenizer:
    """Load a tokenizer from any accepted source.

    ``tokenizer`` may be None or "gpt2" (the bundled GPT-2), a :class:`Tokenizer`
    (returned as is unless options are given), a ``tokenizers.Tokenizer``, a
    transformers fast tokenizer, a tokenizer.json path or a local model folder;
    or pass ``tokenizer_file=``, or ``vocab_file=`` with ``merges_file=`` (GPT-2
    style byte-level BPE).  Objects are copied, never changed.  Special-token
    strings in text are plain text unless ``allow_special``; ``engine`` is
    "auto" (tiktoken when proven identical), "tiktoken" (or an error saying
    why not) or "tokenizers".
    """
    given = [label for label, value in (("tokenizer", tokenizer), ("tokenizer_file", tokenizer_file),
                                        ("vocab_file/merges_file", vocab_file or merges_file)) if value is not None]
    if len(given) > 1:
        raise TokenizerError(f"pass only one tokenizer source, not {' and '.join(given)}")
    defaults = eos_token is None and not allow_special and engine == "auto"
    if isinstance(tokenizer, Tokenizer):
        if defaults:
            return tokenizer
        return _rebuild(tokenizer.to_json(), tokenizer.name, eos_token or tokenizer.eos_token, allow_special, engine)
    if defaults and (not given or _is_gpt2_name(tokenizer)):
        return default_tokenizer()
    backend, name, eos_hint = _resolve(tokenizer, tokenizer_file, vocab_file, merges_file)
    return Tokenizer(backend, name=name, eos_token=eos_token, eos_hint=eos_hint,
                     allow_special=allow_special, engine=engine)


def tokenizer_from_json(text: str, *, eos_token: str | None = None, allow_special: bool = False,
                        engine: str = "auto") -> Tokenizer:
    """A Tokenizer from tokenizer.json text, such as the copy embedded in a store."""
    from tokenizers import Tokenizer as Backend

    try:
        backend = Backend.from_str(text)
    except Exception as error:  # tokenizers raises a bare Exception for bad JSON
        raise TokenizerError(f"the tokenizer.json text cannot be loaded: {error}") from None
    return Tokenizer(backend, name="tokenizer.json", eos_token=eos_token, allow_special=allow_special, engine=engine)


@functools.cache
def default_tokenizer() -> Tokenizer:
    """The bundled GPT-2 tokenizer (built once per process, on first use)."""
    backend, name, _ = _resolve(None, None, None, None)
    return Tokenizer(backend, name=name)
