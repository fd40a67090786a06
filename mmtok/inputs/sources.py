"""What an input is: its path, kind, compression, options and identity.

:func:`resolve_source` turns a user's path and options into a :class:`Source`;
:func:`texts_source` does the same for an in-memory iterable of strings.
:func:`open_stream` gives the (decompressed) bytes of a file source, starting
at any uncompressed offset, with decompression errors reported as
:class:`~mmtok.base.errors.InputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat as stat_module
from typing import Iterable

from ..base.errors import InputError, InputNotFoundError
from .decompress import BUFFER as _BUFFER
from .decompress import CountingRaw, GzipRaw, ZstdRaw

__all__ = ["Source", "Span", "resolve_source", "texts_source", "open_stream", "InputStream"]

_KIND_BY_SUFFIX = {".txt": "txt", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
_COMPRESSION_BY_SUFFIX = {".gz": "gz", ".zst": "zst"}
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CSV_FIELD_LIMIT = 1 << 24  # default longest CSV field, in characters (16 Mi)


@dataclasses.dataclass(frozen=True)
class Source:
    """One input of a build: a file (txt, csv, jsonl; maybe .gz/.zst) or in-memory texts.

    Options that do not apply to a kind hold their defaults, so that
    :meth:`identity` only changes when something that matters changes.
    """

    display: str
    path: str | None
    kind: str
    compression: str | None
    line_by_line: bool
    column: str | int | None
    field: str
    header: bool
    size: int | None
    mtime_ns: int | None
    texts: Iterable[str] | None = dataclasses.field(default=None, compare=False, repr=False)
    # Only bytes [start, stop) of an uncompressed file (a split of a partitioned build, see
    # mmtok/inputs/split.py); ``lines`` counts the newlines before ``start``, for line numbers.
    span: Span | None = None
    # A pipe, FIFO, character device or stdin ("-"): read once, front to back, never reopened or
    # sought; its compression is sniffed from the first bytes when it is opened.
    stream: bool = False
    # CSV only: the longest field, in characters (an unclosed quote otherwise swallows the rest of the file)
    csv_field_limit: int = dataclasses.field(default=CSV_FIELD_LIMIT, compare=False)

    def identity(self) -> dict:
        """What must match for a build to resume on this input (JSON-able)."""
        identity = {
            "path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "kind": self.kind,
            "compression": self.compression, "line_by_line": self.line_by_line,
            "column": self.column, "field": self.field, "header": self.header,
        }
        if self.span is not None:
            identity["span"] = [self.span.start, self.span.stop]
        if self.stream:
            identity["stream"] = True
        return identity

    @property
    def ends_at_file_end(self) -> bool:
        """False for a span that stops before the end of its file (its last text continues)."""
        return self.span is None or self.span.stop >= (self.size or 0)


@dataclasses.dataclass(frozen=True)
class Span:
    """Bytes ``[start, stop)`` of a file; ``lines`` newlines precede ``start``."""

    start: int
    stop: int
    lines: int


def resolve_source(path, *, line_by_line=None, column=None, field="text", header=True,
                   csv_field_limit: int | None = None) -> Source:
    """Describe the input file at ``path``.

    The kind comes from the suffix once ``.gz``/``.zst`` is stripped: ``.csv``
    is CSV, ``.jsonl``/``.json``/``.ndjson`` is JSON Lines, anything else is
    text.  Compression comes from the file's magic bytes.  ``line_by_line=None``
    means text files are one bulk document and CSV/JSONL are one document per
    row/line (whatever ``line_by_line`` says).  ``column`` and ``header`` apply
    to CSV only, ``field`` to JSONL only; :func:`~mmtok.inputs.options.check_options_apply` refuses
    options that apply to none of a build's inputs.
    ``csv_field_limit`` (CSV only; default :data:`CSV_FIELD_LIMIT`) is the
    longest field accepted, in characters.
    A missing path raises :class:`InputNotFoundError`, a directory :class:`InputError`.

    ``"-"`` is the standard input; it, a FIFO and a process substitution
    (``<(zcat a.txt.gz)``) are streams: read once from the front (see
    :attr:`Source.stream`). Their kind still comes from the name (``-`` and
    ``/dev/fd/N`` are text), their compression from their first bytes.
    """
    display = os.fsdecode(path)
    limit = _check_field_limit(csv_field_limit, display)
    if display == "-":
        return dataclasses.replace(_stream_source("<stdin>", STDIN, line_by_line, column, field, header),
                                   csv_field_limit=limit)
    absolute = os.path.abspath(display)
    try:
        stat = os.stat(absolute)
    except FileNotFoundError:
        raise InputNotFoundError("no such file; check the path", path=display) from None
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror})", path=display) from None
    if os.path.isdir(absolute):
        raise InputError("is a directory; give the text, CSV or JSONL files inside it one by one", path=display)
    if not stat_module.S_ISREG(stat.st_mode):
        return dataclasses.replace(_stream_source(display, absolute, line_by_line, column, field, header),
                                   csv_field_limit=limit)
    name = os.path.basename(absolute).lower()
    stem, suffix = os.path.splitext(name)
    hinted = _COMPRESSION_BY_SUFFIX.get(suffix)
    if hinted:
        suffix = os.path.splitext(stem)[1]
    kind = _KIND_BY_SUFFIX.get(suffix, "txt")
    compression = _detect_compression(absolute, display, hinted)
    line_by_line = _check_options(kind, display, line_by_line, column, field, header)
    source = Source(
        display=display, path=absolute, kind=kind, compression=compression,
        line_by_line=line_by_line,
        column=column if kind == "csv" else None,
        field=field if kind == "jsonl" else "text",
        header=header if kind == "csv" else True,
        size=stat.st_size, mtime_ns=stat.st_mtime_ns, csv_field_limit=limit,
    )
    return source


def _check_field_limit(limit, display: str) -> int:
    if limit is None:
        return CSV_FIELD_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit < 1 << 62:
        raise InputError(f"csv_field_limit must be a positive number of characters, got {limit!r}", path=display)
    return limit


STDIN = "<stdin>"  # the path of the standard input's Source


def _stream_source(display, path, line_by_line, column, field, header) -> Source:
    stem, suffix = os.path.splitext(os.path.basename(display).lower())
    if suffix in _COMPRESSION_BY_SUFFIX:
        suffix = os.path.splitext(stem)[1]
    kind = _KIND_BY_SUFFIX.get(suffix, "txt")
    line_by_line = _check_options(kind, display, line_by_line, column, field, header)
    return Source(display=display, path=path, kind=kind, compression=None, line_by_line=line_by_line,
                  column=column if kind == "csv" else None, field=field if kind == "jsonl" else "text",
                  header=header if kind == "csv" else True, size=None, mtime_ns=None, stream=True)


def texts_source(texts) -> Source:
    """Describe an in-memory iterable of strings; each string is one document.

    The iterable is read lazily, once per :func:`~mmtok.inputs.readers.iter_chunks`
    call; resuming skips the elements already read, so a resumed build needs
    an iterable that yields the same texts again.
    """
    if isinstance(texts, (str, bytes)):
        raise InputError(f"texts must be a list of strings, not one {type(texts).__name__}; "
                         "wrap a single text in a list: texts=[text]")
    try:
        iter(texts)
    except TypeError:
        raise InputError(f"texts must be an iterable of strings, got {type(texts).__name__}") from None
    return Source(display="texts", path=None, kind="texts", compression=None, line_by_line=True,
                  column=None, field="text", header=True, size=None, mtime_ns=None, texts=texts)


def _check_options(kind, display, line_by_line, column, field, header) -> bool:
    """Validate the options' types; return the effective line_by_line.

    Options that do not apply to the kind are ignored here, so one set of
    options can serve a build over several kinds of input; whether each applies
    to at least one input is :func:`~mmtok.inputs.options.check_options_apply`'s job.
    """
    if line_by_line not in (None, True, False):
        raise InputError(f"line_by_line must be True, False or None (auto), got {line_by_line!r}", path=display)
    if isinstance(column, bool) or not isinstance(column, (str, int, type(None))) or \
            (isinstance(column, int) and column < 0):
        raise InputError(f"column must be a column name or a 0-based index, got {column!r}", path=display)
    if not isinstance(header, bool):
        raise InputError(f"header must be True or False, got {header!r}", path=display)
    if not isinstance(field, str) or not field:
        raise InputError(f"field must be the name of a JSON field, got {field!r}", path=display)
    # CSV rows and JSON lines are documents by construction
    return bool(line_by_line) if kind == "txt" else True


def _detect_compression(path: str, display: str, hinted: str | None) -> str | None:
    """Compression from the magic bytes; the suffix only breaks ties and is checked."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith(_GZIP_MAGIC):
        return "gz"
    # zstd frames, including skippable frames (magic 0x184D2A50..5F, little-endian)
    if magic == _ZSTD_MAGIC or (len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50):
        return "zst"
    if hinted and len(magic) >= 2:
        # A named-compressed file that does not start like one is corrupt or
        # misnamed; reading it as plain text would tokenize garbage.
        raise InputError(f"is named .{hinted} but does not start with the {hinted} magic bytes "
                         f"(it starts with {magic!r}); it is corrupt, or not compressed and "
                         "should be renamed without the suffix", path=display)
    return hinted  # too short to sniff: reading it will report it as empty or truncated


class InputStream:
    """The uncompressed bytes of a file source, from a given offset on.

    ``read(n)`` returns ``n`` bytes, or fewer only at the end; ``readline()``
    returns one line with its ``\\n``; :meth:`file_offset` tells how much of the
    file on disk (compressed, if it is) has been read so far.
    """

    def __init__(self, source: Source, offset: int):
        if source.stream:
            self._init_stream(source, offset)
            return
        self._file = open(source.path, "rb", buffering=_BUFFER)
        try:
            if source.compression is None:
                self._stream = self._file
            else:
                raw_class = GzipRaw if source.compression == "gz" else ZstdRaw
                self._stream = io.BufferedReader(raw_class(self._file, source.display), _BUFFER)
            self._seek(source, offset)
        except BaseException:
            self._file.close()
            raise
        self.read = self._stream.read
        self.readline = self._stream.readline
        if source.span is not None:  # a split of a file: nothing past its stop
            self._stop = source.span.stop
            self.read, self.readline = self._read_span, self._readline_span

    def _init_stream(self, source: Source, offset: int) -> None:
        """Open a stream once; sniff its compression by peeking (no byte is lost); it cannot resume."""
        if offset:
            raise InputError("a stream (pipe, FIFO or stdin) cannot be read again from a resume position; "
                             "save it to a file to make the build resumable", path=source.display)
        try:
            fd = os.dup(0) if source.path == STDIN else os.open(source.path, os.O_RDONLY)
        except OSError as exc:
            raise InputError(f"cannot read it ({exc.strerror})", path=source.display) from None
        self._raw = CountingRaw(fd)
        self._file = io.BufferedReader(self._raw, _BUFFER)
        magic = self._file.peek(4)[:4]
        if magic.startswith(_GZIP_MAGIC):
            self._stream = io.BufferedReader(GzipRaw(self._file, source.display), _BUFFER)
        elif magic == _ZSTD_MAGIC:
            self._stream = io.BufferedReader(ZstdRaw(self._file, source.display), _BUFFER)
        else:
            self._stream = self._file
        self.read = self._stream.read
        self.readline = self._stream.readline

    def _seek(self, source: Source, offset: int) -> None:
        if source.compression is None:
            reached = offset <= os.fstat(self._file.fileno()).st_size
            if reached:
                self._file.seek(offset)
        else:
            left = offset
            while left > 0:  # compressed streams cannot seek: decompress and drop
                skipped = len(self._stream.read(min(left, 1 << 20)))
                if not skipped:
                    break
                left -= skipped
            reached = left == 0
        if not reached:
            raise InputError(f"the file is shorter than the resume position (byte {offset}); "
                             "it changed since the build started: start the build afresh",
                             path=source.display)

    def _read_span(self, n: int = -1) -> bytes:
        left = max(0, self._stop - self._file.tell())
        return self._stream.read(left if n is None or n < 0 else min(n, left))

    def _readline_span(self, n: int = -1) -> bytes:
        left = max(0, self._stop - self._file.tell())
        return self._stream.readline(left if n is None or n < 0 else min(n, left))

    def file_offset(self) -> int:
        """Bytes of the file on disk (or of the stream) consumed so far (read-ahead included)."""
        raw = getattr(self, "_raw", None)
        return raw.count if raw is not None else self._file.tell()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> InputStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_stream(source: Source, *, offset: int = 0) -> InputStream:
    """Open a file source's uncompressed bytes at uncompressed byte ``offset``."""
    if source.path is None:
        raise ValueError(f"{source.display} is not a file source")
    return InputStream(source, offset)
