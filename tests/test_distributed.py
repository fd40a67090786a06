"""Two torch.distributed ranks (gloo, CPU) read one store through DataLoaders with workers.

Together they see every sample of an epoch exactly once (``drop_last=True``),
each sample equal to the store's, and both resume mid-epoch from a saved state
to the same indices an uninterrupted epoch gives. Marker ``distributed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mmtok

pytestmark = pytest.mark.distributed
torch = pytest.importorskip("torch")

RANK_SCRIPT = r'''
import json, sys
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from mmtok import TokenDataset

store, rendezvous, out, rank = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
WORLD, BATCH, SEED, STOP_AFTER = 2, 5, 11, 3


class Indexed(Dataset):
    """Each sample with its index, so the test can tell which samples a rank saw."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return i, torch.from_numpy(self.data[i])


def collate(batch):
    """Documents differ in length: the indices as a tensor, the samples as a list."""
    return torch.tensor([i for i, _ in batch]), [sample for _, sample in batch]


def loader(sampler, data):
    return DataLoader(Indexed(data), sampler=sampler, batch_size=BATCH, num_workers=2, collate_fn=collate)


dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
data = TokenDataset.open(store, block_size=16)
full, checked = [], 0
for index, samples in loader(data.sampler(seed=SEED, rank=rank, world_size=WORLD, drop_last=True), data):
    for i, sample in zip(index.tolist(), samples):
        if not np.array_equal(sample.numpy(), data[i]):
            raise SystemExit(f"rank {rank}: sample {i} differs from the store's")
        checked += 1
    full.extend(index.tolist())

# Stop mid-epoch after STOP_AFTER batches, save the state (position = samples trained on), resume anew.
first = data.sampler(seed=SEED, rank=rank, world_size=WORLD, drop_last=True)
seen = []
for step, (index, _) in enumerate(loader(first, data), 1):
    seen.extend(index.tolist())
    if step == STOP_AFTER:
        break
state = dict(first.state_dict(), position=STOP_AFTER * BATCH)
state = json.loads(json.dumps(state))  # as a checkpoint would hold it
second = data.sampler(seed=SEED, rank=rank, world_size=WORLD, drop_last=True)
second.load_state_dict(state)
for index, _ in loader(second, data):
    seen.extend(index.tolist())

everyone = [None] * WORLD
dist.all_gather_object(everyone, full)
dist.barrier()
dist.destroy_process_group()
json.dump({"full": full, "resumed": seen, "checked": checked, "all": everyone, "length": len(data)},
          open(out, "w"))
'''


@pytest.fixture(scope="module")
def store(tmp_path_factory, docs_prose):
    """A committed partitioned store (two partitions) of real text."""
    folder = tmp_path_factory.mktemp("distributed")
    texts = [line for line in docs_prose.splitlines() if line.strip()][:1501]
    root = folder / "lines.mmtok"
    mmtok.build_partition(None, root, 0, texts=texts[:700])
    mmtok.build_partition(None, root, 1, texts=texts[700:])
    return str(mmtok.commit(root, expect=2).path)


def test_two_ranks_cover_the_epoch_once_and_resume(store, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    rendezvous = tmp_path / "rendezvous"
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ranks = [subprocess.Popen([sys.executable, str(script), store, str(rendezvous), str(outs[r]), str(r)],
                              env=env, stderr=subprocess.PIPE, text=True) for r in range(2)]
    errors = [rank.communicate(timeout=300)[1] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [0, 0], errors
    results = [json.loads(out.read_text()) for out in outs]
    length = results[0]["length"]
    share = length // 2
    assert length > 1000 and length % 2 == 1  # an odd count: drop_last has a tail to drop
    full = [result["full"] for result in results]
    assert [len(f) for f in full] == [share, share]
    assert [result["checked"] for result in results] == [share, share]  # every sample compared to the store
    union = full[0] + full[1]
    assert len(set(union)) == len(union) == 2 * share  # disjoint, each sample once
    assert set(union) <= set(range(length))
    # the ranks agree (all_gather) on what each saw, and the share is the sampler's own order
    assert results[0]["all"] == results[1]["all"] == full
    order = mmtok.TokenDataset.open(store, block_size=16)
    for rank in range(2):
        expected = order.sampler(seed=11, rank=rank, world_size=2, drop_last=True).indices()
        assert full[rank] == np.asarray(expected).tolist()
        assert results[rank]["resumed"] == full[rank]  # stopped after 3 batches, resumed, same epoch
