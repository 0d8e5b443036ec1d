#!/usr/bin/env bash
# The clean-terminal check of docs/serve.md / issue "clean terminal": run the commands a user
# runs under a pseudo-terminal (`script`) and under a pipe, and grep the screens for
# third-party output. Starts the SmolLM2 engine (~1 min each). Prints one line per check.
#   bash bench/terminal_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
T=${T:-runs/terminal-check}
rm -rf "$T"; mkdir -p "$T"
NOISE='numa|safetensors|libtcmalloc|set_num_threads|triton|futurewarning|userwarning|\[W[0-9 ]|warning:'
check() {  # name, screen file, log file
  local n; n=$(grep -aciE "$NOISE" "$2")
  echo "$1: $n third-party lines on screen; $(grep -aciE "$NOISE" "$3" 2>/dev/null || echo 0) in $3"
}
script -qc "$PY cli.py search --dataset gsm8k --limit 4 --strategy weighted_majority --reward verifier --n 4 --out $T/search.jsonl" "$T/search.screen" >/dev/null
check "search (pty)" "$T/search.screen" "$T/search.log"
tail -3 "$T/search.screen" | tr -d '\r'
$PY cli.py search --dataset gsm8k --limit 4 --strategy weighted_majority --reward verifier --n 4 --out $T/pipe.jsonl > "$T/pipe.screen" 2>&1
check "search (pipe)" "$T/pipe.screen" "$T/pipe.log"
echo "escape codes in the piped screen: $(grep -c $'\x1b' "$T/pipe.screen")"; grep '^search: ' "$T/pipe.screen" | head -3
script -qc "$PY cli.py sweep $T/search.jsonl --out $T/sweep" "$T/sweep.screen" >/dev/null
check "sweep (pty)" "$T/sweep.screen" "$T/sweep/sweep.log"
script -qc "$PY cli.py -v search --dataset gsm8k --limit 1 --n 2 --out $T/verbose.jsonl" "$T/verbose.screen" >/dev/null
echo "verbose (-v): $(grep -aciE "$NOISE" "$T/verbose.screen") third-party lines on screen (expected > 0)"
# serve: start under a pseudo-terminal, ask once, stop
script -qc "timeout 240 $PY cli.py serve --strategy majority --n 2 --port 8391" "$T/serve.screen" >/dev/null &
for _ in $(seq 120); do curl -s -o /dev/null http://127.0.0.1:8391/v1/models && break; sleep 2; done
curl -s http://127.0.0.1:8391/v1/chat/completions -H 'Content-Type: application/json' \
  -d '{"model": "majority-n2", "messages": [{"role": "user", "content": "What is 2 + 3?"}], "max_tokens": 64}' \
  | head -c 200; echo
pkill -INT -f "cli.py serve --strategy majority --n 2 --port 8391"; sleep 3; wait
check "serve (pty)" "$T/serve.screen" runs/logs/serve.log
