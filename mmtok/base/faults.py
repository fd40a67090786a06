"""Deterministic fault injection at named steps of mmtok's write paths (for the fault-injection tests).

Set ``MMTOK_FAULT`` to ``ACTION:POINT[:N]`` before a process starts: at the N-th
time (default the first) the code passes ``fault_point(POINT)``, the process
kills itself with SIGKILL (``kill``) or the step fails with a full disk
(``enospc``: ``OSError(ENOSPC)``, raised where a real write would raise it).
``POINT`` may end with ``*`` to match every point with that prefix. Unset, a
fault point costs one comparison. The points are listed in ``FAULT_POINTS``.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "MMTOK_FAULT"

# Every point mmtok passes, in the order of the commit protocol (FORMAT.md).
FAULT_POINTS = (
    "chunk-written",          # a chunk's tokens went into the open shard's temporary files
    "shard-synced",           # the shard's temporary files are complete and fsynced, not yet renamed
    "shard-renamed",          # the shard has its final name, its folder not yet fsynced
    "journal-written",        # the new build journal is written under its temporary name
    "journal-replaced",       # the journal was renamed into place, the folder not yet fsynced
    "journal-synced",         # the journal's rename is durable
    "tokenizer-written",      # tokenizer.json (new store) written under its temporary name
    "tokenizer-replaced",
    "tokenizer-synced",
    "manifest-written",       # the new manifest is written under its temporary name
    "manifest-replaced",      # the manifest was renamed into place (committed), folder not yet fsynced
    "manifest-synced",        # the commit is durable; the journal is still there
    "journal-removed",        # the journal is gone; the build is about to return
    "import-section",         # import: before each shard of the cache is restored into the temporary folder
    "import-renamed",         # import: the temporary folder was renamed to the destination
    "export-written",         # export: the temporary cache file is complete and fsynced
    "export-renamed",         # export: the cache file was renamed into place
    "merge-batch",            # merge: a batch of samples was written into the temporary folder
    "merge-renamed",          # merge: the temporary folder was renamed to the destination
    "partition-removed",      # build_partition: a finished partition of other inputs lost its manifest, files remain
    "commit-begun",           # commit: tokenizer.json in place, leftovers of an earlier commit removed
    "commit-linked",          # commit: a partition shard's tokens file was hard-linked into shards/
    "commit-docs-written",    # commit: its shifted document ends are written under a temporary name
    "commit-shards-synced",   # commit: every shard is in place and durable; the manifest comes next
    "commit-partition-removed",  # commit: committed (manifest-*), one partition folder removed
)

_plan: list | None = None


def inject(spec: str | None) -> None:
    """Set the fault plan of this process (as ``MMTOK_FAULT`` would; None or "" clears it). For test harnesses."""
    global _plan
    _plan = _parse(spec or "")


def _parse(spec: str | None = None) -> list:
    spec = os.environ.get(ENV, "") if spec is None else spec
    if not spec:
        return []
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in ("kill", "enospc"):
        raise ValueError(f"{ENV}={spec!r}: expected kill:POINT[:N] or enospc:POINT[:N]")
    return [parts[0], parts[1], int(parts[2]) if len(parts) == 3 else 1]


def fault_point(name: str) -> None:
    """Pass the named step; fail or die here when ``MMTOK_FAULT`` says so."""
    global _plan
    if _plan is None:
        _plan = _parse()
    if not _plan:
        return
    action, point, left = _plan
    if point != name and not (point.endswith("*") and name.startswith(point[:-1])):
        return
    _plan[2] = left = left - 1
    if left != 0:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected by {ENV} at {name})")
