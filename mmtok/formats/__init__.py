"""The formats layer: other training stacks' token formats, out of a store and into one.

Owns one module per format (``megatron``, ``hf``, ``parquet``, ``nanogpt``,
``llmc``, ``olmo``, ``litdata``; FORMATS.md beside this file gives each byte
layout, its reference reader, and what happens to documents and eos), the
store reader and writer they share, and atomic output. May import
:mod:`mmtok.store` and the layers below it; :mod:`mmtok.cache`'s
``export_store``/``import_cache`` dispatch here for these format names.
"""

from .registry import EXPORT_FORMATS, IMPORT_FORMATS, export_format, import_format

__all__ = ["EXPORT_FORMATS", "IMPORT_FORMATS", "export_format", "import_format"]
