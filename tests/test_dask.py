"""The Dask recipe of the README: a dask.bag of texts, one partition per bag partition, then commit.

Marker ``dask`` (``pip install 'dask[bag]'``).
"""

from __future__ import annotations

import numpy as np
import pytest

import mmtok

pytestmark = pytest.mark.dask
dask = pytest.importorskip("dask")
db = pytest.importorskip("dask.bag")


def test_dask_bag_recipe_equals_the_single_build(docs_prose, tmp_path):
    texts = [line for line in docs_prose.splitlines() if line.strip()][:3000]
    root = str(tmp_path / "dask.mmtok")

    # The recipe (README, "Past one machine"): partition i of the bag becomes partition i of the store.
    bag = db.from_sequence(texts, npartitions=4)
    tasks = [dask.delayed(mmtok.build_partition)(None, root, i, texts=part) for i, part in enumerate(bag.to_delayed())]
    dask.compute(*tasks, scheduler="processes", num_workers=2)
    store = mmtok.commit(root, expect=len(tasks))

    single = mmtok.build(None, tmp_path / "single.mmtok", texts=texts)
    assert np.array_equal(store.tokens[:], single.tokens[:])
    assert store.num_documents == single.num_documents == len(texts)
    assert len(store.manifest["build"]["partitions"]) == 4
