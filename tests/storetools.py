"""Helpers for tests that compare stores byte for byte: the fault-injection harness's own (tools/snapshots.py)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

from snapshots import snapshot  # noqa: E402

__all__ = ["mixed_store", "snapshot"]


def mixed_store(folder, bulk_text: str, lines_text: str, name: str):
    """A store of small shards: one bulk document that spans shards, then one document per line (an append)."""
    from mmtok.store import Store, build

    bulk, lines, path = folder / "bulk.txt", folder / "lines.txt", folder / name
    bulk.write_text(bulk_text, encoding="utf-8")
    lines.write_text(lines_text, encoding="utf-8")
    build(str(bulk), str(path), shard_tokens=3000, chunk_bytes=4000)
    build(str(lines), str(path), append=True, line_by_line=True, shard_tokens=3000, chunk_bytes=4000)
    return Store(path)
