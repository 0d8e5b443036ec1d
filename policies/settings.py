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
    """vLLM logs every engine detail at INFO; the CLI shows them only with -v."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
