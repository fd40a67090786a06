"""gzip for cache files, accelerated by zlib-ng when it is installed.

The output is a standard gzip stream (one member; no file name; mtime 0) that
any gzip reader opens, at the same compression level numbers as the ``gzip``
module.  With ``zlib-ng`` (``pip install 'mmtok[fast]'``, a default
dependency on Linux and macOS) it is compressed pigz-style: 1 MiB blocks, each
primed with the 32 KiB before it, on all cores; the bytes depend only on the
data, the level and zlib-ng's version, never on the thread count.  Without it
the standard library's ``gzip`` writes and reads, as before.

zlib-ng was chosen over ISA-L (``isal``): ISA-L's fastest levels write 9-12 %
larger files than gzip level 6 on token data, zlib-ng's level 6 is as small.
The default level is 5 (``CACHE_DEFAULT_LEVELS``): zlib-ng's level 5 writes
token data within 1 % of the gzip module's level 6 with about 1.4x less CPU than
its own level 6 (tools/bench_cache.py --codecs prints both).
"""

from __future__ import annotations

import functools
import gzip
import zlib

__all__ = ["accelerator", "gzip_writer", "gzip_reader", "gzip_errors"]

BLOCK_BYTES = 1 << 20


@functools.cache
def accelerator():
    """The zlib-ng modules ``(gzip_ng, gzip_ng_threaded, zlib_ng)``, or None when zlib-ng is not installed."""
    try:
        from zlib_ng import gzip_ng, gzip_ng_threaded, zlib_ng
    except ImportError:
        return None
    return gzip_ng, gzip_ng_threaded, zlib_ng


def gzip_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a corrupt gzip stream raises, with or without the accelerator."""
    found = accelerator()
    return (gzip.BadGzipFile, zlib.error, OSError) + ((found[2].error,) if found else ())


def gzip_writer(fileobj, level: int, threads: int):
    """A binary writer whose ``close()`` finishes the gzip stream into ``fileobj`` (left open)."""
    found = accelerator()
    if found is None:
        return gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=fileobj, mtime=0)
    _, gzip_ng_threaded, _ = found
    # threads >= 1 always takes the block-wise path, so 1 and N threads give the same bytes.
    return gzip_ng_threaded.open(fileobj, "wb", compresslevel=level, threads=max(1, threads), block_size=BLOCK_BYTES)


def gzip_reader(fileobj):
    """A binary reader of the (multi-member) gzip stream in ``fileobj``."""
    found = accelerator()
    if found is None:
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    return found[0].GzipFile(fileobj=fileobj, mode="rb")

