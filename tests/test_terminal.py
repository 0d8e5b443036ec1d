"""A clean terminal: by default `cli.py` shows our own messages and any library's errors;
engine and library warnings (recorded vLLM / torch lines below) go to a log file beside
the command's output (runs/logs/COMMAND.log when it has none), with one closing line
saying how many were hidden and where; -v shows everything. Text written straight to
fd 2 while an engine is built (C++ warnings, child processes) goes to the same file."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import cli
from policies.logs import TerminalFilter, beside, is_ours, log_to, setup_logging

ROOT = Path(__file__).resolve().parent.parent

SITE = "/work/main/.venv/lib/python3.11/site-packages"
# (logger, level, message) as vLLM 0.32 CPU and torch emit them during a `search` run
RECORDED = [
    ("vllm.v1.worker.cpu_worker", logging.WARNING, "libtcmalloc is not found in LD_PRELOAD. For best performance, "
     "please follow the section `set LD_PRELOAD` in https://docs.vllm.ai/en/latest/getting_started/installation/cpu/"),
    ("vllm.v1.worker.cpu_worker", logging.WARNING,
     "CPU backend doesn't allow to use `torch.set_num_threads` after the thread binding, skip it."),
    ("vllm.triton_utils.importing", logging.WARNING, "Triton is installed, but doesn't include CPU backend. Disabling Triton."),
    ("vllm.config.scheduler", logging.WARNING, "Chunked prefill is not supported on CPU with seeded requests; disabling it."),
    ("vllm.platforms.cpu", logging.INFO, "Using CPU attention backend."),
    ("transformers.modeling_utils", logging.WARNING, "Some weights were not initialized from the model checkpoint"),
]
OURS = [("search.runner", logging.WARNING, "problem p3: gold '' cannot be graded; recorded as invalid_gold"),
        ("rewards.server", logging.ERROR, "score request failed")]


def _record(name, level, msg) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch):
    for k in ("VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_LEVEL", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE"):
        monkeypatch.delenv(k, raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def test_filter_on_recorded_lines():
    f = TerminalFilter(verbose=0)
    assert not any(f.filter(_record(*r)) for r in RECORDED)
    assert f.hidden == sum(r[1] >= logging.WARNING for r in RECORDED)
    assert all(f.filter(_record(*r)) for r in OURS)
    assert f.filter(_record("vllm.engine", logging.ERROR, "EngineCore failed to start."))  # library errors show
    assert all(TerminalFilter(verbose=1).filter(_record(*r)) for r in RECORDED)


def test_python_warnings_are_ours_only_from_our_files():
    root = str(Path(cli.__file__).resolve().parent)
    theirs = _record("py.warnings", logging.WARNING,
                     f"{SITE}/torch/cuda/__init__.py:63: FutureWarning: The pynvml package is deprecated.\n")
    ours = _record("py.warnings", logging.WARNING, f"{root}/search/beam.py:10: UserWarning: x\n")
    assert not is_ours(theirs) and is_ours(ours)


def fake_command(args):
    """What a `search` run does to the terminal: library noise, our warning, our output."""
    for name, level, msg in RECORDED * 3:
        logging.getLogger(name).log(level, msg)
    warnings.warn_explicit("`torch.cuda.amp.autocast(args...)` is deprecated.", FutureWarning,
                           f"{SITE}/torch/amp/autocast_mode.py", 265)
    for name, level, msg in OURS:
        logging.getLogger(name).log(level, msg)
    print("p1: chosen '5' gold '5' correct")
    return 0


@pytest.mark.parametrize("verbose", [0, 1])
def test_cli_terminal_and_log_file(tmp_path, monkeypatch, capsys, verbose):
    monkeypatch.chdir(tmp_path)
    import eval.view

    monkeypatch.setattr(eval.view, "run", fake_command)
    argv = ["-v"] * verbose + ["view", "x.jsonl"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "p1: chosen '5' gold '5' correct" in out
    assert "gold '' cannot be graded" in err and "score request failed" in err  # ours, always
    noise = ("libtcmalloc", "torch.set_num_threads", "Triton is installed", "Chunked prefill", "FutureWarning",
             "Some weights")
    log = (tmp_path / "runs/logs/view.log").read_text()
    if verbose:
        assert all(n in err for n in noise) and "hidden" not in err
    else:
        assert not any(n in err for n in noise), err
        assert all(n in log for n in noise) and "Using CPU attention backend" in log
        assert err.strip().splitlines()[-1] == ("16 engine/library warnings hidden; see runs/logs/view.log "
                                                "(-v shows them)")

    want = {"VLLM_CONFIGURE_LOGGING": None if verbose else "0", "TRANSFORMERS_VERBOSITY": None if verbose else "error",
            "TQDM_DISABLE": None if verbose else "1", "VLLM_LOGGING_LEVEL": "INFO" if verbose else "WARNING"}
    assert {k: os.environ.get(k) for k in want} == want


def test_setup_logging_survives_an_unwritable_log_folder(tmp_path):
    (tmp_path / "f").write_text("")
    hidden = setup_logging(0, log_file=tmp_path / "f" / "x.log")  # parent is a file
    logging.getLogger("vllm.x").warning("a library warning")
    report = io.StringIO()
    hidden.report(report)
    assert hidden.log_file is None
    assert report.getvalue().startswith("1 engine/library warning hidden (not all kept: ")
    assert "x.log cannot be written" in report.getvalue()


@pytest.mark.parametrize("out, log", [
    ("runs/gsm8k-beam.jsonl", "runs/gsm8k-beam.log"),
    ("pools/x.jsonl.gz", "pools/x.log"),
    ("reports/scorer-pb-prm.json", "reports/scorer-pb-prm.log"),
    ("data/steps.scored.jsonl", "data/steps.scored.log"),
    ("run-t0.8.jsonl", "run-t0.8.log"),
    ("notes.txt", "notes.txt.log"),
    (".jsonl", ".jsonl.log"),
])
def test_log_file_beside_an_output(out, log):
    assert beside(out) == Path(log)


def _noisy_search(out: str | None, fail: bool = False):
    """A `search` run: library noise before and after it names its output."""
    def run(args):
        for name, level, msg in RECORDED[:2]:
            logging.getLogger(name).log(level, msg)
        if fail:
            raise ValueError("--limit must be >= 1, got 0")
        log_to(beside(out))
        for name, level, msg in RECORDED[2:]:
            logging.getLogger(name).log(level, msg)
        logging.getLogger("search.runner").warning("ours")
        return 0
    return run


def test_search_log_goes_beside_its_run_file(tmp_path, monkeypatch, capsys):
    """Records from before the command knew its output are moved there too; no runs/logs/."""
    monkeypatch.chdir(tmp_path)
    import search.cli

    monkeypatch.setattr(search.cli, "run", _noisy_search("out/run.jsonl"))
    assert cli.main(["search"]) == 0
    err = capsys.readouterr().err
    log = (tmp_path / "out/run.log").read_text()
    assert all(r[2] in log for r in RECORDED) and "ours" in log
    assert not (tmp_path / "runs").exists()
    assert err.strip().splitlines()[-1] == "5 engine/library warnings hidden; see out/run.log (-v shows them)"


def test_a_command_that_fails_before_naming_its_output_logs_to_the_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import search.cli

    monkeypatch.setattr(search.cli, "run", _noisy_search(None, fail=True))
    assert cli.main(["search"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "cli.py search: error: --limit must be >= 1, got 0"
    assert err[-1] == "2 engine/library warnings hidden; see runs/logs/search.log (-v shows them)"
    assert RECORDED[1][2] in (tmp_path / "runs/logs/search.log").read_text()


def test_commands_with_an_output_name_their_log():
    """Every command with an output file says so (cli.py then holds records for it)."""
    import eval.cli
    import eval.sweep_cli
    import rewards.cli
    import rewards.train_cli
    import search.cli
    import search.pool_cli

    for mod in (search.cli, search.pool_cli, eval.sweep_cli, rewards.cli, rewards.train_cli, eval.cli):
        assert mod.LOG_BESIDE_OUTPUT is True, mod.__name__
    args = cli.build_parser().parse_args(["search"])
    assert args._log_beside_output is True
    assert cli.build_parser().parse_args(["view", "x.jsonl"])._log_beside_output is False


# what an engine start does to stderr, run in a child process so that its fd 2 is its own
ENGINE_START = r"""
import logging, os, subprocess, sys
from policies.logs import engine_output, log_to, setup_logging

hidden = setup_logging(int(sys.argv[1]), log_file="runs/logs/search.log", wait=True)
log_to("runs/x.log")
try:
    with engine_output() as quiet:
        print(f"quiet={quiet}", flush=True)
        os.write(2, b"[W numa.cpp:42] NUMA binding: C-level write to fd 2\n")
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'engine process stderr\\n')"], check=True)
        print("Loading safetensors checkpoint shards: 100%", file=sys.stderr)
        logging.getLogger("search.x").warning("our warning during the start")
        logging.getLogger("vllm.x").warning("a vllm warning")
        raise RuntimeError("engine failed to start")
except RuntimeError as e:
    logging.getLogger("search.x").error("caught: %s", e)
os.write(2, b"fd 2 is the terminal again\n")
hidden.report()
"""
RAW = ("NUMA binding: C-level write", "engine process stderr", "Loading safetensors checkpoint shards")


@pytest.mark.parametrize("verbose", [0, 1])
def test_engine_output_sends_fd2_to_the_log_file(tmp_path, verbose):
    """C-level writes, a child process's stderr and sys.stderr go to the log file while
    the engine starts; our records still reach the terminal; fd 2 is back after an error."""
    r = subprocess.run([sys.executable, "-c", ENGINE_START, str(verbose)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"quiet={not verbose}\n"
    err = r.stderr
    assert "our warning during the start" in err and "caught: engine failed to start" in err
    assert "fd 2 is the terminal again" in err
    if verbose:
        assert all(s in err for s in RAW) and "a vllm warning" in err and "hidden" not in err
        return
    log = (tmp_path / "runs/x.log").read_text()
    assert all(s in log for s in RAW) and "a vllm warning" in log
    assert not any(s in err for s in RAW) and "a vllm warning" not in err
    assert "fd 2 is the terminal again" not in log
    assert err.strip().splitlines()[-1] == "4 engine/library warnings hidden; see runs/x.log (-v shows them)"


def test_engine_output_outside_a_command_changes_nothing(monkeypatch):
    from policies import logs

    monkeypatch.setattr(logging.getLogger(), "handlers", [h for h in logging.getLogger().handlers
                                                          if not isinstance(h, logs.LogFile)])
    with logs.engine_output() as quiet:
        assert quiet is False
