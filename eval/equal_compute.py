"""Search at equal compute: step-level search runs against sampling replayed from a scored pool.

    result = equal_compute("pools/scored/x-probe-orm.jsonl.gz", ["runs/eq/beam-n16.jsonl", ...],
                           agg="last", ns=range(1, 17))

The sampling baselines come from a stored, scored pool (no engine): at every n' the
expected accuracy over random size-n' subsets of the pool's samples of majority vote,
best-of-n' by the scorer (RM@n') and the scorer-weighted vote, at n' times the pool's mean
generated tokens per sample. The search runs (`cli.py search` outputs: beam, DVTS,
particle filtering, ...) are points at their own mean generated tokens per problem
(the ledger's count: every token the policy generated, pruned branches included).

Every search run is compared, on the problems it shares with the pool, against the
pool's weighted vote and majority at the same N (paired bootstrap over problems), and
at the pool's n' of equal generated tokens (the nearest n' whose tokens are not below
the run's). The aggregator and selection rule are fixed by the caller before looking at
results; nothing is chosen here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from eval import metrics

__all__ = ["equal_compute", "markdown", "plot"]

RULES = {"maj": "majority", "rm": "argmax", "weighted": "weighted_vote"}


def _pool_rows(scored_pool: str | Path, agg: str) -> dict[str, dict]:
    from eval.score_pool import problem_rows
    from eval.sweep import read_records

    out = {r["id"]: r for r in problem_rows(read_records(scored_pool), agg)}
    if not out:
        raise ValueError(f"{scored_pool}: no graded problem; pass a pool scored by `cli.py eval score-pool`")
    return out


def _run_rows(path: str | Path) -> tuple[str, int, dict[str, dict]]:
    from eval.sweep import load_runs

    runs = load_runs([path])
    if len(runs) != 1 or len(runs[0].seeds) != 1:
        raise ValueError(f"{path}: holds {len(runs)} configurations / seeds; pass one search run per file")
    run = runs[0]
    recs = next(iter(run.seeds.values()))
    rows = {str(r["id"]): {"correct": float(bool(r.get("correct"))),
                           "tokens": float((r.get("ledger") or {}).get("generated_tokens", 0)),
                           **_final_candidates(r)}
            for r in recs if r.get("correct") is not None}  # a gold that cannot be graded: left out
    return run.label, run.n, rows


def _final_candidates(rec: dict) -> dict:
    """What a search's final candidates hold, from its record: any right answer among them
    (their oracle), and the answer with the largest summed value (the record's votes)."""
    cands = rec.get("candidates") or []

    def right(i: int) -> bool:
        return bool((cands[i].get("verdict") or {}).get("correct"))

    votes = rec.get("votes") or []
    top = max(votes, key=lambda v: v.get("weight", 0.0)) if votes else None
    return {"final_any": float(any(right(i) for i in range(len(cands)))),
            "final_vote": float(bool(top and top.get("members") and right(top["members"][0])))}


def equal_compute(scored_pool: str | Path, runs: Sequence[str | Path], *, agg: str = "last",
                  ns: Iterable[int] | None = None, max_subsets: int = 100, n_boot: int = 2000,
                  seed: int = 0, versus: dict[str, str] | None = None) -> dict:
    """`versus` maps a run's path to another run's path (both in `runs`): that run's row
    gets its paired difference against the other, on the same problems (`vs <label>`)."""
    pool = _pool_rows(scored_pool, agg)
    run_rows = [(str(p), *_run_rows(p)) for p in runs]
    ids = set(pool)
    for _path, _label, _n, rows in run_rows:
        ids &= set(rows)
    if not ids:
        raise ValueError("the pool and the runs share no problem; run the searches on the pool's problems")
    ids = sorted(ids)
    n_pool = min(len(pool[i]["correct"]) for i in ids)
    ns = sorted(set(ns or range(1, n_pool + 1)))
    if ns[-1] > n_pool:
        raise ValueError(f"n' = {ns[-1]} exceeds the pool's {n_pool} samples per problem")

    curves: dict[str, dict[int, np.ndarray]] = {k: {} for k in RULES}
    for k in ns:
        per = {name: [] for name in RULES}
        for pid in ids:
            p = pool[pid]
            rng = np.random.default_rng([seed, k, int.from_bytes(pid.encode()[:8].ljust(8, b"\0"), "little")])
            subs = metrics.subsets(len(p["correct"]), k, max_subsets, rng)
            for name, rule in RULES.items():
                values = [None] * len(p["values"]) if name == "maj" else p["values"]  # plain votes: no value tie-break
                per[name].append(metrics.expected_at_k(p["correct"], values, p["labels"], rule, subs))
        for name in RULES:
            curves[name][k] = np.asarray(per[name])
    tok_per_sample = float(np.mean([pool[i]["tokens"] for i in ids]))

    def cell(x: np.ndarray, tokens: float) -> dict:
        lo, hi = metrics.bootstrap_ci(x, n_boot=n_boot, seed=seed)
        return {"acc": float(x.mean()), "ci": [lo, hi], "tokens": tokens}

    def diff(x: np.ndarray, y: np.ndarray) -> dict:
        lo, hi = metrics.paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
        return {"mean": float((x - y).mean()), "ci": [lo, hi]}

    out_curves = {name: {k: cell(curves[name][k], k * tok_per_sample) for k in ns} for name in RULES}
    out_runs = []
    by_path = {}  # path -> (its row, its per-problem correctness), for `versus`
    for path, label, n, rows in run_rows:
        x = np.asarray([rows[i]["correct"] for i in ids])
        tokens = float(np.mean([rows[i]["tokens"] for i in ids]))
        r = {"file": path, "label": label, "n": n, **cell(x, tokens), "vs": {},
             # not selection rules of the run: what its final candidates held (oracle) and
             # how a value-weighted vote over them would have done
             "final_any_correct": cell(np.asarray([rows[i]["final_any"] for i in ids]), tokens),
             "final_weighted_vote": cell(np.asarray([rows[i]["final_vote"] for i in ids]), tokens)}
        if n in curves["weighted"]:
            r["vs"][f"weighted@{n}"] = diff(x, curves["weighted"][n])
            r["vs"][f"maj@{n}"] = diff(x, curves["maj"][n])
        k_eq = next((k for k in ns if k * tok_per_sample >= tokens), None)
        if k_eq is not None:
            r["equal_tokens_n"] = k_eq
            r["vs"][f"weighted@{k_eq} (equal tokens)"] = diff(x, curves["weighted"][k_eq])
            r["vs"][f"maj@{k_eq} (equal tokens)"] = diff(x, curves["maj"][k_eq])
        out_runs.append(r)
        by_path[path] = (r, x)
    for a, b in (versus or {}).items():
        if str(a) not in by_path or str(b) not in by_path:
            raise ValueError(f"versus {a} -> {b}: both must be among the runs")
        (r, x), (other, y) = by_path[str(a)], by_path[str(b)]
        r["vs"][other["label"]] = diff(x, y)
    return {"pool": str(scored_pool), "agg": agg, "problems": len(ids), "n_pool": n_pool,
            "tokens_per_sample": tok_per_sample, "curves": out_curves, "runs": out_runs, "ids": ids,
            "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95}}


def markdown(res: dict, rows: Sequence[int] = (1, 2, 4, 8, 16)) -> str:
    def acc(c):
        return f"{c['acc']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}]"

    lines = [f"{res['problems']} problems; scorer values aggregated with `{res['agg']}`; "
             f"{res['tokens_per_sample']:.0f} generated tokens per pool sample", "",
             "| method | N | generated tokens / problem | accuracy [95% CI] | paired differences |",
             "|---|---:|---:|---|---|"]
    for k in rows:
        if k not in res["curves"]["maj"]:
            continue
        for name, title in (("maj", "majority vote (pool)"), ("rm", "best-of-n by the scorer (pool)"),
                            ("weighted", "scorer-weighted vote (pool)")):
            c = res["curves"][name][k]
            lines.append(f"| {title} | {k} | {c['tokens']:,.0f} | {acc(c)} | |")
    for r in res["runs"]:
        vs = "; ".join(f"vs {k}: {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" for k, d in r["vs"].items())
        lines.append(f"| {r['label']} | {r['n']} | {r['tokens']:,.0f} | {acc(r)} | {vs} |")
    extra = [r for r in res["runs"] if "final_any_correct" in r]
    if extra:
        lines += ["", "Final candidates of each search (not its selection rule): any right answer among them, "
                  "and a value-weighted vote over them.", "",
                  "| search | any right [95% CI] | weighted vote [95% CI] |", "|---|---|---|"]
        lines += [f"| {r['label']} | {acc(r['final_any_correct'])} | {acc(r['final_weighted_vote'])} |" for r in extra]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.4))
    for name, title in (("maj", "majority vote"), ("rm", "best-of-n (scorer)"), ("weighted", "weighted vote (scorer)")):
        cs = list(res["curves"][name].values())
        xs = [c["tokens"] for c in cs]
        line, = ax.plot(xs, [c["acc"] for c in cs], marker="o", ms=3, label=title)
        ax.fill_between(xs, [c["ci"][0] for c in cs], [c["ci"][1] for c in cs], color=line.get_color(), alpha=0.12)
    for r in res["runs"]:
        ax.errorbar([r["tokens"]], [r["acc"]], yerr=[[r["acc"] - r["ci"][0]], [r["ci"][1] - r["acc"]]],
                    fmt="s", capsize=3, label=r["label"])
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"search at equal compute ({res['problems']} problems)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
