"""Byte-for-byte fingerprints of stores and files, for the fault-injection harness and the tests."""

from __future__ import annotations

import hashlib
import os


def snapshot(path) -> dict:
    """Every file under ``path`` (relative name -> sha256); a file path gives {"": sha}; a missing path {}."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": hashlib.sha256(f.read()).hexdigest()}
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return found
