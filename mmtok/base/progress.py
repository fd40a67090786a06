"""Progress of long jobs (bytes/s, tokens/s, ETA): one line redrawn on a terminal, plain log lines elsewhere.

When stderr is not a terminal (Slurm, nohup, CI logs) a plain line, without
carriage returns, is printed every ``$MMTOK_PROGRESS_SECONDS`` seconds (default
10); ``--quiet`` (``enabled=False``) silences both.
"""

from __future__ import annotations

import os
import sys
import time

LOG_INTERVAL_ENV = "MMTOK_PROGRESS_SECONDS"
LOG_INTERVAL = 10.0


def log_interval() -> float:
    """Seconds between progress lines in logs: ``$MMTOK_PROGRESS_SECONDS`` if set to a positive number, else 10."""
    try:
        value = float(os.environ.get(LOG_INTERVAL_ENV, ""))
    except ValueError:
        return LOG_INTERVAL
    return value if value > 0 else LOG_INTERVAL


def si_units(value: float, unit: str) -> str:
    """``1234567, "B"`` -> ``"1.2 MB"``: decimal prefixes, for rates and sizes in progress lines."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(value) < 1000 or prefix == "T":
            return f"{value:,.1f} {prefix}{unit}"
        value /= 1000
    return f"{value} {unit}"


def counted(n: int, noun: str) -> str:
    """``"1 document"``, ``"2,048 documents"``: a count with its noun, for one-line summaries."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def clock(seconds: float) -> str:
    """Seconds as ``H:MM:SS`` (an ETA)."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_parts(fraction_done: float | None, elapsed: float) -> list[str]:
    """``["42.0%", "ETA 0:01:02"]`` when the fraction done is known, else nothing."""
    if fraction_done is None:
        return []
    fraction = min(fraction_done, 1.0)
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0
    return [f"{fraction:6.1%}", f"ETA {clock(eta)}"]


class ProgressLine:
    """One line redrawn in place on a terminal (at most 10 times a second); elsewhere a plain line every ~10 s.

    ``enabled=None`` picks by the stream: a terminal gets the redrawn line, a
    file or pipe the log lines; ``True`` forces the redrawn line, ``False`` silences.
    """

    def __init__(self, *, stream=None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.log = enabled is None and not _isatty(self.stream)
        self.enabled = True if self.log else (_isatty(self.stream) if enabled is None else enabled)
        self.started = time.monotonic()
        self.interval = log_interval() if self.log else 0.1
        self._drawn = self.started if self.log else 0.0  # log lines start one interval in
        self._shown = False

    def due(self) -> float | None:
        """Seconds since the start if a line is due now, else None (disabled, or drawn too recently)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if now - self._drawn < self.interval:
            return None
        self._drawn = now
        return max(now - self.started, 1e-9)

    def show(self, parts: list[str]) -> None:
        if self.log:
            self.stream.write(" | ".join(parts) + "\n")
        else:
            self.stream.write("\r" + " | ".join(parts) + "   ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown and not self.log:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class BuildProgress(ProgressLine):
    """Receives ``update(source_index, chunk, tokens)`` from a build: percent, ETA, bytes/s, tokens/s.

    ``sizes`` are the inputs' on-disk sizes (None when unknown, as for in-memory
    texts); the fraction done comes from the file offsets chunks report.
    """

    def __init__(self, sizes: list[int | None], *, stream=None, enabled: bool | None = None):
        super().__init__(stream=stream, enabled=enabled)
        self.sizes = sizes
        self.total = sum(size for size in sizes if size) or None
        self.text_bytes = 0
        self.tokens = 0

    def update(self, index: int, chunk, tokens: int) -> None:
        self.text_bytes += chunk.nbytes
        self.tokens += tokens
        elapsed = self.due()
        if elapsed is None:
            return
        done = sum(size or 0 for size in self.sizes[:index]) + chunk.file_offset
        self.show((["build"] if self.log else []) + progress_parts(done / self.total if self.total else None, elapsed) + [
            si_units(self.text_bytes, "B"), si_units(self.text_bytes / elapsed, "B/s"),
            si_units(self.tokens / elapsed, "tok/s")])

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"{self.tokens:,} tokens from {si_units(self.text_bytes, 'B')} of text in {elapsed:.1f} s "
                f"({si_units(self.text_bytes / elapsed, 'B/s')}, {si_units(self.tokens / elapsed, 'tok/s')})")
