"""Trace confidence from the policy's own token distributions (DeepConf, Fu et al. 2025).

    from search.confidence import summary, stop_position
    c = summary("group32")(sample["token_conf"])       # lowest 32-token sliding-window mean
    t = stop_position(sample["token_conf"], 32, threshold=17.3)  # online early stop, offline

Token confidence (stored per generated token in pools, `Completion.token_confidence`)
is minus the mean log-probability of the top-k candidates at that position: high when
the distribution is peaked. A *summary* maps one trace's token confidences to one
value (higher = more confident); names resolve through :func:`summary` like the
aggregators (`rewards.aggregators`), fixed names plus parameterised families:

=================  ===============================================================
name               value for token confidences c_1..c_T (T >= 1)
=================  ===============================================================
``mean``           (1/T) sum_t c_t                       (DeepConf "average trace confidence")
``groupW``         min over sliding windows of W tokens of the window mean
                   (DeepConf "lowest group confidence"; T < W: the whole-trace mean)
``tailK``          mean of the last K tokens (DeepConf "tail confidence")
``bottomP``        mean of the lowest P% of the sliding-window group means (at least one
                   group; DeepConf "bottom-10% group confidence" is ``bottom10``, window
                   `BOTTOM_WINDOW`)
=================  ===============================================================

Window sizes. DeepConf uses 2048-token groups and tails on traces of ~10-30k tokens
(roughly a tenth of a trace). GSM8K traces of the 0.5B policy here are ~300 tokens,
so the a-priori defaults are scaled to the same share: `DEFAULT_WINDOW` = 32 tokens for
groups, tails and the bottom-P% groups. They were fixed before any held-out pool was
read (docs/selection.md).

Self-certainty (Kang et al. 2025, the KL divergence of the uniform distribution from the
next-token distribution, averaged over tokens) needs the log-probabilities of the whole
vocabulary at every position, which the engine does not hand back; `cli.py eval
self-certainty` computes it per token with one forward pass of the policy
(policies/certainty.py) and writes it into a copy of the pool's `token_conf`, so every
summary here (mean = Kang et al.'s trace self-certainty, groupW, tailK, bottomP) and every
rule reads it unchanged. Kang et al. select with Borda voting: `search.select` rule "borda".

Online early stop (DeepConf online): `warmup_threshold` sets the threshold from a few
warm-up traces' `groupW` values (the (100 - keep)-th percentile, so `keep`% of them would
survive); `stop_position` is the token at which a trace's windowed confidence first falls
below it, i.e. where generation would have stopped. By construction a trace is stopped
iff its ``groupW`` summary is below the threshold, and then exactly `stop_position + 1`
tokens were generated. The one rule serves both sides:

- offline (eval/budget.py replays a pool): `online_threshold` and `online_votes` on the
  stored traces;
- online (search/deepconf.py, the `deepconf` strategy): the same two functions, with
  `WindowStop`, the streaming form of `stop_position`, watching each token as the engine
  makes it. It computes the window means with the same floating-point operations as
  `group_means` (a running sum, as `np.cumsum`, differences over the window), so the
  token it stops at is exactly `stop_position` of the tokens it saw (tested).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_WINDOW = 32
BOTTOM_WINDOW = DEFAULT_WINDOW
TOP_K = 5
"""Log-probs per token the token confidence averages (the pools' `--logprobs 5`)."""

Summary = Callable[[Sequence[float]], float]


def _arr(conf: Sequence[float] | None, name: str) -> np.ndarray:
    if conf is None:
        raise ValueError(f"confidence summary {name!r} got no token confidences; the pool or policy "
                         "must store them (cli.py pool with --logprobs >= 1)")
    a = np.asarray([math.nan if x is None else x for x in conf], dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise ValueError(f"confidence summary {name!r} got an empty trace (no generated token)")
    return a


def group_means(conf: Sequence[float], window: int) -> np.ndarray:
    """Mean of every full sliding window of `window` tokens (T - window + 1 of them);
    a trace shorter than the window gives one group, its whole mean."""
    a = _arr(conf, f"group{window}")
    if a.size < window:
        return np.array([a.mean()])
    cs = np.concatenate([[0.0], np.cumsum(a)])
    return (cs[window:] - cs[:-window]) / window


def conf_mean(conf: Sequence[float]) -> float:
    return float(_arr(conf, "mean").mean())


def lowest_group(conf: Sequence[float], window: int = DEFAULT_WINDOW) -> float:
    return float(group_means(conf, window).min())


def tail(conf: Sequence[float], k: int = DEFAULT_WINDOW) -> float:
    return float(_arr(conf, f"tail{k}")[-k:].mean())


def bottom_share(conf: Sequence[float], percent: float = 10.0, window: int = BOTTOM_WINDOW) -> float:
    g = np.sort(group_means(conf, window))
    m = max(1, math.ceil(g.size * percent / 100.0))
    return float(g[:m].mean())


SUMMARIES: dict[str, Summary] = {"mean": conf_mean}
PATTERNS = ("groupW (W >= 1 tokens)", "tailK (K >= 1 tokens)", "bottomP (0 < P <= 100 percent)")
_FAMILY = re.compile(r"^(group|tail|bottom)(\d+(?:\.\d+)?)$")


def summary(name: str) -> Summary:
    """The summary function called `name`; unknown names list the valid ones."""
    if name in SUMMARIES:
        return SUMMARIES[name]
    m = _FAMILY.match(name or "")
    if m:
        fam, num = m.group(1), float(m.group(2))
        if fam in ("group", "tail") and num.is_integer() and num >= 1:
            w = int(num)
            return (lambda c: lowest_group(c, w)) if fam == "group" else (lambda c: tail(c, w))
        if fam == "bottom" and 0 < num <= 100:
            return lambda c: bottom_share(c, num)
    raise ValueError(f"unknown confidence summary {name!r}; valid: {', '.join(SUMMARIES)}, "
                     f"or {', '.join(PATTERNS)}, e.g. group32")


def check(name: str) -> str:
    summary(name)
    return name


# ---------------------------------------------------------------- online early stop


def warmup_threshold(warmup: Sequence[float], keep: float) -> float:
    """DeepConf's online threshold: the (100 - keep)-th percentile of the warm-up traces'
    lowest-group confidences (numpy's linear interpolation), so about `keep`% of traces like
    them pass. keep=10 is DeepConf-low, keep=90 DeepConf-high."""
    if not 0 < keep <= 100:
        raise ValueError(f"keep must be a percentage in (0, 100], got {keep}; e.g. 10 (DeepConf-low) or 90")
    w = np.asarray(list(warmup), dtype=float)
    if w.size == 0:
        raise ValueError("warmup_threshold needs at least one warm-up trace; raise --warmup")
    return float(np.percentile(w, 100.0 - keep))


def stop_position(conf: Sequence[float], window: int, threshold: float) -> int | None:
    """Index of the token at which the online rule stops the trace: the first t >= window-1
    whose window mean conf[t-window+1..t] is below `threshold` (then t + 1 tokens were
    generated); a trace shorter than the window is judged once, at its end, by its mean.
    None: it runs to the end."""
    a = _arr(conf, f"group{window}")
    g = group_means(a, window)
    below = np.flatnonzero(g < threshold)
    if below.size == 0:
        return None
    if a.size <= window:
        return a.size - 1
    return int(below[0]) + window - 1


def trace_group(conf: Sequence[float] | None, window: int) -> float | None:
    """`lowest_group` of one trace; None when it has no finite token confidence (an empty
    trace: it can neither set the threshold nor vote)."""
    if conf is None or not any(x is not None and math.isfinite(x) for x in conf):
        return None
    return lowest_group(conf, window)


def online_threshold(warmup: Sequence[Sequence[float] | None], window: int, keep: float) -> float:
    """The early-stop threshold of one problem from its warm-up traces' token confidences:
    `warmup_threshold` of their `groupW` values. -inf (nothing stops) when no warm-up trace
    has a token confidence."""
    groups = [g for g in (trace_group(c, window) for c in warmup) if g is not None]
    return warmup_threshold(groups, keep) if groups else -math.inf


def online_votes(warmup: Sequence[Sequence[float] | None], rest: Sequence[Sequence[float] | None], window: int,
                 threshold: float) -> tuple[list[int], list[int | None]]:
    """(voters, stops) of DeepConf online for one problem.

    `voters`: indices into warmup + rest of the traces that vote: the warm-up traces whose
    `groupW` is at or above the threshold, and the later traces that `stop_position` does
    not stop. `stops`: per later trace, its `stop_position` (None: it ran to its end); a
    trace stopped online was generated up to and including that token. A trace without
    token confidences never votes."""
    voters = [i for i, c in enumerate(warmup) if (g := trace_group(c, window)) is not None and g >= threshold]
    stops: list[int | None] = []
    for j, c in enumerate(rest):
        if trace_group(c, window) is None:
            stops.append(None)
            continue
        t = stop_position(c, window, threshold)
        stops.append(t)
        if t is None:
            voters.append(len(warmup) + j)
    return voters, stops


class WindowStop:
    """`stop_position` streamed: called with each generated token's confidence in order,
    it returns True at the token where `stop_position` stops the trace made of the tokens
    so far (the first full window of `window` tokens whose mean is below `threshold`).

        watch = WindowStop(32, threshold)
        for t, c in enumerate(token_confidences):
            if watch(c): ...   # stop: t + 1 tokens generated; stop_position(conf[:t+1]) == t

    The running sum and the window differences are the operations `group_means` makes
    (np.cumsum adds in order), so both give bit-identical window means. Non-finite values
    (a position without top-k log-probs) are skipped, as `group_means` drops them. A trace
    shorter than the window is never stopped here: it is judged at its end, by its mean
    (`online_votes`)."""

    __slots__ = ("window", "threshold", "_sums")

    def __init__(self, window: int, threshold: float) -> None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1 token, got {window!r}; e.g. 32")
        self.window, self.threshold = window, float(threshold)
        self._sums = [0.0]  # running sums of the finite confidences seen, as np.cumsum after a leading 0

    def __call__(self, conf: float | None) -> bool:
        if conf is None or not math.isfinite(conf):
            return False
        self._sums.append(self._sums[-1] + conf)
        if len(self._sums) <= self.window:
            return False
        return (self._sums[-1] - self._sums[-1 - self.window]) / self.window < self.threshold
