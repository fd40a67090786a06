"""A one-line progress display for long jobs: bytes/s, tokens/s, ETA. Silent when not a terminal."""

from __future__ import annotations

import sys
import time


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
    """One line redrawn in place on a terminal, at most 10 times a second; silent elsewhere."""

    def __init__(self, *, stream=None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn = 0.0
        self._shown = False

    def due(self) -> float | None:
        """Seconds since the start if a redraw is due now, else None (disabled, or drawn < 0.1 s ago)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return None
        self._drawn = now
        return max(now - self.started, 1e-9)

    def show(self, parts: list[str]) -> None:
        self.stream.write("\r" + " | ".join(parts) + "   ")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


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
        self.show(progress_parts(done / self.total if self.total else None, elapsed) + [
            si_units(self.text_bytes, "B"), si_units(self.text_bytes / elapsed, "B/s"),
            si_units(self.tokens / elapsed, "tok/s")])

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"{self.tokens:,} tokens from {si_units(self.text_bytes, 'B')} of text in {elapsed:.1f} s "
                f"({si_units(self.text_bytes / elapsed, 'B/s')}, {si_units(self.tokens / elapsed, 'tok/s')})")
