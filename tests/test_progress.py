"""The progress line: drawn on a terminal only, throttled, with percent, ETA and rates."""

from __future__ import annotations

import io
import types

from mmtok.base.progress import BuildProgress, counted
from mmtok.cli.cache_cmd import TransferProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_build_progress_draws_on_a_terminal_and_logs_elsewhere():
    chunk = types.SimpleNamespace(nbytes=1000, file_offset=500)
    silent = io.StringIO()  # not a terminal
    quiet = BuildProgress([1000], stream=silent)
    quiet.update(0, chunk, 300)
    quiet.close()
    assert silent.getvalue() == ""  # a log line is due only after the interval (10 s)
    terminal = _Terminal()
    shown = BuildProgress([1000], stream=terminal)
    shown.started -= 2.0
    shown.update(0, chunk, 300)
    shown.update(0, chunk, 300)  # within 0.1 s: not redrawn
    shown.close()
    text = terminal.getvalue()
    assert text.count("\r 50.0%") == 1 and "ETA 0:00:02" in text and "tok/s" in text
    assert text.endswith("\r\033[K")
    assert shown.summary().startswith("600 tokens from 2.0 kB of text")


def test_transfer_progress_and_counts():
    terminal = _Terminal()
    line = TransferProgress("import", stream=terminal)
    line(0, 0)  # total unknown: no percent
    assert terminal.getvalue().startswith("\rimport | 0.0 B")
    assert counted(1, "document") == "1 document" and counted(2048, "shard") == "2,048 shards"


def test_progress_lines_in_logs_every_interval_without_carriage_returns(monkeypatch):
    monkeypatch.setenv("MMTOK_PROGRESS_SECONDS", "0.05")
    chunk = types.SimpleNamespace(nbytes=1000, file_offset=500)
    log = io.StringIO()  # not a terminal: a file, a pipe, a Slurm log
    progress = BuildProgress([1000], stream=log)
    progress.update(0, chunk, 300)
    assert log.getvalue() == ""  # the first line waits one interval
    progress.started -= 1.0
    progress._drawn -= 1.0
    progress.update(0, chunk, 300)
    progress.update(0, chunk, 300)  # within the interval: nothing
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("build |  50.0% | ETA") and "tok/s" in lines[0]
    assert "\r" not in log.getvalue() and "\033" not in log.getvalue()
    silenced = io.StringIO()
    quiet = BuildProgress([1000], stream=silenced, enabled=False)
    quiet._drawn -= 100
    quiet.update(0, chunk, 300)
    assert silenced.getvalue() == ""
