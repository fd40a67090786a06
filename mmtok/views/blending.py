"""Weighted blends of datasets, proportioned by tokens: :func:`blend` and the lazy view it returns.

The interleave. Every input is read in a seeded random order: draw ``j`` of
input ``i`` (of ``n_i`` samples) is position ``j % n_i`` of permutation number
``j // n_i`` of ``range(n_i)``, a fresh permutation per pass, so an input that
must give more samples than it has is repeated pass after pass (upsampled),
every sample once per pass. Draw ``j`` carries ``L`` tokens and follows
``before`` tokens of earlier draws of the same input; it is *due* when the
blend's token count, times the input's weight ``w_i``, reaches the middle of
that sample::

    due = (before + L / 2) / w_i

and the blend serves draws in order of due time (ties: lower input first).
This is Megatron's greedy ("serve the input that lags its target most"), with
the lag measured in tokens at the middle of the next sample: the Sainte-Laguë
(Webster) rule, applied to tokens instead of seats. Because an input's due
times depend only on its own samples, the interleave is a merge of sorted
arrays, computed chunk by chunk at numpy speed, and the same whatever the
chunking.

Guarantee, at every prefix of the blend holding ``T`` tokens, of which ``t_i``
from input ``i``, with ``L`` the longest sample: ``|t_i - w_i T| <= L/2`` for two
inputs (half a sample), and ``<= (1 + w_i (n - 2)) L/2`` for ``n`` inputs (so at
most one sample for three). Proof: if the prefix ends at due time ``V``, every
draw of input ``i`` whose middle lies before ``w_i V`` is in and every later one
out, so ``t_i = w_i V + e_i`` with ``|e_i| <= L/2``; then ``t_i - w_i T = e_i - w_i
sum_j e_j``. Tokens are those of the samples as read (a document sample counts
its tokens up to ``block_size``, eos included; padding never counts).

Which input serves sample ``k`` is kept per process, 3 bytes per sample
(input number and the offset of its draw within a 65,536-sample chunk, plus a
row of counts per chunk), computed up to the highest sample asked for; it is
never pickled: each worker recomputes it from the seed on first use.
"""

from __future__ import annotations

import math
import numbers
import threading

import numpy as np

from ..base.argcheck import as_int
from ..base.errors import StoreError
from ..order.permutation import MAX_SIZE, Permutation, mix_seed
from .composed import ComposedDataset, name, resolve_seed, sample_lengths

__all__ = ["BlendedDataset", "blend"]

CHUNK = 1 << 16  # samples interleaved per step; a draw's offset within its chunk fits uint16
_EXACT_REPR = 1 << 20  # repr computes exact repetition up to this many samples, estimates beyond


class BlendedDataset(ComposedDataset):
    """Samples drawn from several datasets in proportions of tokens (made by :func:`blend`).

    ``weights`` are the normalised target shares; ``sizes`` the inputs' sample
    counts. :meth:`draws` tells how many samples each input gave (more than
    its size: the input was repeated); ``repr`` says it too.
    """

    kind = "blend"

    def __init__(self, datasets, weights, *, num_samples: int | None = None, seed: int | None = None,
                 pad_id: int | None = None, dtype=None):
        self._init_inputs(datasets, pad_id=pad_id, dtype=dtype, action="blend")
        self.weights = _check_weights(weights, len(self.inputs))
        self.seed = resolve_seed(seed)
        self.sizes = tuple(len(d) for d in self.inputs)
        if 0 in self.sizes:
            empty = self.sizes.index(0)
            raise StoreError(f"cannot blend: datasets[{empty}] ({name(self.inputs[empty])}) has no samples to draw; "
                             "leave it out")
        self.until_exhausted = num_samples is None
        if num_samples is None:
            # As many samples as the blend can serve before any input would repeat (HF datasets' "first_exhausted").
            interleave = _Interleave(self, limit=None)
            interleave.ensure(MAX_SIZE)
            self._length = interleave.built
            self._cache_interleave = interleave
        else:
            self._length = _check_count(num_samples)

    def settings(self) -> dict:
        """The blend's parameters as plain values (see :func:`mmtok.views.materialize.describe`)."""
        return {"weights": list(self.weights), "seed": self.seed, "num_samples": self._length,
                "until_exhausted": self.until_exhausted, "draws": self.draws()}

    def _interleave(self) -> _Interleave:
        interleave = self.__dict__.get("_cache_interleave")
        if interleave is None:
            interleave = self._cache_interleave = _Interleave(self, limit=self._length)
        return interleave

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        which, draw = self._interleave().lookup(np.asarray(index, dtype=np.int64))
        inner = np.empty_like(draw)
        for i in np.unique(which).tolist():
            rows = np.flatnonzero(which == i)
            inner[rows] = self.draw_samples(i, draw[rows])
        return which, inner

    def draw_samples(self, i: int, draws: np.ndarray) -> np.ndarray:
        """The samples of input ``i`` that its draws ``draws`` read (one seeded permutation per pass)."""
        size = self.sizes[i]
        passes, positions = np.divmod(np.asarray(draws, dtype=np.int64), size)
        out = np.empty_like(positions)
        stream = mix_seed(self.seed, i)
        for p in np.unique(passes).tolist():
            rows = passes == p
            out[rows] = Permutation(size, seed=mix_seed(stream, p)).take(positions[rows])
        return out

    def draws(self) -> list[int]:
        """How many samples each input gives to the whole blend (computes the interleave to the end)."""
        interleave = self._interleave()
        interleave.ensure(self._length)
        return interleave.drawn.tolist()

    def __repr__(self) -> str:
        interleave = self.__dict__.get("_cache_interleave")
        if self._length <= _EXACT_REPR or (interleave is not None and interleave.built >= self._length):
            draws, about = self.draws(), ""
        else:
            draws, about = self._estimated_draws(), "~"
        parts = []
        for d, weight, size, count in zip(self.inputs, self.weights, self.sizes, draws):
            use = f"repeated {about}{count / size:.1f}x" if count > size else f"{about}{count / size:.0%} used"
            parts.append(f"{name(d)} (weight {weight:.3g}, {size:,} samples) {use}")
        length = "until the first input is exhausted" if self.until_exhausted else "num_samples"
        return (f"BlendedDataset containing {self._length:,} subsets ({length}) blended by tokens from "
                f"{len(self.inputs)} datasets, seed {self.seed}: {'; '.join(parts)}; block_size {self.block_size:,}.")

    def _estimated_draws(self) -> list[int]:
        """Expected draws per input from a sample of each input's mean sample length (for repr of huge blends)."""
        rng = np.random.default_rng(0)
        rates = []
        for d, weight, size in zip(self.inputs, self.weights, self.sizes):
            picks = rng.integers(0, size, size=min(size, 4096))
            rates.append(weight / float(sample_lengths(d, picks).mean()))
        return [round(self._length * rate / sum(rates)) for rate in rates]


def blend(datasets, weights, num_samples: int | None = None, seed: int | None = None, *, pad_id: int | None = None,
          dtype=None) -> BlendedDataset:
    """A lazy view drawing samples from ``datasets`` in the proportions ``weights``, measured in tokens.

    ``weights``: one positive number per dataset (normalised to sum to 1).
    ``num_samples``: the blend's length; inputs that cannot give their share
    are repeated, a new seeded permutation per pass (``repr`` says by how
    much). ``None``: the longest blend in which no input repeats. ``seed``: the
    inputs' orders (``None``: fresh randomness, kept in ``view.seed``); the
    same seed gives the same blend. Inputs follow :func:`merge_datasets`'s
    rules (same block size and tokenizer; views nest). The module docstring
    gives the interleave and its guarantee: at every prefix each input's token
    share is within half a sample of its target for two inputs.
    """
    return BlendedDataset(datasets, weights, num_samples=num_samples, seed=seed, pad_id=pad_id, dtype=dtype)


class _Interleave:
    """Which input (and which of its draws) serves each blend sample, computed chunk by chunk."""

    def __init__(self, view: BlendedDataset, *, limit: int | None):
        self.view, self.limit = view, limit  # limit None: stop before the first draw that would repeat an input
        n = len(view.inputs)
        self.chunk = CHUNK
        self.sizes = np.array(view.sizes, dtype=np.int64)
        self.which = np.empty(0, dtype=np.uint8 if n <= 256 else np.uint16)
        self.offset = np.empty(0, dtype=np.uint16)
        self.bases = np.empty((0, n), dtype=np.int64)  # draws of each input before each chunk
        self.drawn = np.zeros(n, dtype=np.int64)
        self.built, self.done = 0, limit == 0
        self._due = [np.empty(0) for _ in range(n)]  # due times of computed draws not yet served
        self._computed = [0] * n
        self._tokens = [0] * n  # tokens of the computed draws
        self._lock = threading.Lock()

    def ensure(self, upto: int) -> None:
        with self._lock:
            while self.built < upto and not self.done:
                self._step()

    def lookup(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if index.shape[0] == 0:
            return index.copy(), index.copy()
        self.ensure(int(index.max()) + 1)
        which = self.which[index].astype(np.int64)
        return which, self.bases[index // self.chunk, which] + self.offset[index]

    def _step(self) -> None:
        size = self.chunk if self.limit is None else min(self.chunk, self.limit - self.built)
        for i, due in enumerate(self._due):
            if due.shape[0] < size:
                self._extend(i, self.chunk)
        # The `size` earliest draws overall are among each input's `size` earliest; a stable sort of the
        # input-major pool breaks ties by input, and keeps each input's draws in order.
        order = np.argsort(np.concatenate([due[:size] for due in self._due]), kind="stable")[:size]
        which, offset = np.divmod(order, size)
        if self.limit is None:
            repeat = np.flatnonzero(self.drawn[which] + offset >= self.sizes[which])
            if repeat.shape[0]:
                which, offset, self.done = which[: repeat[0]], offset[: repeat[0]], True
        self._append(which, offset)
        counts = np.bincount(which, minlength=len(self._due))
        self._due = [due[count:] for due, count in zip(self._due, counts.tolist())]
        self.drawn += counts
        if self.limit is not None and self.built >= self.limit:
            self.done = True

    def _extend(self, i: int, count: int) -> None:
        first = self._computed[i]
        samples = self.view.draw_samples(i, np.arange(first, first + count, dtype=np.int64))
        lengths = sample_lengths(self.view.inputs[i], samples)
        ends = np.cumsum(lengths) + self._tokens[i]
        due = (ends - 0.5 * lengths) / self.view.weights[i]
        self._due[i] = np.concatenate([self._due[i], due])
        self._computed[i] += count
        self._tokens[i] = int(ends[-1])

    def _append(self, which: np.ndarray, offset: np.ndarray) -> None:
        start, stop = self.built, self.built + which.shape[0]
        if stop > self.which.shape[0]:
            capacity = max(stop, 2 * self.which.shape[0])
            if self.limit is not None:
                capacity = min(capacity, self.limit)
            self.which = _grown(self.which, capacity, start)
            self.offset = _grown(self.offset, capacity, start)
        self.which[start:stop] = which
        self.offset[start:stop] = offset
        chunk = start // self.chunk  # every step but the last serves a whole chunk
        if chunk >= self.bases.shape[0]:
            self.bases = _grown(self.bases, max(chunk + 1, 2 * self.bases.shape[0]), chunk)
        self.bases[chunk] = self.drawn
        self.built = stop


def _grown(array: np.ndarray, capacity: int, keep: int) -> np.ndarray:
    """``array`` with room for ``capacity`` rows, its first ``keep`` rows kept (amortised doubling)."""
    out = np.empty((capacity,) + array.shape[1:], dtype=array.dtype)
    out[:keep] = array[:keep]
    return out


def _check_weights(weights, n: int) -> tuple[float, ...]:
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise TypeError(f"weights must be a list of numbers, one per dataset, not {type(weights).__name__}")
    values = list(weights)
    if len(values) != n:
        raise ValueError(f"{n} datasets but {len(values)} weights: give one weight per dataset")
    for i, w in enumerate(values):
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise TypeError(f"weights[{i}] must be a number, not {w!r}")
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"weights[{i}] is {w!r}; weights must be positive and finite "
                             "(to leave a dataset out, leave it out of the list)")
    total = math.fsum(float(w) for w in values)
    return tuple(float(w) / total for w in values)


def _check_count(num_samples) -> int:
    count = as_int("num_samples", num_samples, expected="an int or None")
    if not 0 <= count <= MAX_SIZE:
        raise ValueError(f"num_samples must be in [0, 2**62], got {count}")
    return count
