"""eval/within_problem.py (figures by hand) and bench/within_problem.py (the report)."""

import subprocess
import sys
from pathlib import Path

import pytest

from eval import within_problem as wp

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "within_problem.py"


def test_within_problem_figures_by_hand():
    rows = [
        # right samples 0, 1 (answer A), wrong 2, 3 (answers B, B): pairs (0,2) (0,3) (1,2) (1,3) ordered
        # right 1 + 0 + 0.5 (tie) + 0 -> 0.375; the top pick (value 0.9) is sample 3, answer B, share 2/4
        {"correct": [True, True, False, False], "values": [0.8, 0.3, 0.3, 0.9], "labels": [0, 0, 1, 1]},
        # right 0, wrong 1-3 (answers B, B, C): pairs 0.5 (tie) + 1 + 1 -> 2.5 / 3; the top pick (sample 1, answer B) ties with sample 0
        {"correct": [True, False, False, False], "values": [0.7, 0.7, 0.1, 0.2], "labels": [0, 1, 1, 2]},
    ]
    got = wp.within_problem(rows)
    assert got["problems"] == 2 and got["mixed_problems"] == 2
    assert got["within_problem_auc"] == pytest.approx((0.375 + 2.5 / 3) / 2)
    assert got["top_pick_answer_share"] == pytest.approx((0.5 + 0.25) / 2)  # argmax: the first of the tie
    assert got["mean_answer_share"] == pytest.approx((0.5 + (0.25 + 0.5 + 0.5 + 0.25) / 4) / 2)
    assert got["top_ties"] == pytest.approx(0.5)
    # a problem whose samples are all right or all wrong counts in no column: scoring a pool whole or
    # only its mixed problems gives the same figures
    constant = [{"correct": [False] * 4, "values": [0.5, 0.5, 0.1, 0.2], "labels": [0, 1, 1, 1]},
                {"correct": [True] * 2, "values": [0.1, 0.9], "labels": [0, 1]}]
    whole = wp.within_problem(rows + constant)
    assert whole["problems"] == 4 and {k: v for k, v in whole.items() if k != "problems"} == \
        {k: v for k, v in got.items() if k != "problems"}
    with pytest.raises(ValueError, match="no problem with both right and wrong samples"):
        wp.within_problem(constant)


def test_within_problem_refuses_an_unscored_pool_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.jsonl.gz")], capture_output=True, text=True)
    assert run.returncode != 0 and "no such pool file" in run.stderr and "Traceback" not in run.stderr


def test_versus_first_pairs_the_problems_both_pools_share():
    first = {"a": 0.5, "b": 0.75, "c": 1.0}
    other = {"a": 0.75, "b": 0.75, "d": 0.0}  # "c" and "d" are in one pool only
    got = wp.versus(first, other)
    assert got["problems"] == 2 and got["mean"] == pytest.approx(0.125)
    assert got["ci"][0] <= 0.125 <= got["ci"][1]
    with pytest.raises(ValueError, match="no mixed problem in common"):
        wp.versus({"a": 0.5}, {"b": 0.5})
    rows = [{"id": "x", "correct": [True, False], "values": [0.9, 0.1], "labels": [0, 1]},
            {"id": "y", "correct": [True, True], "values": [0.2, 0.1], "labels": [0, 0]}]
    assert wp.problem_aucs(rows) == {"x": 1.0}
