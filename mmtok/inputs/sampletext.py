"""Real text that ships with every Python: the sample corpus of `mmtok demo`, tests and benchmarks."""

from __future__ import annotations

import pathlib
import sysconfig


def python_docs_prose() -> str:
    """About 0.5 MB of English prose: the topics of Python's reference documentation (pydoc_data)."""
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def python_sources(limit_chars: int | None = None) -> str:
    """The standard library's own ``*.py`` files, in name order, up to about ``limit_chars`` characters."""
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        parts.append(text)
        size += len(text)
        if limit_chars is not None and size >= limit_chars:
            break
    return "".join(parts)
