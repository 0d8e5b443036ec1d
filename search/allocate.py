"""Compute-optimal allocation of one token budget across a dataset (pure functions).

    curves = [accuracy_curve(counts_i, extra_max=12, seed=i) for i, counts_i in enumerate(first_round_counts)]
    extra = allocate(curves, costs=[mean tokens per sample of each problem], budget=tokens_left)

A cheap first round gives each problem a few samples. From their answer classes (counts,
optionally confidence-weighted) `accuracy_curve` predicts the problem's accuracy after e
more samples under a simple model, and `allocate` spends the rest of the budget greedily
where the predicted accuracy per token rises most.

The model (no tuning data needed; fixed a priori): a problem's answer classes have
sampling frequencies pi ~ Dirichlet(c_1 + alpha, ..., c_K + alpha, alpha_new), the last
entry being the mass of answers not seen yet (a crowd of singletons that never wins a
vote); a class is correct with probability equal to its frequency (self-consistency is
calibrated). After e more samples X ~ Multinomial(e, pi), the vote goes to the seen class
with the largest c + X (ties to the class seen first), and the expected accuracy is

    V(e) = E[ pi_winner(c + X) ]          (Monte Carlo, `draws` seeded draws)

V(0) = E[pi_leader]. V rises with e only while the vote can still change and the
contenders are likely right: a settled problem (one class, high count) gains ~0, a
scattered one (many singletons, little mass each) gains little, a contested one gains
most: "hard-but-solvable get more, settled or hopeless get less". Confidence-weighted
counts (each sample counts its confidence over the dataset's mean confidence) make
low-confidence agreement less settled than high-confidence agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class AllocSpec:
    """One setting of dataset-level allocation (the budget comes from the replay or run)."""

    first_round: int = 2
    """samples per problem in the cheap first round."""
    confidence: str | None = "group32"
    """token-confidence summary that weights the first-round counts (each sample counts its
    value over the dataset's mean); None: plain counts."""
    alpha: float = 1.0
    """Dirichlet prior on each seen class."""
    alpha_new: float = 1.0
    """Dirichlet prior mass of answers not seen yet."""
    select: tuple[str, ...] = ("majority", "majority", "majority")
    """final selection per first-round agreement bin (`BINS`: agree, split, scatter)."""
    select_confidence: str | None = None
    """token-confidence summary the selection weighs by; needed when a bin's rule is not
    majority (majority breaks ties by the counting weights)."""

    def __post_init__(self) -> None:
        from search.select import check_rule

        if isinstance(self.select, str) or len(self.select) != len(BINS):
            raise ValueError(f"select must give one rule per bin {BINS}, got {self.select!r}; "
                             "e.g. ('majority', 'weighted_vote', 'weighted_vote').")
        for rule in self.select:
            check_rule(rule)
        if self.select_confidence is None and any(r != "majority" for r in self.select):
            raise ValueError(f"select {self.select} weighs samples: give select_confidence, e.g. 'group32'.")
        if not isinstance(self.first_round, int) or self.first_round < 1:
            raise ValueError(f"first_round must be an int >= 1, got {self.first_round!r}; e.g. 2.")
        if not (self.alpha > 0 and self.alpha_new > 0):
            raise ValueError(f"alpha and alpha_new must be > 0, got {self.alpha}, {self.alpha_new}; e.g. 1.")
        from search.confidence import check

        for name in (self.confidence, self.select_confidence):
            if name is not None:
                check(name)

    @property
    def label(self) -> str:
        counts = f"{self.confidence} counts" if self.confidence else "plain counts"
        out = f"first {self.first_round}, {counts}, alpha {self.alpha:g}, alpha_new {self.alpha_new:g}"
        if any(r != "majority" for r in self.select):
            out += f", select {'/'.join(BINS)}: {'/'.join(self.select)} by {self.select_confidence}"
        return out


BINS = ("agree", "split", "scatter")


def difficulty_bin(counts: Sequence[float], first: int) -> int:
    """First-round agreement bin (index into `BINS`) from the seen classes' plain counts:
    0 "agree" every first-round sample in one class; 2 "scatter" no two agree (or no
    answer); 1 "split" the rest (some agree, not all). With one first-round sample every
    answered problem is "agree"."""
    lead = max(counts, default=0)
    if lead <= 0 or (lead < 2 and first > 1):
        return 2
    return 0 if lead >= first else 1


PRESETS: dict[str, AllocSpec] = {
    # fixed a priori before any pool existed (docs/selection.md, "How every setting was fixed")
    "a-priori": AllocSpec(first_round=2, confidence="group32"),
    # `python -m eval.tune pools/gsm8k-train256-n8.jsonl.gz`: the largest mean gain over maj@4 and maj@6
    # on the training pool; the per-bin vote kept majority in both bins it saw (agree, scatter)
    "tuned-gsm8k-train": AllocSpec(first_round=2, confidence="group64", alpha=1.0, alpha_new=1.0),
}


def preset(name: str) -> AllocSpec:
    """The declared allocation setting called `name`; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown allocation preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def accuracy_curve(counts: Sequence[float], extra_max: int, *, alpha: float = 1.0, alpha_new: float = 1.0,
                   draws: int = 2000, seed: int = 0) -> list[float]:
    """[V(0), ..., V(extra_max)] for seen-class counts `counts` (first-appearance order).
    No seen class (no answer yet): all zeros."""
    if extra_max < 0 or draws < 1 or alpha <= 0 or alpha_new <= 0:
        raise ValueError(f"accuracy_curve needs extra_max >= 0, draws >= 1, alpha, alpha_new > 0; got "
                         f"{extra_max}, {draws}, {alpha}, {alpha_new}.")
    c = np.asarray(list(counts), dtype=float)
    if c.size == 0:
        return [0.0] * (extra_max + 1)
    if np.any(c < 0):
        raise ValueError(f"counts must be >= 0, got {list(counts)}.")
    rng = np.random.default_rng(seed)
    k = c.size
    pi = rng.dirichlet(np.concatenate([c + alpha, [alpha_new]]), size=draws)  # (draws, k+1)
    cum = np.tile(c, (draws, 1))
    out = []
    for e in range(extra_max + 1):
        if e:
            # one more sample per draw: its class (k = unseen, which adds to no seen class)
            u = rng.random(draws)[:, None]
            cls = (u > np.cumsum(pi, axis=1)).sum(axis=1)
            hit = cls < k
            cum[np.flatnonzero(hit), cls[hit]] += 1.0
        win = np.argmax(cum, axis=1)  # first maximum: the class seen first wins ties
        out.append(float(pi[np.arange(draws), win].mean()))
    return out


def allocate(curves: Sequence[Sequence[float]], costs: Sequence[float], budget: float) -> list[int]:
    """Extra samples per problem: greedily the increment (1..what is left of a problem's
    curve) with the largest predicted accuracy gain per token, while it fits in `budget`
    (tokens; `costs` = expected tokens per sample of each problem). Looking at every
    increment, not just the next sample, lets it cross flat stretches of a curve. Ties
    go to the earlier problem, then the smaller increment; only gains > 0 are bought."""
    if len(curves) != len(costs):
        raise ValueError(f"got {len(curves)} curves and {len(costs)} costs; they must align.")
    if any(not x > 0 for x in costs):
        raise ValueError(f"costs must be > 0 tokens per sample, got {list(costs)}.")
    if budget < 0:
        raise ValueError(f"budget must be >= 0 tokens, got {budget}.")
    extra = [0] * len(curves)
    left = float(budget)
    while True:
        best = None  # (ratio, -i, -j)
        for i, (v, cost) in enumerate(zip(curves, costs, strict=True)):
            cur = extra[i]
            for j in range(1, len(v) - cur):
                if j * cost > left + 1e-9:
                    break
                gain = v[cur + j] - v[cur]
                if gain > 1e-12:
                    key = (gain / (j * cost), -i, -j)
                    if best is None or key > best:
                        best = key
        if best is None:
            return extra
        i, j = -best[1], -best[2]
        extra[i] += j
        left -= j * costs[i]
