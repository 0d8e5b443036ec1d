"""Progress (policies/progress.py): a rich bar on a terminal; elsewhere (CI logs, nohup,
a pipe) plain lines at the start, every 10 % or 30 s, and at the end. No engine."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policies.progress import Progress, duration, is_terminal

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _plain(total=20, **kw):
    out, clock = io.StringIO(), Clock()
    return Progress("search", total, unit="problems", file=out, clock=clock, **kw), out, clock


def test_a_non_terminal_gets_a_line_every_ten_percent():
    bar, out, clock = _plain()
    assert bar.tty is False  # detected: a StringIO is no terminal
    with bar:
        for i in range(20):
            clock.t += 1
            bar.advance(info=f"{9 * (i + 1) // (i + 1)} tok/s  acc {i}/{i + 1}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # the start, then 2/20, 4/20, ... 20/20; none repeated at the end
    assert lines[0] == "search: 0/20 problems (0%), 0s elapsed"
    assert lines[2] == "search: 4/20 problems (20%), 4s elapsed, ~16s left, 9 tok/s  acc 3/4"
    assert lines[-1] == "search: 20/20 problems (100%), 20s elapsed, 9 tok/s  acc 19/20"
    assert "\x1b" not in out.getvalue()  # no escape codes, no bar


def test_lines_also_come_every_thirty_seconds():
    bar, out, clock = _plain(total=1000)
    with bar:
        for _ in range(10):  # 1 % of the work every 12 s: lines at 36 s, 72 s, 108 s
            clock.t += 12
            bar.advance()
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[1].strip() for ln in lines] == ["0s elapsed", "36s elapsed", "1m12s elapsed",
                                                            "1m48s elapsed", "2m00s elapsed"]
    assert lines[-1].startswith("search: 10/1000 problems (1%)")  # the end: where it stopped


def test_update_sets_the_count_and_print_writes_plain_text():
    bar, out, clock = _plain(total=10)
    with bar:
        bar.update(6, info="3.5 generated tok/s")
        bar.print("p1: chosen '5' gold '5' [green]correct[/] " + "x" * 100)
    lines = out.getvalue().splitlines()
    assert lines[1] == "search: 6/10 problems (60%), 0s elapsed, ~0s left, 3.5 generated tok/s"
    assert lines[2] == "p1: chosen '5' gold '5' correct " + "x" * 100  # markup dropped, not wrapped at 80


def test_disabled_writes_nothing():
    bar, out, _ = _plain(enabled=False)
    with bar:
        bar.advance(info="x")
        bar.print("a line")
    assert out.getvalue() == ""


def test_a_terminal_gets_the_rich_bar():
    out = io.StringIO()
    with Progress("train prm", 4, file=out, tty=True) as bar:
        for _ in range(4):
            bar.advance(info="loss 0.5000")
    text = out.getvalue()
    assert "\x1b[" in text and "train prm" in text and "4/4" in text and "loss 0.5000" in text
    assert "(100%)" not in text  # no plain lines


def test_a_pseudo_terminal_is_detected():
    """Under a pty (what `script` or tmux gives) stdout is a terminal: the bar, not lines."""
    pytest.importorskip("pty")
    import pty

    master, slave = pty.openpty()
    code = ("import sys; from policies.progress import Progress\n"
            "with Progress('search', 3, unit='problems', file=sys.stdout) as bar:\n"
            "    [bar.advance(info='1 tok/s') for _ in range(3)]\n"
            "print('tty' if bar.tty else 'plain')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=slave, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert text.rstrip().endswith("tty") and "\x1b[" in text and "(100%)" not in text, text


def test_is_terminal_and_duration():
    assert is_terminal(io.StringIO()) is False and is_terminal(object()) is False
    assert [duration(s) for s in (0, 45, 72, 3600 + 180)] == ["0s", "45s", "1m12s", "1h03m"]


@pytest.mark.parametrize("kw, fragment", [({"total": -1}, "total must be >= 0"),
                                          ({"every_pct": 0}, "every_pct in (0, 100]")])
def test_bad_settings_name_the_field(kw, fragment):
    args = {"total": 5, **kw}
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
        Progress("x", args.pop("total"), **args)
