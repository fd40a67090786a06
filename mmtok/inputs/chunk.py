"""What readers hand to the build: a :class:`Chunk` of texts, and the errors all readers share."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Callable

from ..base.errors import InputError
from .sources import Source

BOM = b"\xef\xbb\xbf"


class SeparatedTexts(Sequence):
    """Documents held as one text, a separator that no document holds between two: a list split on demand.

    A block of 20,000 CSV rows parsed in bulk is one text already; the build
    encodes it joined (``separated``: the text and its separator, for
    :mod:`mmtok.tokenize.joined`), so no row need become an object of its
    own unless a reader of the list asks for it.
    """

    __slots__ = ("separated", "_count", "_texts")

    def __init__(self, text: str, separator: str, count: int):
        self.separated, self._count, self._texts = (text, separator), count, None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self.texts()[index]

    def __iter__(self):
        return iter(self.texts())

    def __eq__(self, other) -> bool:
        return self.texts() == list(other) if isinstance(other, Sequence) and not isinstance(other, str) \
            else NotImplemented

    def __repr__(self) -> str:
        return f"SeparatedTexts({self.texts()!r})"

    def texts(self) -> list[str]:
        if self._texts is None:
            text, separator = self.separated
            self._texts = text.split(separator) if self._count else []
        return self._texts


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

    def take(self) -> tuple[list[str], list[bool]]:
        """:meth:`decoded`, no longer kept by the chunk: the texts are freed where the caller drops them.

        The build encodes on worker threads; freeing a chunk of 20,000 rows
        (one object each) there, not on the thread that writes, keeps the
        writer off that work.
        """
        texts, ends = self.decoded()
        self.texts = self.ends = None
        self.decode = _taken
        return texts, ends

    def decoded(self) -> tuple[list[str], list[bool]]:
        """``(texts, ends)``, decoding now if the reader deferred it (InputError naming the line if invalid)."""
        if self.texts is None:
            self.texts, self.ends = self.decode()
            self.decode = None
        return self.texts, self.ends


def _taken() -> tuple[list[str], list[bool]]:
    raise RuntimeError("this chunk's texts were taken by Chunk.take(); decode it before taking them")


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
