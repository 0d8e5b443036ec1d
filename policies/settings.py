"""The one module that reads environment variables.

TTS_MATH_CACHE   where converted models and other derived files go
                 (default: $XDG_CACHE_HOME/tts-math or ~/.cache/tts-math)
TTS_MATH_DATA    folder of the shared training data (default: ../shared/data
                 beside the repository, when it exists)
TTS_MATH_API_KEY bearer token `cli.py serve` requires when --api-key is not given
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    if os.environ.get("TTS_MATH_CACHE"):
        return Path(os.environ["TTS_MATH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tts-math"


def shared_data_dir() -> Path | None:
    if os.environ.get("TTS_MATH_DATA"):
        return Path(os.environ["TTS_MATH_DATA"]).expanduser()
    p = REPO_ROOT.parent / "shared" / "data"
    return p if p.is_dir() else None


def api_key() -> str | None:
    """The key `cli.py serve` requires (None: no key), kept out of the process list."""
    return os.environ.get("TTS_MATH_API_KEY") or None


def has_gpu() -> bool:
    """True when CUDA is usable; decides GPU vs CPU engine defaults."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def configure_cpu_engine_env() -> None:
    """Environment vLLM reads at engine start, set before vllm is imported: the CPU
    choices of `policies.config.ENGINE_ENV` (the reasons are there). Users who set a
    variable themselves keep their value."""
    from policies.config import ENGINE_ENV

    for k, v in ENGINE_ENV.items():
        os.environ.setdefault(k, v)


def set_engine_log_level(verbose: int) -> None:
    """Engine and library output, set before they are imported (policies/logs.py does
    the Python-logging side). With -v: vLLM's own logging at INFO, everything on screen.
    By default: vLLM's records go through Python logging (VLLM_CONFIGURE_LOGGING=0), where
    the terminal shows their errors only and the log file everything; transformers shows
    errors only; library progress bars (tqdm: weight loading, datasets) are off. A
    variable the user set keeps its value."""
    if verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        return
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
