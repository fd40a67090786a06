"""The tokenize layer: load tokenizers, fingerprint them, prove fast engines and cut points.

Owns :class:`Tokenizer` (any supported tokenizer behind one interface), its
fingerprint and the fingerprint memo, the proven-identical fast engines, and
the rules for where a bulk text may be cut without changing its ids. May
import only :mod:`mmtok.base`. tokenizers, tiktoken and transformers are
imported where used, never at import time.
"""

from .cutpoints import CUT_RULES, iter_pieces
from .fingerprint import fingerprint_of
from .tokenizer import Tokenizer, default_tokenizer, load_tokenizer, tokenizer_from_json

__all__ = [
    "Tokenizer",
    "load_tokenizer",
    "tokenizer_from_json",
    "default_tokenizer",
    "fingerprint_of",
    "CUT_RULES",
    "iter_pieces",
]
