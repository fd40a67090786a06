"""Helpers for tests that compare stores byte for byte."""

from __future__ import annotations

import hashlib
import os


def snapshot(path) -> dict:
    """Every file under ``path`` (relative name -> sha256), or {} if it does not exist."""
    found = {}
    if not os.path.exists(path):
        return found
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return found
