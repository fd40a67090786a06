"""Shared fixtures: real text found on every machine (Python's own docs and sources)."""

from __future__ import annotations

import pathlib
import sysconfig

import pytest


def _python_docs_prose() -> str:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    return "\n\n".join(topics[key] for key in sorted(topics))


def _stdlib_sources(limit_bytes: int) -> str:
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="strict")
        parts.append(text)
        size += len(text)
        if size >= limit_bytes:
            break
    return "".join(parts)


@pytest.fixture(scope="session")
def docs_prose() -> str:
    """About 0.5 MB of English prose: the Python reference topics."""
    return _python_docs_prose()


@pytest.fixture(scope="session")
def real_text(docs_prose) -> str:
    """About 3 MB of real text: English prose followed by Python sources."""
    return docs_prose + "\n\n" + _stdlib_sources(2_500_000)


@pytest.fixture(scope="session")
def real_text_file(tmp_path_factory, real_text) -> pathlib.Path:
    path = tmp_path_factory.mktemp("corpus") / "python_text.txt"
    path.write_text(real_text, encoding="utf-8")
    return path
