"""The cache folder of automatic stores and of derived files, and how a packing file is named after its store.

``cache_dir()`` is ``$MMTOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmtok``, else
``~/.cache/mmtok``. A packing file (FORMAT.md, "Derived files") is
``packing/<store folder name>-bfd-<block_size>-<seed>-<key>.npy``, the key a
hash of the store's shard checksums, block size and seed: :func:`packing_files`
finds the files of one store from its manifest, so they go with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

__all__ = ["ENV_VAR", "PACKING_FILE_VERSION", "cache_dir", "packing_files", "packing_key", "packing_path"]

ENV_VAR = "MMTOK_CACHE_DIR"
PACKING_DIR = "packing"
PACKING_FILE_VERSION = 1
_PACKING_NAME = re.compile(r"(\d+)-(-?\d+)-([0-9a-f]{32})\.npy")


def cache_dir() -> str:
    """The folder of automatic stores: ``$MMTOK_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmtok``, else ``~/.cache/mmtok``."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mmtok")


def packing_key(shards: list[dict], block_size: int, seed: int) -> str:
    """What a packing depends on: the store's shard contents (checksums), block_size, seed, the rule's version."""
    material = {"shards": [[s["tokens_sha256"], s["docs_sha256"]] for s in shards], "block_size": block_size,
                "seed": seed, "rule": "bfd", "version": PACKING_FILE_VERSION}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _prefix(store_path: str) -> str:
    return (os.path.basename(os.path.normpath(store_path)) or "store") + "-bfd-"


def packing_path(store_path: str, shards: list[dict], block_size: int, seed: int) -> str:
    """Where the packing of the store at ``store_path`` (its manifest's ``shards``) is kept."""
    name = f"{_prefix(store_path)}{block_size}-{seed}-{packing_key(shards, block_size, seed)}.npy"
    return os.path.join(cache_dir(), PACKING_DIR, name)


def packing_files(store_path: str, shards: list[dict]) -> list[str]:
    """The packing files of this store (same folder name and shard contents), whatever their block size and seed."""
    folder, prefix = os.path.join(cache_dir(), PACKING_DIR), _prefix(store_path)
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        match = _PACKING_NAME.fullmatch(name[len(prefix):]) if name.startswith(prefix) else None
        if match and match[3] == packing_key(shards, int(match[1]), int(match[2])):
            found.append(os.path.join(folder, name))
    return found
