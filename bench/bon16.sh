#!/usr/bin/env bash
# The number that matters for a trained scorer: best-of-16 and weighted vote with it, against
# majority vote, pass@1 (a random sample) and pass@16 (oracle), on GSM8K test problems that no
# training data contains (the first 64; training used test problems 500..1318 and MATH train).
#
# 1. one pool: 16 samples per problem from the default policy at T = 0.7 (resumable);
# 2. every scorer ranks the same pool (`eval scorer --bench bon-pool`), bootstrap 95% intervals.
#
# Usage: [LIMIT=64] bash bench/bon16.sh [KIND ...]    (default: prm orm tinyrm)
#   SCORER_DIR_<KIND>=path  scores with that checkpoint instead of the shipped default
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
POOL=${POOL:-runs/train/pool-gsm8k64-n16.jsonl}
OUT=${OUT:-bench/train_results}
mkdir -p "$OUT" "$(dirname "$POOL")"

LIMIT=${LIMIT:-64}
$PY cli.py search --strategy majority --reward none --n 16 --dataset gsm8k --limit "$LIMIT" \
    --temperature 0.7 --seed 0 --quiet --out "$POOL"

kinds=${*:-prm orm tinyrm}
for kind in $kinds; do
  var=SCORER_DIR_${kind^^}
  model=${!var:-}
  agg=min; [[ $kind != prm ]] && agg=last   # outcome scorers give one score: last == min
  label=$kind${model:+-$(basename "$model")}
  $PY cli.py eval scorer --reward "$kind" ${model:+--scorer-model "$model"} --bench bon-pool \
      --data "$POOL" --limit "$LIMIT" --agg $agg --out "$OUT/bon16-$label.json"
done
