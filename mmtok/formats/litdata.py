"""litdata's optimized folder for ``TokensLoader`` (litgpt pretraining): export only.

Layout (FORMATS.md, "litdata"): ``index.json`` plus ``chunk-0-N.bin`` files,
each ``uint32 N | uint32 offsets[N+1] | items``, where the offsets are byte
positions in the chunk and every item is raw ids (``data_format``
``no_header_numpy:5`` for uint16, ``:6`` for uint32, litdata's dtype indices).
mmtok writes one item per document (eos kept; a document longer than a chunk
is cut into several items) and closes a chunk at ``chunk_tokens``.
``TokensLoader(block_size)`` then serves ``dim // block_size`` windows per
chunk: windows never cross chunks, so up to ``block_size - 1`` tokens at the
end of each chunk are not served.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .output import TempDir, refuse_existing, synced_write
from .storeread import documents, open_store

DTYPE_INDEX = {"<u2": 5, "<u4": 6}  # positions of uint16/uint32 in litdata's _NUMPY_SCTYPES
DATA_SPEC = '[1, {"type": null, "context": null, "children_spec": []}]'  # one leaf: the token array
DEFAULT_CHUNK_TOKENS = 1 << 25
_MAX_CHUNK_BYTES = (1 << 32) - 1  # offsets are uint32


def export_litdata(store, output, *, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, force: bool = False,
                   progress=None) -> dict:
    store = open_store(store)
    itemsize = store.dtype.itemsize
    if type(chunk_tokens) is not int or chunk_tokens < 1 or chunk_tokens * (itemsize + 8) + 8 > _MAX_CHUNK_BYTES:
        raise ValueError("chunk_tokens must be a positive integer small enough for litdata's uint32 offsets")
    output = os.fspath(output)
    refuse_existing([output], force)
    out = TempDir(output, force=force)
    chunks: list[dict] = []
    items: list[np.ndarray] = []
    held = 0

    def flush():
        nonlocal items, held
        if not items:
            return
        sizes = np.array([0] + [item.nbytes for item in items], dtype=np.int64)
        header = 4 + 4 * (len(items) + 1)
        offsets = (np.cumsum(sizes) + header).astype("<u4")
        name = f"chunk-0-{len(chunks)}.bin"
        with open(out.file(name), "wb") as f:
            f.write(np.uint32(len(items)).astype("<u4").tobytes())
            f.write(offsets.tobytes())
            for item in items:
                f.write(item.tobytes())
            f.flush()
            os.fsync(f.fileno())
        chunks.append({"chunk_bytes": int(offsets[-1]), "chunk_size": len(items), "dim": held, "filename": name})
        items, held = [], 0

    try:
        for tokens, lengths in documents(store, progress=progress):
            lo = 0
            for n in lengths.tolist():
                doc = tokens[lo : lo + n]
                lo += n
                while doc.shape[0]:
                    if held >= chunk_tokens:
                        flush()
                    part, doc = doc[: chunk_tokens - held], doc[chunk_tokens - held :]
                    items.append(part)
                    held += part.shape[0]
        flush()
        index = {
            "chunks": chunks,
            "config": {
                "chunk_bytes": chunk_tokens * itemsize, "chunk_size": None, "compression": None,
                "data_format": [f"no_header_numpy:{DTYPE_INDEX[store.dtype.str]}"], "data_spec": DATA_SPEC,
                "encryption": None, "item_loader": "TokensLoader",
            },
        }
        synced_write(out.file("index.json"), json.dumps(index, sort_keys=True).encode())
        out.commit()
    except BaseException:
        out.abort()
        raise
    return {"path": out.path, "files": [os.path.join(out.path, c["filename"]) for c in chunks]}
