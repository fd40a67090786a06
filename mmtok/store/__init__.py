"""The store layer: the on-disk format (FORMAT.md), its writer, the build, and reading it.

Owns the manifest and journal, ``.npy`` shard files, atomic files, the shard
writer, the streaming build and its worker pipeline, partitioned builds and their commit, :class:`Store` (the lazy
reader), ``verify`` and ``info`` statistics. May import :mod:`mmtok.base`,
:mod:`mmtok.tokenize` and :mod:`mmtok.inputs`.
"""

from .build import build
from .commit import commit
from .partition import build_partition
from .stats import store_info
from .store import Store, open_store
from .verify import verify_store

__all__ = ["build", "build_partition", "commit", "Store", "open_store", "verify_store", "store_info"]
