"""bench/within_problem.py: within-problem AUC and the top pick's answer share, by hand."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "within_problem.py"


def _module():
    spec = importlib.util.spec_from_file_location("within_problem", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_within_problem_figures_by_hand():
    rows = [
        # right samples 0, 1 (answer A), wrong 2, 3 (answers B, B): pairs (0,2) (0,3) (1,2) (1,3) ordered
        # right 1 + 0 + 0.5 (tie) + 0 -> 0.375; the top pick (value 0.9) is sample 3, answer B, share 2/4
        {"correct": [True, True, False, False], "values": [0.8, 0.3, 0.3, 0.9], "labels": [0, 0, 1, 1]},
        # all wrong: no AUC; top pick sample 0 ties with sample 1 (answer shares 1/4 and 3/4)
        {"correct": [False] * 4, "values": [0.5, 0.5, 0.1, 0.2], "labels": [0, 1, 1, 1]},
    ]
    got = _module().within_problem(rows)
    assert got["problems"] == 2 and got["mixed_problems"] == 1
    assert got["within_problem_auc"] == pytest.approx(0.375)
    assert got["top_pick_answer_share"] == pytest.approx((0.5 + 0.25) / 2)
    assert got["mean_answer_share"] == pytest.approx((0.5 + (0.25 + 3 * 0.75) / 4) / 2)
    assert got["top_ties"] == pytest.approx(0.5)


def test_within_problem_refuses_an_unscored_pool_in_one_line(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.jsonl.gz")], capture_output=True, text=True)
    assert run.returncode != 0 and "no such pool file" in run.stderr and "Traceback" not in run.stderr


def test_versus_first_pairs_the_problems_both_pools_share():
    mod = _module()
    first = {"a": 0.5, "b": 0.75, "c": 1.0}
    other = {"a": 0.75, "b": 0.75, "d": 0.0}  # "c" and "d" are in one pool only
    got = mod.versus(first, other)
    assert got["problems"] == 2 and got["mean"] == pytest.approx(0.125)
    assert got["ci"][0] <= 0.125 <= got["ci"][1]
    with pytest.raises(ValueError, match="no mixed problem in common"):
        mod.versus({"a": 0.5}, {"b": 0.5})
    rows = [{"id": "x", "correct": [True, False], "values": [0.9, 0.1], "labels": [0, 1]},
            {"id": "y", "correct": [True, True], "values": [0.2, 0.1], "labels": [0, 0]}]
    assert mod.problem_aucs(rows) == {"x": 1.0}
