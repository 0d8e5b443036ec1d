"""Fit the learned aggregator (eval/learned.py) on a TRAINING pool, and report it against
min / last / prod there.

    python -m eval.learn_agg pools/gsm8k-train256-n8.jsonl.gz --features ../main/runs/probe/features-train \\
        --probe ../main/runs/probe/probe-prm --out eval/defaults/learned-agg-probe-prm.json \\
        --report reports/learned-agg-gsm8k-train

1. Step scores of the training pool that are not in-sample: the step probe's head (the
   layer and L2 strength of `--probe`'s card) is refit on K - 1 folds of problems of the
   stored features (`cli.py train probe-features`) and scores the steps of the held-out
   fold (grouped K-fold by problem, `--folds`, seeded), so every score is out of fold.
2. The aggregator: a logistic model from a candidate's inputs (`--inputs`, eval/learned.py)
   to its verdict, L2 strength chosen by grouped K-fold log-loss over problems
   (`--l2`), then refit on every candidate. Its out-of-fold predictions are what the
   training report selects with.
3. The report, on the training pool at N = the pool's n: RM@N (argmax) and weighted@N
   for min, last, prod, mean of the out-of-fold step scores, for the learned value, and
   for the same model on the confidence inputs alone; paired bootstrap differences of the
   learned value against min, last and prod.

Held-out pools are refused: the model is fitted and chosen on training data only, then
used as `learned:PATH` on scored held-out pools (`cli.py sweep`, `cli.py eval pool-table`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval import learned, metrics
from policies.paths import write_json
from rewards.train.probe import grouped_folds

log = logging.getLogger(__name__)

DEFAULT_INPUTS = (*learned.STEP_INPUTS, "conf:group32", "conf:mean", "conf:tail32")
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
BASELINES = ("min", "last", "prod", "mean")


def oof_step_scores(features_dir: str | Path, probe_dir: str | Path, *, folds: int = 5,
                    seed: int = 0) -> dict[tuple[str, int], list[float]]:
    """{(problem id, sample index): out-of-fold step scores} from stored probe features
    (step 1 of the module docstring)."""
    from rewards.train.probe import design, fit_logistic, load_features

    card = json.loads((Path(probe_dir) / "probe.json").read_text())
    if card.get("granularity") != "step":
        raise ValueError(f"{probe_dir}: a {card.get('granularity')} probe; step scores need a step probe (probe-prm)")
    f = load_features(features_dir)
    x, y, owner = design(f, int(card["layer"]), "step")
    l2 = float(card["training"]["l2"])
    weight = 1.0 / np.bincount(owner)[owner]  # each sample counts once, whatever its steps
    fold = grouped_folds(f.pid.tolist(), folds, seed)[owner]
    p = np.full(len(y), np.nan)
    for k in range(folds):
        tr, te = fold != k, fold == k
        if te.any():
            p[te] = fit_logistic(x[tr], y[tr], l2, weight=weight[tr]).probs(x[te])
    out: dict[tuple[str, int], list[float]] = {}
    starts = np.concatenate([[0], np.cumsum(f.n_steps)[:-1]])
    for pid, j, a, n in zip(f.pid.tolist(), f.sample.tolist(), starts.tolist(), f.n_steps.tolist(), strict=True):
        out[(str(pid), int(j))] = [round(float(v), 6) for v in p[a: a + n]]
    return out


def scored_records(pool: Sequence[dict], scores: dict[tuple[str, int], list[float]]) -> list[dict]:
    """The pool's graded problems as sweep records, every candidate carrying its
    out-of-fold step scores ([] when the features lack the sample)."""
    from eval.sweep import pool_as_records

    recs = []
    for rec in pool_as_records(pool):
        if rec.get("gold") is None or rec.get("status") == "invalid_gold":
            continue
        for j, c in enumerate(rec["candidates"]):
            c["scores"] = scores.get((str(rec["id"]), j), [])
        recs.append(rec)
    return recs


def design_rows(recs: Sequence[dict], inputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X, y, problem id per row, (record, candidate) per row) over candidates with every input."""
    xs, ys, groups, where = [], [], [], []
    for r, rec in enumerate(recs):
        for j, c in enumerate(rec["candidates"]):
            v = learned.input_vector(c, inputs)
            if v is not None:
                xs.append(v)
                ys.append(float(bool((c.get("verdict") or {}).get("correct"))))
                groups.append(str(rec["id"]))
                where.append((r, j))
    return np.asarray(xs, float), np.asarray(ys, float), groups, where


def fit_aggregator(x: np.ndarray, y: np.ndarray, groups: Sequence[str], *, l2_grid: Sequence[float] = L2_GRID,
                   folds: int = 5, seed: int = 0) -> dict:
    """Step 2: {"head", "l2", "cv": [{l2, log_loss, auc}], "oof": out-of-fold P(correct) of
    the chosen l2}."""
    from rewards.train.probe import auc, fit_logistic, log_loss

    fold = grouped_folds(groups, folds, seed)
    cv, oof = [], {}
    for l2 in l2_grid:
        p = np.full(len(y), np.nan)
        for k in range(folds):
            tr, te = fold != k, fold == k
            if te.any() and len(set(y[tr].tolist())) == 2:
                p[te] = fit_logistic(x[tr], y[tr], l2).probs(x[te])
        ok = ~np.isnan(p)
        cv.append({"l2": l2, "log_loss": log_loss(p[ok], y[ok]), "auc": auc(p[ok], y[ok])})
        oof[l2] = p
    best = min(cv, key=lambda r: r["log_loss"])
    return {"head": fit_logistic(x, y, best["l2"]), "l2": best["l2"], "cv": cv, "oof": oof[best["l2"]]}


def oof_values(recs: Sequence[dict], where: Sequence[tuple[int, int]], p: np.ndarray) -> list[list[float | None]]:
    """Per record, each candidate's out-of-fold value (None: an input was missing)."""
    out: list[list[float | None]] = [[None] * len(rec["candidates"]) for rec in recs]
    for (r, j), v in zip(where, p.tolist(), strict=True):
        out[r][j] = None if np.isnan(v) else float(v)
    return out


def selection_table(recs: Sequence[dict], sources: dict[str, list[list[float | None]]], *, n_boot: int = 2000,
                    seed: int = 0, versus: str = "learned", baselines: Sequence[str] = ("min", "last", "prod")) -> dict:
    """Accuracy of RM@N and weighted@N per value source, maj@N, and paired differences of
    `versus` against each baseline, over the records (problems)."""
    correct = [[bool((c.get("verdict") or {}).get("correct")) for c in rec["candidates"]] for rec in recs]
    labels = [metrics.answer_labels([c.get("answer") for c in rec["candidates"]]) for rec in recs]
    maj = np.array([metrics.select_correct(c, [None] * len(c), lab, "majority") for c, lab in zip(correct, labels,
                                                                                                   strict=True)])
    x: dict[tuple[str, str], np.ndarray] = {}
    for name, vals in sources.items():
        for rule in ("argmax", "weighted_vote"):
            x[(name, rule)] = np.array([metrics.select_correct(c, v, lab, rule)
                                        for c, v, lab in zip(correct, vals, labels, strict=True)], float)
    rows = [{"source": "maj", "rule": "majority", "acc": float(maj.mean()),
             "ci": list(metrics.bootstrap_ci(maj, n_boot=n_boot, seed=seed))}]
    for (name, rule), a in x.items():
        rows.append({"source": name, "rule": rule, "acc": float(a.mean()),
                     "ci": list(metrics.bootstrap_ci(a, n_boot=n_boot, seed=seed))})
    diffs = []
    if versus in sources:
        for b in baselines:
            for rule in ("argmax", "weighted_vote"):
                a, c = x[(versus, rule)], x[(b, rule)]
                lo, hi = metrics.paired_bootstrap(a, c, n_boot=n_boot, seed=seed)
                diffs.append({"vs": b, "rule": rule, "diff": float(a.mean() - c.mean()), "ci": [lo, hi]})
    return {"problems": len(recs), "rows": rows, "diffs": diffs}


def markdown(result: dict, command: str | None) -> str:
    t = result["table"]
    n = result["n"]
    lines = [f"# Learned aggregator on the training pool ({t['problems']} problems, N = {n})", "",
             "Every step score is out of fold (the step probe refit without the problem's fold), and so is every "
             "learned value (the aggregator refit without the problem's fold). Accuracy [95% bootstrap interval].", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [f"inputs: {', '.join(result['inputs'])}; l2 {result['l2']:g} (grouped {result['folds']}-fold log-loss: "
              + ", ".join(f"{r['l2']:g}: {r['log_loss']:.4f}" for r in result["cv"]) + ")", "",
              f"| value | RM@{n} | weighted@{n} |", "|---|---|---|"]
    by = {(r["source"], r["rule"]): r for r in t["rows"]}
    for src in dict.fromkeys(r["source"] for r in t["rows"] if r["source"] != "maj"):
        cells = [by[(src, rule)] for rule in ("argmax", "weighted_vote")]
        lines.append(f"| {src} | " + " | ".join(f"{c['acc']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]" for c in cells)
                     + " |")
    m = by[("maj", "majority")]
    lines += [f"| maj@{n} (no value) | {m['acc']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] | |", "",
              "| learned minus | rule | diff [95% paired CI] |", "|---|---|---|"]
    for d in t["diffs"]:
        lines.append(f"| {d['vs']} | {d['rule']} | {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.learn_agg", description=__doc__.split("\n\n")[0])
    p.add_argument("pool", help="the TRAINING sample pool the features were extracted from (plain or .gz)")
    p.add_argument("--features", required=True, help="stored probe features of that pool (cli.py train probe-features)")
    p.add_argument("--probe", required=True, help="the step probe whose layer and L2 strength to refit (probe.json)")
    p.add_argument("--out", required=True, help="the model file to write (JSON; use it as learned:PATH)")
    p.add_argument("--report", default=None, help="report folder (report.md, summary.json)")
    p.add_argument("--inputs", default=",".join(DEFAULT_INPUTS), help="model inputs (eval/learned.py)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--limit", type=int, default=None, help="first N problems only (a quick check)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if "heldout" in Path(args.pool).name:
        p.error(f"{args.pool} looks like a held-out pool; fit on a training pool only")
    if args.folds < 2:
        p.error(f"--folds must be >= 2, got {args.folds}")
    inputs = [i for i in args.inputs.split(",") if i]
    try:
        for i in inputs:
            learned.check_input(i)
    except ValueError as e:
        p.error(f"--inputs: {e}")
    from policies.pool import read_pool

    pool = read_pool(args.pool)[: args.limit]
    scores = oof_step_scores(args.features, args.probe, folds=args.folds, seed=args.seed)
    recs = scored_records(pool, scores)
    x, y, groups, where = design_rows(recs, inputs)
    fit = fit_aggregator(x, y, groups, folds=args.folds, seed=args.seed)
    conf_inputs = [i for i in inputs if i.startswith("conf:")]
    sources = {b: [metrics.candidate_values(rec["candidates"], b) for rec in recs] for b in BASELINES}
    sources["learned"] = oof_values(recs, where, fit["oof"])
    if conf_inputs:
        xc, yc, gc, wc = design_rows(recs, conf_inputs)
        sources["learned (confidence inputs only)"] = oof_values(recs, wc, fit_aggregator(
            xc, yc, gc, folds=args.folds, seed=args.seed)["oof"])
    table = selection_table(recs, sources, n_boot=args.bootstrap, seed=args.seed)
    command = "python -m eval.learn_agg " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {"l2": fit["l2"], "cv": fit["cv"], "trained_on": {"pool": str(args.pool), "problems": len(recs),
                                                             "candidates": int(len(y)), "features": str(args.features),
                                                             "probe": str(args.probe), "folds": args.folds,
                                                             "seed": args.seed},
            "command": command, "measured_at": stamp}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, learned.model_dict(fit["head"], inputs, **meta))
    n = min(len(r["candidates"]) for r in recs)
    result = {"n": n, "inputs": inputs, "l2": fit["l2"], "cv": fit["cv"], "folds": args.folds, "table": table,
              "model": str(out), "command": command, "measured_at": stamp}
    md = markdown(result, command)
    if args.report:
        rep = Path(args.report)
        rep.mkdir(parents=True, exist_ok=True)
        write_json(rep / "summary.json", result)
        (rep / "report.md").write_text(md)
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
