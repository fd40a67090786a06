"""The tokenizer layer: load any supported tokenizer into one :class:`Tokenizer`.

A :class:`Tokenizer` wraps a ``tokenizers.Tokenizer`` (the reference) and adds
what a store needs: the eos id, the token dtype, a fingerprint of everything
that determines ids, the chunk-cut rules proven safe for bulk reading, and the
fastest engine proven identical to it: fastokens, then tiktoken, then the
``tokenizers`` reference itself (see :mod:`mmtok.tokenize.fastokens_engine`
and :mod:`mmtok.tokenize.fastpath`).

Importing this module imports none of transformers, tiktoken and fastokens.
"""

from __future__ import annotations

import functools
import itertools
import json
from typing import Any

import numpy as np

from ..base.errors import TokenizerError
from .backends import is_gpt2_name, resolve_backend
from .cutrules import probe_cut_rules
from .fastpath import FastPathRefused
from .fingerprint import fingerprint_of
from .joined import JoinedDocuments, build_joined_documents, model_made_contents

__all__ = ["Tokenizer", "load_tokenizer", "tokenizer_from_json", "default_tokenizer"]

_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
_ENGINES = ("auto", "fastokens", "tiktoken", "tokenizers")
#: The order in which engine="auto" tries the fast engines; the ``tokenizers`` reference comes last.
_FAST_ENGINES = ("fastokens", "tiktoken")


class Tokenizer:
    """A loaded tokenizer plus what mmtok needs to know about it.  Make one with :func:`load_tokenizer`.

    Attributes: ``name`` (a label), ``backend`` (the ``tokenizers.Tokenizer``
    reference, owned by this object), ``vocab_size`` (max id + 1), ``eos_id`` and
    ``eos_token``, ``dtype`` (uint16 or uint32, little-endian), ``fingerprint``
    ("sha256:..." of what determines ids), ``engine`` (the encoder used:
    "fastokens" or "tiktoken" only when proven identical, else "tokenizers"),
    ``fast_path_refusal`` (why no fast engine, or None), ``engine_refusals``
    (each fast engine refused before the one used, and why), ``allow_special``
    and ``cut_rules``.
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
        self._model_made = model_made_contents(spec)
        self._engine_request, self._fast, self.engine = engine, None, "tokenizers"
        self.fast_path_refusal: str | None = "engine='tokenizers' was asked for" if engine == "tokenizers" else None
        refusals = []
        for candidate in _FAST_ENGINES if engine == "auto" else (engine,) if engine != "tokenizers" else ():
            try:
                self._fast = _build_engine(candidate, backend, spec, self._json, allow_special)
                self.engine, self.fast_path_refusal = candidate, None
                break
            except FastPathRefused as why:
                if engine != "auto":
                    raise TokenizerError(f"engine={engine!r} cannot encode {name} with ids identical to tokenizers: "
                                         f"{why}. Use engine='auto' or engine='tokenizers'.") from None
                refusals.append(f"{candidate}: {why}")
        if self._fast is None and refusals:
            self.fast_path_refusal = "; ".join(refusals)
        self.engine_refusals: tuple[str, ...] = tuple(refusals)  # engines tried and refused before the one used

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, eos={self.eos_token!r}, engine={self.engine!r})"

    def __reduce__(self):
        # Rebuild from JSON in the receiving process: fast engines' objects are not portable.
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

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all texts' ids concatenated, int64 offsets of len(texts) + 1): the build's hot path, no Python ints."""
        if self._fast is not None:
            return self._fast.encode_flat(texts)
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        encodings = encode(list(texts), add_special_tokens=False)
        offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
        np.cumsum([len(encoding) for encoding in encodings], out=offsets[1:])
        ids = np.fromiter(itertools.chain.from_iterable(encoding.ids for encoding in encodings),
                          dtype=np.uint32, count=int(offsets[-1]))
        return ids, offsets

    def encode_documents(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(uint32 ids with eos after each text, int64 end of each just past its eos) in one engine call, or None.

        None where joining the texts is not proven equal to encoding them one
        by one (see :mod:`mmtok.tokenize.joined`): then use :meth:`encode_flat`.
        """
        joined = self._joined if self._fast is not None and len(texts) > 1 else None
        return None if joined is None else joined.encode(texts)

    @functools.cached_property
    def _joined(self) -> JoinedDocuments | None:
        try:
            return build_joined_documents(self._fast, self.backend, self._cut_spec[1] or [], self._model_made,
                                          eos_text=self.eos_token, eos_id=self.eos_id, vocab_size=self.vocab_size)
        except FastPathRefused:
            return None

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text as an integer array: what the build uses, avoiding Python ints."""
        if self._fast is not None:
            return self._fast.encode_arrays(texts)
        return [np.array(ids, dtype=np.uint32) for ids in self.encode_batch(texts)]

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


def _build_engine(engine: str, backend: Any, spec: dict, text: str, allow_special: bool) -> Any:
    """The proven fast encoder ``engine`` for ``backend``, or FastPathRefused saying why not."""
    if engine == "fastokens":
        from .fastokens_engine import build_fastokens_encoder

        return build_fastokens_encoder(backend, spec, text, allow_special=allow_special)
    from .fastpath import build_fast_encoder

    return build_fast_encoder(backend, spec, allow_special=allow_special)


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
    "auto" (the first of fastokens and tiktoken proven identical, else
    tokenizers), "fastokens" or "tiktoken" (or an error saying why not) or
    "tokenizers".
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
    if defaults and (not given or is_gpt2_name(tokenizer)):
        return default_tokenizer()
    backend, name, eos_hint = resolve_backend(tokenizer, tokenizer_file, vocab_file, merges_file)
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
    backend, name, _ = resolve_backend(None, None, None, None)
    return Tokenizer(backend, name=name)
