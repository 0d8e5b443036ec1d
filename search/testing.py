"""Scripted fake policy and scorer for tests of search strategies: deterministic,
instant, and they count every call and token (tests/test_search.py uses them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies import Completion, SamplingConfig


@dataclass
class Call:
    kind: str
    problems: list
    steps: list
    k: int
    seed: int | None


class FakePolicy:
    """`extend` returns, for prompt (problem, steps) and sample j, the step
    `script(problem, steps, j, seed)` -> (text, finish) with finish in
    {"step", "eos", "length"}; `sample` builds full solutions step by step
    from the same script until "eos" or `max_steps`."""

    num_parameters = 1000

    def __init__(self, script=None, *, max_steps: int = 6, tokens_per_step: int = 5):
        self.sampling = SamplingConfig(seed=0)
        self.script = script or default_script
        self.max_steps = max_steps
        self.tps = tokens_per_step
        self.calls: list[Call] = []

    def _comp(self, text, finish, first, prompt_len, tokens=None):
        stop = {"step": "\n\n", "eos": 2, "length": None}[finish]
        reason = "length" if finish == "length" else "stop"
        return Completion(
            text=text, generated_tokens=tokens if tokens is not None else self.tps,
            prompt_tokens=prompt_len if first else 0, cached_tokens=(prompt_len // 2) if first else 0,
            finish_reason=reason, cumulative_logprob=-1.0 * (tokens or self.tps), stop_reason=stop,
        )

    def extend(self, problems, steps, k=1, *, max_tokens=None, seed=None):
        self.calls.append(Call("extend", list(problems), [list(s) for s in steps], k, seed))
        ks = [k] * len(problems) if isinstance(k, int) else list(k)
        out = []
        for p, s, kk in zip(problems, steps, ks, strict=True):
            plen = 10 + 5 * len(s)
            row = []
            for j in range(kk):
                text, fin = self.script(p, list(s), j, seed)
                row.append(self._comp(text, fin, j == 0, plen))
            out.append(row)
        return out

    def sample(self, problems, n, *, max_tokens=None, seed=None, prefixes=None):
        prefixes = prefixes if prefixes is not None else [[]] * len(problems)
        self.calls.append(Call("sample", list(problems), [list(s) for s in prefixes], n, seed))
        out = []
        for p, pre in zip(problems, prefixes, strict=True):
            row = []
            for j in range(n):
                steps, new = list(pre), []
                for _ in range(self.max_steps):
                    text, fin = self.script(p, steps, j, seed)
                    if text:
                        steps.append(text)
                        new.append(text)
                    if fin != "step":
                        break
                row.append(self._comp("\n\n".join(new), "eos", j == 0, 10 + 5 * len(pre), self.tps * max(len(new), 1)))
            out.append(row)
        return out

    def count(self, kind):
        return sum(c.kind == kind for c in self.calls)


def default_script(problem, steps, j, seed):
    """Step j of depth d is "d.j"; at depth 3 the solution ends with an answer."""
    d = len(steps)
    if d >= 3:
        return f"The answer is {j % 2}.", "eos"
    return f"s{d}.{j}", "step"


@dataclass
class Stats:
    calls: int = 0
    candidates: int = 0
    tokens_scored: int = 0
    cache_hits: int = 0


@dataclass
class FakeScorer:
    """Per-step scores from `fn(problem, steps) -> list[float]`; counts calls."""

    fn: object = None
    num_parameters: int = 100
    needs_golds: bool = False
    stats: Stats = field(default_factory=Stats)
    log: list = field(default_factory=list)

    def score(self, problems, solutions, *, golds=None):
        self.stats.calls += 1
        self.stats.candidates += len(solutions)
        self.stats.tokens_scored += sum(len(" ".join(s).split()) + 3 for s in solutions)
        self.log.append((list(problems), [list(s) for s in solutions], golds))
        fn = self.fn or (lambda p, s: [0.5] * len(s))
        return [fn(p, s) for p, s in zip(problems, solutions, strict=True)]


def digit_scores(problem, steps):
    """A PRM that likes steps with a higher last digit: "s1.3" scores 0.3+."""
    out = []
    for s in steps:
        digits = [c for c in s if c.isdigit()]
        out.append(0.1 + 0.2 * int(digits[-1]) if digits else 0.5)
    return [min(x, 1.0) for x in out]
