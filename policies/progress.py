"""Progress of a long command: a live bar on a terminal, periodic plain lines elsewhere.

    with Progress("search", total=80, unit="problems", file=sys.stdout) as bar:
        for rec in records:
            bar.advance(info="85 tok/s  acc 3/12")
            bar.print(f"{rec['id']}: chosen ...")       # a line of output (above the bar)

On a terminal it is a rich bar. When the stream is not a terminal (CI logs, nohup, a
pipe) a rich bar would show nothing until it ends, so the bar becomes plain lines: one
at the start, then one whenever `every_s` seconds have passed or another `every_pct`
percent is done, and one at the end:

    search: 24/80 problems (30%), 1m12s elapsed, ~2m48s left, 85 tok/s  acc 3/12

Used by `cli.py search`, `pool` and `train`.
"""

from __future__ import annotations

import math
import sys
import time

EVERY_S = 30.0
"""Plain lines: at most this long between two lines while work is done."""
EVERY_PCT = 10.0
"""Plain lines: one each time this share of the total is passed."""


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def duration(seconds: float) -> str:
    """1m12s, 2h03m, 45s."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Progress of `total` units, labelled `label`, on `file` (default sys.stderr).

    Args:
        enabled: False: nothing at all, `print` included (--quiet).
        tty: bar (True) or plain lines (False); None: whether `file` is a terminal.
        every_s, every_pct: how often plain lines come (see the module docstring).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, label: str, total: int, *, unit: str = "", file=None, enabled: bool = True,
                 tty: bool | None = None, every_s: float = EVERY_S, every_pct: float = EVERY_PCT,
                 clock=time.monotonic) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}.")
        if every_s <= 0 or not 0 < every_pct <= 100:
            raise ValueError(f"every_s must be > 0 and every_pct in (0, 100], got {every_s} and {every_pct}.")
        self.label, self.total, self.unit = label, total, unit
        self.file = file if file is not None else sys.stderr
        self.enabled = enabled
        self.tty = is_terminal(self.file) if tty is None else tty
        self.every_s, self.every_pct, self.clock = every_s, every_pct, clock
        self.done, self.info = 0, ""
        self._bar = self._task = self._console = None
        self._t0 = self._last_t = 0.0
        self._last_done: int | None = None
        self._next_pct = 0.0

    # ---- lifecycle --------------------------------------------------------------
    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        from rich.console import Console

        self._console = Console(file=self.file, highlight=False, force_terminal=self.tty or None)
        self._t0 = self.clock()
        if self.tty:
            self._bar = _rich_bar(self.label, self._console)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, info="")
        else:
            self._line()
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.stop()
        elif self.done != self._last_done:
            self._line()

    # ---- updates ----------------------------------------------------------------
    def advance(self, n: int = 1, *, info: str | None = None) -> None:
        self.update(self.done + n, info=info)

    def update(self, done: int, *, info: str | None = None) -> None:
        """`done` units of `total` are finished; `info` replaces the text after the counts."""
        self.done = done
        if info is not None:
            self.info = info
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, info=self.info)
        elif self._due():
            self._line()

    def print(self, message: str) -> None:
        """One line of output (rich markup allowed; plain text when not a terminal)."""
        if not self.enabled:
            return
        console = self._bar.console if self._bar is not None else self._console
        console.print(message, soft_wrap=True)

    # ---- plain lines ------------------------------------------------------------
    def _pct(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _due(self) -> bool:
        return self.clock() - self._last_t >= self.every_s or self._pct() >= self._next_pct

    def line(self) -> str:
        """The plain line for the current state."""
        elapsed = self.clock() - self._t0
        parts = [f"{self.label}: {self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")
                 + f" ({self._pct():.0f}%)", f"{duration(elapsed)} elapsed"]
        if 0 < self.done < self.total:
            parts.append(f"~{duration(elapsed / self.done * (self.total - self.done))} left")
        if self.info:
            parts.append(self.info)
        return ", ".join(parts)

    def _line(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self._last_t, self._last_done = self.clock(), self.done
        self._next_pct = (math.floor(self._pct() / self.every_pct) + 1) * self.every_pct


def _rich_bar(label: str, console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    return RichProgress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False)
