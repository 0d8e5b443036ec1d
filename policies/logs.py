"""What the terminal shows: by default our own messages and any library's errors; with
-v everything. Engine and library warnings (vLLM, torch, transformers, Python warnings)
always go to a log file, so none is lost: beside the command's output once the command
knows it (`runs/x.jsonl` -> `runs/x.log`, a report folder -> `FOLDER/COMMAND.log`), else
the fallback `runs/logs/COMMAND.log` (serve, serve-scorer, models, view, and a command
that fails before it knows its output).

    hidden = setup_logging(0, log_file="runs/logs/search.log", wait=True)  # cli.py main
    log_to(beside(out))              # the command, once --out is known; held records go there
    with engine_output() as quiet:   # around engine construction
        llm = vllm.LLM(..., use_tqdm_on_load=not quiet)
    hidden.report()                  # "12 engine/library warnings hidden; see runs/x.log (-v shows them)"

The env side (vLLM's records routed through Python logging, transformers' verbosity,
library progress bars) is `policies.settings.set_engine_log_level`; together they hide
lines such as vLLM's "libtcmalloc is not found in LD_PRELOAD", its "CPU backend doesn't
allow to use `torch.set_num_threads`", "Triton is installed, but doesn't include CPU
backend" and torch's FutureWarnings. Text that C or C++ code writes straight to file
descriptor 2 (torch's `[W ...]` lines, the CPU worker's NUMA-binding note) is caught
while `engine_output` holds fd 2 on the log file, i.e. during engine construction; an
engine process started then (GPU multiprocessing) inherits that fd 2 and keeps writing
there. Outside a command (tests, notebooks) there is no `LogFile`: `log_to` and
`engine_output` then change nothing. vLLM or transformers imported before
`setup_logging` (tests) have their own handlers taken over; transformers imported
after it (a command) keeps its own handler at TRANSFORMERS_VERBOSITY=error: its warnings
are not made at all, its errors print as "[transformers] ...".
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

OURS = ("search", "rewards", "verifiers", "policies", "eval", "cli", "__main__", "bench")
"""Top-level packages whose records always reach the terminal (at the chosen level)."""

_REPO = str(Path(__file__).resolve().parent.parent)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OUTPUT_SUFFIXES = (".gz", ".jsonl", ".json", ".html")
"""Suffixes `beside` drops from an output file's name before adding .log."""
MAX_PENDING = 10_000
"""Records held while a command has not named its log file; later ones are dropped."""


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


def beside(out: str | Path) -> Path:
    """The log file of an output file: its name without .jsonl/.json/.gz/.html, plus .log
    (`runs/gsm8k-beam.jsonl` -> `runs/gsm8k-beam.log`, `pools/x.jsonl.gz` -> `pools/x.log`)."""
    p = Path(out)
    name = p.name
    while (suffix := Path(name).suffix) in OUTPUT_SUFFIXES and name != suffix:
        name = name[: -len(suffix)]
    return p.with_name(name + ".log")


class LogFile(logging.Handler):
    """The command's log file, appended to and created on the first record.

    With `wait`, records are held until the command names the file (`log_to`); whatever
    is held when the command ends, or when an engine is built first (`engine_output`),
    goes to `fallback`. Without `wait` the fallback is the file from the start. A file
    that cannot be created drops its records (`failed` says why; `Hidden.report` tells).
    `lines` counts the lines written by this handler, so that `engine_output` can tell
    raw fd-2 text from records in the same file; `raw_lines` counts that text."""

    def __init__(self, fallback: str | Path | None, *, verbose: int = 0, wait: bool = False) -> None:
        super().__init__()
        self.fallback = Path(fallback) if fallback is not None else None
        self.verbose = verbose
        self.target: Path | None = None if wait else self.fallback
        """Where records go (as the command gave it, for messages); None: held or dropped."""
        self.holding = wait
        self.written: Path | None = None
        """The file records were last written to (None: none yet)."""
        self.stream = None
        self.failed: str | None = None
        """Why the file could not be created (records are then dropped)."""
        self.pending: list[logging.LogRecord] = []
        self.lines = 0
        self.raw_lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.target is None:
            if self.holding and len(self.pending) < MAX_PENDING:
                self.pending.append(record)
            return
        try:
            if self._open() is not None:
                self._write(self.format(record))
        except Exception:
            self.handleError(record)

    def _open(self):
        if self.stream is None and self.failed is None:
            try:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                self.stream = open(self.target, "a", encoding="utf-8")
            except OSError as e:
                self.failed = f"{self.target} cannot be written: {e.strerror or e}"
                return None
            self.written = self.target
        return self.stream

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self.lines += text.count("\n") + 1

    def _close_stream(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def set_target(self, path: str | Path) -> None:
        """Write to `path` from now on; records held so far go there too. Records
        already written to another file stay there."""
        path = Path(path)
        with self.lock:
            if path != self.target:
                self._close_stream()
                self.target, self.failed = path, None
            self.holding = False
            pending, self.pending = self.pending, []
        for record in pending:
            self.handle(record)

    def ensure_open(self) -> Path | None:
        """The file in use, created now (the fallback if the command named none yet);
        None when there is none or it cannot be created."""
        if self.target is None and self.fallback is not None:
            self.set_target(self.fallback)
        with self.lock:
            if self.target is None or self._open() is None:
                return None
            return self.target

    def flush_pending(self) -> None:
        """Held records to the fallback (the command ends without naming a file)."""
        if self.pending and self.target is None and self.fallback is not None:
            self.set_target(self.fallback)

    def close(self) -> None:
        self.flush_pending()
        with self.lock:
            self._close_stream()
        super().close()


class Hidden:
    """What `setup_logging` hid from the terminal, for one closing line."""

    def __init__(self, flt: TerminalFilter, log: LogFile) -> None:
        self.filter, self.log = flt, log

    @property
    def log_file(self) -> Path | None:
        """The file records went to (None before any was written, or when none can be)."""
        return self.log.written

    @property
    def count(self) -> int:
        """Warnings kept off the terminal: records, and lines written to fd 2 while an
        engine was built (`engine_output`)."""
        return self.filter.hidden + self.log.raw_lines

    def report(self, stream=None) -> None:
        self.log.flush_pending()
        n = self.count
        if n:
            where = f"; see {self.log_file}" if self.log_file else ""
            if self.log.failed:
                where += f" (not all kept: {self.log.failed})"
            print(f"{n} engine/library warning{'s' * (n != 1)} hidden{where} (-v shows them)",
                  file=stream or sys.stderr)


def setup_logging(verbose: int = 0, log_file: str | Path | None = None, stream=None, *,
                  wait: bool = False) -> Hidden:
    """Root logging for a command: a terminal handler at WARNING (-v INFO, -vv DEBUG)
    with `TerminalFilter`, and a `LogFile` taking every record at INFO or above,
    libraries' included, at `log_file` (the fallback) or, with `wait`, wherever the
    command names with `log_to`. Python warnings are logged (logger "py.warnings"), so
    they follow the same rules."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tts_math", False):
            root.removeHandler(h)
            h.close()
    flt = TerminalFilter(verbose)
    term = logging.StreamHandler(stream or sys.stderr)
    term.setLevel(level)
    term.addFilter(flt)
    term.setFormatter(logging.Formatter(FORMAT))
    fh = LogFile(log_file, verbose=verbose, wait=wait)
    fh.setLevel(min(level, logging.INFO))
    fh.setFormatter(logging.Formatter(FORMAT))
    for h in (term, fh):
        h._tts_math = True
        root.addHandler(h)
    root.setLevel(min(level, logging.INFO))
    for name in ("vllm", "transformers"):
        lib = logging.getLogger(name)
        if lib.handlers:  # the library set up its own logging when it was imported before us: take it over
            for h in list(lib.handlers):
                lib.removeHandler(h)
            lib.propagate = True
            lib.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
    return Hidden(flt, fh)


def active_log() -> LogFile | None:
    """The running command's `LogFile` (None outside a command)."""
    return next((h for h in logging.getLogger().handlers if isinstance(h, LogFile)), None)


def log_to(path: str | Path) -> None:
    """The running command's log file is `path` from now on (`beside(out)` for an output
    file, `FOLDER / "COMMAND.log"` for a report folder). Nothing outside a command."""
    log = active_log()
    if log is not None:
        log.set_target(path)


_redirected = False


@contextlib.contextmanager
def engine_output():
    """Around engine construction: unless -v, file descriptor 2 and `sys.stderr` point at
    the command's log file (the fallback if it named none yet), so that C/C++ warnings
    and library bars land there; our terminal handler keeps writing to the terminal.
    Everything is restored on the way out, on error too. Yields True when output is
    redirected (the caller then turns the engine's own bars off), else False: -v,
    outside a command, or no log file."""
    global _redirected
    if _redirected:  # an engine built while another is: the outer redirect holds
        yield True
        return
    log = active_log()
    path = None if log is None or log.verbose else log.ensure_open()
    if path is None:
        yield False
        return
    try:
        saved = _Stderr(log)
    except OSError:  # no usable fd 2 (a closed stderr): leave it as it is
        yield False
        return
    _redirected = True
    try:
        yield True
    finally:
        _redirected = False
        saved.restore()


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


class _Stderr:
    """fd 2 and sys.stderr moved onto `log`'s file; `restore` puts them back and counts
    the raw lines that arrived (lines in the file's new part minus the handler's)."""

    def __init__(self, log: LogFile) -> None:
        for s in (sys.stderr, sys.__stderr__):
            with contextlib.suppress(Exception):
                s.flush()
        self.log = log
        self.saved_fd = os.dup(2)  # the steps that can fail come before anything changes
        try:
            self.fd = os.open(log.target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # kept to read back
        except OSError:
            os.close(self.saved_fd)
            raise
        self.terminal = open(os.dup(self.saved_fd), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        self.handlers = [h for h in logging.getLogger().handlers
                         if getattr(h, "_tts_math", False) and isinstance(h, logging.StreamHandler)
                         and _writes_to_fd2(h.stream)]
        self.streams = [h.setStream(self.terminal) for h in self.handlers]
        with log.lock:
            self.start = os.fstat(self.fd).st_size
            self.start_lines = log.lines
        os.dup2(self.fd, 2)
        self.sys_stderr = sys.stderr
        self.ours = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = self.ours

    def restore(self) -> None:
        with contextlib.suppress(Exception):
            self.ours.close()  # flushed; closefd=False: fd 2 stays open
        sys.stderr = self.sys_stderr
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        for h, s in zip(self.handlers, self.streams, strict=True):
            h.setStream(s)
        self.terminal.close()
        log = self.log
        with log.lock:
            text = os.pread(self.fd, os.fstat(self.fd).st_size - self.start, self.start)
            lines = text.count(b"\n") + (bool(text) and not text.endswith(b"\n"))
            log.raw_lines += max(0, lines - (log.lines - self.start_lines))
        os.close(self.fd)
