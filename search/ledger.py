"""One compute ledger for every strategy, per problem and per run.

What is counted (all strategies alike, so N and cost compare across them):

- policy: calls (engine calls that included this problem), requests (prompts
  sent), prompt tokens submitted, of which cached (served by vLLM's prefix cache),
  computed prompt tokens (= submitted - cached) and generated tokens. Read from the
  `Completion`s the policy returns, so every generated token is counted, including
  continuations a strategy later discards.
- scorer: calls, candidates (solutions sent), tokens scored (from the scorer's
  `stats` counters; within one batched call they are shared among problems in
  proportion to the characters each problem submitted), cache hits.
- verifier: calls (answer-equivalence checks for voting plus grading).
- wall time: seconds from the start of the strategy call until the problem was
  done. Problems advance together, so per-problem wall times overlap and do not
  sum to the run's wall time.
- FLOPs: 2 x parameters x tokens, for the policy (computed prompt + generated
  tokens) and the scorer (tokens scored). A forward-pass estimate; attention and
  the discarded-KV cost are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

_COUNTERS = (
    "policy_calls", "policy_requests", "prompt_tokens", "cached_tokens", "generated_tokens",
    "scorer_calls", "scorer_candidates", "scorer_tokens", "scorer_cache_hits", "verifier_calls",
)


@dataclass(slots=True)
class Ledger:
    policy_calls: int = 0
    policy_requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    scorer_calls: int = 0
    scorer_candidates: int = 0
    scorer_tokens: float = 0
    scorer_cache_hits: int = 0
    verifier_calls: int = 0
    wall_s: float = 0.0
    policy_params: int = 0
    scorer_params: int = 0

    @property
    def computed_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def policy_flops(self) -> float:
        return 2.0 * self.policy_params * (self.computed_prompt_tokens + self.generated_tokens)

    @property
    def scorer_flops(self) -> float:
        return 2.0 * self.scorer_params * self.scorer_tokens

    @property
    def flops(self) -> float:
        return self.policy_flops + self.scorer_flops

    def add_completions(self, completions) -> None:
        """Count one request's completions (prompt counts sit on the first one)."""
        self.policy_requests += 1
        for c in completions:
            self.prompt_tokens += c.prompt_tokens
            self.cached_tokens += c.cached_tokens
            self.generated_tokens += c.generated_tokens

    def add(self, other: Ledger) -> None:
        """Sum counters (for a run total built from per-problem ledgers)."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scorer_tokens"] = round(d["scorer_tokens"], 1)
        d["wall_s"] = round(d["wall_s"], 3)
        d["computed_prompt_tokens"] = self.computed_prompt_tokens
        d["policy_flops"] = self.policy_flops
        d["scorer_flops"] = self.scorer_flops
        d["flops"] = self.flops
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Ledger:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def read_scorer_stats(scorer) -> dict[str, float]:
    """The scorer's running counters as {"calls", "candidates", "tokens", "cache_hits"}.

    Accepts `stats` as an object or a dict and a few spellings of each counter;
    a scorer without stats reads as zeros (its tokens then go uncounted).
    """
    stats = getattr(scorer, "stats", None)
    if stats is None:
        return {"calls": 0, "candidates": 0, "tokens": 0, "cache_hits": 0}
    if not isinstance(stats, dict):
        stats = {k: getattr(stats, k) for k in dir(stats) if not k.startswith("_")}

    def pick(*names):
        for n in names:
            v = stats.get(n)
            if isinstance(v, int | float):
                return v
        return 0

    return {
        "calls": pick("calls"),
        "candidates": pick("candidates", "solutions"),
        "tokens": pick("tokens", "tokens_scored", "scored_tokens", "input_tokens"),
        "cache_hits": pick("cache_hits", "hits"),
    }
