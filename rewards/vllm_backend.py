"""PRM scoring with a vLLM pooling model (GPU; ``load_scorer(..., backend="vllm")``).

Supported: adapters with ``readout: "class_index"`` on architectures vLLM serves as
per-token classifiers or process reward models (e.g. ``Qwen2ForProcessRewardModel``,
``*ForTokenClassification``). The candidate is rendered and tokenised by the same
adapter code as the transformers backend (same tag positions); vLLM returns the
per-token head output with ``pooling_task="token_classify"`` and the score is read at
the tags. Label-token readouts need LM logits at arbitrary positions, which vLLM's
pooling API does not expose: use the transformers backend for them.

Status: written against vLLM 0.32's ``LLM.encode`` API; not yet run on a GPU in this
repository (the CPU tests cover the shared encoding, not this module).
"""

from __future__ import annotations

import logging

from .adapters import AdapterConfig
from .base import Scorer
from .hf import Encoded, encode_candidate, prefix_keys, render_prompt

log = logging.getLogger(__name__)


class VLLMScorer(Scorer):
    granularity = "step"

    def __init__(self, path: str, adapter: AdapterConfig, *, gpu_memory_utilization: float = 0.5,
                 cache_size: int = 200_000, **ignored) -> None:
        super().__init__()
        if adapter.readout != "class_index":
            raise ValueError(
                f"backend 'vllm' reads per-token classifier outputs; adapter {adapter.name!r} uses "
                f"readout {adapter.readout!r}. Use backend='transformers' for it"
            )
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("backend 'vllm' needs vLLM: pip install 'tts-math[gpu]'") from None
        if ignored:
            log.info("vllm backend ignores options %s (vLLM batches by itself)", sorted(ignored))
        self.kind = "prm" if adapter.granularity == "step" else "orm"
        self.granularity = adapter.granularity
        self.adapter = adapter
        self.name = adapter.name
        self.llm = LLM(model=path, runner="pooling", trust_remote_code=adapter.trust_remote_code,
                       gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()
        self.cache_size = cache_size
        self._scores: dict[bytes, float] = {}
        self._n_params = None

    @property
    def num_parameters(self) -> int:
        if self._n_params is None:
            counts = self.llm.apply_model(lambda m: sum(p.numel() for p in m.parameters()))
            self._n_params = int(counts[0]) if counts else 0
        return self._n_params

    def encode(self, problem: str, steps: list[str]) -> Encoded:
        return encode_candidate(self.adapter, self.tokenizer, render_prompt(self.adapter, self.tokenizer, problem), steps)

    def _score(self, problems, solutions, *, golds, references):
        import torch

        out: list[list[float] | None] = [None] * len(solutions)
        todo = []
        for i, (p, steps) in enumerate(zip(problems, solutions, strict=True)):
            if not steps:
                out[i] = []
                continue
            keys = prefix_keys(p, steps, self.adapter.name)
            if self.granularity == "outcome":
                keys = keys[-1:]
            cached = [self._scores.get(k) for k in keys]
            if all(c is not None for c in cached):
                out[i] = cached
                self.stats.cache_hits += len(keys)
                continue
            todo.append((i, keys, self.encode(p, steps)))
        if todo:
            prompts = [{"prompt_token_ids": list(enc.ids)} for _, _, enc in todo]
            results = self.llm.encode(prompts, pooling_task="token_classify", use_tqdm=False)
            for (i, keys, enc), r in zip(todo, results, strict=True):
                data = torch.as_tensor(r.outputs.data).float()  # [T, num_labels]
                rows = data[list(enc.tag_positions)]
                if not torch.allclose(rows.sum(-1), torch.ones(len(rows)), atol=1e-3):
                    rows = torch.softmax(rows, dim=-1)  # logits, not probabilities
                scores = rows[:, self.adapter.positive_class].clamp(0, 1).tolist()
                for k, v in zip(keys, scores, strict=True):
                    if len(self._scores) < self.cache_size:
                        self._scores[k] = v
                out[i] = scores
                self.stats.cache_misses += len(scores)
                self.stats.tokens_scored += len(enc.ids)
            self.stats.forward_passes += len(todo)
            self.stats.batches += 1
        return out
