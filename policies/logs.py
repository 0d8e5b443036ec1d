"""What the terminal shows: by default our own messages and any library's errors; with
-v everything. Engine and library warnings (vLLM, torch, transformers, Python warnings)
always go to a log file, runs/logs/COMMAND.log, so none is lost.

    hidden = setup_logging(verbose=0, log_file="runs/logs/search.log")   # cli.py main
    ...
    hidden.report()          # "12 engine/library warnings hidden; see runs/logs/search.log (-v shows them)"

The env side (vLLM's records routed through Python logging, transformers' verbosity,
library progress bars) is `policies.settings.set_engine_log_level`; together they hide
lines such as vLLM's "libtcmalloc is not found in LD_PRELOAD", its "CPU backend doesn't
allow to use `torch.set_num_threads`", "Triton is installed, but doesn't include CPU
backend" and torch's FutureWarnings. Not reached: text a C++ library writes straight to
stderr (torch's `[W ...]` lines), and an engine running in a separate process (GPU
multiprocessing), whose warnings still print.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

OURS = ("search", "rewards", "verifiers", "policies", "eval", "cli", "__main__", "bench")
"""Top-level packages whose records always reach the terminal (at the chosen level)."""

_REPO = str(Path(__file__).resolve().parent.parent)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_ours(record: logging.LogRecord) -> bool:
    """A record of this project: from one of its packages, or a Python warning raised
    in its own files (not in an installed library)."""
    if record.name == "py.warnings":
        msg = str(record.msg) if not record.args else record.getMessage()
        path = msg.split(":", 1)[0]
        return path.startswith(_REPO) and "site-packages" not in path
    return record.name.split(".", 1)[0] in OURS


class TerminalFilter(logging.Filter):
    """Lets through our records and any record at ERROR or above; counts what it hides.
    With `verbose` it lets everything through."""

    def __init__(self, verbose: int = 0) -> None:
        super().__init__()
        self.verbose = verbose
        self.hidden = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or is_ours(record) or record.levelno >= logging.ERROR:
            return True
        self.hidden += record.levelno >= logging.WARNING
        return False


class Hidden:
    """What `setup_logging` hid from the terminal, for one closing line."""

    def __init__(self, flt: TerminalFilter, log_file: Path | None) -> None:
        self.filter, self.log_file = flt, log_file

    def report(self, stream=None) -> None:
        n = self.filter.hidden
        if n:
            where = f"; see {self.log_file}" if self.log_file else ""
            print(f"{n} engine/library warning{'s' * (n != 1)} hidden{where} (-v shows them)",
                  file=stream or sys.stderr)


def setup_logging(verbose: int = 0, log_file: str | Path | None = None, stream=None) -> Hidden:
    """Root logging for a command: a terminal handler at WARNING (-v INFO, -vv DEBUG)
    with `TerminalFilter`, and `log_file` (created on the first record, appended) taking
    every record at INFO or above, libraries' included. Python warnings are logged
    (logger "py.warnings"), so they follow the same rules."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tts_math", False):
            root.removeHandler(h)
    flt = TerminalFilter(verbose)
    term = logging.StreamHandler(stream or sys.stderr)
    term.setLevel(level)
    term.addFilter(flt)
    term.setFormatter(logging.Formatter(FORMAT))
    handlers = [term]
    path = None
    if log_file is not None:
        path = Path(log_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(path, delay=True, encoding="utf-8")
        except OSError:
            path = None  # a read-only folder: no log file, the terminal rules still hold
        else:
            fh.setLevel(min(level, logging.INFO))
            fh.setFormatter(logging.Formatter(FORMAT))
            handlers.append(fh)
    for h in handlers:
        h._tts_math = True
        root.addHandler(h)
    root.setLevel(min(level, logging.INFO) if path else level)
    vl = logging.getLogger("vllm")
    if vl.handlers:  # vLLM set up its own logging when it was imported before us: take it over
        for h in list(vl.handlers):
            vl.removeHandler(h)
        vl.propagate = True
        vl.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
    return Hidden(flt, path)
