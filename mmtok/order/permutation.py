"""A seeded pseudo-random permutation of ``range(n)`` computed on demand.

Construction: a balanced Feistel network (8 rounds) over the smallest domain
of ``4**k >= n`` elements (``2k`` bits, two halves of ``k`` bits), made to
stay inside ``range(n)`` by cycle-walking (Black & Rogaway, "Ciphers with
Arbitrary Finite Domains", CT-RSA 2002).  A Feistel network is a bijection
on its domain whatever the round function, and cycle-walking a bijection on
a superset restricts it to a bijection on the subset, so the result is an
exact permutation for every ``n`` by construction, not by luck.

The round function is the murmur3 64-bit finalizer (``fmix64``) applied to
the right half xored with a per-round key; the keys come from a splitmix64
stream started at the seed.  Only integer arithmetic modulo ``2**64`` is
used, never Python's ``hash()``, so a permutation is the same in every
process, platform and Python version.  It is a shuffling tool, not a
cryptographic cipher.

Memory is O(1): the object holds ``n``, the seed and eight round keys.
Because the domain is less than ``4n``, a lookup takes fewer than four
Feistel evaluations on average.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator

import numpy as np

__all__ = ["ALGORITHM", "MAX_SIZE", "Permutation", "mix_seed"]

#: Names the construction; changing anything that alters the output must
#: change this, so saved training states refuse to resume on another order.
ALGORITHM = "feistel8-fmix64-swap01-cyclewalk/1"

#: Largest supported ``n``: the domain (at most ``4 * n``) must fit in 64
#: bits, and the results must fit in an int64 array.
MAX_SIZE = 2**62

_ROUNDS = 8
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64 increment
_SM_MUL1 = 0xBF58476D1CE4E5B9
_SM_MUL2 = 0x94D049BB133111EB
_FMIX_MUL1 = 0xFF51AFD7ED558CCD
_FMIX_MUL2 = 0xC4CEB9FE1A85EC53
_CHUNK = 65536  # elements per vectorised step when iterating


def _splitmix64(state: int) -> tuple[int, int]:
    """Advance a splitmix64 state; return (new state, output)."""
    state = (state + _GOLDEN) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * _SM_MUL1) & _MASK64
    z = ((z ^ (z >> 27)) * _SM_MUL2) & _MASK64
    return state, z ^ (z >> 31)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2**63, 2**64), got {seed}")
    return seed & _MASK64


def mix_seed(seed: int, stream: int) -> int:
    """Derive an independent 64-bit seed from ``seed`` and a ``stream`` number.

    Used to give every epoch its own permutation: nearby inputs such as
    (seed, epoch) and (seed + 1, epoch - 1) give unrelated outputs, unlike
    ``seed + epoch``.  For a fixed ``seed`` distinct streams never collide
    (each step is a bijection on 64-bit words).
    """
    seed = _check_seed(seed)
    stream = _check_seed(stream)
    _, a = _splitmix64(seed)
    _, b = _splitmix64(a ^ stream)
    return b


class Permutation:
    """A pseudo-random bijection on ``range(n)``, determined by ``seed``.

    ``perm[i]`` gives the image of ``i`` (negative ``i`` counts from the end,
    as for sequences), ``perm.take(indices)`` maps a whole integer array at
    once, and iterating yields ``perm[0], perm[1], ...``.  Nothing is
    precomputed: construction and each lookup take microseconds even for
    ``n = 10**9``.

    ``n`` may be 0 (an empty permutation) up to :data:`MAX_SIZE`; ``seed``
    is any int in ``[-2**63, 2**64)`` (taken modulo ``2**64``).
    """

    __slots__ = ("_half_bits", "_half_mask", "_keys", "_n", "_np_keys", "_seed", "_swap")

    def __init__(self, n: int, *, seed: int) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        n = int(n)
        if not 0 <= n <= MAX_SIZE:
            raise ValueError(f"n must be in [0, 2**62], got {n}")
        self._n = n
        self._seed = _check_seed(seed)
        # Smallest k with 4**k >= n; k >= 1 so both halves are non-empty.
        self._half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
        self._half_mask = (1 << self._half_bits) - 1
        keys = []
        state = self._seed
        for _ in range(_ROUNDS):
            state, key = _splitmix64(state)
            keys.append(key)
        self._keys = tuple(keys)
        self._np_keys = tuple(np.uint64(key) for key in keys)
        # Feistel rounds are even permutations of the domain once halves have
        # 2+ bits; a keyed swap of 0 and 1 (an odd permutation) lets the
        # result reach odd permutations too, removing a bias visible for small n.
        _, word = _splitmix64(state)
        self._swap = bool(word >> 63)

    @property
    def n(self) -> int:
        """Size of the permuted range."""
        return self._n

    @property
    def seed(self) -> int:
        """The seed, reduced modulo ``2**64``."""
        return self._seed

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Permutation({self._n}, seed={self._seed})"

    def __getitem__(self, index: int) -> int:
        """Image of ``index``; negative values count from the end."""
        if isinstance(index, slice):
            raise TypeError("Permutation indices must be integers; use take(np.arange(...)) for ranges")
        i = operator.index(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"index {index} out of range for a permutation of {self._n}")
        x = self._encrypt_int(i)
        while x >= self._n:  # cycle-walk back into range(n)
            x = self._encrypt_int(x)
        return x

    def __iter__(self) -> Iterator[int]:
        for start in range(0, self._n, _CHUNK):
            stop = min(start + _CHUNK, self._n)
            yield from self.take(np.arange(start, stop, dtype=np.int64)).tolist()

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Images of an integer array of indices, as an int64 array of the same shape.

        Negative indices count from the end; any index outside ``[-n, n)``
        raises :class:`IndexError` before any work is done.
        """
        a = np.asarray(indices)
        if a.dtype.kind not in "iu":
            raise TypeError(f"indices must be an integer array, got dtype {a.dtype}")
        if a.size == 0:
            return np.zeros(a.shape, dtype=np.int64)
        low, high = int(a.min()), int(a.max())
        if low < -self._n or high >= self._n:
            bad = low if low < -self._n else high
            raise IndexError(f"index {bad} out of range for a permutation of {self._n}")
        x = a.astype(np.uint64).reshape(-1)  # always a copy, safe to overwrite
        if low < 0:
            # Add n to the negative entries; uint64 wraps around to the right value.
            x[a.reshape(-1) < 0] += np.uint64(self._n)
        x = self._encrypt_array(x)
        n = np.uint64(self._n)
        todo = np.flatnonzero(x >= n)
        while todo.size:  # cycle-walk only the elements still outside range(n)
            walked = self._encrypt_array(x[todo])
            x[todo] = walked
            todo = todo[walked >= n]
        return x.view(np.int64).reshape(a.shape)

    def _encrypt_int(self, x: int) -> int:
        """One pass of the Feistel network on a Python int in the 4**k domain."""
        mask = self._half_mask
        left, right = x >> self._half_bits, x & mask
        for key in self._keys:
            h = right ^ key
            h ^= h >> 33
            h = (h * _FMIX_MUL1) & _MASK64
            h ^= h >> 33
            h = (h * _FMIX_MUL2) & _MASK64
            h ^= h >> 33
            left, right = right, left ^ (h & mask)
        x = (left << self._half_bits) | right
        if self._swap and x < 2:
            x ^= 1
        return x

    def _encrypt_array(self, x: np.ndarray) -> np.ndarray:
        """Same as :meth:`_encrypt_int`, elementwise on a uint64 array (modulo 2**64 wraps silently)."""
        shift = np.uint64(self._half_bits)
        mask = np.uint64(self._half_mask)
        s33 = np.uint64(33)
        mul1, mul2 = np.uint64(_FMIX_MUL1), np.uint64(_FMIX_MUL2)
        left = x >> shift
        right = x & mask
        h = np.empty_like(x)
        t = np.empty_like(x)
        for key in self._np_keys:
            np.bitwise_xor(right, key, out=h)
            np.right_shift(h, s33, out=t)
            h ^= t
            h *= mul1
            np.right_shift(h, s33, out=t)
            h ^= t
            h *= mul2
            np.right_shift(h, s33, out=t)
            h ^= t
            h &= mask
            h ^= left
            # Rotate buffers instead of copying: new left = right, new right = h.
            left, right, h = right, h, left
        left <<= shift
        left |= right
        if self._swap:
            np.bitwise_xor(left, np.uint64(1), out=left, where=left < 2)
        return left
