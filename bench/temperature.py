"""Sampling temperature and token limit for a policy, measured on TRAINING problems.

    python bench/temperature.py --temperatures 0.6,0.8,1.0 --limit 32 --n 8 \
        --reference pools/gsm8k-train256-n8.jsonl.gz

For each temperature, one pool of `--limit` GSM8K-train problems x `--n` samples is
generated with `cli.py pool` (resumable: rerun the same command), one engine at a time,
into `--out-dir`. A temperature that the `--reference` pool was sampled at is not
generated again: its first `--limit` records are used (same problems, seed and settings).
The table, side by side from one run of this script:

- pass@1, maj@n (plain majority over the n samples, ties to the earlier sample),
  expected maj@n/2 over random half-size subsets, and pass@n, with 95% bootstrap intervals
  over problems, and the paired difference of maj@n against the reference temperature;
- mean generated tokens, the share of samples that hit the token limit, and how many of
  those were still graded correct (what a longer limit could buy).

Held-out slices are refused: the temperature is a setting, and settings are chosen on
training problems only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--temperatures {text!r}: give numbers, e.g. 0.6,0.8,1.0") from None


def pool_path(out_dir: Path, dataset: str, limit: int, n: int, t: float, max_tokens: int) -> Path:
    return out_dir / f"{dataset}{limit}-n{n}-t{t:g}-m{max_tokens}.jsonl"


def generate(args, t: float, out: Path) -> None:
    cmd = [sys.executable, "cli.py", "pool", "--dataset", args.dataset, "--limit", str(args.limit),
           "--n", str(args.n), "--temperature", f"{t:g}", "--max-tokens", str(args.max_tokens),
           "--max-num-seqs", str(args.max_num_seqs), "--kv-cache-gib", f"{args.kv_cache_gib:g}",
           "--model", args.model, "--seed", str(args.seed), "--out", str(out)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def per_problem(records: list[dict]) -> dict[str, np.ndarray]:
    """Per-problem accuracies of each measure (lists aligned over problems)."""
    from eval.metrics import answer_labels, expected_at_k, select_correct, subsets

    rng = np.random.default_rng(0)
    rows = {"pass@1": [], "maj@n": [], "maj@n/2": [], "pass@n": []}
    for r in records:
        samples = r["samples"]
        correct = [bool(s["verdict"]["correct"]) for s in samples]
        labels = answer_labels([s.get("answer") for s in samples])
        values = [1.0] * len(samples)
        m = len(samples)
        rows["pass@1"].append(sum(correct) / m)
        rows["maj@n"].append(select_correct(correct, values, labels, "majority"))
        rows["maj@n/2"].append(expected_at_k(correct, values, labels, "majority", subsets(m, max(1, m // 2), 100, rng)))
        rows["pass@n"].append(float(any(correct)))
    return {k: np.asarray(v) for k, v in rows.items()}


def token_stats(records: list[dict]) -> dict:
    samples = [s for r in records for s in r["samples"]]
    capped = [s for s in samples if s["finish_reason"] == "length"]
    wall = sum(r.get("wall_s", 0.0) for r in records)
    tokens = sum(s["generated_tokens"] for s in samples)
    return {
        "mean_tokens": tokens / len(samples),
        "capped_share": len(capped) / len(samples),
        "capped": len(capped),
        "capped_correct": sum(bool(s["verdict"]["correct"]) for s in capped),
        "tok_s": tokens / wall if wall else None,
    }


def load(path: Path, limit: int) -> list[dict]:
    from policies.pool import read_pool

    recs = [r for r in read_pool(path) if r.get("gold") is not None and r["samples"]]
    if len(recs) < limit:
        raise SystemExit(f"{path}: {len(recs)} graded problems, fewer than --limit {limit}; "
                         "rerun to finish the pool, or lower --limit")
    return recs[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--temperatures", type=_floats, default=[0.6, 0.8, 1.0])
    ap.add_argument("--dataset", default="gsm8k-train")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--kv-cache-gib", type=float, default=4.0)
    ap.add_argument("--reference", type=Path, help="an existing pool of the same problems, reused for its temperature")
    ap.add_argument("--out-dir", type=Path, default=Path("reports/temperature"))
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args()

    from policies.datasets import HELDOUT
    from policies.pool import read_pool

    if args.dataset in HELDOUT:
        raise SystemExit(f"--dataset {args.dataset}: a held-out slice; measure settings on training problems "
                         "(e.g. --dataset gsm8k-train)")
    ref_t = None
    if args.reference is not None:
        if not args.reference.exists():
            raise SystemExit(f"--reference {args.reference}: no such pool")
        cfg = read_pool(args.reference)[0]["config"]
        if cfg["data"].get("dataset") != args.dataset or cfg["n"] != args.n \
                or cfg["policy"]["max_tokens"] != args.max_tokens:
            raise SystemExit(f"--reference {args.reference}: sampled on {cfg['data'].get('dataset')} with n "
                             f"{cfg['n']}, max_tokens {cfg['policy']['max_tokens']}; give a pool of the same "
                             "dataset, --n and --max-tokens, or drop --reference")
        ref_t = cfg["policy"]["temperature"]

    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for t in args.temperatures:
        if ref_t is not None and abs(t - ref_t) < 1e-9:
            path = args.reference
        else:
            path = pool_path(args.out_dir, args.dataset, args.limit, args.n, t, args.max_tokens)
            generate(args, t, path)
        recs = load(path, args.limit)
        results[t] = {"pool": str(path), "acc": per_problem(recs), "tokens": token_stats(recs)}

    from eval.metrics import bootstrap_ci, paired_bootstrap

    base = ref_t if ref_t in results else args.temperatures[0]
    print(f"\n{args.dataset}, first {args.limit} problems, n = {args.n}, max_tokens {args.max_tokens}, "
          f"{args.model}; [95% bootstrap over problems]; diff = maj@n minus maj@n at T = {base:g} (paired)\n")
    print("| T | pass@1 | maj@n/2 | maj@n | pass@n | maj@n diff | mean tokens | capped | capped correct | tok/s |")
    print("|---|---|---|---|---|---|---:|---:|---:|---:|")
    table = []
    for t, res in results.items():
        acc, tok = res["acc"], res["tokens"]
        cell = {k: (float(v.mean()), *bootstrap_ci(v)) for k, v in acc.items()}
        d = None
        if t != base:
            diff = acc["maj@n"] - results[base]["acc"]["maj@n"]
            d = (float(diff.mean()), *paired_bootstrap(acc["maj@n"], results[base]["acc"]["maj@n"]))
        fmt = lambda c: f"{c[0]:.3f} [{c[1]:.2f}, {c[2]:.2f}]"  # noqa: E731
        dtxt = "" if d is None else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
        tps = "" if tok["tok_s"] is None else f"{tok['tok_s']:.0f}"
        print(f"| {t:g} | {fmt(cell['pass@1'])} | {fmt(cell['maj@n/2'])} | {fmt(cell['maj@n'])} | "
              f"{fmt(cell['pass@n'])} | {dtxt} | {tok['mean_tokens']:.0f} | {tok['capped_share']:.3f} | "
              f"{tok['capped_correct']}/{tok['capped']} | {tps} |")
        table.append({"temperature": t, "pool": res["pool"], **{k: list(v) for k, v in cell.items()},
                      "maj_diff": d, **tok})
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
