"""``mmtok.ray.build``: a partitioned build whose partitions are Ray tasks, then the commit."""

from __future__ import annotations

import os

from ..inputs.sources import Source, resolve_source
from ..inputs.split import split_sources
from ..remote.urls import is_remote
from ..store.commit import commit
from ..store.partition import build_partition
from .tokenizers import tokenizer_in_worker, tokenizer_spec

__all__ = ["build"]

_SOURCE_OPTIONS = ("line_by_line", "column", "field", "header")


def _partition_task(part, store, partition_id, spec, options):
    return build_partition(part, store, partition_id, tokenizer=tokenizer_in_worker(spec), **options)


def build(inputs, store, *, num_partitions: int | None = None, tokenizer=None, eos_token: str | None = None,
          engine: str = "auto", num_cpus_per_task: float = 1, max_retries: int = 3, **options):
    """Tokenize ``inputs`` into the store ``store`` with Ray tasks; return the committed :class:`~mmtok.Store`.

    The inputs are cut into ``num_partitions`` deterministic splits (default:
    the cluster's CPUs), each built by one task (``num_cpus_per_task`` CPUs,
    retried up to ``max_retries`` times: a retry overwrites its own partition)
    with the tokenizer shipped once and loaded once per worker process. The
    store folder (or ``s3://`` URL) must be reachable from every worker. The
    result equals ``mmtok.build(inputs, store, ...)`` in tokens and document
    ends. ``options`` are :func:`mmtok.build`'s (``line_by_line``, ``column``,
    ``field``, ``header``, ``shard_tokens``, ``chunk_bytes``, ``workers``:
    threads per task, default ``ceil(num_cpus_per_task)``). Starts a local
    Ray instance if none is running.
    """
    import math

    import ray

    from ..tokenize.tokenizer import load_tokenizer

    if not ray.is_initialized():
        ray.init()
    tok = load_tokenizer(tokenizer, eos_token=eos_token, engine=engine)
    reading = {key: options.pop(key) for key in _SOURCE_OPTIONS if key in options}
    paths = [inputs] if isinstance(inputs, (str, os.PathLike, Source)) else list(inputs)
    sources = [p if isinstance(p, Source) else resolve_source(p, **reading) for p in paths]
    if num_partitions is None:
        num_partitions = max(1, int(ray.cluster_resources().get("CPU", 1)))
    parts = split_sources(sources, num_partitions, cut_rules=tok.cut_rules)
    options.setdefault("workers", max(1, math.ceil(num_cpus_per_task)))
    spec = tokenizer_spec(tok)
    task = ray.remote(num_cpus=num_cpus_per_task, max_retries=max_retries)(_partition_task)
    store = os.fspath(store)
    store = store if is_remote(store) else os.path.abspath(store)  # workers may run elsewhere
    ray.get([task.remote(part, store, pid, spec, options) for pid, part in enumerate(parts)])
    return commit(store, expect=len(parts))
