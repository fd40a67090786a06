"""OLMo / Dolma token memmaps: headerless ``.npy`` ids (uint16, or uint32 for large vocabularies) plus a
``.csv.gz`` of ``start,end,id,src,loc`` rows per document (what Dolma's tokenizer writes beside each file).

Export writes ``part-00000.npy`` + ``part-00000.csv.gz``, ... into a folder,
whole documents per file (a file closes before the document that would take it
past ``shard_tokens``), every document ending with eos as Dolma appends it.
Import reads the files in name order, documents from the metadata when it is
there (``end`` exclusive), else split just past every eos.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from ..base.errors import FormatError
from .output import TempDir, refuse_existing
from .rawtokens import ends_after_eos, files_in, raw_dtype, token_blocks
from .storeread import documents, open_store

DEFAULT_SHARD_TOKENS = 1 << 30


def export_olmo(store, output, *, shard_tokens: int = DEFAULT_SHARD_TOKENS, force: bool = False,
                progress=None) -> dict:
    store = open_store(store)
    if type(shard_tokens) is not int or shard_tokens < 1:
        raise ValueError("shard_tokens must be a positive integer")
    output = os.fspath(output)
    refuse_existing([output], force)
    out = TempDir(output, force=force)
    files, data, meta, held, doc = [], None, None, 0, 0
    try:
        for tokens, lengths in documents(store, progress=progress):
            ends = np.cumsum(lengths)
            lo = 0
            while lo < tokens.shape[0]:
                if data is None or held >= shard_tokens:
                    _close(data, meta)
                    name = f"part-{len(files):05d}"
                    data = open(out.file(name + ".npy"), "wb")
                    meta = gzip.GzipFile(out.file(name + ".csv.gz"), "wb", mtime=0)
                    files.append(name)
                    held = 0
                # whole documents up to the limit (at least one)
                first = int(np.searchsorted(ends, lo, side="right"))
                take = int(np.searchsorted(ends, lo + shard_tokens - held, side="right"))
                take = max(take, first + 1)
                hi = int(ends[take - 1])
                starts = np.concatenate([[lo], ends[first : take - 1]]) - lo + held
                stops = ends[first:take] - lo + held
                data.write(tokens[lo:hi].tobytes())
                ids = np.arange(doc, doc + (take - first))
                meta.write("".join(f"{a},{b},{i},mmtok,{i}\n" for a, b, i in
                                   zip(starts.tolist(), stops.tolist(), ids.tolist())).encode())
                doc += take - first
                held += hi - lo
                lo = hi
        if data is None:  # an empty store: one empty file and metadata, still readable as OLMo data
            data = open(out.file("part-00000.npy"), "wb")
            meta = gzip.GzipFile(out.file("part-00000.csv.gz"), "wb", mtime=0)
            files.append("part-00000")
        _close(data, meta)
        data = meta = None
        out.commit()
    except BaseException:
        for f in (data, meta):
            if f is not None:
                f.close()
        out.abort()
        raise
    return {"path": out.path, "files": [os.path.join(out.path, n + ".npy") for n in files],
            "token_dtype": store.dtype.name}


def _close(data, meta) -> None:
    if data is None:
        return
    meta.close()
    data.flush()
    os.fsync(data.fileno())
    data.close()


def _metadata_ends(path: str, count: int):
    """Yield the end offsets of a Dolma metadata file, checking rows cover [0, count) in order."""
    previous = 0
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split(",", 2)
            try:
                start, end = int(fields[0]), int(fields[1])
            except (ValueError, IndexError):
                raise FormatError(f"{path}:{line_no}: not a start,end,... row") from None
            if start != previous or end < start or end > count:
                raise FormatError(f"{path}:{line_no}: document [{start}, {end}) does not follow the previous one "
                                  f"(ending at {previous}) inside the file's {count:,} tokens")
            previous = end
            yield end
    if previous != count:
        raise FormatError(f"{path}: the documents end at {previous:,}, the tokens at {count:,}")


def import_olmo(source, writer, *, dtype=None, progress=None) -> dict:
    dtype = raw_dtype(dtype or writer.dtype.name)
    paths = files_in(os.fspath(source), ".npy", "OLMo data is headerless *.npy token files")
    for path in paths:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise FormatError(f"{path}: is a NumPy .npy with a header; OLMo memmaps are headerless")
    total, done, with_meta = sum(os.path.getsize(p) for p in paths) or 1, 0, 0
    for path in paths:
        meta = path[: -len(".npy")] + ".csv.gz"
        count = os.path.getsize(path) // dtype.itemsize
        ends = _metadata_ends(meta, count) if os.path.isfile(meta) else None
        with_meta += ends is not None
        pending: list[int] = []
        base = 0
        for tokens in token_blocks(path, dtype):
            if ends is None:
                run_ends = ends_after_eos(tokens, writer.tok.eos_id)
            else:
                stop = base + tokens.shape[0]
                run = [e for e in pending if e <= stop]
                pending = [e for e in pending if e > stop]
                for e in ends:
                    if e <= stop:
                        run.append(e)
                    else:
                        pending.append(e)
                        break
                run_ends = np.array(run, dtype=np.int64) - base
            writer.write(tokens, run_ends, path)
            base += tokens.shape[0]
            done += tokens.nbytes
            if progress is not None:
                progress(done, total)
        if ends is not None:
            rest = pending + list(ends)
            if rest:
                raise FormatError(f"{meta}: rows past the file's tokens")
        writer.close_document(path)  # documents never continue across Dolma files
    return {"files_read": len(paths), "files_with_metadata": with_meta, "token_dtype": dtype.name}
