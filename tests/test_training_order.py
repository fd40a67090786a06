"""ds.sampler(): TrainingOrder over datasets, merged and blended views: shares, exact resume in DataLoaders, scale.

TrainingOrder itself (permutation quality, DistributedSampler parity, state
checks) is tested in test_sampler.py; this file tests what the views add.
"""

from __future__ import annotations

import pickle
import tracemalloc

import pytest
from test_merge import csv_store, distinct_rows

from mmtok import TokenDataset, blend, merge_datasets
from mmtok.order.sampler import TrainingOrder

BLOCK = 32


@pytest.fixture(scope="module")
def stores(tmp_path_factory, docs_prose):
    folder = tmp_path_factory.mktemp("order")
    paragraphs = [p.strip() for p in docs_prose.split("\n\n") if p.strip()]
    return (csv_store(folder, "a", distinct_rows(paragraphs, "a", 300)),
            csv_store(folder, "b", distinct_rows(paragraphs, "b", 900, 50)))


@pytest.fixture()
def views(stores):
    a, b = (TokenDataset.open(s, block_size=BLOCK) for s in stores)
    bulk = TokenDataset.open(stores[1], block_size=BLOCK, line_by_line=False)
    return {
        "dataset": a,
        "merge": merge_datasets([a, b], seed=1),
        "blend": blend([a, bulk], [0.6, 0.4], num_samples=1_001, seed=2),
    }


def test_sampler_is_a_training_order_over_the_samples(views):
    for view in views.values():
        order = view.sampler(seed=7, shuffle=True, rank=1, world_size=4, drop_last=True, epoch=3)
        assert isinstance(order, TrainingOrder)
        assert (order.num_samples, order.seed, order.rank, order.world_size, order.drop_last, order.epoch) == \
            (len(view), 7, 1, 4, True, 3)
        assert list(view.sampler(shuffle=False)) == list(range(len(view)))
    with pytest.raises(TypeError):
        views["merge"].sampler(7)  # keyword-only


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_shares_are_disjoint_and_cover_the_epoch(views, drop_last):
    for view in views.values():
        n, world = len(view), 3
        shares = [list(view.sampler(seed=5, rank=r, world_size=world, drop_last=drop_last)) for r in range(world)]
        assert len({len(share) for share in shares}) == 1
        seen = [index for share in shares for index in share]
        if drop_last:
            assert len(set(seen)) == len(seen) == (n // world) * world
        else:
            assert set(seen) == set(range(n)) and len(seen) - n < world  # only the wrap-around repeats
        other_epoch = view.sampler(seed=5, world_size=world, epoch=1)
        assert list(other_epoch) != shares[0]


def _batches(view, order, **loader_options):
    from torch.utils.data import BatchSampler, DataLoader

    # Whole padded batches straight from the view (one vectorised gather each), as TokenDataset's docs advise.
    return DataLoader(view, sampler=BatchSampler(order, 8, drop_last=False), batch_size=None, **loader_options)


@pytest.mark.parametrize("kind", ["merge", "blend"])
def test_an_interrupted_dataloader_resumes_exactly(views, kind):
    torch = pytest.importorskip("torch")
    view = views[kind]
    expected = [batch.tolist() for batch in _batches(view, view.sampler(seed=3, epoch=2))]
    assert len(expected) == -(-len(view) // 8)

    order = view.sampler(seed=3, epoch=2)
    running = iter(_batches(view, order))
    seen = [next(running).tolist() for _ in range(5)]
    state = order.state_dict()
    assert state["position"] == 40  # without workers the loader draws exactly what it delivers
    del running

    resumed = view.sampler(seed=3, epoch=2)
    resumed.load_state_dict(state)
    rest = [batch.tolist() for batch in _batches(view, resumed)]
    assert seen + rest == expected
    assert all(isinstance(batch, torch.Tensor) for batch in _batches(view, view.sampler()))


def test_resume_with_worker_processes(views):
    pytest.importorskip("torch")
    view = views["blend"]  # workers recompute the blend's interleave from its seed
    expected = [batch.tolist() for batch in _batches(view, view.sampler(seed=9))]
    order = view.sampler(seed=9)
    running = iter(_batches(view, order, num_workers=2, multiprocessing_context="fork"))
    seen = [next(running).tolist() for _ in range(4)]
    del running
    state = order.state_dict()
    assert state["position"] > 32  # workers prefetch ahead of training...
    state["position"] = 4 * 8  # ...so save the samples actually trained on (TrainingOrder's docs)
    resumed = view.sampler(seed=9)
    resumed.load_state_dict(state)
    rest = [batch.tolist() for batch in _batches(view, resumed, num_workers=2, multiprocessing_context="fork")]
    assert seen + rest == expected


def test_per_sample_loading_of_fixed_length_views(stores):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    bulk = [TokenDataset.open(s, block_size=BLOCK, line_by_line=False) for s in stores]
    view = merge_datasets(bulk, seed=4)
    order = view.sampler(seed=1)
    batches = list(DataLoader(view, sampler=order, batch_size=16))
    assert torch.cat(batches).tolist() == view[list(view.sampler(seed=1))].tolist()


def test_a_billion_sample_order_in_constant_memory(views):
    a, bulk = views["blend"].inputs
    tracemalloc.start()
    try:
        huge = blend([a, bulk], [0.5, 0.5], num_samples=10**9, seed=1)
        merged = merge_datasets([huge, blend([bulk, a], [0.9, 0.1], num_samples=10**9, seed=2)], equalize=False)
        order = merged.sampler(seed=11, rank=5, world_size=8, epoch=4)
        tail = order.indices(len(order) - 1_000)
        state = order.state_dict()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(merged) == 2 * 10**9 and len(order) == 250_000_000
    assert peak < 1_000_000, peak  # nothing per sample: no permutation array, no interleave built
    assert "_cache_interleave" not in huge.__dict__
    assert len(pickle.dumps(merged)) < 10_000
    assert tail.min() >= 0 and tail.max() < 2 * 10**9 and len(set(tail.tolist())) == 1_000
    state["position"] = len(order) - 3
    resumed = merged.sampler(seed=11, rank=5, world_size=8)
    resumed.load_state_dict(state)
    assert list(resumed) == tail[-3:].tolist()
