"""The eval package's plain data, shared by its command lines and its libraries.

    from eval.registry import BENCHES, DEFAULT_AGGS
    parser.add_argument("--bench", choices=BENCHES)

Standard library only (nothing is imported), so `cli.py eval --help` and `cli.py sweep
--help` read it without numpy, torch or a scorer.
"""

from __future__ import annotations

__all__ = ["BENCHES", "DEFAULT_AGGS"]

# scorer bench -> its default file in the shared data folder (formats: eval/scorer_bench.py)
BENCHES = {
    "processbench-gsm8k": "processbench/gsm8k.jsonl",
    "processbench-math": "processbench/math.jsonl",
    "gsm8k-pairs": "gsm8k/example_model_solutions.jsonl",
    "bon-pool": "gsm8k/example_model_solutions.jsonl",
}

# aggregators of step scores a report replays when --agg is not given (sweep, eval pool-table)
DEFAULT_AGGS = ("min", "last", "prod", "mean")
