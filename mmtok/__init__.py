"""mmtok: a memory-mapped on-disk store for tokenized text.

``mmtok.build(inputs, path)`` tokenizes corpora into a store; ``mmtok.open(path)``
reads one lazily; ``mmtok.TokenDataset`` views one as training samples. See
FORMAT.md (shipped in this package) for the on-disk format, and README.md
("How the code is laid out") for the layers: base, tokenize, inputs, store,
order, cache, views, cli, torch (``mmtok.torch.Collator``, imports torch lazily).
"""

import importlib as _importlib

from .base.errors import (
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
from .base.version import __version__
from .inputs.split import split_inputs
from .store import Store, build, build_partition, commit
from .store import open_store as open
from .views import TokenDataset, blend, merge_datasets

__all__ = [
    "build",
    "build_partition",
    "commit",
    "split_inputs",
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

# Layers and the module paths of 0.1.0, imported on first attribute access so that
# `import mmtok` stays light while `mmtok.tokenize.load_tokenizer` (or the old
# `mmtok.tokenizer.load_tokenizer`) works without importing the submodule first.
_LAZY = {
    "base": "base", "tokenize": "tokenize", "inputs": "inputs", "store": "store", "order": "order",
    "cache": "cache", "views": "views", "cli": "cli", "torch": "torch", "remote": "remote", "ray": "ray",
    "tokenizer": "tokenize.tokenizer", "storecache": "views.storecache", "materialize": "views.materialize",
    "exchange": "cache", "sampler": "order.sampler", "errors": "base.errors",
}


def __getattr__(name):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'mmtok' has no attribute {name!r}")
    module = _importlib.import_module(f"{__name__}.{target}")
    globals()[name] = module
    return module


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
