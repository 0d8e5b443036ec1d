"""Train probe scorers (rewards.probe) on a sample pool: extract once, fit in seconds.

    python cli.py train probe-features --pool pools/gsm8k-train256-n8.jsonl.gz \\
        --model qwen2.5-coder-0.5b --layers 12,18,24 --out runs/features/gsm8k-train
    python cli.py train probe --features runs/features/gsm8k-train --granularity step \\
        --out rewards/defaults/probe-prm-qwen0.5b
    # a probe trained before its card had a threshold (the head is not touched)
    python cli.py train probe-threshold --probe runs/probe/probe-prm --features runs/probe/features-train

1. ``extract_pool_features``: every sample of the pool goes once through the frozen
   policy (``rewards.probe.PolicyFeatures``); the hidden states at its step ends, for
   each requested layer, are stored in float16 shards with the sample's verdict.
   Shards are written as problems finish, so a rerun resumes.
2. ``select_and_fit``: the layer and the L2 strength are chosen by cross-validation
   over problems (grouped K-fold on the training pool only: held-out pools never
   choose anything), then the head is refit on all training samples.
3. ``fit_threshold``: the flagging threshold a first-error benchmark (ProcessBench)
   uses, fixed on the same training pool from out-of-fold step scores (each sample
   scored by heads that never saw its problem): the threshold t that maximises the
   harmonic mean of "a wrong-answer sample has a step below t" and "a right-answer
   sample has none" (``choose_flag_threshold``). It is stored in the card
   (``threshold``); ``eval scorer --bench processbench-*`` uses it when no threshold
   is given.

Labels are outcomes: every step of a sample carries the sample's verdict (for the
step-level head, a value model of P(correct at the end | prefix)). Samples the verifier
could not grade are left out.

Monte Carlo step labels (``attach_step_labels``; ``cli.py train data-steps --pool`` writes
them for the pool's own samples): for a labelled sample, step i's target becomes the share
of right answers among the k rollouts from its prefix and the sample itself (one more
rollout from that prefix): (k * soft_i + outcome) / (k + 1). The last step keeps the
outcome. Unlabelled samples keep their outcome on every step, so the two estimate the
same quantity, the labelled ones with k + 1 rollouts instead of one.

First-error step targets (``targets="first-error"``): the same records say instead where
a sample's first error is (Math-Shepherd's hard estimate, ``mc_first_error``); its steps
before it get 1 and the rest 0, a right-answer sample 1 throughout, and the pool's
unlabelled samples leave the fit (they are still scored out of fold). The head then
estimates P(this step and those before it are right), as the step-labelled solutions'
targets do, instead of P(the policy ends right), which is low on every step of a hard
problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policies.paths import write_json
from rewards.probe import PROBE_FORMAT, PolicyFeatures, ProbeHead

from .build import sample_verdict

log = logging.getLogger(__name__)

__all__ = ["Features", "extract_pool_features", "load_features", "merge_features", "fit_logistic", "select_and_fit",
           "save_probe", "expected_calibration_error", "oof_step_scores", "choose_flag_threshold", "first_error_rows",
           "fit_threshold", "write_threshold", "attach_step_labels", "mc_first_error", "STEP_TARGETS",
           "step_targets_of"]

FEATURES_FORMAT = "tts-math-probe-features/1"
KV_CACHE_TOKENS = 1 << 16  # prefix cache of an extraction: a shard's prompts (float32, 0.5B: ~1 GiB)
STEP_TARGETS = ("value", "first-error")  # what Monte Carlo step labels become (attach_step_labels)


def _label(sample: dict) -> int | None:
    ok = sample_verdict(sample)
    return None if ok is None else int(ok)


def extract_pool_features(pool_path: str | Path, out_dir: str | Path, *, model: str, layers: Sequence[int],
                          prompt_style: str | None = None, problems_per_shard: int = 8,
                          token_budget: int = 8192, exclude: Sequence[str] = (),
                          kv_cache_tokens: int = KV_CACHE_TOKENS, on_shard=None) -> dict:
    """Hidden states of every pool sample at its step ends; resumable (see module docstring).

    exclude: problem ids to leave out (e.g. held-out ids when the pool mixes splits).
    Returns the manifest."""
    from policies.pool import read_pool

    want = {"format": FEATURES_FORMAT, "pool": str(pool_path), "model": model, "layers": list(layers)}
    man, done = _open_manifest(Path(out_dir), want)
    skip = set(exclude)
    todo = [r for r in read_pool(pool_path) if r["id"] not in done and r["id"] not in skip]
    if not todo:
        return man
    style = prompt_style or todo[0]["config"]["policy"].get("prompt_style", "gsm8k")
    groups = []
    for r in todo:
        rows = []
        for j, s in enumerate(r["samples"]):
            lab = _label(s)
            if lab is not None and s.get("steps"):
                rows.append((r["problem"], s["steps"], lab, s.get("answer"), j, None))
        groups.append((r["id"], rows))
    return _extract(Path(out_dir), man, groups, model=model, layers=layers, style=style,
                    backbone_sha256=todo[0]["config"]["policy"].get("model_sha256"),
                    problems_per_shard=problems_per_shard, token_budget=token_budget,
                    kv_cache_tokens=kv_cache_tokens, on_shard=on_shard)


STEPS_GROUP_PREFIX = "steps-"  # group id prefix of step-labelled solutions (``step_record_groups``)


def step_record_groups(records: Sequence[dict], *, exclude_problem=None) -> list[tuple[str, list]]:
    """Step-labelled solutions (``kind: "steps"`` records of ``cli.py train data-import``:
    PRMBench, PRM800K, Math-Shepherd) as feature groups: the records of one question (its
    ``split_key``, else its problem text: PRMBench's original process and its modified
    copies) form one group, so cross-validation never splits them. A record's outcome label
    is 1 when every step label is >= 0.5 (no error), its step targets are its labels.
    exclude_problem(text) -> True leaves a record out (held-out problems)."""
    groups: dict[str, list] = {}
    for r in records:
        if r.get("kind") != "steps" or not r.get("steps"):
            continue
        labels = [float(x) for x in r.get("labels") or []]
        if len(labels) != len(r["steps"]) or any(not 0.0 <= x <= 1.0 for x in labels):
            raise ValueError(f"step record {r.get('problem_id')!r}: {len(r['steps'])} steps but labels "
                             f"{r.get('labels')!r}; give one label in [0, 1] per step")
        if exclude_problem is not None and exclude_problem(r["problem"]):
            continue
        key = str(r.get("split_key") or r["problem"])
        gid = STEPS_GROUP_PREFIX + hashlib.sha1(key.encode()).hexdigest()[:16]
        rows = groups.setdefault(gid, [])
        rows.append((r["problem"], list(r["steps"]), int(all(x >= 0.5 for x in labels)), "", len(rows), labels))
    return list(groups.items())


def extract_step_features(steps_path: str | Path, out_dir: str | Path, *, model: str, layers: Sequence[int],
                          prompt_style: str = "gsm8k", problems_per_shard: int = 8, token_budget: int = 8192,
                          exclude_problem=None, kv_cache_tokens: int = KV_CACHE_TOKENS, on_shard=None) -> dict:
    """Hidden states at the step ends of step-labelled solutions (``step_record_groups``),
    stored with their step labels as the step targets; resumable as ``extract_pool_features``.
    prompt_style: the prompt the states are read under (the policy pool's, so the two
    feature sets join). Returns the manifest."""
    from .data import read_jsonl

    want = {"format": FEATURES_FORMAT, "pool": str(steps_path), "model": model, "layers": list(layers)}
    man, done = _open_manifest(Path(out_dir), want)
    groups = [g for g in step_record_groups(read_jsonl(steps_path), exclude_problem=exclude_problem)
              if g[0] not in done]
    if not groups and not man["done"]:
        raise ValueError(f"{steps_path}: no step-labelled records (kind 'steps' with one label per step); write "
                         "them with `cli.py train data-import`")
    if not groups:
        return man
    from policies.models import model_fingerprint

    man["source"] = "step labels"
    return _extract(Path(out_dir), man, groups, model=model, layers=layers, style=prompt_style,
                    backbone_sha256=model_fingerprint(model), problems_per_shard=problems_per_shard,
                    token_budget=token_budget, kv_cache_tokens=kv_cache_tokens, on_shard=on_shard)


def _open_manifest(out: Path, want: dict) -> tuple[dict, set]:
    """A features folder's manifest (new, or the one of a run to resume: it must be of
    the same source, model and layers) and the groups already done."""
    out.mkdir(parents=True, exist_ok=True)
    man_path = out / "manifest.json"
    if man_path.is_file():
        man = json.loads(man_path.read_text())
        if {k: man.get(k) for k in want} != want:
            raise ValueError(f"{out}: holds features of {({k: man.get(k) for k in want})}; pass another --out "
                             f"for {want}")
    else:
        man = {**want, "shards": [], "done": [], "tokens": 0, "seconds": 0.0}
    return man, set(man["done"])


def _extract(out: Path, man: dict, groups: list, *, model: str, layers: Sequence[int], style: str,
             backbone_sha256: str | None, problems_per_shard: int, token_budget: int, kv_cache_tokens: int,
             on_shard) -> dict:
    """Run the groups [(id, [(problem, steps, label, answer, sample index, step targets or
    None)])] through the frozen policy, `problems_per_shard` groups a shard; the manifest
    names a shard only once it is whole (a rerun resumes after it). With kv_cache_tokens > 0
    the samples of one prompt share its forward pass (``PolicyFeatures``' prefix cache,
    cleared after each shard); the states are the same to float16."""
    man_path = out / "manifest.json"
    man["prompt_style"] = style
    man["backbone_sha256"] = backbone_sha256
    feats = PolicyFeatures(model, layers=layers, prompt_style=style, token_budget=token_budget,
                           kv_cache_tokens=kv_cache_tokens)
    for b in range(0, len(groups), problems_per_shard):
        chunk = groups[b : b + problems_per_shard]
        meta = [(gid, *row) for gid, rows in chunk for row in rows]
        t0, tok0, reused0 = time.perf_counter(), feats.tokens_run, feats.kv_reused_tokens
        arrays = feats([m[1] for m in meta], [m[2] for m in meta]) if meta else []
        feats.clear_cache()  # the next shard's problems are others
        dt = time.perf_counter() - t0
        n_steps = np.array([a.shape[1] for a in arrays], np.int32)
        extra = {}
        if any(m[6] is not None for m in meta):
            extra["target"] = np.array([x for m in meta for x in m[6]], np.float32)
        name = f"shard-{len(man['shards']):05d}.npz"
        np.savez_compressed(
            out / name,
            feats=(np.concatenate(arrays, axis=1) if arrays else np.zeros((len(layers), 0, feats.hidden_size)))
            .astype(np.float16),
            n_steps=n_steps, label=np.array([m[3] for m in meta], np.int8),
            pid=np.array([m[0] for m in meta]), sample=np.array([m[5] for m in meta], np.int32),
            answer=np.array([str(m[4]) for m in meta]), **extra)
        man["shards"].append(name)
        man["done"] += [gid for gid, _rows in chunk]
        man["tokens"] += feats.tokens_run - tok0
        man["tokens_from_cache"] = man.get("tokens_from_cache", 0) + feats.kv_reused_tokens - reused0
        man["seconds"] = round(man["seconds"] + dt, 2)
        write_json(man_path, man)  # the manifest names a shard only once it is whole
        log.info("features %s: %d groups, %.0f tok/s", out, len(man["done"]), man["tokens"] / max(man["seconds"], 1e-9))
        if on_shard:
            on_shard(man)
    return man


@dataclass
class Features:
    """Step-end hidden states of a pool: feats[l] is [total_steps, d] for layers[l]."""

    layers: list[int]
    feats: np.ndarray  # [L, S, d] float16
    n_steps: np.ndarray  # [N] steps per sample
    label: np.ndarray  # [N] 0/1 outcome
    pid: np.ndarray  # [N] problem id
    sample: np.ndarray  # [N] index of the sample in its pool record
    answer: np.ndarray  # [N] extracted answer (str)
    manifest: dict
    step_target: np.ndarray | None = None  # [S] float step targets (step-labelled solutions, Monte Carlo
    # labels: attach_step_labels; NaN: a step left out of the fit); None: every step carries its sample's outcome

    @property
    def step_owner(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.n_steps)), self.n_steps)

    @property
    def first_step(self) -> np.ndarray:
        return np.cumsum(self.n_steps) - self.n_steps

    @property
    def last_step(self) -> np.ndarray:
        return np.cumsum(self.n_steps) - 1

    def layer(self, layer: int) -> np.ndarray:
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not extracted; have {self.layers}")
        return self.feats[self.layers.index(layer)]


def load_features(path: str | Path | Sequence[str | Path]) -> Features:
    """The features in one folder, or several folders' joined (``merge_features``)."""
    if not isinstance(path, str | Path):
        paths = list(path)
        if not paths:
            raise ValueError("no features folder given")
        return merge_features([load_features(p) for p in paths])
    path = Path(path)
    man_path = path / "manifest.json"
    if not man_path.is_file():
        raise FileNotFoundError(f"{path}: no manifest.json; extract with `cli.py train probe-features`")
    man = json.loads(man_path.read_text())
    parts = [np.load(path / s) for s in man["shards"]]
    parts = [p for p in parts if len(p["n_steps"])]
    if not parts:
        raise ValueError(f"{path}: no gradable samples")
    cat = {k: np.concatenate([p[k] for p in parts], axis=1 if k == "feats" else 0)
           for k in ("feats", "n_steps", "label", "pid", "sample", "answer")}
    target = None
    if any("target" in p for p in parts):  # step-labelled solutions (extract_step_features)
        target = np.concatenate([p["target"].astype(np.float64) if "target" in p
                                 else np.repeat(p["label"], p["n_steps"]).astype(np.float64) for p in parts])
    return Features(layers=list(man["layers"]), manifest=man, step_target=target, **cat)


def merge_features(parts: Sequence[Features]) -> Features:
    """Several pools' features as one training set (say GSM8K and MATH training pools).

    Same backbone, and the layers every part holds; problem ids must not repeat across
    parts (cross-validation groups by them). The manifest lists the parts' pools and
    folders; ``prompt_styles`` maps each pool to the prompt its states were read under
    (each pool's own), and ``prompt_style`` is the first part's: the one a scorer built
    from the card formats new problems with unless told otherwise."""
    if len(parts) == 1:
        return parts[0]
    mans = [f.manifest for f in parts]
    for m in mans[1:]:
        for key in ("model", "backbone_sha256"):
            if m.get(key) != mans[0].get(key):
                raise ValueError(f"features of different backbones cannot be joined: {key} {mans[0].get(key)!r} "
                                 f"({mans[0].get('pool')}) vs {m.get(key)!r} ({m.get('pool')})")
    layers = [layer for layer in parts[0].layers if all(layer in f.layers for f in parts[1:])]
    if not layers:
        raise ValueError("the features folders share no layer: extract them with the same --layers")
    seen: set = set()
    for f, m in zip(parts, mans, strict=True):
        ids = set(f.pid.tolist())
        if seen & ids:
            raise ValueError(f"problem ids repeat across features folders (e.g. {sorted(seen & ids)[0]!r} in "
                             f"{m.get('pool')}): join features of different pools")
        seen |= ids
    feats = np.concatenate([np.stack([f.layer(layer) for layer in layers]) for f in parts], axis=1)
    cat = {k: np.concatenate([getattr(f, k) for f in parts]) for k in ("n_steps", "label", "pid", "sample", "answer")}
    if any(f.step_target is not None for f in parts):  # step labels of some parts, outcomes of the others
        cat["step_target"] = np.concatenate([f.step_target if f.step_target is not None
                                             else f.label[f.step_owner].astype(np.float64) for f in parts])
    pools = [m.get("pool") for m in mans]
    man = {**mans[0], "layers": layers, "pool": pools, "path": [m.get("path") for m in mans],
           "prompt_styles": {str(pl): m.get("prompt_style", "gsm8k") for pl, m in zip(pools, mans, strict=True)},
           "tokens": sum(int(m.get("tokens") or 0) for m in mans),
           "seconds": sum(float(m.get("seconds") or 0) for m in mans),
           "shards": None, "done": None, "parts": len(parts),
           "step_label_sources": [m.get("pool") for m in mans if m.get("source") == "step labels"]}
    return Features(layers=layers, feats=feats, manifest=man, **cat)


def design(f: Features, layer: int, granularity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, owner): rows are every step end (step) or each sample's last step (outcome)."""
    x = f.layer(layer)
    if granularity == "step":
        owner = f.step_owner
    elif granularity == "outcome":
        owner = np.arange(len(f.n_steps))
        x = x[f.last_step]
    else:
        raise ValueError(f"granularity must be 'step' or 'outcome', got {granularity!r}")
    if granularity == "step" and f.step_target is not None:
        y = f.step_target.astype(np.float64)
        keep = ~np.isnan(y)  # first-error targets leave the pool's unlabelled samples out
        return x[keep], y[keep], owner[keep]
    return x, f.label[owner].astype(np.float64), owner


def attach_step_labels(f: Features, records: Sequence[dict], *, source: str | Sequence[str] | None = None,
                       targets: str = "value") -> dict:
    """Monte Carlo step labels (``steps`` records of ``cli.py train data-steps --pool`` on
    the features' own pool) as the step targets of the samples they label. ``targets``
    (module docstring): "value", (k * soft_i + outcome) / (k + 1), the last step the
    outcome, unlabelled samples keeping their outcome; "first-error", 1 before the
    sample's first error and 0 from it, unlabelled pool samples left out of the fit (NaN).
    Records are matched by problem id and ``sample`` index; one whose step count or
    outcome differs from the features' sample is an error (labels of another pool).
    Records of problems the features lack (held-out ones, another pool's) are counted and
    skipped. Sets ``f.step_target`` and ``f.manifest["step_labels"]``; returns that
    summary."""
    if targets not in STEP_TARGETS:
        raise ValueError(f"step targets must be one of {', '.join(STEP_TARGETS)}; got {targets!r}")
    start = f.first_step
    target = f.step_target.copy() if f.step_target is not None else f.label[f.step_owner].astype(np.float64)
    if targets == "first-error":  # the pool's own samples count only where a label says where they went wrong
        pool_row = ~np.char.startswith(f.pid.astype(str), STEPS_GROUP_PREFIX)
        target[pool_row[f.step_owner]] = np.nan
    done, unmatched, soft_sum, soft_n, ks = set(), 0, 0.0, 0, set()
    for key, i, r in _matched(records, f.pid.tolist(), f.sample.tolist()):
        if i is None:
            unmatched += 1
            continue
        labels, k = [float(x) for x in r["labels"]], int(r.get("rollouts") or 0)
        if k < 1:
            raise ValueError(f"step labels of problem {key[0]} sample {key[1]}: no 'rollouts' count; pass Monte "
                             "Carlo records (`cli.py train data-steps --pool`)")
        if len(labels) != int(f.n_steps[i]) or bool(r.get("correct")) != bool(f.label[i]):
            raise ValueError(f"step labels of problem {key[0]} sample {key[1]}: {len(labels)} steps, "
                             f"correct={r.get('correct')}, but the features hold {int(f.n_steps[i])} steps, "
                             f"correct={bool(f.label[i])}; the labels are of another pool than "
                             f"{f.manifest.get('pool')}")
        y = float(f.label[i])
        if targets == "first-error":
            _hard_labels(key, r)
            first = mc_first_error(r)
            mixed = [1.0] * len(labels) if first < 0 else [1.0] * first + [0.0] * (len(labels) - first)
        else:
            mixed = [(k * soft + y) / (k + 1) for soft in labels[:-1]] + [y]
        target[start[i]: start[i] + len(mixed)] = mixed
        done.add(key)
        soft_sum += sum(labels[:-1])
        soft_n += len(labels) - 1
        ks.add(k)
    if not done:
        raise ValueError(f"no step label matches a sample of {f.manifest.get('pool')} (problem id and sample "
                         "index); label this pool's samples with `cli.py train data-steps --pool`")
    f.step_target = target
    summary = {"source": source, "samples": len(done), "of_samples": int(len(f.n_steps)),
               "problems": len({p for p, _ in done}), "prefixes": soft_n, "rollouts": sorted(ks),
               "mean_prefix_label": round(soft_sum / soft_n, 4) if soft_n else None,
               "unmatched_records": unmatched, "targets": targets,
               "target": "(k * Monte Carlo share + outcome) / (k + 1) on labelled samples' prefixes; outcome "
                         "elsewhere" if targets == "value" else
                         "1 before the labelled sample's first error (Math-Shepherd's hard estimate), 0 from it, 1 "
                         "throughout a right-answer sample; unlabelled pool samples left out of the fit"}
    f.manifest["step_labels"] = summary
    log.info("probe: Monte Carlo step labels (%s targets) on %d of %d samples (%d problems, %d prefixes)", targets,
             len(done), len(f.n_steps), summary["problems"], soft_n)
    return summary


def step_targets_of(card: dict) -> str:
    """How a probe card's Monte Carlo step labels became targets ("value" on cards written
    before there was a choice)."""
    return _targets((card.get("training") or {}).get("step_labels"))


def _targets(step_labels: dict | None) -> str:
    """The ``targets`` of an ``attach_step_labels`` summary (a card's or a manifest's)."""
    return (step_labels or {}).get("targets", "value")


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, *, weight: np.ndarray | None = None,
                 max_iter: int = 200) -> ProbeHead:
    """L2-regularised logistic regression on standardised features (L-BFGS, float64).

    weight: per-row weights (rows of one sample share its weight so each sample counts
    once whatever its step count)."""
    import torch

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / scale)
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64))
    wt = torch.ones_like(yt) if weight is None else torch.from_numpy(np.asarray(weight, dtype=np.float64))
    wt = wt / wt.sum()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    prior = float((wt * yt).sum().clamp(1e-6, 1 - 1e-6))
    b = torch.tensor(math.log(prior / (1 - prior)), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = xt @ w + b
        loss = (wt * torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")).sum()
        loss = loss + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return ProbeHead(weight=w.detach().numpy().copy(), bias=float(b.detach()), mean=mean, scale=scale)


def _sample_weights(owner: np.ndarray) -> np.ndarray:
    counts = np.bincount(owner)
    return 1.0 / counts[owner]


def log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(np.average(ll, weights=w))


def auc(scores: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the ROC curve: P(a positive scores above a negative), ties counted half;
    None when one class is absent."""
    scores, y = np.asarray(scores, float), np.asarray(y)
    pos, neg = scores[y == 1], np.sort(scores[y == 0])
    if not len(pos) or not len(neg):
        return None
    below = np.searchsorted(neg, pos, side="left")
    below_or_tied = np.searchsorted(neg, pos, side="right")
    return float(((below + below_or_tied) / 2).sum() / (len(pos) * len(neg)))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of |mean p - mean y| x bin share."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def grouped_folds(groups, k: int, seed: int) -> np.ndarray:
    """Fold index per row: every row of one group (problem) in the same fold; groups are
    dealt to folds in a seeded random order."""
    keys = [str(g) for g in (groups.tolist() if isinstance(groups, np.ndarray) else groups)]
    uniq = sorted(set(keys))
    perm = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {u: int(perm[i] % k) for i, u in enumerate(uniq)}
    return np.array([fold_of[g] for g in keys], dtype=int)


def select_and_fit(f: Features, *, granularity: str, layers: Sequence[int] | None = None,
                   l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1), folds: int = 5, seed: int = 0) -> dict:
    """Choose (layer, l2) by grouped K-fold log-loss on these features, refit on all.

    Returns {"head", "layer", "l2", "cv": [{layer, l2, log_loss, auc, ece}], ...}."""
    layers = list(layers or f.layers)
    fold_of_sample = grouped_folds(f.pid, folds, seed)
    rows = []
    for layer in layers:
        x, y, owner = design(f, layer, granularity)
        w = _sample_weights(owner)
        fo = fold_of_sample[owner]
        for l2 in l2_grid:
            p = np.zeros(len(y))
            for k in range(folds):
                tr, te = fo != k, fo == k
                if not te.any() or len(set(y[tr].tolist())) < 2:
                    continue
                p[te] = fit_logistic(x[tr], y[tr], l2, weight=w[tr]).probs(x[te])
            last = np.r_[owner[1:] != owner[:-1], True]  # each sample's last row
            rows.append({"layer": layer, "l2": l2, "log_loss": log_loss(p, y, w),
                         "auc_outcome": auc(p[last], y[last]), "ece": expected_calibration_error(p, y)})
            log.info("probe cv %s layer %d l2 %g: log-loss %.4f, AUC %.3f", granularity, layer, l2,
                     rows[-1]["log_loss"], rows[-1]["auc_outcome"] or float("nan"))
    best = min(rows, key=lambda r: r["log_loss"])
    x, y, owner = design(f, best["layer"], granularity)
    t0 = time.perf_counter()
    head = fit_logistic(x, y, best["l2"], weight=_sample_weights(owner))
    fit_s = time.perf_counter() - t0
    try:
        threshold = fit_threshold(f, layer=best["layer"], l2=best["l2"], granularity=granularity, folds=folds,
                                  seed=seed)
    except ValueError as e:  # e.g. a fold whose complement holds one outcome only: no threshold, the head stands
        log.warning("probe: no flagging threshold stored (%s)", e)
        threshold = None
    return {"head": head, "layer": best["layer"], "l2": best["l2"], "cv": rows, "folds": folds, "seed": seed,
            "fit_seconds": round(fit_s, 2), "rows": int(len(y)), "samples": int(len(f.label)),
            "fit_samples": int(len(np.unique(owner))),
            "problems": int(len(set(f.pid.tolist()))), "positive_share": float(f.label.mean()),
            "threshold": threshold}


# ---------------------------------------------------------------- the flagging threshold

FIRST_ERROR_CRITERION = ("ProcessBench F1 on the step-labelled training solutions: harmonic mean of the share of "
                         "erroneous solutions whose first step scored below t is their first wrong step and the share "
                         "of error-free solutions with no step below t")
THRESHOLD_CRITERION = ("balanced F1: harmonic mean of the share of wrong-answer samples with some step scored "
                       "below t and the share of right-answer samples with none")


def oof_step_scores(f: Features, *, layer: int, l2: float, granularity: str, folds: int = 5,
                    seed: int = 0) -> list[np.ndarray]:
    """Out-of-fold scores of every step of every sample: fold k's steps are scored by a
    head fitted, as ``select_and_fit`` fits it (same rows, weights and L2), on the other
    folds' problems only. An outcome head scores each step end as the end of a prefix,
    as the ProcessBench bench scores an outcome scorer's prefixes."""
    fold = grouped_folds(f.pid, folds, seed)  # per sample
    x, y, owner = design(f, layer, granularity)
    w, fo = _sample_weights(owner), fold[owner]
    x_all, fo_all = f.layer(layer), fold[f.step_owner]
    p = np.full(len(fo_all), np.nan)
    for k in range(folds):
        tr, te = fo != k, fo_all == k
        if not te.any():
            continue
        if len(set(y[tr].tolist())) < 2:
            raise ValueError(f"out-of-fold scores: the training folds without fold {k} hold one outcome only; "
                             "pass fewer --folds or a pool with both right and wrong samples")
        p[te] = fit_logistic(x[tr], y[tr], l2, weight=w[tr]).probs(x_all[te])
    return np.split(p, f.first_step[1:])


def choose_flag_threshold(step_scores: Sequence[Sequence[float]], correct: Sequence[bool]) -> dict:
    """The threshold t that best separates wrong-answer from right-answer samples by the
    rule a first-error benchmark applies ("some step < t" flags the sample).

    Criterion (``THRESHOLD_CRITERION``): the harmonic mean of the flagged share of
    wrong-answer samples and the unflagged share of right-answer samples. It is
    ProcessBench's F1 (accuracy on erroneous x accuracy on correct solutions) at the
    level of whole samples, the most a pool without step labels can tell, and it does
    not depend on the share of right answers (22.6% in the training pool, about half
    in ProcessBench); plain F1 of the "wrong" class would flag everything there.

    Candidates are the distinct per-sample minima and +inf (with t = a candidate, the
    samples whose minimum is below it are flagged); ties go to the lowest candidate; the
    value returned is the midpoint between the winner and the candidate below it (the
    same flags, not on a training score). Samples without steps are left out."""
    mins = np.array([float(np.min(s)) for s in step_scores if len(s)])
    ok = np.array([bool(c) for s, c in zip(step_scores, correct, strict=True) if len(s)])
    if not ok.any() or ok.all():
        raise ValueError(f"choosing a flagging threshold needs right and wrong samples; got {int(ok.sum())} right "
                         f"of {len(ok)}")
    cands = np.append(np.unique(mins), np.inf)
    wrong_sorted, right_sorted = np.sort(mins[~ok]), np.sort(mins[ok])
    flagged_wrong = np.searchsorted(wrong_sorted, cands, side="left") / len(wrong_sorted)
    unflagged_right = 1.0 - np.searchsorted(right_sorted, cands, side="left") / len(right_sorted)
    den = flagged_wrong + unflagged_right
    bf1 = np.where(den > 0, 2 * flagged_wrong * unflagged_right / np.where(den > 0, den, 1.0), 0.0)
    i = int(np.argmax(bf1))
    t = float(cands[i])
    if i > 0 and math.isfinite(t):
        t = float((cands[i - 1] + cands[i]) / 2)
    n_flag_wrong = flagged_wrong[i] * len(wrong_sorted)
    n_flag = n_flag_wrong + (1 - unflagged_right[i]) * len(right_sorted)
    precision = n_flag_wrong / n_flag if n_flag else 0.0
    f1_wrong = 2 * precision * flagged_wrong[i] / (precision + flagged_wrong[i]) if precision + flagged_wrong[i] else 0.0
    return {"value": t, "balanced_f1": float(bf1[i]), "wrong_flagged": float(flagged_wrong[i]),
            "right_unflagged": float(unflagged_right[i]), "f1_wrong_class": float(f1_wrong),
            "samples": int(len(ok)), "right": int(ok.sum())}


def first_error_rows(f: Features) -> tuple[np.ndarray, list[int]]:
    """The step-labelled solutions among ``f``'s samples (``step_record_groups``: group ids
    with ``STEPS_GROUP_PREFIX``) and each one's first-error label: the index of its first
    step whose target is below 0.5, -1 when it has none. Empty without step targets."""
    if f.step_target is None:
        return np.zeros(0, dtype=int), []
    rows = np.flatnonzero(np.char.startswith(f.pid.astype(str), STEPS_GROUP_PREFIX))
    targets = np.split(f.step_target, f.first_step[1:])
    return rows, [next((i for i, y in enumerate(targets[r]) if y < 0.5), -1) for r in rows]


def _matched(records: Sequence[dict], pid: Sequence, sample: Sequence[int]):
    """(problem id and sample index, feature row or None, record) for each Monte Carlo
    ``steps`` record, matched to the feature rows by problem id and sample index. A sample
    labelled twice (two files that overlap) is an error: it would count twice."""
    index = {(str(p), int(j)): i for i, (p, j) in enumerate(zip(pid, sample, strict=True))}
    seen = set()
    for r in records:
        if r.get("kind") == "steps" and "sample" in r:
            key = (str(r["problem_id"]), int(r["sample"]))
            if key in seen:
                raise ValueError(f"step labels of problem {key[0]} sample {key[1]} appear twice; pass each sample's "
                                 "Monte Carlo labels once (label more samples with `cli.py train data-steps "
                                 "--skip-labelled`)")
            seen.add(key)
            yield key, index.get(key), r


def mc_first_error_rows(f: Features, records: Sequence[dict]) -> tuple[np.ndarray, list[int]]:
    """``mc_first_errors`` on the samples of features ``f``."""
    return mc_first_errors(records, f.pid.tolist(), f.sample.tolist(), f.n_steps.tolist(), f.label.tolist())


def _hard_labels(key: tuple, record: dict) -> list:
    """A Monte Carlo ``steps`` record's ``hard_labels``, or one line naming the sample and the fix."""
    hard = record.get("hard_labels")
    if hard is None:
        raise ValueError(f"step labels of problem {key[0]} sample {key[1]}: no 'hard_labels'; pass Monte Carlo "
                         "records (`cli.py train data-steps --pool`)")
    return hard


def mc_first_error(record: dict) -> int:
    """A Monte Carlo ``steps`` record's first error, Math-Shepherd's hard estimate: -1 for a
    right-answer sample; else its first step whose prefix has no rollout reaching the gold
    answer (``hard_labels`` 0), or its last step."""
    hard = record["hard_labels"]
    return -1 if record.get("correct") else next((j for j, h in enumerate(hard) if not h), len(hard) - 1)


def mc_first_errors(records: Sequence[dict], pid: Sequence, sample: Sequence[int], n_steps: Sequence[int],
                    right: Sequence) -> tuple[np.ndarray, list[int]]:
    """First-error labels of the policy's own samples from Monte Carlo step labels
    (``steps`` records of ``cli.py train data-steps --pool`` on the features' pool),
    Math-Shepherd's hard estimate: a right-answer sample is error-free (-1: it reached the
    gold answer from every prefix of it); a wrong-answer sample's first error is its first
    step whose prefix has no rollout reaching the gold answer (``hard_labels`` 0; the last
    step's label is the sample's own verdict, so there is always one). Records are matched
    by problem id and ``sample`` index; one whose step count or verdict differs from the
    features' sample is an error (labels of another pool); records of problems the
    features lack are skipped. The samples are given by their problem ids, sample indices,
    step counts and verdicts, one entry per feature row; returns (feature rows, labels) in
    record order."""
    rows, labels = [], []
    for key, i, r in _matched(records, pid, sample):
        if i is None:
            continue
        hard = _hard_labels(key, r)
        if len(hard) != int(n_steps[i]) or bool(r.get("correct")) != bool(right[i]):
            raise ValueError(f"step labels of problem {key[0]} sample {key[1]}: {len(hard)} steps, "
                             f"correct={r.get('correct')}, but the features' sample has {int(n_steps[i])} steps, "
                             f"correct={bool(right[i])}; pass labels made from the features' own pool")
        rows.append(i)
        labels.append(mc_first_error(r))
    return np.asarray(rows, dtype=int), labels


def fit_threshold(f: Features, *, layer: int, l2: float, granularity: str, folds: int = 5, seed: int = 0,
                  relative: bool = False, start: int = 0, first_errors: Sequence[dict] | None = None) -> dict:
    """The card's ``threshold`` entry, chosen on the out-of-fold step scores of these
    (training) features, with how it was chosen:

    - a step probe whose features hold step-labelled solutions with both erroneous and
      error-free ones (PRMBench, ``--steps``): the threshold that maximises ProcessBench's
      own F1 on those solutions (``FIRST_ERROR_CRITERION``, ``rewards.flagging.choose_rule``
      with ratio 0);
      with ``relative``, the threshold and a drop ratio together (``ratio``: a step below
      ratio x the previous step's score is flagged too, from step ``start`` on;
      ``rewards.flagging.choose_rule``);
      with ``first_errors`` (Monte Carlo ``steps`` records of the features' own pool,
      ``mc_first_error_rows``), those samples are a second set of first-error solutions and
      the rule maximises the mean of the two sets' F1s;
    - otherwise ``choose_flag_threshold`` on whole samples (``THRESHOLD_CRITERION``)."""
    from rewards.flagging import (
        RATIOS,
        check_start,
        choose_rule,
        drop_clause,
        first_error,
        processbench_scores,
        scores_by_set,
    )

    check_start(start)
    if start and not relative:
        raise ValueError("a drop ratio's first step applies with a drop ratio (--relative)")
    scores = oof_step_scores(f, layer=layer, l2=l2, granularity=granularity, folds=folds, seed=seed)
    rows, labels = first_error_rows(f)
    sets = None
    if first_errors is not None:
        mc_rows, mc_labels = mc_first_error_rows(f, first_errors)
        if not len(mc_rows):
            raise ValueError("the Monte Carlo first-error records match no sample of these features; pass labels made "
                             "from the features' own pool (`cli.py train data-steps --pool`)")
        sets = ["step-labelled solutions"] * len(rows) + ["policy samples (Monte Carlo)"] * len(mc_rows)
        rows, labels = np.concatenate([rows, mc_rows]), list(labels) + mc_labels
    data = (f"out-of-fold step scores (heads refitted with the card's layer and L2 on {folds} folds grouped by "
            f"problem, seed {seed}), each sample scored by a head that never saw its problem")
    if granularity == "step" and any(y >= 0 for y in labels) and any(y < 0 for y in labels):
        per = [scores[r] for r in rows]
        t, ratio, obj = choose_rule(per, labels, RATIOS if relative else (0.0,), start=start, sets=sets)
        got = processbench_scores(labels, [first_error(s, t, ratio, start) for s in per])
        log.info("probe threshold %s: %.4f, drop ratio %g from step %d (first-error F1 %.3f on %d step-labelled "
                 "training solutions: %.1f%% of erroneous located, %.1f%% of error-free not flagged)", granularity,
                 t, ratio, start, got["f1"], len(rows), 100 * got["error_acc"], 100 * got["correct_acc"])
        rule = "a step is flagged when its score < value" + (drop_clause("ratio", start) if relative else "")
        out = {"value": float(t), **({"ratio": float(ratio)} if relative else {}),
               **({"ratio_start": start} if relative and start else {}), "first_error_f1": got["f1"],
               "error_acc": got["error_acc"], "correct_acc": got["correct_acc"], "solutions": len(rows),
               "erroneous": got["n_error"], "criterion": FIRST_ERROR_CRITERION, "rule": rule,
               "data": "training data only: the step-labelled solutions' " + data,
               "pool": f.manifest.get("pool"), "folds": folds, "seed": seed}
        if sets is not None:
            per_set = scores_by_set(labels, [first_error(p, t, ratio, start) for p in per], sets)
            out.update({"criterion": FIRST_ERROR_CRITERION + "; the mean over two sets of solutions",
                        "mean_first_error_f1": obj, "sets": per_set})
        return out
    if relative:
        raise ValueError("a drop ratio is fitted on step-labelled solutions (erroneous and error-free); these "
                         "features have none: add a `cli.py train probe-features --steps` folder")
    got = choose_flag_threshold(scores, f.label.astype(bool).tolist())
    log.info("probe threshold %s: %.4f (balanced F1 %.3f: %.1f%% of wrong samples flagged, %.1f%% of right ones "
             "not)", granularity, got["value"], got["balanced_f1"], 100 * got["wrong_flagged"],
             100 * got["right_unflagged"])
    return {**got, "criterion": THRESHOLD_CRITERION, "rule": "a step is flagged when its score < value",
            "data": "training pool only: " + data,
            "pool": f.manifest.get("pool"), "folds": folds, "seed": seed}


def save_probe(out_dir: str | Path, fit: dict, *, granularity: str, features: Features, command: str | None = None,
               name: str | None = None) -> Path:
    """Write head.npz and probe.json (the model card: data, budget, CV metrics, command)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fit["head"].save(out / "head.npz")
    man = features.manifest
    card = {
        "format": PROBE_FORMAT, "name": name or out.name, "granularity": granularity,
        "backbone": man["model"], "backbone_sha256": man.get("backbone_sha256"),
        "layer": fit["layer"], "prompt_style": man.get("prompt_style", "gsm8k"),
        "training": {
            "pool": man["pool"], "features": man.get("path"), "problems": fit["problems"],
            "samples": fit["samples"], "rows": fit["rows"], "positive_share": round(fit["positive_share"], 4),
            **({"fit_samples": fit["fit_samples"]} if fit.get("fit_samples", fit["samples"]) != fit["samples"]
               else {}),
            "l2": fit["l2"], "cv_folds": fit["folds"], "cv": fit["cv"],
            "extraction_tokens": man.get("tokens"), "extraction_seconds": man.get("seconds"),
            "extraction_tok_s": round(man["tokens"] / man["seconds"], 1) if man.get("seconds") else None,
            "fit_seconds": fit["fit_seconds"],
            "labels": _labels_text(man, granularity),
            "cv_seed": fit.get("seed"),
        },
        "command": command,
    }
    if man.get("step_labels") and granularity == "step":
        card["training"]["step_labels"] = man["step_labels"]
    if _first_error_sources(man):
        card["training"]["step_label_sources"] = _first_error_sources(man)
    if man.get("prompt_styles"):  # joined pools: the prompt each pool's states were read under
        card["training"]["prompt_styles"] = man["prompt_styles"]
    if fit.get("threshold") is not None:
        card["threshold"] = fit["threshold"]
    write_json(out / "probe.json", card)
    digest = hashlib.sha256((out / "head.npz").read_bytes()).hexdigest()
    log.info("probe saved to %s (head sha256 %s)", out, digest[:12])
    return out


def _first_error_sources(man: dict) -> list:
    """The step-labelled solution files among the features' sources (extract_step_features)."""
    return list(man.get("step_label_sources") or ([man["pool"]] if man.get("source") == "step labels" else []))


def _labels_text(man: dict, granularity: str) -> str:
    parts = ["outcome (verifier verdict of the whole sample)"]
    if granularity == "step" and man.get("step_labels"):
        parts.append("Monte Carlo step labels on some samples" if _targets(man["step_labels"]) == "value"
                     else "Monte Carlo first errors as step targets on the labelled samples, the pool's other "
                          "samples left out of the step fit")
    if _first_error_sources(man):
        parts.append("per-step labels of step-labelled solutions (" + ", ".join(map(str, _first_error_sources(man)))
                     + (") as step targets" if granularity == "step" else "): outcome = no step labelled wrong"))
    return "; ".join(parts)


def _same_pool(a, b) -> bool:
    """Pool names of a card and of features agree: the same paths in the same order, a
    gzipped pool (``x.jsonl.gz``) naming the same pool as ``x.jsonl``."""
    def norm(x):
        return [str(p).removesuffix(".gz") for p in (x if isinstance(x, list) else [x])]

    return norm(a) == norm(b)


def write_threshold(probe_dir: str | Path, features: str | Path | Features, *, folds: int | None = None,
                    seed: int | None = None, command: str | None = None, relative: bool = False, start: int = 0,
                    first_errors: Sequence[dict] | None = None, step_labels: Sequence[dict] | None = None,
                    step_label_source: str | Sequence[str] | None = None) -> dict:
    """Fix (or refix) the flagging threshold of a trained probe from its training
    features, without touching the head: the card's layer, L2 and granularity, folds
    and seed from the card unless given; ``relative`` fits a drop ratio with it
    (``fit_threshold``) from step ``start`` on; ``first_errors``: Monte Carlo step labels
    of the pool's samples as a second first-error set; ``step_labels``: the Monte Carlo
    step labels the probe was trained with, attached here as the card's step targets say
    (``step_label_source``: their files, for the record). The features must be those of
    the card's training pool and backbone (a held-out pool never chooses a threshold)."""
    from rewards.probe import is_probe_dir

    probe_dir = Path(probe_dir)
    if not is_probe_dir(probe_dir):
        raise FileNotFoundError(f"{probe_dir}: not a probe directory (probe.json + head.npz); train one with "
                                "`cli.py train probe`")
    card_path = probe_dir / "probe.json"
    card = json.loads(card_path.read_text())
    f = features if isinstance(features, Features) else load_features(features)
    if step_labels is not None:
        attach_step_labels(f, step_labels, source=step_label_source, targets=step_targets_of(card))
    tr = card.get("training", {})
    man = f.manifest
    for what, ours, theirs in (("pool", tr.get("pool"), man.get("pool")), ("backbone", card.get("backbone"),
                                                                          man.get("model"))):
        if not (_same_pool(ours, theirs) if what == "pool" else ours == theirs):
            raise ValueError(f"{probe_dir}: trained on {what} {ours!r}, but these features are of {theirs!r}; "
                             f"pass the features of the probe's training pool (`cli.py train probe-features`)")
    if tr.get("step_labels") and not man.get("step_labels"):
        raise ValueError(f"{probe_dir}: trained with Monte Carlo step labels ({tr['step_labels'].get('source')}); "
                         "pass the same files with --step-labels")
    if man.get("step_labels") and step_targets_of(card) != _targets(man["step_labels"]):
        raise ValueError(f"{probe_dir}: trained with {step_targets_of(card)} step targets, but these features carry "
                         f"{_targets(man['step_labels'])} ones; attach the labels as the card says")
    folds = int(folds or tr.get("cv_folds") or 5)
    seed = int(seed if seed is not None else (tr.get("cv_seed") or 0))
    th = fit_threshold(f, layer=int(card["layer"]), l2=float(tr["l2"]), granularity=card["granularity"],
                       folds=folds, seed=seed, relative=relative, start=start, first_errors=first_errors)
    if command:
        th["command"] = command
    card["threshold"] = th
    write_json(card_path, card)
    return th
