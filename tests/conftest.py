"""Shared fixtures: real text found on every machine (Python's own docs and sources).

Randomness in tests: every random input is seeded (``np.random.default_rng(N)``,
``random.Random(N)``), and hypothesis runs under the ``ci`` profile loaded here:
derandomized (the examples are a function of the test, the same on every run
and machine) with no example database. ``HYPOTHESIS_PROFILE=explore`` runs a
random search instead (more examples, a local database) to look for new
failures; whatever it finds becomes an ``@example`` or a seeded regression test.
"""

from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=2000, derandomize=False, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from mmtok.inputs.sampletext import python_docs_prose, python_sources


@pytest.fixture(autouse=True)
def _no_timed_progress_lines(monkeypatch):
    """Progress lines in logs appear every 10 s: on a loaded machine a slow test would print one.

    Tests that check them set ``MMTOK_PROGRESS_SECONDS`` themselves.
    """
    monkeypatch.setenv("MMTOK_PROGRESS_SECONDS", "1e9")


@pytest.fixture(scope="session")
def docs_prose() -> str:
    """About 0.5 MB of English prose: the Python reference topics."""
    return python_docs_prose()


@pytest.fixture(scope="session")
def real_text(docs_prose) -> str:
    """About 3 MB of real text: English prose followed by Python sources."""
    return docs_prose + "\n\n" + python_sources(2_500_000)


@pytest.fixture(scope="session")
def real_text_file(tmp_path_factory, real_text) -> pathlib.Path:
    path = tmp_path_factory.mktemp("corpus") / "python_text.txt"
    path.write_text(real_text, encoding="utf-8")
    return path
