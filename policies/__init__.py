"""Policies: the models that propose solutions and steps.

`Policy` (policies/base.py) is the interface: `sample` and `extend` over one
generation hook, and `submit` / `poll` for requests sent one at a time (a pipelined
search; `GenRequest`, `KVBudget`). `VLLMPolicy` wraps vLLM's offline engine (imported
lazily: `import policies` works without vLLM); `policies.openai_backend.OpenAIPolicy`
talks to OpenAI-compatible servers. `Completion` is the plain record every generation returns.
"""

from policies.base import Policy, derive_seed
from policies.config import EngineConfig, SamplingConfig
from policies.models import DEFAULT_MODEL, ModelNotFoundError, resolve_model
from policies.types import Completion, GenRequest, KVBudget, TokenUsage
from policies.vllm_policy import VLLMNotInstalledError, VLLMPolicy, get_engine

__all__ = [
    "DEFAULT_MODEL",
    "Completion",
    "EngineConfig",
    "GenRequest",
    "KVBudget",
    "ModelNotFoundError",
    "Policy",
    "SamplingConfig",
    "TokenUsage",
    "VLLMNotInstalledError",
    "VLLMPolicy",
    "derive_seed",
    "get_engine",
    "resolve_model",
]
