#!/usr/bin/env bash
# Held-out evaluation of trained scorers with the eval benches (docs/eval.md).
# GSM8K-pairs rows are the first problems of GSM8K test (all < 500: never in training);
# ProcessBench-GSM8K is never in training either.
# Usage: bash bench/train_eval.sh LABEL [TINYRM_DIR ORM_DIR PRM_DIR]
#   no dirs: the kind's default (rewards/defaults/..., untrained while that folder is empty)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
label=$1; tin=${2:-}; orm=${3:-}; prm=${4:-}
N=${N:-60}
out=runs/train/eval; mkdir -p $out
m() { [[ -n $1 ]] && echo "--scorer-model $1" || true; }
$PY cli.py eval scorer --reward tinyrm $(m "$tin") --bench gsm8k-pairs --limit $N --out $out/$label-tinyrm-pairs.json
$PY cli.py eval scorer --reward orm $(m "$orm") --bench gsm8k-pairs --limit $N --agg last --out $out/$label-orm-pairs.json
$PY cli.py eval scorer --reward prm $(m "$prm") --bench gsm8k-pairs --limit $N --agg min --out $out/$label-prm-pairs.json
$PY cli.py eval scorer --reward prm $(m "$prm") --bench processbench-gsm8k --limit $N --out $out/$label-prm-processbench.json
