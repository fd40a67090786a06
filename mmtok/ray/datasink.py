"""``mmtok.ray.Datasink``: end a Ray Data pipeline in a store, one partition per write task."""

from __future__ import annotations

import os

import ray.data
from ray.data.block import BlockAccessor

from ..remote.urls import is_remote
from ..store.commit import commit
from ..store.partition import build_partition
from .tokenizers import tokenizer_in_worker, tokenizer_spec

__all__ = ["Datasink"]


class Datasink(ray.data.Datasink):
    """Write the ``column`` strings of a dataset into the store ``store``, one document per row.

    Write task ``i`` builds partition ``i`` (a retried task overwrites it);
    when every task is done the partitions are committed, so the store holds
    the rows in the order of the write tasks. Set
    ``ray.data.DataContext.get_current().execution_options.preserve_order = True``
    for the store to follow the dataset's row order exactly. ``options`` are
    :func:`mmtok.build`'s (``tokenizer``, ``shard_tokens``, ``workers``, ...).
    The store (a folder every worker reaches, or an ``s3://`` URL) must not
    exist yet.
    """

    def __init__(self, store, *, column: str = "text", tokenizer=None, eos_token: str | None = None,
                 engine: str = "auto", **options):
        from ..tokenize.tokenizer import load_tokenizer

        store = os.fspath(store)
        self.store = store if is_remote(store) else os.path.abspath(store)
        self.column = column
        self.options = options
        self._spec = tokenizer_spec(load_tokenizer(tokenizer, eos_token=eos_token, engine=engine),
                                    in_object_store=False)
        self.result = None

    def write(self, blocks, ctx) -> dict:
        texts = []
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            if self.column not in table.column_names:
                from ..base.errors import InputError

                raise InputError(f"the dataset has no column {self.column!r} (its columns: "
                                 f"{', '.join(table.column_names)}); pass column= to Datasink")
            texts.extend(table.column(self.column).to_pylist())
        tok = tokenizer_in_worker(self._spec)
        return build_partition(None, self.store, ctx.task_idx, texts=texts or None, tokenizer=tok, **self.options)

    def on_write_complete(self, write_result) -> None:
        returns = getattr(write_result, "write_returns", write_result)
        self.result = commit(self.store, expect=len(returns))
