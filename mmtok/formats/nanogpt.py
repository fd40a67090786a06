"""nanoGPT's ``train.bin``: headerless uint16 ids, every document followed by eos (its ``prepare.py``).

The store's token stream is exactly that, so export copies it (uint16 stores
only: nanoGPT reads the file as ``np.memmap(..., dtype=np.uint16)``), and
import splits documents just past every eos (a tail without one gets it).
"""

from __future__ import annotations

import os

import numpy as np

from ..base.errors import FormatError
from .output import TempFile, refuse_existing
from .rawtokens import ends_after_eos, raw_dtype, token_blocks
from .storeread import open_store, pieces


def export_nanogpt(store, output, *, force: bool = False, progress=None) -> dict:
    store = open_store(store)
    if store.dtype != np.dtype("<u2"):
        raise FormatError(f"{store.path}: nanoGPT's train.bin holds uint16 ids; this store's vocabulary "
                          f"({store.vocab_size:,}) needs uint32 (use --format olmo or megatron)")
    output = os.fspath(output)
    refuse_existing([output], force)
    out = TempFile(output)
    try:
        for tokens, _ in pieces(store, progress=progress):
            out.write(memoryview(tokens).cast("B"))
        out.commit()
    except BaseException:
        out.abort()
        raise
    return {"path": out.path, "files": [out.path]}


def import_nanogpt(source, writer, *, dtype="uint16", progress=None) -> dict:
    source = os.fspath(source)
    if not os.path.isfile(source):
        raise FormatError(f"{source}: not found (nanoGPT data is one headerless train.bin / val.bin file)")
    dtype = raw_dtype(dtype)
    total, done = os.path.getsize(source) or 1, 0
    for tokens in token_blocks(source, dtype):
        writer.write(tokens, ends_after_eos(tokens, writer.tok.eos_id), f"{source}: tokens from {done // dtype.itemsize:,}")
        done += tokens.nbytes
        if progress is not None:
            progress(done, total)
    writer.close_document(source)
    return {"token_dtype": dtype.name}
