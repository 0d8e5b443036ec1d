"""Machinery shared by the strategies: batched policy and scorer calls with
ledger accounting, step splitting, values, and the final selection.

Every helper here makes exactly one policy or scorer call for all the items it
is given, whatever problems they belong to: that is how all problems of a run
advance together.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from search.config import SearchConfig
from search.ledger import Ledger, read_scorer_stats
from search.select import select
from search.types import Candidate, Problem, SearchResult, as_problems

log = logging.getLogger(__name__)

OnDone = Callable[[SearchResult], None]


def call_seed(config: SearchConfig, *parts: object) -> int:
    """The seed of one policy call: derived from the run seed and the call's place."""
    from policies import derive_seed

    return derive_seed(config.seed, config.strategy, *parts)


def delimiter(policy) -> str:
    return policy.sampling.step_delimiter


def split_steps(text: str, delim: str) -> list[str]:
    """A full solution's steps: split on the delimiter, whitespace-only parts dropped."""
    return [s for s in text.split(delim) if s.strip()]


def step_outcome(c) -> tuple[bool, str | None]:
    """(finished, reason) of one `extend` completion.

    Finished when the model ended the solution (EOS), ran out of step tokens
    ("length", as in search-and-learn) or produced an empty step ("empty").
    """
    if c.hit_eos:
        return True, "eos"
    if c.finish_reason == "length":
        return True, "length"
    if not c.text.strip():
        return True, "empty"
    return False, None


def sample_finish(c) -> str:
    """The finish reason of one full sample (`sample`, a rollout): "eos" when the model
    stopped by itself, else the policy's reason ("length")."""
    return "eos" if c.finish_reason == "stop" else (c.finish_reason or "unknown")


def sampled_candidate(c, delim: str) -> Candidate:
    """A full sample as a candidate: its steps, finish reason, tokens and log-prob (unscored)."""
    return Candidate(
        steps=split_steps(c.text, delim), finish_reason=sample_finish(c),
        generated_tokens=c.generated_tokens, logprob=c.cumulative_logprob,
    )


def confidence(logprob: float | None, tokens: int) -> float | None:
    """exp(mean token log-probability), the stand-in value when there is no scorer."""
    if logprob is None or tokens <= 0:
        return None
    return math.exp(logprob / tokens)


def value_of(scores: list[float] | None, agg: str, logprob: float | None, tokens: int) -> float | None:
    """`agg` of the per-step scores; confidence when unscored (no scorer); None when
    the scorer gave no scores (an empty candidate never wins)."""
    if scores is None:
        return confidence(logprob, tokens)
    if not scores:
        return None
    from rewards.aggregators import get

    return float(get(agg)(scores))


def candidate_value(c: Candidate, config: SearchConfig) -> float | None:
    """A candidate's value for selection: `value_of` its scores, except that an unscored
    candidate carrying a token-confidence summary (adaptive with `confidence`) is valued
    by that summary."""
    if c.scores is None and c.conf is not None:
        return c.conf
    return value_of(c.scores, config.final_agg, c.logprob, c.generated_tokens)


def _touch(ledgers: Sequence[Ledger], pidxs) -> None:
    for p in set(pidxs):
        ledgers[p].policy_calls += 1


def merge_items(keys) -> dict:
    """{key: [positions]} of the keys, in first-seen order: the items that become one
    policy request (the same partial solution of the same problem)."""
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def extend(policy, problems: Sequence[Problem], items, seed: int, ledgers: Sequence[Ledger]):
    """One `policy.extend` call for items [(problem index, steps, k)].

    Returns, per item, its k completions. Items with identical (problem, steps)
    are merged into one request of sum(k) samples, so that they get different
    seeds (the policy derives per-sample seeds from the prompt). The policy gets
    one k when every merged request wants the same number, else one k per request.
    """
    if not items:
        return []
    groups = merge_items((p, tuple(steps)) for p, steps, _k in items)
    keys = list(groups)
    need = [sum(items[i][2] for i in groups[key]) for key in keys]
    k_call = need[0] if len(set(need)) == 1 else need
    outs = policy.extend([problems[p].text for p, _ in keys], [list(s) for _, s in keys], k_call, seed=seed)
    _touch(ledgers, [p for p, _ in keys])
    result: list = [None] * len(items)
    for key, comps in zip(keys, outs, strict=True):
        ledgers[key[0]].add_completions(comps)
        pos = 0
        for i in groups[key]:
            k = items[i][2]
            result[i] = comps[pos : pos + k]
            pos += k
    return result


def rollout(policy, problems: Sequence[Problem], items, seed: int, ledgers: Sequence[Ledger]):
    """One `policy.sample(n=1, prefixes=...)` call finishing each partial solution
    [(problem index, steps)]; returns one completion per item."""
    if not items:
        return []
    outs = policy.sample(
        [problems[p].text for p, _ in items], 1, seed=seed, prefixes=[list(s) for _, s in items]
    )
    _touch(ledgers, [p for p, _ in items])
    for (p, _), comps in zip(items, outs, strict=True):
        ledgers[p].add_completions(comps)
    return [comps[0] for comps in outs]


def sample(policy, problems: Sequence[Problem], n: int, seed: int, ledgers: Sequence[Ledger]):
    """One `policy.sample` call: n full solutions for every problem."""
    outs = policy.sample([p.text for p in problems], n, seed=seed)
    _touch(ledgers, range(len(problems)))
    for p, comps in enumerate(outs):
        ledgers[p].add_completions(comps)
    return outs


def _wants_golds(scorer) -> bool:
    return bool(
        getattr(scorer, "needs_golds", False)
        or getattr(scorer, "requires_golds", False)
        or getattr(scorer, "kind", None) == "verifier"
    )


def score(scorer, problems: Sequence[Problem], items, ledgers: Sequence[Ledger]):
    """One `scorer.score` call for items [(problem index, steps)].

    Returns per item the raw per-step scores, or None for every item when there
    is no scorer. Items with no steps are not sent and get [] (no value).
    """
    if scorer is None:
        return [None] * len(items)
    send = [i for i, (_, steps) in enumerate(items) if steps]
    result: list = [[] for _ in items]
    if not send:
        return result
    texts = [problems[items[i][0]].text for i in send]
    sols = [list(items[i][1]) for i in send]
    kwargs = {}
    if _wants_golds(scorer):
        golds = [problems[items[i][0]].gold for i in send]
        if any(g is None for g in golds):
            raise ValueError("the verifier (oracle) scorer needs a gold answer for every problem")
        kwargs["golds"] = golds
    before = read_scorer_stats(scorer)
    out = scorer.score(texts, sols, **kwargs)
    after = read_scorer_stats(scorer)
    if len(out) != len(send):
        raise ValueError(f"scorer returned {len(out)} score lists for {len(send)} solutions")
    # share the call's tokens and cache hits among problems by submitted characters
    chars: dict[int, int] = {}
    cands: dict[int, int] = {}
    for i in send:
        p = items[i][0]
        chars[p] = chars.get(p, 0) + len(problems[p].text) + sum(len(s) for s in items[i][1])
        cands[p] = cands.get(p, 0) + 1
    total = sum(chars.values()) or 1
    d_tokens = after["tokens"] - before["tokens"]
    d_hits = after["cache_hits"] - before["cache_hits"]
    for p, ch in chars.items():
        led = ledgers[p]
        led.scorer_calls += 1
        led.scorer_candidates += cands[p]
        led.scorer_tokens += d_tokens * ch / total
        led.scorer_cache_hits += round(d_hits * ch / total)
    for i, s in zip(send, out, strict=True):
        result[i] = [float(x) for x in s]
    return result


def finalize(
    problem: Problem,
    candidates: list[Candidate],
    config: SearchConfig,
    ledger: Ledger,
    *,
    delim: str,
    tree: list[dict] | None = None,
    equal=None,
    t0: float | None = None,
    on_done: OnDone | None = None,
    values: Sequence[float | None] | None = None,
    among: Sequence[int] | None = None,
    details: dict | None = None,
) -> SearchResult:
    """Extract answers, compute final values with `final_agg`, select the answer.

    `values` (one per candidate) replace the `final_agg` values (the deepconf strategy's
    token confidences); with `among` only those candidates (indices, in order) take part
    in the selection, the others are recorded but do not vote. `details` goes into the
    record as is. With `t0` (a perf_counter start) the ledger's wall time is stamped
    first; the finished result is handed to `on_done`, so every strategy closes a
    problem the same way.
    """
    from verifiers import extract_answer

    if t0 is not None:
        ledger.wall_s = time.perf_counter() - t0
    for i, c in enumerate(candidates):
        c.answer = extract_answer(c.text(delim)) if c.steps else None
        c.value = values[i] if values is not None else candidate_value(c, config)
    idx = list(range(len(candidates))) if among is None else list(among)
    chosen, answer, votes, calls = select([candidates[i] for i in idx], config.select, equal=equal)
    if among is not None:  # back to indices into all the candidates
        chosen = None if chosen is None else idx[chosen]
        for t in votes:
            t["members"] = [idx[j] for j in t["members"]]
    ledger.verifier_calls += calls
    result = SearchResult(
        problem=problem, candidates=candidates, chosen=chosen, answer=answer,
        votes=votes, tree=tree, ledger=ledger, details=details,
    )
    if on_done:
        on_done(result)
    return result


def new_ledgers(policy, scorer, count: int) -> list[Ledger]:
    if not count:  # no problems: the parameter counts (an engine start) are not needed
        return []
    pp = int(getattr(policy, "num_parameters", 0) or 0)
    sp = int(getattr(scorer, "num_parameters", 0) or 0) if scorer is not None else 0
    return [Ledger(policy_params=pp, scorer_params=sp) for _ in range(count)]


class SearchRun:
    """What one strategy call holds for all its problems: the problems, one ledger each,
    the policy's step delimiter, and each problem's result once it is closed.

    `close(p, candidates)` finishes problem p the same way in every strategy (answers,
    values, selection, wall time, `on_done`); `open()` lists the problems not closed yet.
    The step-level strategies extend it with trees (search/tree.py).
    """

    def __init__(self, problems, policy, scorer, config: SearchConfig, *, on_done: OnDone | None = None,
                 equal=None) -> None:
        self.t0 = time.perf_counter()
        self.probs = as_problems(problems)
        self.policy, self.scorer, self.config = policy, scorer, config
        self.on_done, self.equal = on_done, equal
        self.delim = delimiter(policy)
        self.ledgers = new_ledgers(policy, scorer, len(self.probs))
        self.results: list[SearchResult | None] = [None] * len(self.probs)
        self.starts = [self.t0] * len(self.probs)  # when each problem started (a pipelined run staggers them)

    def seed(self, *parts: object) -> int:
        """The seed of one policy call (see `call_seed`)."""
        return call_seed(self.config, *parts)

    def open(self) -> list[int]:
        """Indices of the problems not closed yet, in order."""
        return [p for p, r in enumerate(self.results) if r is None]

    def close(self, p: int, candidates: list[Candidate], *, tree: list[dict] | None = None, **options) -> None:
        """Select problem p's answer among `candidates` and store its result (see `finalize`,
        whose `values`, `among` and `details` pass through `options`)."""
        self.results[p] = finalize(
            self.probs[p], candidates, self.config, self.ledgers[p], delim=self.delim,
            tree=tree, equal=self.equal, t0=self.starts[p], on_done=self.on_done, **options,
        )

    def sample_candidates(self, which: Sequence[int], n: int, seed: int,
                          completions: list | None = None) -> list[list[Candidate]]:
        """n full samples for each problem in `which`, as scored candidates: one policy
        call and one scorer call. `completions`, when a list, receives the policy's rows
        of completions (their token confidences, for the adaptive strategy)."""
        which = list(which)
        outs = sample(self.policy, [self.probs[p] for p in which], n, seed, [self.ledgers[p] for p in which])
        if completions is not None:
            completions.extend(outs)
        rows = [[sampled_candidate(c, self.delim) for c in comps] for comps in outs]
        items = [(p, c.steps) for p, row in zip(which, rows, strict=True) for c in row]
        scores = iter(score(self.scorer, self.probs, items, self.ledgers))
        for row in rows:
            for c in row:
                c.scores = next(scores)
        return rows
