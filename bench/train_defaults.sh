#!/usr/bin/env bash
# The commands that trained the shipped defaults in rewards/defaults/{tinyrm,orm,prm}
# (CPU, 1 torch thread each, on a shared 2-core machine; budgets in --max-seconds).
# Usage: bash bench/train_defaults.sh [tinyrm|orm|prm|data]   (no argument: all)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
D=${TTS_MATH_DATA:-../shared/data}
mkdir -p runs/train
what=${1:-all}

if [[ $what == data || $what == all ]]; then
  # GSM8K example solutions of test problems 500..1318 (0..499 stay unseen for evaluation)
  $PY cli.py train data-import gsm8k-examples --input $D/gsm8k/example_model_solutions.jsonl --out runs/train/ex.jsonl
  # PRMBench: PRM800K solutions and their error-injected copies (MATH train problems)
  $PY cli.py train data-import prmbench --input $D/prm_step_labels/prmbench_train --out runs/train/prmbench.jsonl
fi
if [[ $what == tinyrm || $what == all ]]; then
  $PY cli.py -v train tinyrm --data runs/train/ex.jsonl --out runs/train/tinyrm \
    --max-length 384 --batch-size 8 --lr 5e-4 --head-lr 1e-3 --lora-r 8 --lora-alpha 16 \
    --max-pairs-per-problem 4 --eval-every 20 --max-eval-examples 40 --patience 3 \
    --max-steps 120 --max-seconds 2100 --threads 1 --no-progress
fi
if [[ $what == orm || $what == all ]]; then
  $PY cli.py -v train orm --data runs/train/ex.jsonl --out runs/train/orm \
    --freeze-layers 22 --max-length 512 --batch-size 4 --lr 5e-4 --head-lr 1e-3 --lora-r 8 --lora-alpha 16 \
    --eval-every 20 --max-eval-examples 40 --patience 3 --max-steps 80 --max-seconds 2100 --threads 1 --no-progress
fi
if [[ $what == prm || $what == all ]]; then
  $PY cli.py -v train prm --data runs/train/prmbench.jsonl --out runs/train/prm \
    --freeze-layers 22 --max-length 512 --batch-size 4 --lr 5e-4 --lora-r 8 --lora-alpha 16 \
    --eval-every 20 --max-eval-examples 40 --patience 3 --max-steps 80 --max-seconds 2100 --threads 1 --no-progress
fi
