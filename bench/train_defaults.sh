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
  # shipped TinyRM (second session): LoRA r 16 + the MLM head transform from scratch, 45 min budget
  $PY cli.py -v train tinyrm --data runs/train/ex.jsonl --out runs/train/tinyrm2 \
    --max-length 384 --batch-size 8 --lr 3e-4 --head-lr 1e-3 --lora-r 16 --lora-alpha 32 \
    --max-pairs-per-problem 4 --eval-every 50 --max-eval-examples 80 --patience 4 \
    --max-steps 300 --max-seconds 2700 --threads 1 --no-progress
fi
if [[ $what == orm || $what == all ]]; then
  # shipped ORM (second session): value head + LoRA r 16 on layers 22-29, 45 min budget
  $PY cli.py -v train orm --data runs/train/ex.jsonl --out runs/train/orm2 \
    --freeze-layers 22 --max-length 512 --batch-size 4 --lr 3e-4 --head-lr 1e-3 --lora-r 16 --lora-alpha 32 \
    --eval-every 40 --max-eval-examples 80 --patience 4 --max-steps 250 --max-seconds 2700 --threads 1 --no-progress
fi
if [[ $what == prm || $what == all ]]; then
  $PY cli.py -v train prm --data runs/train/prmbench.jsonl --out runs/train/prm \
    --freeze-layers 22 --max-length 512 --batch-size 4 --lr 5e-4 --lora-r 8 --lora-alpha 16 \
    --eval-every 20 --max-eval-examples 40 --patience 3 --max-steps 80 --max-seconds 2100 --threads 1 --no-progress
fi
