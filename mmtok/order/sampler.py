"""A deterministic, resumable epoch order over sample indices, split across ranks.

:class:`TrainingOrder` follows ``torch.utils.data.DistributedSampler``: each
epoch is a permutation of ``range(num_samples)`` (seeded by seed and epoch),
and rank ``r`` of ``world_size`` takes positions ``r, r + world_size, ...``
of it.  Unlike DistributedSampler it never materialises the permutation
(see :mod:`mmtok.order.permutation`), so it costs O(1) memory for any dataset
size, and it records how far the current epoch has gone so a run can stop
and resume mid-epoch.  torch is not imported: the object is a plain iterable
with ``__len__``, which is all ``DataLoader(sampler=...)`` needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from .permutation import ALGORITHM, MAX_SIZE, Permutation, mix_seed

__all__ = ["STATE_VERSION", "TrainingOrder"]

#: Version of the :meth:`TrainingOrder.state_dict` layout.
STATE_VERSION = 1

_CHUNK = 4096  # indices computed per vectorised step while iterating

# Settings that define the order; a saved state must agree on all of them.
_SETTINGS = ("num_samples", "seed", "world_size", "shuffle", "drop_last")


def _check_int(name: str, value: object, *, low: int, high: int = MAX_SIZE) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _check_seed(name: str, value: object) -> int:
    # The range Permutation accepts, checked here so errors name the argument.
    return _check_int(name, value, low=-(2**63), high=2**64 - 1)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


class TrainingOrder:
    """Deterministic epoch order over ``num_samples`` indices, split into
    disjoint equal shares per rank, resumable mid-epoch, usable directly as
    a PyTorch DataLoader ``sampler=`` (an iterable with ``__len__``).

    Each rank gets ``ceil(num_samples / world_size)`` indices per epoch; the
    last ones wrap around to the start of the epoch order so all ranks have
    the same count (``drop_last=False``), or each gets
    ``num_samples // world_size`` and the tail of the order is left out
    (``drop_last=True``).  With ``shuffle=False`` the order is
    ``0, 1, 2, ...``, exactly DistributedSampler's.

    Progress: :attr:`position` counts the indices this rank has yielded in
    the current epoch.  Iterating continues from it, so ``state_dict()``
    after ``k`` indices and ``load_state_dict`` (here or in a new process)
    resume at index ``k + 1``.  Once the epoch's share is used up, iteration
    stops; a *new* ``iter()`` then starts the same epoch again from 0, as
    DistributedSampler does when ``set_epoch`` is not called, so a loop that
    forgets ``set_epoch`` repeats an order instead of training on nothing.

    With a multi-worker DataLoader, the loader draws indices ahead of the
    batches it has delivered (``prefetch_factor * num_workers`` batches), so
    ``position`` runs ahead of training.  For an exact resume, save
    ``state_dict()`` with ``"position"`` set to the samples actually trained
    on (e.g. ``steps * batch_size``).  Only one live iterator is supported:
    starting a new one, ``set_epoch`` or ``load_state_dict`` makes older
    iterators raise :class:`RuntimeError`.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        epoch: int = 0,
    ) -> None:
        self._num_samples = _check_int("num_samples", num_samples, low=0)
        self._world_size = _check_int("world_size", world_size, low=1)
        self._rank = _check_int("rank", rank, low=0, high=self._world_size - 1)
        self._shuffle = _check_bool("shuffle", shuffle)
        self._drop_last = _check_bool("drop_last", drop_last)
        self._seed = _check_seed("seed", seed)
        if self._drop_last:
            self._length = self._num_samples // self._world_size
        else:
            self._length = -(-self._num_samples // self._world_size)
        self._generation = 0  # bumped whenever live iterators become stale
        self._position = 0
        self._epoch = -1
        self._start_epoch(_check_int("epoch", epoch, low=0, high=2**63 - 1))

    # -- read-only settings -------------------------------------------------

    @property
    def num_samples(self) -> int:
        """Size of the dataset being ordered."""
        return self._num_samples

    @property
    def seed(self) -> int:
        """Base seed; each epoch's permutation is derived from it and the epoch."""
        return self._seed

    @property
    def shuffle(self) -> bool:
        """Whether epochs are shuffled (otherwise the order is 0, 1, 2, ...)."""
        return self._shuffle

    @property
    def rank(self) -> int:
        """This process's rank in ``range(world_size)``."""
        return self._rank

    @property
    def world_size(self) -> int:
        """Number of ranks sharing each epoch."""
        return self._world_size

    @property
    def drop_last(self) -> bool:
        """Whether the tail that does not divide evenly is dropped instead of padded."""
        return self._drop_last

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    @property
    def position(self) -> int:
        """Indices this rank has yielded so far in the current epoch."""
        return self._position

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return (
            f"TrainingOrder({self._num_samples}, seed={self._seed}, shuffle={self._shuffle}, "
            f"rank={self._rank}, world_size={self._world_size}, drop_last={self._drop_last}, "
            f"epoch={self._epoch}, position={self._position})"
        )

    # -- epochs and state ---------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Switch to ``epoch`` (its own permutation) and rewind to its start.

        Announcing the current epoch again changes nothing, so the usual
        ``for epoch in range(start, n): order.set_epoch(epoch)`` loop keeps a
        position restored by :meth:`load_state_dict` instead of silently
        replaying the epoch from the beginning.
        """
        epoch = _check_int("epoch", epoch, low=0, high=2**63 - 1)
        if epoch != self._epoch:
            self._start_epoch(epoch)

    def state_dict(self) -> dict:
        """The progress and settings as plain JSON-able ints, bools and strings."""
        return {
            "version": STATE_VERSION,
            "algorithm": ALGORITHM,
            "num_samples": self._num_samples,
            "seed": self._seed,
            "shuffle": self._shuffle,
            "world_size": self._world_size,
            "rank": self._rank,
            "drop_last": self._drop_last,
            "epoch": self._epoch,
            "position": self._position,
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Resume from a :meth:`state_dict` (possibly through JSON or another process).

        The settings that define the order (num_samples, seed, world_size,
        shuffle, drop_last) must match this object's, or :class:`ValueError`
        lists the differences.  ``rank`` may differ: all ranks advance in
        step, so one rank's state resumes every rank (each keeps its own).
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        missing = [key for key in (*_SETTINGS, "epoch", "position") if key not in state]
        if missing:
            raise ValueError(f"TrainingOrder state is missing {', '.join(missing)}; pass a dict from state_dict()")
        version = state.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"TrainingOrder state has version {version!r}; this mmtok reads version {STATE_VERSION}")
        saved = {
            "num_samples": _check_int("state['num_samples']", state["num_samples"], low=0),
            # Seeds equal modulo 2**64 give the same order.
            "seed": _check_seed("state['seed']", state["seed"]) % 2**64,
            "world_size": _check_int("state['world_size']", state["world_size"], low=1),
            "shuffle": _check_bool("state['shuffle']", state["shuffle"]),
            "drop_last": _check_bool("state['drop_last']", state["drop_last"]),
        }
        mine = {key: getattr(self, key) for key in _SETTINGS}
        mine["seed"] %= 2**64
        differences = [
            f"{key}={state[key]!r} (this order has {getattr(self, key)!r})"
            for key in _SETTINGS
            if saved[key] != mine[key]
        ]
        algorithm = state.get("algorithm", ALGORITHM)
        if self._shuffle and algorithm != ALGORITHM:
            differences.append(f"algorithm={algorithm!r} (this mmtok shuffles with {ALGORITHM!r})")
        if differences:
            raise ValueError(
                "TrainingOrder state was saved for a different order: "
                + "; ".join(differences)
                + ". Create the TrainingOrder with the saved settings to resume, or start a fresh run."
            )
        epoch = _check_int("state['epoch']", state["epoch"], low=0, high=2**63 - 1)
        position = _check_int("state['position']", state["position"], low=0, high=self._length)
        self._start_epoch(epoch)
        self._position = position

    def _start_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._position = 0
        self._generation += 1
        if self._shuffle:
            self._perm = Permutation(self._num_samples, seed=mix_seed(self._seed, epoch))
        else:
            self._perm = None

    # -- reading the order --------------------------------------------------

    def indices(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """This rank's share of the epoch, positions ``start`` to ``stop``, as int64.

        Positions count within the share (0 to ``len(self)``), like
        :attr:`position`; the result does not depend on or move the position.
        """
        stop = self._length if stop is None else stop
        start = _check_int("start", start, low=0, high=self._length)
        stop = _check_int("stop", stop, low=start, high=self._length)
        # Position j of this rank's share is position rank + j*world_size of
        # the epoch order, wrapped around to its beginning when padding.
        order_pos = np.arange(start, stop, dtype=np.int64)
        order_pos *= self._world_size
        order_pos += self._rank
        if not self._drop_last and self._length * self._world_size > self._num_samples:
            np.remainder(order_pos, self._num_samples, out=order_pos)
        if self._perm is None:
            return order_pos
        return self._perm.take(order_pos)

    def __iter__(self) -> Iterator[int]:
        """Yield the rest of this rank's share of the epoch as Python ints."""
        generation = self._begin_pass()
        return self._iterate(generation)

    def iter_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Like iterating, but yield int64 arrays of ``batch_size`` indices (the last may be shorter).

        The position advances by a whole batch as each is yielded.
        """
        batch_size = _check_int("batch_size", batch_size, low=1)
        generation = self._begin_pass()
        return self._iterate_batches(generation, batch_size)

    def _begin_pass(self) -> int:
        if self._position >= self._length:
            self._position = 0  # a new pass over a finished epoch repeats it (see class docstring)
        self._generation += 1
        return self._generation

    def _check_live(self, generation: int) -> None:
        if generation != self._generation:
            raise RuntimeError(
                "TrainingOrder changed during iteration (new iterator, set_epoch or load_state_dict); "
                "start a new iteration with iter(order)"
            )

    def _iterate(self, generation: int) -> Iterator[int]:
        while True:
            self._check_live(generation)
            start = self._position
            if start >= self._length:
                return
            chunk = self.indices(start, min(start + _CHUNK, self._length)).tolist()
            for done, index in enumerate(chunk, start + 1):
                self._check_live(generation)
                # Count the index as consumed before handing it out, so a
                # state_dict taken after k items resumes at item k + 1.
                self._position = done
                yield index

    def _iterate_batches(self, generation: int, batch_size: int) -> Iterator[np.ndarray]:
        while True:
            self._check_live(generation)
            start = self._position
            if start >= self._length:
                return
            batch = self.indices(start, min(start + batch_size, self._length))
            self._position = start + len(batch)
            yield batch
