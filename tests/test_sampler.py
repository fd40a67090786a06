"""Tests for mmtok.order.sampler.TrainingOrder: shares, DistributedSampler parity, resume, epochs."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtok.order.sampler import TrainingOrder


def _ranks(n, world_size, **options):
    return [TrainingOrder(n, rank=r, world_size=world_size, **options) for r in range(world_size)]


def _distributed_sampler_reference(n, world_size, rank, drop_last):
    """torch.utils.data.DistributedSampler's index logic with shuffle=False, copied verbatim in spirit."""
    indices = list(range(n))
    if drop_last and n % world_size != 0:
        per_rank = math.ceil((n - world_size) / world_size)
    else:
        per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if not drop_last:
        padding = total - len(indices)
        if padding <= len(indices):
            indices += indices[:padding]
        else:
            indices += (indices * math.ceil(padding / len(indices)))[:padding]
    else:
        indices = indices[:total]
    return indices[rank:total:world_size]


# -- shares -------------------------------------------------------------------


def test_shuffle_false_is_the_distributed_sampler_order():
    for n, world_size, drop_last in itertools.product(range(25), range(1, 8), (False, True)):
        for rank in range(world_size):
            order = TrainingOrder(n, shuffle=False, rank=rank, world_size=world_size, drop_last=drop_last)
            expected = _distributed_sampler_reference(n, world_size, rank, drop_last)
            assert list(order) == expected, (n, world_size, rank, drop_last)
            assert len(order) == len(expected)


def _check_shares(n, world_size, seed, drop_last, shuffle=True):
    orders = _ranks(n, world_size, seed=seed, drop_last=drop_last, shuffle=shuffle)
    shares = [list(order) for order in orders]
    lengths = {len(share) for share in shares} | {len(order) for order in orders}
    per_rank = n // world_size if drop_last else -(-n // world_size)
    assert lengths == {per_rank}
    # Interleaving the ranks rebuilds the epoch order (plus wrap-around padding).
    interleaved = [shares[j % world_size][j // world_size] for j in range(per_rank * world_size)]
    counts = np.bincount(np.array(interleaved, dtype=np.int64), minlength=n)
    if drop_last:
        assert counts.max(initial=0) <= 1  # each index at most once
        assert len(set(interleaved)) == per_rank * world_size
    else:
        assert n == 0 or counts.min() >= 1  # every index at least once
        assert interleaved[n:] == [interleaved[i % n] for i in range(n, len(interleaved))]
        assert sum(counts) - n == per_rank * world_size - n  # padding only
    # Disjoint shares: without padding no index appears in two ranks.
    unique_positions = interleaved[: min(n, len(interleaved))]
    assert len(set(unique_positions)) == len(unique_positions)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shares_are_disjoint_and_cover_the_epoch(drop_last):
    for n, world_size in itertools.product([0, 1, 2, 3, 7, 16, 17, 100, 1001], [1, 2, 3, 4, 8, 13]):
        _check_shares(n, world_size, seed=n * 31 + world_size, drop_last=drop_last)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 3000),
    world_size=st.integers(1, 64),
    seed=st.integers(-(2**63), 2**64 - 1),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
)
def test_shares_property(n, world_size, seed, drop_last, shuffle):
    _check_shares(n, world_size, seed, drop_last, shuffle)


def test_shuffled_epoch_is_a_permutation_and_not_the_identity():
    order = TrainingOrder(1000, seed=3)
    values = list(order)
    assert sorted(values) == list(range(1000)) and values != list(range(1000))


def test_indices_match_iteration_and_do_not_move_the_position():
    order = TrainingOrder(103, seed=9, rank=2, world_size=4)
    everything = list(order)
    order.load_state_dict({**order.state_dict(), "position": 5})
    assert order.indices().tolist() == everything
    assert order.indices(10, 20).tolist() == everything[10:20]
    assert order.indices(26).tolist() == [] and order.indices().dtype == np.int64
    assert order.position == 5
    with pytest.raises(ValueError, match="stop"):
        order.indices(0, 27)
    with pytest.raises(ValueError, match="start"):
        order.indices(-1)


# -- resume -------------------------------------------------------------------

_RESUME_CASES = [
    {"num_samples": 50, "seed": 1},
    {"num_samples": 50, "seed": 1, "world_size": 3, "rank": 2},
    {"num_samples": 50, "seed": 2, "world_size": 4, "rank": 1, "drop_last": True},
    {"num_samples": 7, "seed": 3, "world_size": 16, "rank": 11},  # heavy wrap-around padding
    {"num_samples": 50, "shuffle": False, "world_size": 3, "rank": 0},
    {"num_samples": 10**4 + 3, "seed": 4, "epoch": 5, "world_size": 2, "rank": 1},
]


@pytest.mark.parametrize("options", _RESUME_CASES)
def test_interrupt_and_resume_through_json(options):
    full = list(TrainingOrder(**options))
    for k in sorted({0, 1, 2, len(full) // 2, len(full) - 1, len(full)} & set(range(len(full) + 1))):
        first = TrainingOrder(**options)
        seen = list(itertools.islice(iter(first), k))
        state = json.loads(json.dumps(first.state_dict()))
        assert state["position"] == k
        resumed = TrainingOrder(**options)
        resumed.load_state_dict(state)
        assert resumed.position == k
        assert resumed.indices(k).tolist() == full[k:]  # what is left of the epoch
        if k < len(full):
            assert seen + list(resumed) == full
        # The next epoch agrees too, whatever the interruption point.
        first.set_epoch(first.epoch + 1)
        resumed.set_epoch(resumed.epoch + 1)
        assert list(first) == list(resumed)


def test_resume_in_the_same_object_and_in_batches():
    order = TrainingOrder(37, seed=5, world_size=2, rank=1)
    full = list(order)
    order.set_epoch(1)
    order.set_epoch(0)
    first = list(itertools.islice(iter(order), 6))
    rest = list(order)  # a new iterator continues where the last one stopped
    assert first + rest == full
    order.load_state_dict({**order.state_dict(), "position": 3})
    batches = list(order.iter_batches(5))
    assert [len(b) for b in batches] == [5, 5, 5, 1]
    assert np.concatenate(batches).tolist() == full[3:]
    order.load_state_dict({**order.state_dict(), "position": 4})
    it = order.iter_batches(5)
    next(it)
    assert order.position == 9


def test_one_rank_state_resumes_another_rank():
    rank0, rank1 = _ranks(40, 2, seed=6)
    list(itertools.islice(iter(rank0), 7))
    rank1.load_state_dict(json.loads(json.dumps(rank0.state_dict())))
    assert rank1.rank == 1 and rank1.position == 7
    assert list(rank1) == list(TrainingOrder(40, seed=6, rank=1, world_size=2))[7:]


@pytest.mark.parametrize(
    "field, value",
    [("num_samples", 51), ("world_size", 2), ("seed", 2), ("shuffle", False), ("drop_last", True)],
)
def test_mismatched_state_is_refused(field, value):
    source = TrainingOrder(**{"num_samples": 50, "seed": 1, field: value})
    target = TrainingOrder(50, seed=1)
    list(itertools.islice(iter(target), 3))
    with pytest.raises(ValueError, match=field):
        target.load_state_dict(source.state_dict())
    assert target.position == 3 and target.epoch == 0  # a refused load changes nothing


def test_bad_states_are_refused_clearly():
    order = TrainingOrder(50, seed=1)
    good = order.state_dict()
    with pytest.raises(ValueError, match="missing position"):
        order.load_state_dict({k: v for k, v in good.items() if k != "position"})
    with pytest.raises(ValueError, match="version"):
        order.load_state_dict({**good, "version": 99})
    with pytest.raises(ValueError, match="algorithm"):
        order.load_state_dict({**good, "algorithm": "something-else"})
    with pytest.raises(ValueError, match="position"):
        order.load_state_dict({**good, "position": 51})
    with pytest.raises(TypeError):
        order.load_state_dict([("position", 1)])
    # Seeds equal modulo 2**64 describe the same order.
    TrainingOrder(50, seed=-1).load_state_dict(TrainingOrder(50, seed=2**64 - 1).state_dict())


# -- epochs -------------------------------------------------------------------


def test_set_epoch_changes_the_order_deterministically():
    order = TrainingOrder(500, seed=8)
    epochs = []
    for epoch in range(4):
        order.set_epoch(epoch)
        epochs.append(list(order))
    assert len({tuple(e) for e in epochs}) == 4
    assert all(sorted(e) == list(range(500)) for e in epochs)
    again = TrainingOrder(500, seed=8, epoch=2)
    assert list(again) == epochs[2]
    assert list(TrainingOrder(500, seed=9, epoch=2)) != epochs[2]
    assert list(TrainingOrder(500, shuffle=False, epoch=3)) == list(range(500))


def test_set_epoch_rewinds_but_announcing_the_current_epoch_keeps_the_position():
    order = TrainingOrder(30, seed=2)
    it = iter(order)
    next(it), next(it)
    order.set_epoch(0)  # same epoch: e.g. the resume loop re-announcing it
    assert order.position == 2
    order.set_epoch(1)
    assert order.position == 0 and order.epoch == 1


def test_end_of_epoch_stops_then_a_new_iteration_repeats_it():
    order = TrainingOrder(10, seed=4)
    it = iter(order)
    first = list(it)
    assert order.position == 10 and list(it) == []
    assert list(order) == first  # new iter() after the end: same epoch from 0
    assert TrainingOrder(0).indices().tolist() == [] and list(TrainingOrder(0)) == []


def test_stale_iterators_raise():
    order = TrainingOrder(30, seed=2)
    old = iter(order)
    next(old)
    new = iter(order)
    with pytest.raises(RuntimeError, match="changed during iteration"):
        next(old)
    next(new)
    order.set_epoch(3)
    with pytest.raises(RuntimeError):
        next(new)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rank"):
        TrainingOrder(10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="world_size"):
        TrainingOrder(10, world_size=0)
    with pytest.raises(ValueError, match="num_samples"):
        TrainingOrder(-1)
    with pytest.raises(ValueError, match="epoch"):
        TrainingOrder(10, epoch=-1)
    with pytest.raises(TypeError, match="shuffle"):
        TrainingOrder(10, shuffle=1)
    with pytest.raises(TypeError):
        TrainingOrder(10, 3)  # options are keyword-only
    with pytest.raises(ValueError, match="batch_size"):
        TrainingOrder(10).iter_batches(0)


# -- scale, imports, torch ----------------------------------------------------


def test_a_billion_samples_in_constant_memory():
    tracemalloc.start()
    try:
        order = TrainingOrder(10**9, seed=12, world_size=8, rank=5, epoch=3)
        head = list(itertools.islice(iter(order), 5))
        state = json.loads(json.dumps(order.state_dict()))
        resumed = TrainingOrder(10**9, seed=12, world_size=8, rank=5)
        resumed.load_state_dict(state)
        after = list(itertools.islice(iter(resumed), 3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert len(order) == 125_000_000
    assert head + after == order.indices(0, 8).tolist()


def test_import_uses_only_the_standard_library_and_numpy():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import mmtok.order.sampler\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and m not in ('mmtok', 'numpy')))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_works_as_a_torch_dataloader_sampler():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    dataset = list(range(100))
    order = TrainingOrder(100, seed=13, world_size=2, rank=1)
    expected = list(order)
    loader = DataLoader(dataset, sampler=order, batch_size=8)
    assert len(loader) == math.ceil(50 / 8)
    assert torch.cat(list(loader)).tolist() == expected
    # Resume after 3 batches in a fresh loader.
    order.load_state_dict({**order.state_dict(), "position": 0})
    batches = iter(DataLoader(dataset, sampler=order, batch_size=8))
    seen = [next(batches) for _ in range(3)]
    resumed = TrainingOrder(100, seed=13, world_size=2, rank=1)
    resumed.load_state_dict(json.loads(json.dumps(order.state_dict())))
    rest = list(DataLoader(dataset, sampler=resumed, batch_size=8))
    assert torch.cat(seen + rest).tolist() == expected
