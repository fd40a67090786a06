"""The base layer: errors, format constants, version, argument checks, progress lines.

Owns what every other layer shares and depends on nothing else in mmtok (only
the standard library). Imports from here go downward from every layer.
"""

from .errors import (
    CacheError,
    CorruptStoreError,
    FormatError,
    InputError,
    InputNotFoundError,
    MmtokError,
    StoreError,
    StoreExistsError,
    TokenizerError,
    TokenizerMismatchError,
)
from .version import __version__

__all__ = [
    "MmtokError",
    "InputError",
    "InputNotFoundError",
    "TokenizerError",
    "TokenizerMismatchError",
    "StoreError",
    "StoreExistsError",
    "CorruptStoreError",
    "CacheError",
    "FormatError",
    "__version__",
]
