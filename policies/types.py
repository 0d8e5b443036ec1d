"""Plain data passed between the policy and the search strategies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated continuation.

    `prompt_tokens` is the prompt length the engine received; `cached_tokens` of
    them were served from vLLM's prefix cache (not recomputed), so the prompt
    compute actually spent is `prompt_tokens - cached_tokens`. When one prompt is
    sampled n times, the prompt counts belong to the request and are reported on
    the first completion only (the others carry 0), so sums over completions are
    sums of real work.
    """

    text: str
    generated_tokens: int
    prompt_tokens: int
    cached_tokens: int
    finish_reason: str | None  # "stop" (delimiter or EOS), "length", "abort", "early_stop" (GenRequest.watch)
    cumulative_logprob: float | None = None
    stop_reason: str | int | None = None  # the stop string hit, the EOS id, or None
    token_logprobs: tuple[float, ...] | None = None
    """Log-probability of each generated token (only with SamplingConfig.logprobs > 0)."""
    token_confidence: tuple[float, ...] | None = None
    """Per generated token, minus the mean log-probability of the top-k candidates
    (k = SamplingConfig.logprobs): DeepConf's token confidence. High when the
    distribution is peaked, low when the model hesitates."""
    token_text: tuple[str, ...] | None = None
    """The text of each generated token (only with logprobs > 0); joined they give `text`
    up to a stop string, and they locate step boundaries in token positions."""

    @property
    def computed_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def hit_eos(self) -> bool:
        """True when the model ended the solution (EOS), not a step delimiter or length."""
        return self.finish_reason == "stop" and not isinstance(self.stop_reason, str)


@dataclass(slots=True)
class TokenUsage:
    """Running token totals of one policy (what the compute ledger reads)."""

    calls: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def computed_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    def add(self, completions_per_request: list[list[Completion]]) -> None:
        self.calls += 1
        for comps in completions_per_request:
            self.requests += 1
            for c in comps:
                self.prompt_tokens += c.prompt_tokens
                self.cached_tokens += c.cached_tokens
                self.generated_tokens += c.generated_tokens

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "computed_prompt_tokens": self.computed_prompt_tokens,
            "generated_tokens": self.generated_tokens,
        }


REQUEST_KINDS = ("extend", "sample")


@dataclass(frozen=True, slots=True)
class GenRequest:
    """One request of the policy's non-blocking interface (`Policy.submit`): n
    continuations of problem + steps, as one `extend` or `sample` call would make them."""

    problem: str
    steps: tuple[str, ...] = ()
    """The partial solution so far (empty: from the problem's prompt)."""
    n: int = 1
    kind: str = "extend"
    """"extend": the next step only (stops at the step delimiter, `max_step_tokens`), as
    `Policy.extend`; "sample": on to the end of the solution (`max_tokens`), as
    `Policy.sample` with a prefix (the rollout of a step-level search)."""
    seed: int | None = None
    """The call seed, as `extend` / `sample` take it: sample j is drawn with
    `derive_seed(seed, kind, prompt, j)`, so the result does not depend on what else is in
    flight or on the order requests finish in. None: the policy's sampling seed."""
    max_tokens: int | None = None
    """Token cap (None: the policy's `max_step_tokens` for "extend", `max_tokens` for "sample")."""
    watch: Callable[[], Callable[[float], bool]] | None = None
    """Early stop inside the engine (None: none). Called once per sample, it returns that
    sample's watcher, which the policy calls with each generated token's confidence
    (`Completion.token_confidence`), in order, as the engine makes it; True stops the
    sample at that token: it is aborted in the engine and comes back with the tokens up to
    and including that one, `finish_reason` "early_stop". Needs a policy whose `early_stop`
    is True and token log-probs (`SamplingConfig.logprobs` >= 1). The search's DeepConf
    strategy passes `search.confidence.WindowStop`."""

    def __post_init__(self) -> None:
        if self.kind not in REQUEST_KINDS:
            raise ValueError(f"kind must be one of {', '.join(REQUEST_KINDS)}, got {self.kind!r}.")
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n must be an int >= 1, got {self.n!r}.")
        if not isinstance(self.steps, tuple):
            object.__setattr__(self, "steps", tuple(self.steps))
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {self.max_tokens}.")
        if self.watch is not None and not callable(self.watch):
            raise ValueError(f"watch must be a callable that makes one watcher per sample, or None; "
                             f"got {type(self.watch).__name__}.")


@dataclass(frozen=True, slots=True)
class KVBudget:
    """What the engine holds at once: the limit a pipelined search keeps its live
    sequences within (`Policy.kv_budget`), so that the KV cache never overflows into
    preemption (recomputation) and the engine never runs more sequences than it batches."""

    max_seqs: int
    """Sequences the engine decodes together (vLLM's `max_num_seqs`)."""
    kv_tokens: int | None = None
    """Tokens the KV cache holds (vLLM's reported capacity; None: unknown, no token limit)."""
    max_model_len: int | None = None
    """Longest prompt + generation of one sequence."""
    block_size: int = 16
    """KV block size in tokens: memory is held in whole blocks."""

    def __post_init__(self) -> None:
        if self.max_seqs < 1:
            raise ValueError(f"max_seqs must be >= 1, got {self.max_seqs}.")
        if self.kv_tokens is not None and self.kv_tokens < 1:
            raise ValueError(f"kv_tokens must be >= 1 or None, got {self.kv_tokens}.")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}.")

    def request_tokens(self, prompt_tokens: int, n: int, max_tokens: int) -> int:
        """KV tokens one request of n samples may hold at its peak, in whole blocks.

        The prompt's full blocks once (the prefix cache shares them among the n samples);
        per sample, the prompt's partly filled last block (never shared) and up to
        `max_tokens` generated tokens, each sequence capped at `max_model_len`. Prefixes
        shared between requests (the problem's prompt) are counted once per request:
        the estimate errs on the safe side."""
        bs = self.block_size
        cap = self.max_model_len or (prompt_tokens + max_tokens)
        prompt = min(prompt_tokens, cap)
        generated = max(0, min(max_tokens, cap - prompt))
        shared = prompt // bs * bs
        own = prompt - shared + generated
        return shared + n * (-(-own // bs) * bs)
