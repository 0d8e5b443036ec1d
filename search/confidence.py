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

Self-certainty (Kang et al. 2025, the KL divergence of the next-token distribution from
uniform, averaged over tokens) needs the log-probabilities of the whole vocabulary at
every position; a pool stores only the sampled token's log-prob and the mean of the top-k,
so it is not computable from pools and is not offered here.

Online early stop (DeepConf online): `warmup_threshold` sets the threshold from a few
warm-up traces' `groupW` values (the (100 - keep)-th percentile, so `keep`% of them would
survive); `stop_position` is the token at which a trace's windowed confidence first falls
below it, i.e. where generation would have stopped. By construction a trace is stopped
iff its ``groupW`` summary is below the threshold, and then exactly `stop_position + 1`
tokens were generated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_WINDOW = 32
BOTTOM_WINDOW = DEFAULT_WINDOW

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
    if a.size <= window:
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
