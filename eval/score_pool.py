"""Score a stored sample pool once, then compare selection rules without any model.

    python cli.py eval score-pool --reward probe --scorer-model rewards/defaults/probe \\
        --pool pools/gsm8k-heldout200-n16.jsonl.gz --out runs/scored/heldout-probe.jsonl
    python cli.py eval pool-table runs/scored/heldout-probe.jsonl [runs/scored/heldout-orm.jsonl ...]

`score_pool` writes the pool's records again with every sample's raw scores
(`samples[i]["scores"]`, one per step or one per solution) and the scorer's
description (`record["reward"]`), appending as problems finish, so a rerun resumes.
The output is still a pool (`tts-math-pool/1`): `cli.py sweep` reads it and replays
every aggregator and selection rule on the stored scores.

`pool_table` is the scorer table: per scored pool and aggregator, at N = the pool's n,
RM@N (the highest-valued sample) and weighted@N (votes weighted by value) against
pass@1 and maj@N on the same problems, with paired bootstrap intervals of the
differences (resampling problems), the outcome AUC and calibration error (ECE) of
the aggregated value as P(correct), and the scorer's cost: forward FLOPs per candidate
(``rewards.cost``: 2 x the parameters a token passes through x the tokens it scored,
recorded per problem as ``scorer_tokens``; ``scorer_cost``), so accuracy sits beside cost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from eval import metrics
from eval.registry import DEFAULT_AGGS

log = logging.getLogger(__name__)

__all__ = ["score_pool", "is_mixed", "gradable", "score_pool_from_features", "FeatureProbe", "pool_table", "table_markdown", "scorer_cost",
           "pool_tokens"]


def score_pool(pool_path: str | Path, scorer, out_path: str | Path, *, reward: dict, batch_problems: int = 2,
               limit: int | None = None, only_mixed: bool = False,
               on_batch: Callable[[int, int], None] | None = None) -> int:
    """Write the pool with every sample's scores to `out_path` (plain JSONL); resumes.

    reward: what the records' `reward` field says (kind, model, ...). only_mixed: score
    and write only the problems with both right and wrong graded samples (`is_mixed`;
    the file's identity says so): on the others every selection rule gets the same
    result, so comparing scorers needs only these. Returns the number of problems
    scored by this call."""

    def score(chunk: list[dict]) -> None:
        flat = [(r, s) for r in chunk for s in r["samples"]]
        with_steps = [(r, s) for r, s in flat if s.get("steps")]
        before = scorer.stats.tokens_scored
        scores = scorer.score([r["problem"] for r, _ in with_steps], [s["steps"] for _, s in with_steps])
        for (_, s), sc in zip(with_steps, scores, strict=True):
            s["scores"] = [round(float(x), 6) for x in sc]
        for _, s in flat:
            s.setdefault("scores", [])
        shares = _apportion(scorer.stats.tokens_scored - before,
                            [sum(1 for s in r["samples"] if s.get("steps")) for r in chunk])
        for r, tokens in zip(chunk, shares, strict=True):
            r["reward"] = reward
            r["scorer_tokens"] = tokens

    header = {"reward": reward, **({"only": "mixed"} if only_mixed else {})}
    return _rewrite_pool(pool_path, out_path, header, score, batch_problems=batch_problems,
                         limit=limit, keep=is_mixed if only_mixed else None, on_batch=on_batch)


def is_mixed(record: dict) -> bool:
    """Every sample of the problem is graded and both a right and a wrong one are among them."""
    samples = record.get("samples") or []
    if not samples or not all(gradable(s) for s in samples):
        return False
    return len({bool(s["verdict"]["correct"]) for s in samples}) == 2


def certainty_pool(pool_path: str | Path, certainty, out_path: str | Path, *, model: str,
                   batch_problems: int = 2, limit: int | None = None,
                   on_batch: Callable[[int, int], None] | None = None) -> int:
    """Write the pool again with each sample's `token_conf` holding its per-token
    self-certainty (`policies.certainty.SelfCertainty`; plain JSONL, resumes). Every
    confidence reader then works on it unchanged (`sweep --conf`, `eval.budget`): the
    record's `confidence` field says which measure its `token_conf` holds. The DeepConf
    per-step summaries (`step_conf`, `step_token_ends`) refer to the sampled tokens and are
    dropped; `generated_tokens` (what the policy spent) is kept. Returns the problems written
    by this call."""
    meta = {"kind": "self-certainty", "model": model, "vocab": certainty.vocab}

    def measure(chunk: list[dict]) -> None:
        flat = [(r, s) for r in chunk for s in r["samples"]]
        before = certainty.tokens_run
        values = certainty([r["problem"] for r, _ in flat], [s.get("text") or "" for _, s in flat])
        for (_, s), v in zip(flat, values, strict=True):
            s["token_conf"] = [round(float(x), 3) for x in v]
            s.pop("step_conf", None)
            s.pop("step_token_ends", None)
        shares = _apportion(certainty.tokens_run - before, [len(r["samples"]) for r in chunk])
        for r, tokens in zip(chunk, shares, strict=True):
            r["confidence"] = meta
            r["confidence_tokens"] = tokens

    return _rewrite_pool(pool_path, out_path, {"confidence": meta}, measure, batch_problems=batch_problems,
                         limit=limit, on_batch=on_batch)


def _rewrite_pool(pool_path: str | Path, out_path: str | Path, header: dict, fill: Callable[[list[dict]], None], *,
                  batch_problems: int, limit: int | None, on_batch: Callable[[int, int], None] | None,
                  keep: Callable[[dict], bool] | None = None) -> int:
    """The resumable loop of `score_pool` and `certainty_pool`: the pool's records in batches
    of `batch_problems`, each batch given to `fill` (which adds the new fields in place) and
    appended to `out_path`. `header` (with the pool's path) is the file's identity: a rerun
    skips the problems already written, another scorer or measure is refused. `keep`: only
    the records it accepts (after `limit`). Returns the problems written by this call."""
    from policies.pool import read_pool
    from rewards.train.data import JsonlWriter

    if batch_problems < 1:
        raise ValueError(f"batch_problems must be >= 1, got {batch_problems}.")
    out = Path(out_path)
    if out.suffix == ".gz":
        raise ValueError(f"--out {out}: write plain .jsonl (gzip it when complete), so a rerun can resume")
    rows = read_pool(pool_path)[:limit] if limit else read_pool(pool_path)
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    # torn tail repaired, finished ids known, and another identity refused for the same file
    with JsonlWriter(out, {"pool": str(pool_path), **header}, key_field="id") as w:
        done = len(w.done)
        todo = [r for r in rows if r["id"] not in w.done]
        for b in range(0, len(todo), batch_problems):
            chunk = todo[b : b + batch_problems]
            fill(chunk)
            w.write(chunk)
            if on_batch:
                on_batch(done + b + len(chunk), len(rows))
    return len(todo)


def _apportion(total: int, weights: list[int]) -> list[int]:
    """``total`` split over the records of one score() call in proportion to their scored
    candidates (integers summing to ``total``; a batch's tokens are not known per problem)."""
    w = sum(weights)
    if not w:
        return [0] * len(weights)
    cum = [round(total * sum(weights[: i + 1]) / w) for i in range(len(weights))]
    return [c - p for c, p in zip(cum, [0, *cum[:-1]], strict=True)]


def pool_tokens(record: dict) -> int:
    """Tokens the policy's own forward pass reads for a record's samples (prompt + generated,
    over the samples with steps): what a probe scores, with no scorer run to count them."""
    return sum(int(s.get("prompt_tokens") or 0) + int(s.get("generated_tokens") or 0)
               for s in record["samples"] if s.get("steps"))


class FeatureProbe:
    """A probe scorer read from stored features (`cli.py train probe-features`) instead of
    running the policy again: score i of a sample is the head on its stored step-end state.

    Equal to `rewards.probe.ProbeScorer` on the same samples up to the float16 storage of
    the features (checked in tests/test_score_pool.py). Only samples the features hold can
    be scored; a problem the features lack raises with the fix."""

    def __init__(self, probe_dir: str | Path, features_dir: str | Path) -> None:
        from rewards.probe import ProbeHead, is_probe_dir
        from rewards.train.probe import load_features

        if not is_probe_dir(probe_dir):
            raise FileNotFoundError(f"{probe_dir}: not a probe directory (probe.json + head.npz)")
        self.card = json.loads((Path(probe_dir) / "probe.json").read_text())
        self.head = ProbeHead.load(Path(probe_dir) / "head.npz")
        f = load_features(features_dir)
        if f.manifest["model"] != self.card["backbone"] and f.manifest.get("backbone_sha256") != self.card.get(
                "backbone_sha256"):
            raise ValueError(f"{features_dir}: features of {f.manifest['model']}, probe of {self.card['backbone']}")
        x = f.layer(int(self.card["layer"]))
        starts = np.concatenate([[0], np.cumsum(f.n_steps)[:-1]])
        self.rows = {(str(pid), int(j)): x[a : a + n] for pid, j, a, n in zip(f.pid, f.sample, starts, f.n_steps,
                                                                             strict=True)}
        self.granularity = self.card["granularity"]

    def describe(self) -> dict:
        return {"kind": "probe", "name": self.card.get("name"), "granularity": self.granularity,
                "layer": self.card["layer"], "backbone": self.card["backbone"], "from_features": True}

    @property
    def flops_per_token(self) -> int:
        """What scoring with the policy would cost per token (its decoder up to the layer read)."""
        from rewards.cost import decoder_params_upto, flops_per_token

        return flops_per_token(decoder_params_upto(self.card["backbone"], int(self.card["layer"])))

    def scores(self, pid: str, j: int) -> list[float]:
        key = (str(pid), int(j))
        if key not in self.rows:
            raise KeyError(f"problem {pid} sample {j} is not in the features; extract them with "
                           "`cli.py train probe-features --allow-heldout` from this pool")
        rows = self.rows[key] if self.granularity == "step" else self.rows[key][-1:]
        return [round(float(p), 6) for p in self.head.probs(rows)]


def score_pool_from_features(pool_path: str | Path, probe: FeatureProbe, out_path: str | Path, *,
                             reward: dict) -> int:
    """`score_pool` with stored features: no model runs. Samples without steps get []."""
    from policies.pool import read_pool

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for r in read_pool(pool_path):
            for j, s in enumerate(r["samples"]):
                s["scores"] = probe.scores(r["id"], j) if s.get("steps") and gradable(s) else []
            r["reward"] = reward
            r["scorer_tokens"] = pool_tokens(r)  # what the policy's pass read when the features were made
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def gradable(sample: dict) -> bool:
    """The sample has a verdict that counts: graded right or wrong, against a valid gold."""
    v = sample.get("verdict") or {}
    return v.get("correct") is not None and v.get("status") != "invalid_gold"


def problem_rows(records: Iterable[dict], agg: str) -> list[dict]:
    """Per graded problem of search-run-shaped records (`eval.sweep.pool_as_records` of a
    scored pool, or `read_records` of its file): id, per-candidate correctness, the values
    under `agg`, answer labels and mean generated tokens. Problems with an ungradable gold or
    an ungraded candidate are left out."""
    out = []
    for rec in records:
        cands = rec["candidates"]
        verdicts = [c.get("verdict") or {} for c in cands]
        if not cands or any(v.get("correct") is None or v.get("status") == "invalid_gold" for v in verdicts):
            continue
        out.append({"id": str(rec["id"]), "correct": [bool(v["correct"]) for v in verdicts],
                    "values": metrics.candidate_values(cands, agg),
                    "labels": metrics.answer_labels([c.get("answer") for c in cands]),
                    "tokens": float(np.mean([c.get("generated_tokens", 0) for c in cands]))})
    return out


def _ci(x, n_boot, seed):
    lo, hi = metrics.bootstrap_ci(x, n_boot=n_boot, seed=seed)
    return [round(lo, 4), round(hi, 4)]


def pool_table(paths: Sequence[str | Path], *, aggs: Sequence[str] = DEFAULT_AGGS,
               n_boot: int = 2000, seed: int = 0, ids: set[str] | None = None,
               versus_first: bool = False, whole: str | Path | None = None, limit: int | None = None) -> dict:
    """The scorer table over scored pools of the same problems (see module docstring).

    ids: restrict to these problem ids (e.g. the problems every pool holds);
    versus_first: every later row also gets its RM@N and weighted@N minus the first
    row's, paired over problems ("minus_first"): a PRM against an ORM on the same
    samples, say (pass the ORM's pool first);
    whole: the pool the scored files were cut from (`score_pool(only_mixed=True)`): its
    problems that no scored file holds enter every figure as their one outcome (all
    samples right: 1 under every rule; all wrong: 0), so the table covers the whole
    pool; AUC and ECE stay over the scored problems. A problem of it with both right
    and wrong samples that the scored files lack is refused.
    limit: the first N problems only, of `whole` when given (else of the first scored
    file): the problems `score_pool(limit=N)` scored."""
    from eval.sweep import pool_as_records
    from policies.pool import read_pool

    pools = {str(p): read_pool(p) for p in paths}
    full = None if whole is None else read_pool(whole)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        first_n = {r["id"] for r in (full if full is not None else pools[str(paths[0])])[:limit]}
        ids = first_n if ids is None else set(ids) & first_n
    common = set.intersection(*({r["id"] for r in rows} for rows in pools.values()))
    if ids is not None:
        common &= set(ids)
    if not common:
        raise ValueError("the scored pools share no problem; score the same pool with each scorer")
    constant = [] if whole is None else _constant_outcomes(whole, full, [r for rows in pools.values() for r in rows],
                                                           common, ids)
    base_rows = None
    out_rows = []
    first: dict[str, list] | None = None
    for path, rows in pools.items():
        rows = [r for r in rows if r["id"] in common]
        rows.sort(key=lambda r: r["id"])
        reward = rows[0].get("reward") or {"kind": "none"}
        cost = scorer_cost(rows, reward)
        gran = "outcome" if all(len(s.get("scores") or []) <= 1 for r in rows for s in r["samples"]) else "step"
        for agg in aggs if gran == "step" else ("last",):
            probs = problem_rows(pool_as_records(rows), agg)
            if base_rows is None:
                base_rows = probs
                n = len(probs[0]["correct"])
                pass1 = [sum(p["correct"]) / len(p["correct"]) for p in probs] + constant
                maj = [metrics.select_correct(p["correct"], [None] * len(p["correct"]), p["labels"], "majority")
                       for p in probs] + constant
                oracle = [float(any(p["correct"])) for p in probs] + constant
                base = {"problems": len(pass1), "n": n,
                        "pass@1": {"acc": float(np.mean(pass1)), "ci": _ci(pass1, n_boot, seed)},
                        f"maj@{n}": {"acc": float(np.mean(maj)), "ci": _ci(maj, n_boot, seed)},
                        f"pass@{n}": {"acc": float(np.mean(oracle)), "ci": _ci(oracle, n_boot, seed)}}
                if whole is not None:
                    base["whole"] = {"pool": str(whole), "scored": len(probs),
                                     "all_right": int(sum(constant)), "all_wrong": len(constant) - int(sum(constant))}
            row = {"pool": path, "reward": reward, "agg": agg, "cost": cost}
            vals = np.array([v if v is not None else np.nan for p in probs for v in p["values"]])
            ys = np.array([c for p in probs for c in p["correct"]], float)
            ok = ~np.isnan(vals)
            row["auc"] = _auc(vals[ok], ys[ok])
            row["ece"] = _ece(vals[ok], ys[ok])
            picks = {}
            for rule, name in (("argmax", "rm"), ("weighted_vote", "weighted")):
                x = [metrics.select_correct(p["correct"], p["values"], p["labels"], rule) for p in probs] + constant
                picks[name] = x
                row[name] = {"acc": float(np.mean(x)), "ci": _ci(x, n_boot, seed),
                             "minus_maj": _diff(x, maj, n_boot, seed), "minus_pass1": _diff(x, pass1, n_boot, seed)}
                if versus_first and first is not None:
                    row[name]["minus_first"] = _diff(x, first[name], n_boot, seed)
            if first is None:
                first = picks
            out_rows.append(row)
    return {"baseline": base, "rows": out_rows, "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95},
            "ids": sorted(common)}  # the scored problems (with `whole`, the rest count as constants)


def _constant_outcomes(whole: str | Path, full: list[dict], scored: list[dict], common: set[str],
                       ids: set[str] | None) -> list[float]:
    """The outcomes (1.0 all right, 0.0 all wrong) of the graded problems of `full` (the
    pool read from `whole`) outside `common`, in pool order; the scored files must have
    been cut from `whole`."""
    by_id = {r["id"]: r for r in full}
    for r in scored:
        w = by_id.get(r["id"])
        if w is None or w.get("config") != r.get("config") or len(w.get("samples") or []) != len(r["samples"]):
            raise ValueError(f"--pool {whole}: the scored files were not cut from it (problem {r['id']} "
                             "differs); pass the pool given to `eval score-pool`")
    out = []
    for r in full:
        if r["id"] in common or (ids is not None and r["id"] not in ids):
            continue
        if is_mixed(r):
            raise ValueError(f"--pool {whole}: problem {r['id']} has right and wrong samples but no scored file "
                             "holds it; rerun `eval score-pool` to finish scoring (it resumes)")
        samples = r.get("samples") or []
        if samples and all(gradable(s) for s in samples):
            out.append(float(samples[0]["verdict"]["correct"]))
    return out


def scorer_cost(rows: Sequence[dict], reward: dict) -> dict:
    """Forward FLOPs per candidate of a scored pool's scorer (``rewards.cost``), over ``rows``.

    FLOPs per token: the ``reward``'s ``flops_per_token`` (written by ``score-pool``); for a
    probe scored before it was recorded, from its backbone's config and the layer read.
    Tokens: the records' ``scorer_tokens`` (counted by the scorer while scoring: prompt and
    solution, every pair for TinyRM); for such an older probe, the pool's prompt + generated
    tokens. Candidates: every sample of the rows. Missing parts give None."""
    fpt, tokens, source = reward.get("flops_per_token"), None, None
    if fpt is None and reward.get("kind") == "probe" and reward.get("backbone") and reward.get("layer"):
        fpt = _probe_flops_per_token(str(reward["backbone"]), int(reward["layer"]))
    if rows and all("scorer_tokens" in r for r in rows):
        tokens, source = sum(int(r["scorer_tokens"]) for r in rows), "scorer"
    elif rows and reward.get("kind") == "probe":
        tokens, source = sum(pool_tokens(r) for r in rows), "pool prompt + generated tokens"
    candidates = sum(len(r["samples"]) for r in rows)
    out = {"flops_per_token": fpt, "tokens": tokens, "tokens_from": source, "candidates": candidates,
           "tokens_per_candidate": round(tokens / candidates, 1) if tokens is not None and candidates else None,
           "flops_per_candidate": None}
    if fpt is not None and tokens is not None and candidates:
        from rewards.cost import flops_per_candidate

        out["flops_per_candidate"] = flops_per_candidate(flops_per_token=fpt, tokens=tokens, candidates=candidates)
    return out


@lru_cache(maxsize=8)
def _probe_flops_per_token(backbone: str, layer: int) -> int | None:
    from rewards.cost import decoder_params_upto, flops_per_token

    try:
        return flops_per_token(decoder_params_upto(backbone, layer))
    except (OSError, ValueError, ImportError) as e:
        log.warning("scorer cost of the probe on %s layer %d unknown (%s); the table shows '-'", backbone, layer, e)
        return None


def _diff(x, y, n_boot, seed) -> dict:
    lo, hi = metrics.paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
    return {"mean": round(float(np.mean(np.asarray(x) - np.asarray(y))), 4), "ci": [round(lo, 4), round(hi, 4)]}


def _auc(s: np.ndarray, y: np.ndarray) -> float | None:
    from rewards.train.probe import auc

    a = auc(s, y)
    return None if a is None else round(a, 4)


def _ece(p: np.ndarray, y: np.ndarray) -> float | None:
    from rewards.train.probe import expected_calibration_error

    if not len(p) or p.min() < 0 or p.max() > 1:
        return None  # values that are not probabilities (log-probs, confidences)
    return round(expected_calibration_error(p, y), 4)


def gflops(cost: dict | None) -> str:
    """The table's cost cell: forward GFLOP per candidate, '-' when unknown."""
    f = (cost or {}).get("flops_per_candidate")
    if f is None:
        return "-"
    return f"{f / 1e9:.3g}" if f < 1e12 else f"{f / 1e9:,.0f}"


def table_markdown(t: dict, command: str | None = None) -> str:
    b = t["baseline"]
    n = b["n"]

    def acc(d):
        return f"{d['acc']:.3f} [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]"

    def diff(d):
        return f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"

    vs = any("minus_first" in r["rm"] for r in t["rows"])
    w = b.get("whole")
    whole = "" if w is None else (f" ({w['scored']} scored; {w['all_right']} all right and {w['all_wrong']} all "
                                  f"wrong count as that outcome under every rule; AUC and ECE over the "
                                  f"{w['scored']})")
    lines = [f"{b['problems']} problems{whole}, N = {n}: pass@1 {acc(b['pass@1'])}, maj@{n} {acc(b[f'maj@{n}'])}, "
             f"pass@{n} {acc(b[f'pass@{n}'])}", "",
             f"| scorer | agg | RM@{n} | weighted@{n} | weighted - maj@{n} | RM - pass@1 | AUC | ECE "
             "| scorer GFLOP / candidate |" + (" RM - first row | weighted - first row |" if vs else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if vs else "")]
    for r in t["rows"]:
        name = r["reward"].get("name") or r["reward"].get("kind")
        model = Path(str(r["reward"].get("model") or "")).name
        if model and model not in name:  # e.g. two ORMs read through the same adapter
            name = f"{name} ({model})"
        lines.append(f"| {name} | {r['agg']} | {acc(r['rm'])} | {acc(r['weighted'])} | "
                     f"{diff(r['weighted']['minus_maj'])} | {diff(r['rm']['minus_pass1'])} | "
                     f"{r['auc'] if r['auc'] is not None else '-'} | {r['ece'] if r['ece'] is not None else '-'} | "
                     f"{gflops(r.get('cost'))} |"
                     + (f" {diff(r['rm']['minus_first']) if 'minus_first' in r['rm'] else '-'} | "
                        f"{diff(r['weighted']['minus_first']) if 'minus_first' in r['weighted'] else '-'} |"
                        if vs else ""))
    if command:
        lines += ["", f"`{command}`"]
    return "\n".join(lines) + "\n"
