"""The Ray path (tasks, and the Ray Data sink) on a local Ray instance builds the single-machine store.

Marker ``ray``, extra ``ray``. Settings that make Ray run without a network
are those of DESIGN.md ("Where it goes past one machine").
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.ray
for _name, _value in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_USAGE_STATS_ENABLED", "0"),
                      ("RAY_AUTH_MODE", "disabled")):
    os.environ.setdefault(_name, _value)
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

SMALL = {"shard_tokens": 20_000, "chunk_bytes": 16_384}


def stream_and_ends(store):
    ends = np.concatenate([np.asarray(store.shard_docs(i)) for i in range(len(store.shards))])
    return np.asarray(store.tokens[:]), ends


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, docs_prose):
    folder = tmp_path_factory.mktemp("ray-corpus")
    (folder / "prose.txt").write_text(docs_prose[:200_000], encoding="utf-8")
    lines = [line for line in docs_prose[200_000:].splitlines() if line.strip()]
    (folder / "records.jsonl").write_text("".join(json.dumps({"text": l}) + "\n" for l in lines), encoding="utf-8")
    return [str(folder / "prose.txt"), str(folder / "records.jsonl")], lines


def test_ray_build_equals_the_single_build(local_ray, corpus, tmp_path):
    import mmtok.ray

    paths, _ = corpus
    store = mmtok.ray.build(paths, tmp_path / "ray.mmtok", num_partitions=5, **SMALL)
    single = mmtok.build(paths, tmp_path / "single.mmtok", **SMALL)
    for a, b in zip(stream_and_ends(store), stream_and_ends(single)):
        assert np.array_equal(a, b)
    assert len(store.manifest["build"]["partitions"]) == 5
    mmtok.store.verify_store(store.path)


def test_ray_data_sink_equals_the_single_build(local_ray, corpus, tmp_path):
    import mmtok.ray

    _, lines = corpus
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    dataset = ray.data.from_items([{"text": line, "n": i} for i, line in enumerate(lines)], override_num_blocks=4)
    sink = mmtok.ray.Datasink(tmp_path / "sink.mmtok", column="text", **SMALL)
    dataset.write_datasink(sink)
    store = mmtok.open(tmp_path / "sink.mmtok")
    single = mmtok.build(None, tmp_path / "single.mmtok", texts=lines, **SMALL)
    for a, b in zip(stream_and_ends(store), stream_and_ends(single)):
        assert np.array_equal(a, b)
    assert store.num_documents == len(lines)
    assert len(store.manifest["build"]["partitions"]) >= 2  # really written by several tasks
    mmtok.store.verify_store(store.path)
    with pytest.raises(Exception, match="no column 'body'"):
        dataset.write_datasink(mmtok.ray.Datasink(tmp_path / "other.mmtok", column="body"))
