"""The aggregator a step scorer recommends, chosen on a validation pool by a fixed rule,
and written into its card (what `--agg auto` reads: `rewards.checkpoint.resolve_agg`).

    python cli.py eval recommend-agg runs/scored/val200-prm.jsonl --card rewards/defaults/prm

The rule (docs/training.md, "The aggregator each scorer recommends"):
- figure: within-problem AUC (`eval.within_problem`) of the scorer's aggregated values over
  the pool's mixed problems, the ranking an argmax pick uses;
- candidates: `min`, `last`, `mean`, `prod` (ties in that order);
- pick: the best candidate when it is not the default (`min`) and its paired 95% bootstrap
  interval against the default, over the mixed problems, lies above 0; otherwise the
  default. An outcome scorer (one score per sample) gives the same value under every
  aggregator and keeps the default.

Held-out problems are refused (`policies.datasets.is_heldout`): the choice is made on
training-side data, then reported on held-out pools like any other setting.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from . import metrics
from .within_problem import problem_aucs, versus

__all__ = ["CANDIDATES", "DEFAULT", "recommend", "card_entry"]

CANDIDATES = ("min", "last", "mean", "prod")
DEFAULT = "min"
RULE = "docs/training.md, 'The aggregator each scorer recommends'"


def granularity(records: Sequence[dict]) -> str:
    """"step" when some scored candidate has more than one score, else "outcome"."""
    for rec in records:
        for c in rec["candidates"]:
            if c.get("scores") is not None and len(c["scores"]) > 1:
                return "step"
    return "outcome"


def recommend(records: Sequence[dict], *, candidates: Sequence[str] = CANDIDATES, default: str = DEFAULT,
              seed: int = 0) -> dict:
    """The rule above on scored records (`eval.sweep.pool_as_records` of a scored pool):
    {"name", "granularity", "mixed_problems", "within_problem_auc": {agg: [mean, lo, hi]},
    "minus_default": {agg: {"mean", "ci", "problems"}}, "reason"}."""
    from .score_pool import problem_rows

    if default not in candidates:
        raise ValueError(f"the default aggregator {default!r} must be one of the candidates {list(candidates)}")
    rows = {a: problem_rows(records, a) for a in candidates}
    if not rows[default] or any(v is None for p in rows[default] for v in p["values"]):
        raise ValueError("not a scored pool (samples without scores); score it with `cli.py eval score-pool`")
    kind = granularity(records)
    aucs = {a: problem_aucs(rows[a]) for a in candidates}
    if not aucs[default]:
        raise ValueError("no problem with both right and wrong samples: nothing to rank within a problem")
    table, minus = {}, {}
    for a in candidates:
        values = list(aucs[a].values())
        lo, hi = metrics.bootstrap_ci(values, seed=seed)
        table[a] = [float(sum(values) / len(values)), lo, hi]
        if a != default:
            minus[a] = versus(aucs[default], aucs[a], seed=seed)
    best = max(candidates, key=lambda a: (table[a][0], -candidates.index(a)))
    if kind == "outcome":
        name, reason = default, "outcome scorer: one score per sample, the same value under every aggregator"
    elif best == default:
        name, reason = default, f"{default} ranks best"
    elif minus[best]["ci"][0] > 0:
        name, reason = best, f"{best} ranks best, its paired 95% interval against {default} above 0"
    else:
        name, reason = default, (f"{best} ranks best, but its paired 95% interval against {default} reaches 0: "
                                 f"the default stays")
    return {"name": name, "granularity": kind, "mixed_problems": len(aucs[default]),
            "within_problem_auc": table, "minus_default": minus, "default": default, "reason": reason}


def card_entry(result: dict, *, pool: str, scored_by: dict | None, command: str) -> dict:
    """The card's `recommended_agg`: the pick, the rule, and the evidence it was read from."""
    return {"name": result["name"], "rule": RULE, "reason": result["reason"],
            "validation": {"pool": pool, "scored_by": scored_by, "mixed_problems": result["mixed_problems"],
                           "within_problem_auc": {a: [round(x, 4) for x in v]
                                                  for a, v in result["within_problem_auc"].items()},
                           "minus_default": {a: {"mean": round(d["mean"], 4), "ci": [round(x, 4) for x in d["ci"]]}
                                             for a, d in result["minus_default"].items()}},
            "command": command,
            "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def heldout_problems(records: Sequence[dict]) -> list[str]:
    """Ids of the records whose problem is in a held-out slice."""
    from policies.datasets import is_heldout

    return [str(r["id"]) for r in records if is_heldout(r["problem"])]


def same_scorer(scored_by: dict | None, card_dir: Path) -> str | None:
    """None when the scored pool was scored with the weights `card_dir` holds; else why not
    (or why that cannot be told), with the fix. A header written since 2026-12-07 carries
    `weights_sha256`; an older one names a directory, whose weights are compared as they
    are now, unless it is the card's own directory (a default may have been replaced since
    the pool was scored: then only rescoring tells)."""
    from rewards.checkpoint import DEFAULTS_DIR, weights_sha256

    want = weights_sha256(card_dir)
    if want is None:
        return f"{card_dir} holds no weight files"
    if not scored_by:
        return "the pool's records name no scorer"
    rescore = f"score the pool with `cli.py eval score-pool --scorer-model {card_dir}`"
    if scored_by.get("weights_sha256"):
        if scored_by["weights_sha256"] == want:
            return None
        return f"its header's weights_sha256 is not the one of {card_dir}'s weights; {rescore}"
    model = scored_by.get("model")
    path = Path(model) if model else DEFAULTS_DIR / str(scored_by.get("kind"))
    if path.resolve() == card_dir.resolve():
        return (f"its header predates weight fingerprints and names {card_dir} itself, whose weights may have "
                f"changed since; {rescore}")
    if weights_sha256(path) != want:
        return f"it was scored by {path}, whose weights are not {card_dir}'s; {rescore}"
    return None
