"""The datasets a view is made of: a view is a tree whose leaves are TokenDatasets."""

from __future__ import annotations

from .dataset import TokenDataset

__all__ = ["leaves", "is_view"]


def leaves(ds) -> list:
    """The TokenDatasets a dataset reads from, depth first (repeats kept)."""
    if isinstance(ds, TokenDataset):
        return [ds]
    return [leaf for child in ds.inputs for leaf in leaves(child)]


def is_view(ds) -> bool:
    """True for a TokenDataset or a merged/blended view of them (anything with ``inputs`` over TokenDatasets)."""
    if isinstance(ds, TokenDataset):
        return True
    inputs = getattr(ds, "inputs", None)
    return isinstance(inputs, (list, tuple)) and bool(inputs) and all(is_view(child) for child in inputs)
