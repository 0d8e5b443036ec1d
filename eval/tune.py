"""Tune adaptive sampling and dataset allocation on a TRAINING pool, by a declared criterion.

    python -m eval.tune pools/gsm8k-train256-n8.jsonl.gz --out reports/tune-gsm8k-train

Only for training pools: the settings it picks become the "tuned" presets of
search/adaptive.py and search/allocate.py, which are then replayed on held-out pools
(`python -m eval.budget HELDOUT --preset tuned-gsm8k-train`). Every replay is eval/budget.py's
(the same per-problem functions and sample orders); N is the pool's samples per problem.

1. Confidence summary (`--confs`): the one whose confidence-weighted vote over all N
   samples is most accurate (ties: the earlier in the list; group32, the a-priori one,
   comes first).
2. Adaptive sampling: every (stop rule, threshold) x first round x schedule x final
   selection of `ADAPTIVE_GRID`, weights = the chosen summary, cap N. A setting is
   *eligible* when it loses at most `--tol` accuracy against maj@N (point estimate) and
   the paired 95% bootstrap interval of (setting - maj@N) reaches 0. Per rule family
   (beta, cbeta, agree, cagree) the tuned setting is the eligible one with the fewest mean
   generated tokens (ties: the more accurate, then grid order); the overall pick is the
   cheapest of the four.
3. Allocation: every first round x counts (plain / the chosen summary) x alpha_new of
   `ALLOC_GRID`; the tuned setting has the largest mean paired gain over maj@k across the
   budgets `--alloc-k` (default N/2 and 3N/4, so every first round fits), ties to grid order.
4. Strategy per difficulty bin, for that allocation: each problem's first-round agreement
   bin (agree / split / scatter, search.allocate.difficulty_bin) gets the confidence-
   weighted vote instead of majority when that is right more often in the bin, summed
   over the budgets (ties keep majority).

Carrying to a pool of another N: the stop rules read only the samples drawn, so a rule
behaves on a pool of 16 exactly as on 8 until it reaches 8 samples; there the training
cap ends and the held-out run goes on to 16. The training pool cannot show what
happens past 8; the report gives, per tuned setting, the share of problems it ran to
the cap (those are the ones that continue at 16). Allocation budgets are shares of maj@N's
tokens (N/2, 3N/4); the held-out replay reports k = 4, 6, 8, 12 of 16.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval import budget, metrics
from policies.paths import write_json

log = logging.getLogger(__name__)

CONFS = ("group32", "group16", "group64", "mean", "tail32", "bottom10")
ADAPTIVE_GRID = {
    "thresholds": {"beta": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95), "cbeta": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                   "agree": (0.5, 0.6, 0.75, 0.9, 1.0), "cagree": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)},
    "first_round": (1, 2, 3, 4),
    "round_size": (1, 2, None),
    "select": ("majority", "weighted_vote"),
}
ALLOC_GRID = {"first_round": (1, 2, 3), "weighted": (False, True), "alpha_new": (0.5, 1.0, 2.0)}


@dataclasses.dataclass(frozen=True)
class Scored:
    """One setting's training-pool figures against its reference."""

    acc: float
    tokens: float
    samples: float
    diff: float
    diff_ci: tuple[float, float]
    capped: float = float("nan")  # share of (problem, order) runs that reached the cap


def score(x: np.ndarray, tok: np.ndarray, smp: np.ndarray, ref_x: np.ndarray, *, n_boot: int, seed: int,
          capped: float = float("nan")) -> Scored:
    lo, hi = metrics.paired_bootstrap(x, ref_x, n_boot=n_boot, seed=seed)
    return Scored(float(x.mean()), float(tok.mean()), float(smp.mean()), float(x.mean() - ref_x.mean()),
                  (lo, hi), capped)


def eligible(s: Scored, tol: float) -> bool:
    """The declared criterion: at most `tol` below the reference, and the paired interval reaches 0."""
    return s.diff >= -tol - 1e-12 and s.diff_ci[1] >= -1e-12


def cheapest(cands: Sequence[tuple[object, Scored]], tol: float):
    """The eligible (setting, figures) with the fewest tokens, then the higher accuracy,
    then the earlier; None when none is eligible."""
    ok = [(i, c) for i, c in enumerate(cands) if eligible(c[1], tol)]
    if not ok:
        return None
    return min(ok, key=lambda ic: (round(ic[1][1].tokens, 6), -ic[1][1].acc, ic[0]))[1]


def family(stop: str) -> str:
    return stop.rstrip("0123456789.")


def adaptive_grid(conf: str, grid: dict = ADAPTIVE_GRID):
    from search.adaptive import AdaptiveSpec

    for fam, ts in grid["thresholds"].items():
        for t in ts:
            for first in grid["first_round"]:
                for step in grid["round_size"]:
                    for sel in grid["select"]:
                        yield AdaptiveSpec(stop=f"{fam}{t:g}", first_round=first, round_size=step, select=sel,
                                           confidence=conf)


def alloc_grid(conf: str, grid: dict = ALLOC_GRID):
    from search.allocate import AllocSpec

    for first in grid["first_round"]:
        for w in grid["weighted"]:
            for a_new in grid["alpha_new"]:
                yield AllocSpec(first_round=first, confidence=conf if w else None, alpha_new=a_new)


def capped_share(probs, ords, spec, n: int, weights) -> float:
    """Share of (problem, order) runs of `spec` that drew all n samples."""
    res = [[budget.replay_adaptive(p, o, stop=spec.stop, first=spec.first_round, step=spec.round_size, n_max=n,
                                   weights=weights[j], select_rule=spec.select)[2] >= n for o in ords[j]]
           for j, p in enumerate(probs)]
    return float(np.mean(res))


def tune(probs: Sequence[budget.Problem], *, n_orders: int = 20, seed: int = 0, n_boot: int = 2000,
         confs: Sequence[str] = CONFS, tol: float = 0.01, alloc_ks: Sequence[int] | None = None, draws: int = 2000,
         adaptive_grid_: dict = ADAPTIVE_GRID, alloc_grid_: dict = ALLOC_GRID) -> dict:
    """The three steps of the module docstring; a JSON-able dict."""
    if not probs:
        raise ValueError("no graded problem in the pool; nothing to tune on")
    n = min(p.n for p in probs)
    ords = [budget.orders(p, n_orders, seed) for p in probs]
    maj = {k: np.array([np.mean([budget.replay_fixed(p, o, k, "majority", None) for o in ords[j]], axis=0)
                        for j, p in enumerate(probs)]) for k in range(1, n + 1)}
    ref = maj[n]

    # 1. the confidence summary
    conf_rows, W = [], {}
    for c in confs:
        W[c] = budget.conf_values(probs, c)
        arr = np.array([np.mean([budget.replay_fixed(p, o, n, "weighted_vote", W[c][j]) for o in ords[j]], axis=0)
                        for j, p in enumerate(probs)])
        conf_rows.append((c, score(arr[:, 0], arr[:, 1], arr[:, 2], ref[:, 0], n_boot=n_boot, seed=seed)))
    conf = max(enumerate(conf_rows), key=lambda ic: (ic[1][1].acc, -ic[0]))[1][0]
    w = W[conf]

    # 2. adaptive sampling
    adaptive_rows = []
    for spec in adaptive_grid(conf, adaptive_grid_):
        arr = budget.adaptive_results(probs, ords, spec, n, weights=w)
        adaptive_rows.append((spec, score(arr[:, 0], arr[:, 1], arr[:, 2], ref[:, 0], n_boot=n_boot, seed=seed)))
    chosen = {}
    for fam in adaptive_grid_["thresholds"]:
        pick = cheapest([r for r in adaptive_rows if family(r[0].stop) == fam], tol)
        if pick is not None:
            spec, s = pick
            chosen[fam] = (spec, dataclasses.replace(s, capped=capped_share(probs, ords, spec, n, w)))
    overall = min(chosen.values(), key=lambda r: r[1].tokens)[0] if chosen else None

    # 3. allocation
    ks = list(alloc_ks) if alloc_ks else sorted({max(1, n // 2), max(1, 3 * n // 4)})
    if any(k <= f for k in ks for f in alloc_grid_["first_round"]):
        raise ValueError(f"allocation budgets {ks} must exceed every first round {alloc_grid_['first_round']} "
                         "(a first round that spends the whole budget allocates nothing); raise --alloc-k")
    alloc_rows = []
    for spec in alloc_grid(conf, alloc_grid_):
        res = budget.allocation_results(probs, ords, spec, ks, draws=draws, seed=seed,
                                        weights=w if spec.confidence else None)
        per_k = {k: score(res[k][:, 0], res[k][:, 1], res[k][:, 2], maj[k][:, 0], n_boot=n_boot, seed=seed)
                 for k in ks}
        alloc_rows.append((spec, per_k, float(np.mean([s.diff for s in per_k.values()]))))
    alloc_pick = max(enumerate(alloc_rows), key=lambda ir: (round(ir[1][2], 9), -ir[0]))[1][0]

    # 4. per first-round agreement bin: majority or the confidence-weighted vote
    bins = bin_choice(probs, ords, alloc_pick, ks, w, conf, maj, draws=draws, seed=seed, n_boot=n_boot)
    alloc_final = bins.pop("spec")

    def sd(s: Scored) -> dict:
        return dataclasses.asdict(s)

    maj_rows = {str(k): {"acc": float(maj[k][:, 0].mean()), "tokens": float(maj[k][:, 1].mean())} for k in maj}
    return {
        "problems": len(probs), "n": n,
        "settings": {"n_orders": n_orders, "seed": seed, "n_boot": n_boot, "confs": list(confs), "tol": tol,
                     "alloc_ks": ks, "draws": draws, "adaptive_grid": {**adaptive_grid_, "round_size": [
                         "double" if s is None else s for s in adaptive_grid_["round_size"]]},
                     "alloc_grid": alloc_grid_},
        "maj": maj_rows,
        "conf": {"chosen": conf, "rows": [{"conf": c, **sd(s)} for c, s in conf_rows]},
        "adaptive": {"chosen": {fam: {"spec": dataclasses.asdict(sp), "label": sp.label, **sd(s)}
                                for fam, (sp, s) in chosen.items()},
                     "overall": None if overall is None else dataclasses.asdict(overall),
                     "rows": [{"spec": dataclasses.asdict(sp), "label": sp.label, **sd(s),
                               "eligible": eligible(s, tol)} for sp, s in adaptive_rows]},
        "allocation": {"chosen": dataclasses.asdict(alloc_final), "before_bins": dataclasses.asdict(alloc_pick),
                       "bins": bins,
                       "rows": [{"spec": dataclasses.asdict(sp), "label": sp.label, "mean_gain": g,
                                 "per_k": {str(k): sd(s) for k, s in per_k.items()}} for sp, per_k, g in alloc_rows]},
    }


def bin_choice(probs, ords, spec, ks: Sequence[int], w_conf, conf: str, maj: dict, *, draws: int, seed: int,
               n_boot: int) -> dict:
    """Step 4 for the allocation setting `spec`: every (problem, order) falls in the
    first-round agreement bin of its order (search.allocate.difficulty_bin); in each bin the
    confidence-weighted vote (`conf`) replaces majority when, summed over the budgets `ks`, it
    is right more often there (ties keep majority). The samples drawn do not change, only
    the final vote. Returns the per-bin table, the per-k figures and the resulting spec."""
    from search.allocate import BINS, difficulty_bin

    P, R = len(probs), len(ords[0])
    w = budget.conf_values(probs, spec.confidence) if spec.confidence else None
    bin_of = np.zeros((P, R), dtype=int)
    corr = {k: np.zeros((2, P, R)) for k in ks}  # [majority as replayed, weighted vote]
    tok = {k: np.zeros((P, R)) for k in ks}
    smp = {k: np.zeros((P, R)) for k in ks}
    for r in range(R):
        order_of = [ords[j][r] for j in range(P)]
        plan = budget.allocation_plan(probs, order_of, first=spec.first_round, weights_of=w, alpha=spec.alpha,
                                      alpha_new=spec.alpha_new, draws=draws, seed=seed + r)
        for j, p in enumerate(probs):
            first = order_of[j][: spec.first_round]
            bin_of[j, r] = difficulty_bin(budget.first_round_counts(p, first), len(first))
        for k in ks:
            b = float(sum(p.tokens[i] for p, o in zip(probs, order_of, strict=True) for i in o[:k]))
            res = budget.replay_allocation(probs, order_of, budget=b, first=spec.first_round, weights_of=w, plan=plan)
            for j, (c, t, m) in enumerate(res):
                corr[k][0, j, r] = c
                corr[k][1, j, r] = budget._pick(probs[j], order_of[j][: int(m)], "weighted_vote", w_conf[j])
                tok[k][j, r], smp[k][j, r] = t, m
    table, select = [], []
    for b, name in enumerate(BINS):
        mask = bin_of == b
        gain = sum(float((corr[k][1] - corr[k][0])[mask].sum()) for k in ks)
        select.append("weighted_vote" if gain > 1e-9 else "majority")
        table.append({"bin": name, "share": float(mask.mean()), "select": select[-1],
                      **{f"maj_acc@{k}": float(corr[k][0][mask].mean()) if mask.any() else None for k in ks},
                      **{f"weighted_acc@{k}": float(corr[k][1][mask].mean()) if mask.any() else None for k in ks}})
    use_w = np.array([s == "weighted_vote" for s in select])[bin_of]  # (P, R)
    per_k = {}
    for k in ks:
        x = np.where(use_w, corr[k][1], corr[k][0]).mean(axis=1)
        per_k[str(k)] = dataclasses.asdict(score(x, tok[k].mean(axis=1), smp[k].mean(axis=1), maj[k][:, 0],
                                                 n_boot=n_boot, seed=seed))
    weighted = any(s != "majority" for s in select)
    out_spec = dataclasses.replace(spec, select=tuple(select), select_confidence=conf if weighted else None)
    return {"table": table, "per_k": per_k, "mean_gain": float(np.mean([v["diff"] for v in per_k.values()])),
            "spec": out_spec}


def pareto(rows: Sequence[dict]) -> list[dict]:
    """The rows no other row beats on both accuracy (higher) and tokens (fewer)."""
    out, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["tokens"], -r["acc"])):
        if r["acc"] > best + 1e-12:
            out.append(r)
            best = r["acc"]
    return out


def _ci(s: dict) -> str:
    return f"{s['diff']:+.3f} [{s['diff_ci'][0]:+.3f}, {s['diff_ci'][1]:+.3f}]"


def markdown(result: dict, command: str | None) -> str:
    n, ref = result["n"], result["maj"][str(result["n"])]
    st = result["settings"]
    lines = [f"# Tuning on the training pool ({result['problems']} problems, N = {n})", "",
             f"Reference maj@{n}: accuracy {ref['acc']:.3f}, {ref['tokens']:,.0f} generated tokens per problem. "
             f"Per-problem results averaged over {st['n_orders']} sample orders; diff = setting - reference with "
             f"the paired 95% bootstrap interval. Eligible: diff >= -{st['tol']:g} and the interval reaches 0.", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += ["## 1. Confidence summary (weighted vote over all N)", "", "| summary | accuracy | diff vs maj@N |",
              "|---|---|---|"]
    for r in result["conf"]["rows"]:
        mark = " **(chosen)**" if r["conf"] == result["conf"]["chosen"] else ""
        lines.append(f"| {r['conf']}{mark} | {r['acc']:.3f} | {_ci(r)} |")
    lines += ["", "## 2. Adaptive sampling: tuned setting per rule family", "",
              "| family | setting | accuracy | tokens / problem | share of maj@N | samples | ran to the cap | diff |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for fam, r in result["adaptive"]["chosen"].items():
        lines.append(f"| {fam} | {r['label']} | {r['acc']:.3f} | {r['tokens']:,.0f} | {r['tokens'] / ref['tokens']:.2f} | "
                     f"{r['samples']:.2f} | {r['capped']:.2f} | {_ci(r)} |")
    n_ok = sum(r["eligible"] for r in result["adaptive"]["rows"])
    lines += ["", f"{n_ok} of {len(result['adaptive']['rows'])} grid settings eligible. Accuracy-token frontier of "
              "the whole grid:", "", "| setting | accuracy | tokens / problem | share | diff | eligible |",
              "|---|---|---:|---:|---|---|"]
    for r in pareto(result["adaptive"]["rows"]):
        lines.append(f"| {r['label']} | {r['acc']:.3f} | {r['tokens']:,.0f} | {r['tokens'] / ref['tokens']:.2f} | "
                     f"{_ci(r)} | {'yes' if r['eligible'] else 'no'} |")
    ks = st["alloc_ks"]
    lines += ["", "## 3. Allocation (largest mean gain over maj@k, k in " + ", ".join(map(str, ks)) + ")", "",
              "| setting | mean gain | " + " | ".join(f"allocate@{k} vs maj@{k}" for k in ks) + " |",
              "|---|---:|" + "---|" * len(ks)]
    chosen = result["allocation"]["chosen"]
    for r in sorted(result["allocation"]["rows"], key=lambda r: -r["mean_gain"]):
        mark = " **(chosen)**" if r["spec"] == result["allocation"]["before_bins"] else ""
        lines.append(f"| {r['label']}{mark} | {r['mean_gain']:+.3f} | "
                     + " | ".join(f"{r['per_k'][str(k)]['acc']:.3f}, {_ci(r['per_k'][str(k)])}" for k in ks) + " |")
    bins = result["allocation"]["bins"]
    lines += ["", "## 4. Per-bin final vote for the chosen allocation (first-round agreement)", "",
              "| bin | share of (problem, order) | " + " | ".join(f"maj / weighted @{k}" for k in ks) + " | chosen |",
              "|---|---:|" + "---|" * len(ks) + "---|"]
    for r in bins["table"]:
        cells = " | ".join("–" if r[f"maj_acc@{k}"] is None else
                           f"{r[f'maj_acc@{k}']:.3f} / {r[f'weighted_acc@{k}']:.3f}" for k in ks)
        lines.append(f"| {r['bin']} | {r['share']:.3f} | {cells} | {r['select']} |")
    lines += ["", "With the per-bin vote: " + "; ".join(
        f"allocate@{k} {v['acc']:.3f}, {_ci(v)} vs maj@{k}" for k, v in bins["per_k"].items())
        + f" (mean gain {bins['mean_gain']:+.3f}).", "", "Tuned allocation: `" + json.dumps(chosen) + "`"]
    lines += ["", "settings: `" + json.dumps(st) + "`", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.tune", description=__doc__.split("\n\n")[0])
    p.add_argument("pool", help="a TRAINING sample pool (cli.py pool), plain or .gz")
    p.add_argument("--out", default="reports/tune", help="report folder (report.md, summary.json)")
    p.add_argument("--orders", type=int, default=20, help="sample orders per problem (stored + seeded permutations)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--confs", default=",".join(CONFS), help="candidate confidence summaries, the a-priori one first")
    p.add_argument("--tol", type=float, default=0.01, help="largest accuracy loss against maj@N an eligible setting may show")
    p.add_argument("--alloc-k", default=None, help="allocation budgets (maj@k's tokens); default N/2 and 3N/4")
    p.add_argument("--draws", type=int, default=2000, help="allocation: Monte Carlo draws per accuracy curve")
    p.add_argument("--limit", type=int, default=None, help="first N graded problems only (a quick check)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if "heldout" in Path(args.pool).name:
        p.error(f"{args.pool} looks like a held-out pool; tune on a training pool only (docs/selection.md)")
    for name in ("orders", "bootstrap", "draws"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.tol < 1:
        p.error(f"--tol must be in [0, 1), got {args.tol}; e.g. 0.01")
    from policies.pool import read_pool
    from search.confidence import check

    confs = [c for c in args.confs.split(",") if c]
    try:
        for c in confs:
            check(c)
    except ValueError as e:
        p.error(f"--confs: {e}")
    pool = read_pool(args.pool)
    probs = budget.problems_from_pool(pool)[: args.limit]
    result = tune(probs, n_orders=args.orders, seed=args.seed, n_boot=args.bootstrap, confs=confs, tol=args.tol,
                  alloc_ks=[int(k) for k in args.alloc_k.split(",")] if args.alloc_k else None, draws=args.draws)
    command = "python -m eval.tune " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    result["pool"] = {"path": str(args.pool), "records": len(pool), "graded": len(probs)}
    result["command"] = command
    result["measured_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", result)
    md = markdown(result, command)
    (out / "report.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
