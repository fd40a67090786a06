"""The fastokens engine: a Rust tokenizer.json encoder, used only where proven identical.

`fastokens <https://github.com/crusoecloud/fastokens>`_ reads the very
tokenizer.json that ``tokenizers`` reads and encodes many times faster
(byte-level BPE, Metaspace/byte-fallback BPE, WordPiece...).  It is young
(pre-1.0), so it is trusted exactly as far as the tiktoken fast path: it is
used only after it gives the reference ids on the same probe (adversarial
pieces, generated prose, a sample of the vocabulary as text, every added
token inside text), in batch, piece by piece and as one text, for this
tokenizer and this ``allow_special`` setting.

Threads: fastokens can run its own worker pool, which spins while waiting.
mmtok asks for none (``FASTOKENS_BPE_THREADS=1``, set before fastokens is
first imported, unless the user set it): the build's own thread pool gives the
parallelism (fastokens releases the GIL while encoding).

fastokens is imported only when this engine is built.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .fastpath import FastPathRefused, probe_texts, verify, vocabulary_texts

__all__ = ["FastokensEncoder", "build_fastokens_encoder", "THREADS_VARIABLE"]

#: fastokens' worker-pool size, read when it is first used.
THREADS_VARIABLE = "FASTOKENS_BPE_THREADS"


class FastokensEncoder:
    """Encodes like the backend tokenizer, with fastokens.  Build it with :func:`build_fastokens_encoder`."""

    name = "fastokens"

    def __init__(self, native: Any, *, allow_special: bool):
        self.native = native
        # The backend parses special tokens only when allow_special; fastokens' flag says the opposite.
        self._split = not allow_special

    def encode(self, text: str) -> list[int]:
        return self.native.encode(text, add_special_tokens=False, split_special_tokens=self._split).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Ids of each text (one call, GIL released; no threads of its own: see the module notes)."""
        ids, offsets = self.encode_flat(list(texts))
        return [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(every text's ids concatenated as uint32, int64 offsets of len(texts) + 1): the build's hot path."""
        ids, offsets = self.native.encode_batch_flat(texts, add_special_tokens=False, split_special_tokens=self._split)
        return np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8").astype(np.int64)

    def encode_marked(self, text: str, marker: str) -> np.ndarray:
        """uint32 ids of ``text`` with every added token recognized, ``marker`` among them (see joined.py)."""
        ids, _ = self.native.encode_batch_flat([text], add_special_tokens=False, split_special_tokens=False)
        return np.frombuffer(ids, dtype="<u4")

    def encode_arrays(self, texts: list[str]) -> list[np.ndarray]:
        ids, offsets = self.encode_flat(list(texts))
        return [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _import_fastokens():
    """Import fastokens with its worker pool off unless the user sized it; FastPathRefused if absent."""
    os.environ.setdefault(THREADS_VARIABLE, "1")
    try:
        import fastokens
    except ImportError:
        raise FastPathRefused("fastokens is not installed (pip install 'fastokens>=0.3.5,<0.4')") from None
    return fastokens


def build_fastokens_encoder(backend: Any, spec: dict, text: str, *, allow_special: bool) -> FastokensEncoder:
    """A fastokens encoder equal to ``backend`` (configured for ``allow_special``), or FastPathRefused.

    ``text`` is the backend's tokenizer.json and ``spec`` the same, parsed.
    """
    model = spec.get("model") or {}
    if model.get("dropout"):
        raise FastPathRefused("the model uses dropout (random ids): nothing can be proven identical")
    fastokens = _import_fastokens()
    try:
        native = fastokens.Tokenizer.from_json_str(text)
    except Exception as error:  # fastokens raises its own errors for models it does not implement
        raise FastPathRefused(f"fastokens cannot load this tokenizer: {error}") from None
    native.no_truncation()
    native.no_padding()
    encoder = FastokensEncoder(native, allow_special=allow_special)
    texts = probe_texts() + [f"a{added['content']}b {added['content']}" for added in spec.get("added_tokens") or []]
    verify(encoder, backend, texts + vocabulary_texts(spec))
    return encoder
