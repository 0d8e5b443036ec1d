"""bench/step_calibration.py: step labels from ProcessBench first errors and from pool verdicts,
ECE / Brier / the 0.5 threshold by hand, one-line refusals."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import bench_script

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "step_calibration.py"


def _module():
    return bench_script("step_calibration")


def test_processbench_labels_are_one_before_the_first_error():
    mod = _module()
    rows = {"per_row": [{"label": 2, "scores": [0.9, 0.8, 0.3, 0.2]},  # first error at step 2
                        {"label": -1, "scores": [0.7, 0.6]},            # a correct solution
                        {"label": 0, "scores": [0.1]}]}                 # wrong from the first step
    assert mod.processbench_units(rows) == [([0.9, 0.8, 0.3, 0.2], [1, 1, 0, 0]), ([0.7, 0.6], [1, 1]), ([0.1], [0])]
    with pytest.raises(ValueError, match="no per_row"):
        mod.processbench_units({"f1": 0.2})


def test_pool_labels_are_the_sample_verdict_and_ungraded_samples_are_left_out():
    mod = _module()
    rows = [{"samples": [{"scores": [0.2, 0.4], "verdict": {"correct": True, "status": "correct"}},
                         {"scores": [0.6], "verdict": {"correct": False, "status": "wrong"}},
                         {"scores": [0.5], "verdict": {"correct": None, "status": "unparsable_gold"}},
                         {"scores": [0.5], "verdict": {"correct": False, "status": "invalid_gold"}},
                         {"scores": [], "verdict": {"correct": True}}]},
            {"samples": [{"scores": [0.3], "verdict": None}]}]  # nothing graded: no unit
    assert mod.pool_units(rows) == [([0.2, 0.4, 0.6], [1, 1, 0])]


def test_calibration_figures_by_hand():
    mod = _module()
    # bin 0.2-0.3: scores 0.2, 0.25 with labels 1, 0 -> mean 0.225 vs 0.5, share 2/4
    # bin 0.8-0.9: 0.8 (label 1); bin 0.9-1: 1.0 (label 1; the top edge stays in the last bin)
    units = [([0.2, 0.8], [1, 1]), ([0.25, 1.0], [0, 1])]
    got = mod.calibration(units, n_boot=200)
    assert got["units"] == 2 and got["steps"] == 4 and got["positive_share"] == pytest.approx(0.75)
    assert got["ece"] == pytest.approx(0.5 * 0.275 + 0.25 * 0.2 + 0.25 * 0.0)
    # the bootstrap's per-bin table bins as the project's ECE does (rewards.train.probe)
    from rewards.train.probe import expected_calibration_error

    assert got["ece"] == pytest.approx(expected_calibration_error([0.2, 0.8, 0.25, 1.0], [1, 1, 0, 1]))
    assert got["brier"] == pytest.approx((0.8 ** 2 + 0.2 ** 2 + 0.25 ** 2 + 0.0) / 4)
    assert got["auc"] == pytest.approx(2 / 3)  # the negative 0.25 sits above the positive 0.2 only
    assert got["below_half"] == {"label_1": pytest.approx(1 / 3), "label_0": pytest.approx(1.0)}
    assert got["ece_ci"][0] <= got["ece_ci"][1]
    bins = {tuple(b["bin"]): b for b in got["reliability"]}
    assert bins[(0.2, 0.3)]["steps"] == 2 and bins[(0.2, 0.3)]["observed"] == pytest.approx(0.5)
    assert bins[(0.9, 1.0)]["steps"] == 1 and bins[(0.5, 0.6)]["mean_score"] is None
    # a perfectly calibrated set has ECE 0 in every resample
    flat = mod.calibration([([0.5, 0.5], [1, 0])] * 3, n_boot=50)
    assert flat["ece"] == pytest.approx(0.0) and flat["ece_ci"] == [pytest.approx(0.0), pytest.approx(0.0)]
    with pytest.raises(ValueError, match="not probabilities"):
        mod.calibration([([-1.2, 0.5], [0, 1])])
    with pytest.raises(ValueError, match="no scored step"):
        mod.calibration([])


def test_cli_reads_a_processbench_result_and_refuses_other_json_in_one_line(tmp_path):
    good = tmp_path / "pb.json"
    good.write_text(json.dumps({"bench": "processbench-gsm8k", "scorer": {"name": "s"},
                                "per_row": [{"label": 1, "scores": [0.9, 0.2]}, {"label": -1, "scores": [0.7]}]}))
    out = tmp_path / "rep" / "cal"
    run = subprocess.run([sys.executable, str(SCRIPT), str(good), "--bootstrap", "50", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    saved = json.loads(out.with_suffix(".json").read_text())["inputs"][str(good)]
    assert saved["steps"] == 3 and saved["scorer"] == "s" and saved["labels"].startswith("process")
    assert "| pb.json | s | process | 2 | 3 |" in out.with_suffix(".md").read_text()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"bench": "gsm8k-pairs"}))
    for path, msg in ((other, "not a ProcessBench result"), (tmp_path / "none.json", "no such file")):
        run = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
        assert run.returncode != 0 and msg in run.stderr and "Traceback" not in run.stderr
