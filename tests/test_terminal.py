"""A clean terminal: by default `cli.py` shows our own messages and any library's errors;
engine and library warnings (recorded vLLM / torch lines below) go to runs/logs/COMMAND.log,
with one closing line saying how many were hidden; -v shows everything."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

import cli
from policies.logs import TerminalFilter, is_ours, setup_logging

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
    import os

    want = {"VLLM_CONFIGURE_LOGGING": None if verbose else "0", "TRANSFORMERS_VERBOSITY": None if verbose else "error",
            "TQDM_DISABLE": None if verbose else "1", "VLLM_LOGGING_LEVEL": "INFO" if verbose else "WARNING"}
    assert {k: os.environ.get(k) for k in want} == want


def test_setup_logging_survives_an_unwritable_log_folder(tmp_path):
    (tmp_path / "f").write_text("")
    hidden = setup_logging(0, log_file=tmp_path / "f" / "x.log")  # parent is a file
    assert hidden.log_file is None
