"""What readers hand to the build: a :class:`Chunk` of texts, and the errors all readers share."""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..base.errors import InputError
from .sources import Source

BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass
class Chunk:
    """Consecutive pieces of one input, and where the input stands after them.

    ``ends[i]`` is True when ``texts[i]`` completes a document (mmtok appends
    eos after it).  ``position`` is JSON-able: ``iter_chunks(source,
    start=position)`` continues with exactly the chunks that would follow.
    ``nbytes`` counts the uncompressed UTF-8 bytes consumed by this chunk;
    ``file_offset`` the bytes of the file on disk consumed so far (best effort).

    A reader asked for lazy chunks may leave ``texts`` and ``ends`` None and
    give ``decode`` instead: :meth:`decoded` runs it where the chunk is
    encoded (on a worker thread), so the reading thread only reads and cuts.
    """

    texts: list[str] | None
    ends: list[bool] | None
    position: dict
    nbytes: int
    file_offset: int
    decode: Callable[[], tuple[list[str], list[bool]]] | None = None

    @classmethod
    def deferred(cls, decode: Callable[[], tuple[list[str], list[bool]]], position: dict, nbytes: int,
                 file_offset: int, *, lazy: bool) -> Chunk:
        """A chunk whose ``(texts, ends)`` ``decode()`` makes: now, or where it is encoded when ``lazy``."""
        if lazy:
            return cls(None, None, position, nbytes, file_offset, decode)
        return cls(*decode(), position, nbytes, file_offset)

    def decoded(self) -> tuple[list[str], list[bool]]:
        """``(texts, ends)``, decoding now if the reader deferred it (InputError naming the line if invalid)."""
        if self.texts is None:
            self.texts, self.ends = self.decode()
            self.decode = None
        return self.texts, self.ends


def decode_utf8(data: bytes, source: Source, lines_before: int, offset: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lines_before + data.count(b"\n", 0, e.start) + 1
        where = " of the decompressed data" if source.compression else ""
        raise InputError(f"invalid UTF-8 (byte 0x{data[e.start]:02x} at byte {offset + e.start}{where}); "
                         "mmtok reads UTF-8 text: convert the file, e.g. iconv -f LATIN1 -t UTF-8",
                         path=source.display, line=line) from None


def check_unicode(text: str, display: str | None, line: int | None, what: str) -> int:
    """Return the UTF-8 size of ``text``; refuse lone surrogates, which no tokenizer can encode."""
    if text.isascii():  # O(1) in CPython
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        raise InputError(f"{what} contains a lone surrogate (U+{ord(text[e.start]):04X}) at character "
                         f"{e.start}, which is not valid Unicode text; fix or drop it",
                         path=display, line=line) from None


def empty_input(source: Source, detail: str = "") -> InputError:
    return InputError(f"input is empty: nothing to tokenize{detail}; give it some text or leave it out",
                      path=source.display)
