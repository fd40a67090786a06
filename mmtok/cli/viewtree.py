"""The tree of a merged or blended store, as text: what `mmtok merge` prints and `mmtok info` shows.

Reads the ``view`` description a materialised store's manifest records (see
FORMAT.md, "Materialised views"): source stores, weights, seed, and how many
samples each source gave, so a source repeated 60.5x is said so.
"""

from __future__ import annotations

import os


def view_tree(view: dict) -> list[str]:
    """Lines describing ``view`` (a manifest input's ``view``), its sources indented below it."""
    return _lines(view, used=None, weight=None, depth=0)


def _lines(node: dict, *, used: int | None, weight: float | None, depth: int) -> list[str]:
    pad = "  " * depth + ("- " if depth else "")
    extra = _share(node["samples"], used, weight)
    if node["kind"] == "store":
        mode = "line by line" if node["line_by_line"] else f"bulk, stride {node['stride']:,}"
        lines = [f"{pad}{_short(node['path'])}: {node['samples']:,} samples ({mode}){extra}"]
        return lines
    inputs = node["inputs"]
    if node["kind"] == "blend":
        length = "until the first source runs out" if node.get("until_exhausted") else "--num-samples"
        head = (f"{pad}blend by tokens of {len(inputs)} sources, seed {node['seed']}: "
                f"{node['samples']:,} samples ({length}){extra}")
        shares = list(zip(node["draws"], node["weights"]))
    else:
        how = "equalized (as many from each as the smallest has)" if node.get("equalize") else "all samples"
        head = f"{pad}merge of {len(inputs)} sources, {how}, seed {node['seed']}: {node['samples']:,} samples{extra}"
        shares = [(count, None) for count in node["counts"]]
    lines = [head]
    for child, (count, share) in zip(inputs, shares):
        lines += _lines(child, used=count, weight=share, depth=depth + 1)
    return lines


def _share(samples: int, used: int | None, weight: float | None) -> str:
    if used is None:
        return ""
    parts = [f"weight {weight:.3g}"] if weight is not None else []
    if used > samples:
        parts.append(f"gives {used:,}: repeated {used / samples:.1f}x")
    elif used < samples:
        parts.append(f"gives {used:,} ({used / samples:.0%}, chosen at random)")
    else:
        parts.append("gives all of them once")
    return "; " + ", ".join(parts)


def _short(path: str) -> str:
    """A path relative to the working folder when that is shorter."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return relative if len(relative) < len(path) else path
