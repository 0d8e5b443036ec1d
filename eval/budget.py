"""Replay compute-saving rules on a stored sample pool: online early stop (DeepConf),
adaptive sampling per problem, and compute-optimal allocation across the dataset.

    python -m eval.budget pools/gsm8k-heldout200-n16.jsonl --out reports/budget-gsm8k

No engine: every rule draws the pool's samples in order (the stored order, then
`--orders - 1` seeded permutations of it; per-problem results are averaged over the
orders) and charges exactly the generated tokens of what it drew. Stopped traces
count up to and including the token at which they stopped. Answers are grouped and
chosen by `search.select.select`, as in a search run. Rows:

- ``maj@k`` / ``best-of@k`` / ``weighted@k`` / ``topP%+weighted@k``: the first k samples of
  each order under majority, the most confident sample, the confidence-weighted vote,
  DeepConf filtering (the fixed-N curves);
- ``early-stop``: DeepConf online: `warmup` traces in full set the threshold
  (search.confidence.warmup_threshold, keep%), the other n - warmup traces stop when
  their sliding-window confidence falls below it; the surviving traces (warm-up ones
  at or above the threshold included) vote weighted by their lowest-group confidence;
- ``adaptive RULE``: search.adaptive rules, samples drawn round by round;
- ``allocate@k``: the dataset gets exactly the tokens maj@k spends in total; a first
  round of `first` samples per problem, then search.allocate spends the rest; against
  maj@k at equal total tokens, with the paired bootstrap interval of the difference.

Every setting (window, keep share, thresholds, first-round size, priors) is a
command-line value fixed before the replay; nothing is fitted on the pool replayed.
`--preset NAME` adds the rows of declared settings (search.adaptive.PRESETS,
search.allocate.PRESETS): "a-priori", and those tuned on a training pool by eval/tune.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shlex
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval import metrics
from policies.paths import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One graded pool problem, in sample-index order."""

    id: str
    correct: tuple[bool, ...]
    labels: tuple[int | None, ...]
    tokens: tuple[int, ...]
    conf: tuple[tuple[float, ...], ...]

    @property
    def n(self) -> int:
        return len(self.correct)


def problems_from_pool(pool: Sequence[dict], equal=None) -> list[Problem]:
    """The graded problems of a pool (gold present, not invalid_gold); each sample needs
    its token confidences."""
    out = []
    for r in pool:
        if r.get("gold") is None or r.get("status") == "invalid_gold":
            continue
        ss = r["samples"]
        missing = [i for i, s in enumerate(ss) if s.get("token_conf") is None]
        if missing:
            raise ValueError(f"pool problem {r['id']}: samples {missing[:5]} have no token_conf; regenerate the pool "
                             "with token log-probs (cli.py pool stores them by default)")
        out.append(Problem(
            id=str(r["id"]),
            correct=tuple(bool((s.get("verdict") or {}).get("correct")) for s in ss),
            labels=tuple(metrics.answer_labels([s.get("answer") for s in ss], equal)),
            tokens=tuple(int(s.get("generated_tokens") or len(s["token_conf"])) for s in ss),
            conf=tuple(tuple(float(x) for x in s["token_conf"] if x is not None) for s in ss),
        ))
    return out


def orders(p: Problem, count: int, seed: int) -> list[list[int]]:
    """The stored order, then count - 1 seeded permutations (per problem, reproducible)."""
    rng = np.random.default_rng([seed, zlib.crc32(p.id.encode())])
    return [list(range(p.n))] + [rng.permutation(p.n).tolist() for _ in range(count - 1)]


def _pick(p: Problem, idx: Sequence[int], rule: str, weights: Sequence[float | None] | None) -> float:
    """Correctness of `rule` over the samples `idx` (drawn in that order)."""
    if not idx:
        return 0.0
    vals = [None if weights is None else weights[i] for i in idx]
    j = metrics.select_index(vals, [p.labels[i] for i in idx], rule)
    return 0.0 if j is None else float(p.correct[idx[j]])


# ---------------------------------------------------------------- per-problem replays


def replay_fixed(p: Problem, order: Sequence[int], k: int, rule: str, weights) -> tuple[float, float, float]:
    """(correct, tokens, samples) of the first k samples of `order` under `rule`."""
    idx = list(order[:k])
    return _pick(p, idx, rule, weights), float(sum(p.tokens[i] for i in idx)), float(len(idx))


def replay_early_stop(p: Problem, order: Sequence[int], *, warmup: int, keep: float, window: int,
                      n: int | None = None) -> tuple[float, float, float]:
    """(correct, tokens, traces) of DeepConf online on `order`: see the module docstring. The
    threshold and the voters come from the functions the online strategy runs
    (search.confidence.online_threshold / online_votes, search/deepconf.py)."""
    from search.confidence import lowest_group, online_threshold, online_votes

    idx = list(order[: n or p.n])
    w_idx, rest = idx[:warmup], idx[warmup:]
    s = online_threshold([p.conf[i] for i in w_idx], window, keep)
    voters, stops = online_votes([p.conf[i] for i in w_idx], [p.conf[i] for i in rest], window, s)
    tokens = float(sum(p.tokens[i] for i in w_idx))
    tokens += sum(p.tokens[i] if t is None else min(t + 1, p.tokens[i]) for i, t in zip(rest, stops, strict=True))
    group = {i: lowest_group(p.conf[i], window) for i in idx}
    kept = [idx[j] for j in voters]  # in draw order: warm-ups, then the later traces
    return _pick(p, kept, "weighted_vote", group), tokens, float(len(idx))


def replay_adaptive(p: Problem, order: Sequence[int], *, stop: str, first: int, step: int | None, n_max: int,
                    weights, select_rule: str = "majority") -> tuple[float, float, float]:
    """(correct, tokens, samples) of search.adaptive's loop on `order` (weights None: every
    sample weighs nothing, for unweighted rules under majority)."""
    from search.adaptive import schedule, should_stop
    from search.stopping import stop_rule

    rule = stop_rule(stop)
    n_max = min(n_max, p.n)
    for total in schedule(first, step, n_max):
        idx = list(order[:total])
        if should_stop(rule, [p.labels[i] for i in idx], [None if weights is None else weights[i] for i in idx],
                       n_max):
            break
    return _pick(p, idx, select_rule, weights), float(sum(p.tokens[i] for i in idx)), float(len(idx))


def conf_values(probs: Sequence[Problem], name: str | None) -> list[list[float | None]] | None:
    """Per problem, each sample's token-confidence summary `name` (None: no weights)."""
    if name is None:
        return None
    from search.confidence import summary

    f = summary(name)
    return [[f(c) if c else None for c in p.conf] for p in probs]


def check_replayable(spec) -> None:
    """A pool replay weighs samples only by a token-confidence summary: a spec with a
    weighted stop rule or a non-majority selection must name one."""
    from search.stopping import weighted

    if spec.confidence is None and (weighted(spec.stop) or spec.select != "majority"):
        raise ValueError(f"adaptive setting {spec.label}: the pool replay weighs samples by a token-confidence "
                         "summary; give it confidence='group32' (or another search.confidence name)")


def adaptive_results(probs: Sequence[Problem], ords: Sequence[Sequence[Sequence[int]]], spec, n_max: int,
                     weights=None) -> np.ndarray:
    """(problems, 3) of (correct, tokens, samples) of one search.adaptive.AdaptiveSpec, each
    problem averaged over its orders; `weights`: conf_values(probs, spec.confidence), if at hand."""
    check_replayable(spec)
    w = conf_values(probs, spec.confidence) if weights is None and spec.confidence else weights
    res = [[replay_adaptive(p, o, stop=spec.stop, first=spec.first_round, step=spec.round_size, n_max=n_max,
                            weights=None if w is None else w[j], select_rule=spec.select) for o in ords[j]]
           for j, p in enumerate(probs)]
    return np.asarray(res, dtype=float).mean(axis=1)


def first_round_counts(p: Problem, idx: Sequence[int], weights=None, scale: float = 1.0) -> list[float]:
    """Per seen answer class (first-appearance order), its count or summed weight / scale."""
    from search.stopping import class_totals

    labels = [p.labels[i] for i in idx]
    w = None if weights is None else [weights[i] / scale for i in idx]
    return list(class_totals(labels, w).values())


def allocation_plan(probs: Sequence[Problem], order_of: Sequence[Sequence[int]], *, first: int, weights_of=None,
                    alpha: float = 1.0, alpha_new: float = 1.0, draws: int = 2000,
                    seed: int = 0) -> tuple[list[list[float]], list[float], float]:
    """(predicted accuracy curves, expected tokens per sample, tokens spent) after the first
    round of `first` samples of each order: what search.allocate needs, whatever the budget."""
    from search.allocate import accuracy_curve

    firsts = [list(o[:first]) for o in order_of]
    spent = sum(p.tokens[i] for p, f in zip(probs, firsts, strict=True) for i in f)
    scale = 1.0
    if weights_of is not None:
        ws = [weights_of[j][i] for j, f in enumerate(firsts) for i in f]
        scale = float(np.mean(ws)) if ws else 1.0
    curves, costs = [], []
    for j, (p, f) in enumerate(zip(probs, firsts, strict=True)):
        counts = first_round_counts(p, f, None if weights_of is None else weights_of[j], scale)
        curves.append(accuracy_curve(counts, p.n - len(f), alpha=alpha, alpha_new=alpha_new, draws=draws,
                                     seed=seed * 100003 + j))
        costs.append(max(1.0, float(np.mean([p.tokens[i] for i in f]))))
    return curves, costs, float(spent)


def replay_allocation(probs: Sequence[Problem], order_of: Sequence[Sequence[int]], *, budget: float, first: int,
                      weights_of=None, alpha: float = 1.0, alpha_new: float = 1.0, draws: int = 2000, seed: int = 0,
                      select_rule: str | Sequence[str] = "majority", plan=None,
                      select_weights=None) -> list[tuple[float, float, float]]:
    """Per problem (correct, tokens, samples) when the dataset has `budget` tokens: the
    first `first` samples of each order, then search.allocate with the expected cost of a
    sample = the mean tokens of the problem's first round. weights_of: per problem the
    sample weights for confidence-weighted counts (scaled by their dataset mean), or None.
    plan: allocation_plan's result for these arguments, when already computed.
    select_rule: one rule, or one per first-round agreement bin (search.allocate.BINS);
    select_weights: per problem the values it selects by (default weights_of)."""
    from search.allocate import allocate

    firsts = [list(o[:first]) for o in order_of]
    curves, costs, spent = plan or allocation_plan(probs, order_of, first=first, weights_of=weights_of, alpha=alpha,
                                                   alpha_new=alpha_new, draws=draws, seed=seed)
    extra = allocate(curves, costs, max(0.0, budget - spent))
    out = []
    for j, p in enumerate(probs):
        idx = list(order_of[j][: len(firsts[j]) + extra[j]])
        ws = weights_of if select_weights is None else select_weights
        w = None if ws is None else ws[j]
        out.append((_pick(p, idx, rule_of_bin(p, firsts[j], select_rule), w), float(sum(p.tokens[i] for i in idx)),
                    float(len(idx))))
    return out


def rule_of_bin(p: Problem, first: Sequence[int], select_rule: str | Sequence[str]) -> str:
    """The selection rule of problem p: `select_rule`, or its entry for the problem's
    first-round agreement bin (search.allocate.difficulty_bin)."""
    if isinstance(select_rule, str):
        return select_rule
    from search.allocate import difficulty_bin

    return select_rule[difficulty_bin(first_round_counts(p, first), len(first))]


def allocation_results(probs: Sequence[Problem], ords: Sequence[Sequence[Sequence[int]]], spec, ks: Sequence[int],
                       *, draws: int = 2000, seed: int = 0, weights=None) -> dict[int, np.ndarray]:
    """{k: (problems, 3) of (correct, tokens, samples)} of one search.allocate.AllocSpec when
    the dataset gets maj@k's total tokens, averaged over the orders (one plan per order,
    shared by every k)."""
    w = conf_values(probs, spec.confidence) if weights is None and spec.confidence else weights
    sw = None
    if spec.select_confidence is not None:
        sw = w if spec.select_confidence == spec.confidence else conf_values(probs, spec.select_confidence)
    out: dict[int, list] = {k: [] for k in ks}
    for r in range(len(ords[0])):
        order_of = [ords[j][r] for j in range(len(probs))]
        plan = allocation_plan(probs, order_of, first=spec.first_round, weights_of=w, alpha=spec.alpha,
                               alpha_new=spec.alpha_new, draws=draws, seed=seed + r)
        for k in ks:
            budget = float(sum(p.tokens[i] for p, o in zip(probs, order_of, strict=True) for i in o[:k]))
            out[k].append(replay_allocation(probs, order_of, budget=budget, first=spec.first_round, weights_of=w,
                                            plan=plan, select_rule=spec.select, select_weights=sw))
    return {k: np.asarray(v, dtype=float).mean(axis=0) for k, v in out.items()}


# ---------------------------------------------------------------- the whole replay


def _row(name: str, x: np.ndarray, tok: np.ndarray, smp: np.ndarray, n_boot: int, seed: int, **extra) -> dict:
    lo, hi = metrics.bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return {"name": name, "acc": float(x.mean()), "ci": [lo, hi], "tokens": float(tok.mean()),
            "samples": float(smp.mean()), "_x": x, **extra}


def run_replay(probs: Sequence[Problem], *, n_orders: int = 20, seed: int = 0, n_boot: int = 2000,
               conf: str = "group32", window: int = 32, keep_low: float = 10.0, keep_high: float = 90.0,
               warmup: int = 4, stops: Sequence[str] = ("beta0.95", "cbeta0.95", "agree0.75", "cagree0.95"),
               first: int = 2, step: int | None = 1, agree_first: int = 4, alloc_first: int = 2,
               alloc_ks: Sequence[int] = (4, 6, 8, 12), alloc_weighting: str = "conf", draws: int = 2000,
               adaptive_specs: Sequence = (), alloc_specs: Sequence = ()) -> dict:
    """Every row of the module docstring on `probs`; a JSON-able dict (arrays dropped).

    `stops` (with first/step/agree_first, weights `conf`) and alloc_first/alloc_weighting give
    the rows of the command line; `adaptive_specs` / `alloc_specs` add rows for declared
    settings, as (tag, search.adaptive.AdaptiveSpec) / (tag, search.allocate.AllocSpec)
    pairs, e.g. the presets tuned on a training pool (eval/tune.py)."""
    from search.adaptive import AdaptiveSpec
    from search.allocate import AllocSpec
    from search.confidence import summary
    from search.stopping import weighted

    if not probs:
        raise ValueError("no graded problem in the pool; nothing to replay")
    n = min(p.n for p in probs)
    f = summary(conf)
    W = [[f(c) if c else None for c in p.conf] for p in probs]
    ords = [orders(p, n_orders, seed) for p in probs]

    def per(fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        res = np.array([[fn(j, p, o) for o in ords[j]] for j, p in enumerate(probs)], dtype=float)  # (P, orders, 3)
        m = res.mean(axis=1)
        return m[:, 0], m[:, 1], m[:, 2]

    rows = []
    ks = sorted(set(metrics.k_values(n)) | {k for k in alloc_ks if 1 <= k <= n})
    for k in ks:
        for rule, label in (("majority", "maj"), ("argmax", f"best-of({conf})"), ("weighted_vote", f"weighted({conf})"),
                            (f"top{keep_low:g}_weighted", f"top{keep_low:g}%+weighted({conf})"),
                            (f"top{keep_high:g}_weighted", f"top{keep_high:g}%+weighted({conf})")):
            w = None if rule == "majority" else W
            rows.append(_row(f"{label}@{k}", *per(lambda j, p, o, k=k, rule=rule, w=w:
                                                 replay_fixed(p, o, k, rule, None if w is None else w[j])),
                             n_boot, seed, kind="fixed", rule=rule, k=k))
    for keep in (keep_low, keep_high):
        rows.append(_row(f"early-stop keep{keep:g}% warmup{warmup} window{window}",
                         *per(lambda j, p, o, keep=keep: replay_early_stop(p, o, warmup=warmup, keep=keep,
                                                                           window=window, n=n)),
                         n_boot, seed, kind="early_stop", keep=keep))
    specs = []
    for stop in stops:
        fr, st = (agree_first, None) if "agree" in stop else (first, step)
        spec = AdaptiveSpec(stop=stop, first_round=fr, round_size=st, confidence=conf,
                            select="weighted_vote" if weighted(stop) else "majority")
        specs.append((f"adaptive {stop} (first {fr}, {'+' + str(st) if st else 'x2'}, max {n})", spec))
    specs += [(f"adaptive [{tag}] {spec.label}, max {n}", spec) for tag, spec in adaptive_specs]
    for name, spec in specs:
        arr = adaptive_results(probs, ords, spec, n, weights=W if spec.confidence == conf else None)
        rows.append(_row(name, arr[:, 0], arr[:, 1], arr[:, 2], n_boot, seed, kind="adaptive", stop=spec.stop,
                         select=spec.select, spec=dataclasses.asdict(spec)))
    base = {r["k"]: r for r in rows if r.get("kind") == "fixed" and r["rule"] == "majority"}
    ks = [k for k in alloc_ks if k in base]
    allocs = [(f"allocate@{{k}} (first {alloc_first}, {alloc_weighting} counts)",
               AllocSpec(first_round=alloc_first, confidence=conf if alloc_weighting == "conf" else None))]
    allocs += [(f"allocate@{{k}} [{tag}] ({spec.label})", spec) for tag, spec in alloc_specs]
    for name, spec in allocs:
        res = allocation_results(probs, ords, spec, ks, draws=draws, seed=seed,
                                 weights=W if spec.confidence == conf else None)
        for k in ks:
            arr = res[k]
            row = _row(name.format(k=k), arr[:, 0], arr[:, 1], arr[:, 2], n_boot, seed, kind="allocate", k=k,
                       vs=f"maj@{k}", spec=dataclasses.asdict(spec))
            lo, hi = metrics.paired_bootstrap(row["_x"], base[k]["_x"], n_boot=n_boot, seed=seed)
            row["diff"] = float(row["acc"] - base[k]["acc"])
            row["diff_ci"] = [lo, hi]
            rows.append(row)
    ref = base[n]
    for r in rows:
        if r.get("kind") != "allocate":
            lo, hi = metrics.paired_bootstrap(r["_x"], ref["_x"], n_boot=n_boot, seed=seed)
            r["vs"], r["diff"], r["diff_ci"] = f"maj@{n}", float(r["acc"] - ref["acc"]), [lo, hi]
        r["token_share"] = r["tokens"] / ref["tokens"]
    for r in rows:
        r.pop("_x")
    settings = {"n_orders": n_orders, "seed": seed, "n_boot": n_boot, "conf": conf, "window": window,
                "keep_low": keep_low, "keep_high": keep_high, "warmup": warmup, "stops": list(stops),
                "first": first, "step": step, "agree_first": agree_first, "alloc_first": alloc_first,
                "alloc_ks": list(alloc_ks), "alloc_weighting": alloc_weighting, "draws": draws}
    return {"problems": len(probs), "n": n, "settings": settings, "rows": rows}


def _f(x: float, d: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def markdown(result: dict, title: str, command: str | None) -> str:
    lines = [f"# {title}", "", f"{result['problems']} graded problems, n = {result['n']} samples each; per-problem "
             f"results averaged over {result['settings']['n_orders']} sample orders (the stored one first). "
             "Accuracy [95% bootstrap interval over problems]; diff = accuracy minus the reference, with the "
             "paired bootstrap 95% interval.", ""]
    if result.get("pool"):
        pool = result["pool"]
        model = ((pool.get("config") or {}).get("policy") or {}).get("model")
        lines += [f"pool `{pool['path']}` ({model}): {pool['records']} problem records when measured, "
                  f"{pool['graded']} graded.", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += ["| rule | accuracy | gen. tokens / problem | share of maj@n tokens | samples | vs | diff [95% CI] |",
              "|---|---|---:|---:|---:|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {_f(r['acc'])} [{_f(r['ci'][0])}, {_f(r['ci'][1])}] | {r['tokens']:,.0f} | "
                     f"{r['token_share']:.2f} | {r['samples']:.2f} | {r['vs']} | {r['diff']:+.3f} "
                     f"[{r['diff_ci'][0]:+.3f}, {r['diff_ci'][1]:+.3f}] |")
    lines += ["", "settings: `" + json.dumps(result["settings"]) + "`", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    fixed = {}
    for r in result["rows"]:
        if r["kind"] == "fixed":
            fixed.setdefault(r["rule"], []).append(r)
    for rule, rs in fixed.items():
        ax.plot([r["tokens"] for r in rs], [r["acc"] for r in rs], marker="o", ms=3, label=rs[0]["name"].split("@")[0] + "@k")
        if rule == "majority":
            ax.fill_between([r["tokens"] for r in rs], [r["ci"][0] for r in rs], [r["ci"][1] for r in rs], alpha=0.15)
    marks = {"early_stop": "s", "adaptive": "^", "allocate": "*"}
    for r in result["rows"]:
        if r["kind"] in marks:
            ax.errorbar([r["tokens"]], [r["acc"]], yerr=[[r["acc"] - r["ci"][0]], [r["ci"][1] - r["acc"]]],
                        marker=marks[r["kind"]], ms=8, ls="none", capsize=2, label=r["name"])
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.budget", description=__doc__.split("\n\n")[0])
    p.add_argument("pool", help="a sample pool (cli.py pool), plain or .gz")
    p.add_argument("--out", default="reports/budget", help="report folder (report.md, summary.json, accuracy-vs-tokens.png)")
    p.add_argument("--title", default=None)
    p.add_argument("--orders", type=int, default=20, help="sample orders per problem (stored + seeded permutations)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--conf", default="group32", help="confidence summary for weights (search.confidence name)")
    p.add_argument("--window", type=int, default=32, help="early stop: sliding window in tokens")
    p.add_argument("--keep", default="10,90", help="DeepConf keep shares in %% (low,high)")
    p.add_argument("--warmup", type=int, default=4, help="early stop: warm-up traces per problem")
    p.add_argument("--stops", default="beta0.95,cbeta0.95,agree0.75,cagree0.95", help="adaptive stop rules")
    p.add_argument("--first", type=int, default=2, help="adaptive beta rules: first round")
    p.add_argument("--step", default="1", help="adaptive beta rules: samples per later round, or 'double'")
    p.add_argument("--agree-first", type=int, default=4, help="adaptive agree rules: first round (then doubling)")
    p.add_argument("--alloc-first", type=int, default=2, help="allocation: first-round samples per problem")
    p.add_argument("--alloc-k", default="4,6,8,12", help="allocation: budgets equal to maj@k's total tokens")
    p.add_argument("--alloc-weighting", choices=("conf", "none"), default="conf")
    p.add_argument("--preset", action="append", default=[],
                   help="add the rows of a declared setting (search.adaptive.PRESETS and search.allocate.PRESETS, "
                        "e.g. tuned-gsm8k-train); repeat for several")
    p.add_argument("--limit", type=int, default=None, help="first N graded problems only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from policies.pool import read_pool

    for name in ("orders", "warmup", "first", "agree_first", "alloc_first", "bootstrap"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    from search.adaptive import PRESETS as ADAPTIVE_PRESETS
    from search.allocate import PRESETS as ALLOC_PRESETS

    adaptive_specs, alloc_specs = [], []
    for name in args.preset:
        if name not in ADAPTIVE_PRESETS and name not in ALLOC_PRESETS:
            p.error(f"--preset: unknown preset {name!r}; valid: "
                    f"{', '.join(sorted(set(ADAPTIVE_PRESETS) | set(ALLOC_PRESETS)))}")
        adaptive_specs += [(name, s) for s in ADAPTIVE_PRESETS.get(name, ())]
        if name in ALLOC_PRESETS:
            alloc_specs.append((name, ALLOC_PRESETS[name]))
    keep_low, keep_high = (float(x) for x in args.keep.split(","))
    pool = read_pool(args.pool)
    probs = problems_from_pool(pool)[: args.limit]
    result = run_replay(
        probs, n_orders=args.orders, seed=args.seed, n_boot=args.bootstrap, conf=args.conf, window=args.window,
        keep_low=keep_low, keep_high=keep_high, warmup=args.warmup, stops=[s for s in args.stops.split(",") if s],
        first=args.first, step=None if args.step == "double" else int(args.step), agree_first=args.agree_first,
        alloc_first=args.alloc_first, alloc_ks=[int(k) for k in args.alloc_k.split(",") if k],
        alloc_weighting=args.alloc_weighting, adaptive_specs=adaptive_specs, alloc_specs=alloc_specs)
    result["pool"] = {"path": str(args.pool), "records": len(pool), "graded": len(probs),
                      "config": pool[0].get("config")}
    command = "python -m eval.budget " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    result["command"] = command
    import datetime

    result["measured_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", result)
    md = markdown(result, args.title or f"Budget replay: {args.pool}", command)
    plot(result, out / "accuracy-vs-tokens.png")
    (out / "report.md").write_text(md + "\n![accuracy vs tokens](accuracy-vs-tokens.png)\n")
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
