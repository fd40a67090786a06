"""Real text for benchmarks, found on every machine: Python's reference docs and stdlib sources.

`make_text_file(path, megabytes)` writes a file of at least that size by repeating
that text with a light variation per round (so it is not one block repeated).
"""

from __future__ import annotations

import os
import platform

from mmtok.inputs.sampletext import python_docs_prose, python_sources


def python_text() -> str:
    """About 5 MB: English prose followed by the whole stdlib's sources."""
    return python_docs_prose() + "\n\n" + python_sources()


def make_text_file(path: str, megabytes: float, *, prose_only: bool = False) -> int:
    """Write at least ``megabytes`` MB of real text to ``path`` (reused if already that size); return its size."""
    target = int(megabytes * 1e6)
    if os.path.exists(path) and os.path.getsize(path) >= target:
        return os.path.getsize(path)
    base = python_docs_prose() if prose_only else python_text()
    written, round_ = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target:
            text = base if round_ % 2 == 0 else base.replace(" the ", " a ")
            f.write(f"Round {round_}.\n")
            f.write(text)
            written += len(text.encode("utf-8")) + 12
            round_ += 1
    return os.path.getsize(path)


def machine() -> str:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {model}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"
