"""Policies: the models that propose solutions and steps.

`VLLMPolicy` wraps vLLM's offline engine (imported lazily: `import policies`
works without vLLM). `Completion` is the plain record every generation returns.
"""

from policies.config import EngineConfig, SamplingConfig
from policies.models import DEFAULT_MODEL, ModelNotFoundError, resolve_model
from policies.types import Completion, TokenUsage
from policies.vllm_policy import VLLMNotInstalledError, VLLMPolicy, derive_seed, get_engine

__all__ = [
    "DEFAULT_MODEL",
    "Completion",
    "EngineConfig",
    "ModelNotFoundError",
    "SamplingConfig",
    "TokenUsage",
    "VLLMNotInstalledError",
    "VLLMPolicy",
    "derive_seed",
    "get_engine",
    "resolve_model",
]
