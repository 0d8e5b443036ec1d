#!/usr/bin/env bash
# The probe route on the whole training pool (GSM8K train + MATH train), scored on both held-out
# pools. Resumable step by step: rerun the same command to continue.
#   bash bench/probe_joint.sh
# 1. features of every training pool (one folder each, problems of the held-out slices left out);
# 2. PRM (step ends) and ORM (answer end) heads on the joined features, layer and L2 chosen by
#    problem-grouped CV on the training pools only; `train probe` also writes the threshold chosen
#    on out-of-fold training scores into the card, before any held-out scoring;
# 3. features of each held-out pool (scoring only; nothing is chosen on them);
# 4. each held-out pool scored by both heads, and one scorer table per held-out dataset;
# 5. the step probe on ProcessBench GSM8K and MATH at its card's threshold.
# Engine-bound steps (1 and 3) are a forward pass of the 0.5B up to the highest layer read.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRAIN=${TRAIN:-"pools/gsm8k-train-n8.jsonl pools/math-train-spread-n8.jsonl"}
HELDOUT=${HELDOUT:-"pools/gsm8k-heldout200-n16.jsonl pools/math500-heldout100-n16.jsonl"}
LAYERS=${LAYERS:-8,12,16,20}
OUT=${OUT:-runs/probe-joint}
mkdir -p "$OUT" reports

stem() { basename "$1" | sed -e 's/\.gz$//' -e 's/\.jsonl$//'; }
unpacked() {  # the pool's .jsonl, unpacked from the committed .gz when absent
  local p=$1
  if [[ ! -f "$p" && -f "$p.gz" ]]; then gunzip -k "$p.gz"; fi
  [[ -f "$p" ]] || { echo "probe_joint: $p (or $p.gz) not found; generate it with the command in docs/pools.md" >&2; exit 2; }
  echo "$p"
}

train_feats=()
for p in $TRAIN; do
  p=$(unpacked "$p")
  f="$OUT/features-$(stem "$p")"
  $PY cli.py train probe-features --pool "$p" --model qwen2.5-coder-0.5b --layers "$LAYERS" --out "$f"
  train_feats+=("$f")
done

for k in prm:step orm:outcome; do
  name=${k%%:*} gran=${k##*:}
  if [[ ! -f "$OUT/probe-$name/probe.json" ]]; then
    $PY cli.py train probe --features "${train_feats[@]}" --granularity "$gran" --out "$OUT/probe-$name"
  fi
done

for p in $HELDOUT; do
  p=$(unpacked "$p")
  s=$(stem "$p")
  f="$OUT/features-$s"
  $PY cli.py train probe-features --pool "$p" --model qwen2.5-coder-0.5b --layers "$LAYERS" --allow-heldout --out "$f"
  for k in prm orm; do
    $PY cli.py eval score-pool --reward probe --scorer-model "$OUT/probe-$k" --features "$f" \
        --pool "$p" --out "$OUT/$s-probe-$k.jsonl"
  done
  $PY cli.py eval pool-table "$OUT/$s-probe-prm.jsonl" "$OUT/$s-probe-orm.jsonl" --out "reports/probe-joint-$s"
done

for b in gsm8k math; do
  r="reports/probe-joint-processbench-$b.json"
  [[ -f "$r" ]] || $PY cli.py eval scorer --reward probe --scorer-model "$OUT/probe-prm" --bench "processbench-$b" \
      --batch-size 16 --out "$r"
done
