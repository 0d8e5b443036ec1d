"""Compress a pool for committing and write its summary beside it.

    python bench/pool_summary.py pools/gsm8k-train256-n8.jsonl --target 256

Writes POOL.gz (deterministic gzip: no name, mtime 0) and POOL-without-.jsonl.summary.json:
pass@1, pass@n, tokens, generated tok/s over the records' wall time, the gz sha256,
whether the pool holds all `--target` problems, the latest command (the one that resumes
it: pools resume), every command that wrote records with their problem counts, and the
engine dtypes that made them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pool", type=Path, help="plain .jsonl pool written by `cli.py pool`")
    ap.add_argument("--target", type=int, required=True, help="problems the pool is meant to hold")
    args = ap.parse_args()
    from policies.pool import read_pool
    from search.pool import pool_summary

    if args.pool.suffix != ".jsonl":
        raise SystemExit(f"{args.pool}: pass the plain .jsonl pool")
    rows = read_pool(args.pool)
    gz = args.pool.with_suffix(".jsonl.gz")
    with open(args.pool, "rb") as src, open(gz, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    digest = hashlib.sha256(gz.read_bytes()).hexdigest()
    wall = sum(r.get("wall_s", 0.0) for r in rows)  # each record holds its share of its batch's wall time
    commands = Counter(r.get("command") for r in rows)  # a pool grows by resumes: each command, in order
    dtypes = Counter((r.get("versions") or {}).get("dtype", "not recorded") for r in rows)
    s = pool_summary(rows, complete=len(rows) >= args.target, target_problems=args.target,
                     command=rows[-1].get("command"), identity=rows[0]["config"],
                     commands=[{"command": c, "problems": k} for c, k in commands.items()],
                     dtypes=dict(dtypes),
                     sampling_wall_s=round(wall, 1),
                     generated_tok_s=round(sum(x["generated_tokens"] for r in rows for x in r["samples"]) / wall, 1)
                     if wall else None,
                     gz_sha256=digest)
    if not s["complete"]:
        s["note"] = (f"partial: {len(rows)} of {args.target} problems; resume with the command (gunzip -k the "
                     f".gz to {args.pool} first)")
    out = args.pool.with_suffix("").with_suffix(".summary.json")
    out.write_text(json.dumps(s, indent=1) + "\n")
    print(json.dumps({k: s[k] for k in ("problems", "samples", "pass@1", "pass@n", "generated_tok_s", "complete")}))
    print(f"{gz} sha256 {digest}\n{out}")


if __name__ == "__main__":
    main()
