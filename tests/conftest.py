"""Shared fixtures.

`engine_policy` starts the real vLLM CPU engine on the embedded default model once
per test session (about a minute); every test that needs generation shares it.
Tests that need it are marked `engine`; `pytest -m "not engine"` skips them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The test engine's KV cache is small so that a test run fits beside other work.
TEST_KV_GIB = float(os.environ.get("TTS_MATH_TEST_KV_GIB", "0.75"))


def shared_data() -> Path | None:
    from policies import settings

    return settings.shared_data_dir()


def bench_script(name: str):
    """A `bench/NAME.py` script loaded as a module (the bench folder is not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    d = shared_data()
    if d is None:
        pytest.skip("shared data folder (../shared/data) not present")
    return d


@pytest.fixture(scope="session")
def engine_policy():
    """A VLLMPolicy on the embedded model, one engine for the whole session."""
    pytest.importorskip("vllm")
    from policies import EngineConfig, SamplingConfig, VLLMPolicy

    engine = EngineConfig(kv_cache_gib=TEST_KV_GIB, max_model_len=2048, max_num_seqs=64)
    return VLLMPolicy(engine=engine, sampling=SamplingConfig(temperature=0.8, max_tokens=160, seed=1234))
