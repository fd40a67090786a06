"""mmtok: a memory-mapped on-disk store for tokenized text.

``mmtok.build(inputs, path)`` tokenizes corpora into a store; ``mmtok.open(path)``
reads one lazily; ``mmtok.TokenDataset`` views one as training samples. See
FORMAT.md (shipped in this package) for the on-disk format.
"""

from .blending import blend
from .build import build
from .dataset import TokenDataset
from .errors import (
    CacheError,
    CorruptStoreError,
    InputError,
    InputNotFoundError,
    MmtokError,
    StoreError,
    StoreExistsError,
    TokenizerError,
    TokenizerMismatchError,
)
from .merge import merge_datasets
from .store import Store
from .store import open_store as open
from .version import __version__

__all__ = [
    "build",
    "open",
    "Store",
    "TokenDataset",
    "merge_datasets",
    "blend",
    "__version__",
    "MmtokError",
    "InputError",
    "InputNotFoundError",
    "TokenizerError",
    "TokenizerMismatchError",
    "StoreError",
    "StoreExistsError",
    "CorruptStoreError",
    "CacheError",
]
