"""Plain data passed between the policy and the search strategies."""

from __future__ import annotations

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
    finish_reason: str | None  # "stop" (delimiter or EOS), "length", "abort"
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
