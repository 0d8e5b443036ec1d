#!/usr/bin/env bash
# The probe route of docs/training.md end to end, resumable step by step (rerun to continue):
# features of the training pool -> PRM and ORM heads (CV on the training pool only) ->
# features of the held-out pool -> scored held-out pools -> the scorer table.
#   TRAIN=pools/gsm8k-train256-n8.jsonl HELDOUT=pools/gsm8k-heldout200-n16.jsonl bash bench/probe_pipeline.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRAIN=${TRAIN:-pools/gsm8k-train256-n8.jsonl}
HELDOUT=${HELDOUT:-pools/gsm8k-heldout200-n16.jsonl}
LAYERS=${LAYERS:-8,12,16}
OUT=${OUT:-runs/probe}
mkdir -p "$OUT" reports
$PY cli.py train probe-features --pool "$TRAIN" --model qwen2.5-coder-0.5b --layers "$LAYERS" --out "$OUT/features-train"
$PY cli.py train probe --features "$OUT/features-train" --granularity step --out "$OUT/probe-prm"
$PY cli.py train probe --features "$OUT/features-train" --granularity outcome --out "$OUT/probe-orm"
# held-out states, for scoring only: nothing is chosen on them
$PY cli.py train probe-features --pool "$HELDOUT" --model qwen2.5-coder-0.5b --layers "$LAYERS" --allow-heldout \
    --out "$OUT/features-heldout"
for k in prm orm; do
  $PY cli.py eval score-pool --reward probe --scorer-model "$OUT/probe-$k" --features "$OUT/features-heldout" \
      --pool "$HELDOUT" --out "$OUT/heldout-probe-$k.jsonl"
done
$PY cli.py eval pool-table "$OUT/heldout-probe-prm.jsonl" "$OUT/heldout-probe-orm.jsonl" --out reports/probe-heldout
