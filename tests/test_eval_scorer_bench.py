"""eval.scorer_bench and `cli.py eval`: ProcessBench metric and honest thresholds,
pair accuracy with ties, best-of-n pools, the shared data files, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval import metrics as M
from eval import scorer_bench as B
from search.testing import FakeScorer

# ---------------------------------------------------------------- ProcessBench metric


def test_first_error():
    assert M.first_error([0.9, 0.4, 0.1], 0.5) == 1
    assert M.first_error([0.9, 0.8], 0.5) == -1
    assert M.first_error([0.5], 0.5) == -1  # strictly below
    assert M.first_error([], 0.5) == -1


def test_processbench_scores_hand_computed():
    labels = [2, 0, 1, -1, -1, -1]
    preds = [2, 1, 1, -1, 0, -1]
    r = M.processbench_scores(labels, preds)
    assert r["error_acc"] == pytest.approx(2 / 3) and r["correct_acc"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3) and (r["n_error"], r["n_correct"]) == (3, 3)
    r = M.processbench_scores([1, -1], [-1, 0])
    assert r["f1"] == 0.0
    r = M.processbench_scores([1, 1], [1, 1])
    assert r["correct_acc"] is None and r["f1"] is None
    with pytest.raises(ValueError, match="align"):
        M.processbench_scores([1], [])


def test_f1_curve_matches_direct_computation():
    ss = [[0.9, 0.2, 0.8], [0.9, 0.8], [0.3, 0.9], [0.6, 0.6, 0.1], [0.7]]
    ys = [1, -1, 0, 2, -1]
    ts = [0.05, 0.2, 0.25, 0.3, 0.5, 0.6, 0.65, 0.8, 0.85, 0.95, math.inf]
    curve = M.processbench_f1_curve(ss, ys, ts)
    for t, f in zip(ts, curve, strict=True):
        direct = M.processbench_scores(ys, [M.first_error(s, t) for s in ss])["f1"]
        assert f == pytest.approx(direct), t
    t, f1 = M.choose_threshold(ss, ys)
    assert f1 == pytest.approx(max(curve))
    assert M.processbench_scores(ys, [M.first_error(s, t) for s in ss])["f1"] == pytest.approx(f1)
    # the threshold sits between calibration scores, not on one
    assert t not in {x for s in ss for x in s}


def test_f1_curve_matches_direct_computation_on_random_solutions_with_ties():
    rng = np.random.default_rng(4)
    ss = [np.round(rng.random(int(rng.integers(0, 6))), 1).tolist() for _ in range(60)]  # ties, empty solutions
    ys = [int(rng.integers(-1, len(s) + 1)) for s in ss]  # some labels past the last step: never matched
    ts = sorted({x for s in ss for x in s} | {0.05, 0.55, math.inf})
    curve = M.processbench_f1_curve(ss, ys, ts)
    for t, f in zip(ts, curve, strict=True):
        assert f == pytest.approx(M.processbench_scores(ys, [M.first_error(s, t) for s in ss])["f1"]), t


def test_first_error_with_a_drop_ratio():
    assert M.first_drop([0.9, 0.8, 0.3, 0.2], 0.5) == 2  # 0.3 < 0.5 * 0.8
    assert M.first_drop([0.4, 0.39], 0.5) == 0  # before the first step the score is 1
    assert M.first_drop([0.9, 0.8], 0.0) == -1 and M.first_drop([], 0.5) == -1
    assert M.first_error([0.9, 0.8, 0.3, 0.2], 0.25, 0.5) == 2  # the drop comes before the threshold's flag
    assert M.first_error([0.9, 0.2, 0.15], 0.25, 0.1) == 1  # the threshold's comes first
    assert M.first_error([0.9, 0.2, 0.15], 0.1, 0.0) == -1


def test_f1_curve_and_rule_with_a_drop_ratio_match_direct_computation():
    rng = np.random.default_rng(7)
    ss = [np.round(rng.random(int(rng.integers(0, 7))), 2).tolist() for _ in range(80)]
    ys = [int(rng.integers(-1, len(s) + 1)) for s in ss]
    ts = sorted({x for s in ss for x in s} | {0.0, 0.05, math.inf})
    for r in (0.0, 0.3, 0.6, 0.9):
        curve = M.processbench_f1_curve(ss, ys, ts, r)
        for t, f in zip(ts, curve, strict=True):
            assert f == pytest.approx(M.processbench_scores(ys, [M.first_error(s, t, r) for s in ss])["f1"]), (t, r)
    t, r, f1 = M.choose_rule(ss, ys)
    assert M.processbench_scores(ys, [M.first_error(s, t, r) for s in ss])["f1"] == pytest.approx(f1)
    grid = max(M.processbench_scores(ys, [M.first_error(s, tt, rr) for s in ss])["f1"]
               for rr in M.RATIOS for tt in ts)
    assert f1 >= grid - 1e-12  # no (threshold, ratio) on the grid does better
    assert f1 >= M.choose_threshold(ss, ys)[1]  # ratio 0 is in the grid
    t0, r0, f0 = M.choose_rule(ss, ys, threshold=False)
    assert t0 == 0.0 and f0 == pytest.approx(M.processbench_scores(ys, [M.first_error(s, 0.0, r0) for s in ss])["f1"])
    per_row, per_fold = M.cross_fitted_rules(ss, ys, [i % 3 for i in range(80)])
    for k, (tk, rk) in per_fold.items():
        other = [i for i in range(80) if i % 3 != k]
        assert (tk, rk) == M.choose_rule([ss[i] for i in other], [ys[i] for i in other])[:2]
    assert per_row[4] == per_fold[1]


def test_a_drop_ratio_from_the_second_step_leaves_the_first_to_the_threshold():
    assert M.first_drop([0.2, 0.19], 0.5) == 0 and M.first_drop([0.2, 0.19], 0.5, start=1) == -1
    assert M.first_drop([0.2, 0.09], 0.5, start=1) == 1  # 0.09 < 0.5 * 0.2: the first step is still "previous"
    assert M.first_error([0.2, 0.15], 0.1, 0.5, 1) == -1 and M.first_error([0.05, 0.9], 0.1, 0.5, 1) == 0
    for bad in (2, -1, True, 0.5):
        with pytest.raises(ValueError, match="must be 0"):
            M.choose_rule([[0.5]], [0], start=bad)
    rng = np.random.default_rng(3)
    ss = [np.round(rng.random(int(rng.integers(1, 7))), 2).tolist() for _ in range(60)]
    ys = [int(rng.integers(-1, len(s))) for s in ss]
    ts = sorted({x for s in ss for x in s} | {0.0, math.inf})
    for r in (0.3, 0.7):
        for t, f in zip(ts, M.processbench_f1_curve(ss, ys, ts, r, 1), strict=True):
            assert f == pytest.approx(M.processbench_scores(ys, [M.first_error(s, t, r, 1) for s in ss])["f1"])
    t, r, f1 = M.choose_rule(ss, ys, start=1)
    assert M.processbench_scores(ys, [M.first_error(s, t, r, 1) for s in ss])["f1"] == pytest.approx(f1)


def test_a_rule_fitted_on_two_sets_maximises_the_mean_of_their_f1s():
    rng = np.random.default_rng(5)
    ss = [np.round(rng.random(int(rng.integers(1, 6))), 2).tolist() for _ in range(90)]
    ys = [int(rng.integers(-1, len(s))) for s in ss]
    sets = ["a"] * 70 + ["b"] * 20  # a small set counts as much as a large one
    for i in range(70, 90):  # set b: lower scores, half of them error-free
        ss[i] = [round(0.3 * x, 2) for x in ss[i]]
        ys[i] = -1 if i % 2 else ys[i]

    def mean_f1(t, r, start=0):
        preds = [M.first_error(s, t, r, start) for s in ss]
        return np.mean([M.processbench_scores([ys[i] for i in range(90) if sets[i] == g],
                                              [preds[i] for i in range(90) if sets[i] == g])["f1"] for g in "ab"])

    preds = [M.first_error(s, 0.3, 0.4) for s in ss]
    by = M.scores_by_set(ys, preds, sets)
    assert list(by) == ["a", "b"] and M.set_members(["b", "a", "b"]) == {"b": [0, 2], "a": [1]}
    assert by["b"]["n_error"] + by["b"]["n_correct"] == 20 and np.mean([v["f1"] for v in by.values()]) \
        == pytest.approx(mean_f1(0.3, 0.4))
    with pytest.raises(ValueError, match="must align"):
        M.scores_by_set(ys, preds[:-1], sets)
    ts = sorted({x for s in ss for x in s} | {math.inf})
    curve = M.processbench_f1_curve(ss, ys, ts, 0.4, 0, sets)
    for t, f in zip(ts, curve, strict=True):
        assert f == pytest.approx(mean_f1(t, 0.4))
    for start in (0, 1):
        t, r, f1 = M.choose_rule(ss, ys, start=start, sets=sets)
        assert f1 == pytest.approx(mean_f1(t, r, start))
        assert f1 >= max(mean_f1(tt, rr, start) for rr in M.RATIOS for tt in ts) - 1e-12
    # the weighting matters: 40 solutions of one kind, 4 of another whose error-free ones score lower
    big = [[0.3, 0.9]] * 10 + [[0.1, 0.9]] * 10 + [[0.6, 0.9]] * 20
    small = [[0.05, 0.9]] * 2 + [[0.25, 0.9]] * 2
    labels = [0] * 20 + [-1] * 20 + [0] * 2 + [-1] * 2
    pooled = M.choose_threshold(big + small, labels)[0]
    weighted = M.choose_threshold(big + small, labels, sets=["big"] * 40 + ["small"] * 4)[0]
    assert 0.3 < pooled <= 0.6 and 0.1 < weighted <= 0.25
    folds = [i % 3 for i in range(90)]
    per_row, per_fold = M.cross_fitted_rules(ss, ys, folds, sets=sets, start=1)
    for k, rule in per_fold.items():
        other = [i for i in range(90) if folds[i] != k]
        assert rule == M.choose_rule([ss[i] for i in other], [ys[i] for i in other], start=1,
                                     sets=[sets[i] for i in other])[:2]
    assert per_row[5] == per_fold[2]
    with pytest.raises(ValueError, match="set ids"):
        M.cross_fitted_rules(ss, ys, folds, sets=sets[:10])


def test_pair_outcome_and_ratio_ci():
    assert [M.pair_outcome(*p) for p in [(0.9, 0.1), (0.1, 0.9), (0.5, 0.5), (None, 0.1), (0.1, None), (None, None)]] \
        == [1.0, 0.0, 0.5, 0.0, 1.0, 0.5]
    lo, hi = M.bootstrap_ratio_ci([2, 1, 0], [2, 2, 1])
    assert 0 <= lo <= 0.6 <= hi <= 1
    assert M.bootstrap_ratio_ci([3], [4]) == (0.75, 0.75)


# ---------------------------------------------------------------- benches on a fake scorer


def pb_rows():
    """Scores are encoded in the step text ("s=0.3"), so the fake scorer can read them."""
    rows = []
    for i in range(40):
        label = -1 if i % 2 else i % 3
        steps = [f"s={0.9 if j != label else 0.2}" for j in range(3)]
        rows.append({"id": f"pb-{i}", "problem": "p", "steps": steps, "label": label})
    return rows


def read_score(problem, steps):
    return [float(s.split("=")[1]) for s in steps]


def test_processbench_two_fold_never_tunes_on_scored_rows():
    rows = pb_rows()
    rows[0]["steps"] = ["s=0.9", "s=0.95", "s=0.97"]  # label 0 but high scores: a calibration outlier
    res = B.processbench(FakeScorer(read_score), rows, n_boot=100)
    assert res["f1"] is not None and res["solutions"] == 40
    folds = [B._fold(r["id"]) for r in rows]
    scores = [read_score("p", r["steps"]) for r in rows]
    labels = [r["label"] for r in rows]
    for f in (0, 1):
        other = [i for i in range(40) if folds[i] != f]
        t, _ = M.choose_threshold([scores[i] for i in other], [labels[i] for i in other])
        assert res["thresholds"][f"fold{f}"] == pytest.approx(t)
    fixed = B.processbench(FakeScorer(read_score), pb_rows(), threshold=0.5, n_boot=100)
    assert fixed["f1"] == 1.0 and fixed["thresholds"] == {"all": 0.5} and fixed["f1_ci"] == [1.0, 1.0]


def test_processbench_uses_the_scorer_cards_threshold_unless_told_otherwise():
    sc = FakeScorer(read_score)
    sc.step_threshold = 0.5  # fixed on training data: the bench must not retune it
    sc.threshold_info = {"criterion": "balanced F1", "pool": "pools/train.jsonl"}
    lines = []
    res = B.processbench(sc, pb_rows(), n_boot=50, batch_size=16, on_batch=lambda *a: lines.append(a))
    assert res["thresholds"] == {"all": 0.5} and res["f1"] == 1.0
    assert res["threshold_method"] == "scorer card: fixed on training data (pools/train.jsonl), not on this bench"
    assert res["threshold_card"]["criterion"] == "balanced F1"
    assert res["per_row"][0] == {"id": "pb-0", "label": 0, "pred": 0, "scores": [0.2, 0.9, 0.9]}
    ref = res["two_fold_reference"]  # the same scores with 2-fold thresholds, for reference
    assert ref["threshold_method"] == B.TWO_FOLD and set(ref["thresholds"]) == {"fold0", "fold1"}
    assert lines == [(16, 40, "solutions"), (32, 40, "solutions"), (40, 40, "solutions")]
    rows = dict(B.result_rows({"bench": "processbench-gsm8k", **res}))
    assert "scorer card" in rows["threshold"] and "reference: F1 with 2-fold thresholds" in rows
    # a fixed threshold and a calibration file come first; card_threshold=False gives 2-fold
    assert B.processbench(sc, pb_rows(), threshold=0.1, n_boot=50)["thresholds"] == {"all": 0.1}
    cal = B.processbench(sc, pb_rows(), calibration_rows=pb_rows()[:10], n_boot=50)
    assert cal["threshold_method"] == "calibration file" and "two_fold_reference" not in cal
    two = B.processbench(sc, pb_rows(), card_threshold=False, n_boot=50)
    assert two["threshold_method"] == B.TWO_FOLD and "fold0" in two["thresholds"]
    # a card threshold on rows too few for two folds: no reference, no error
    one = B.processbench(sc, pb_rows()[:1], n_boot=20)
    assert one["thresholds"] == {"all": 0.5} and "two_fold_reference" not in one


def test_prmbench_rows_serve_as_first_error_calibration(tmp_path):
    orig = ["s=0.9", "s=0.8", "s=0.7"]  # the fake scorer reads the score after "="
    row = {"original_question": "q1", "modified_question": "q1", "original_process": orig,
           "modified_process": ["s=0.9", " s=0.1 ", "s=0.2"], "error_steps": [3, 2], "idx": "x1",
           "classification": "confidence"}
    past = {**row, "modified_process": ["s=0.9"], "error_steps": [4], "classification": "circular"}
    (tmp_path / "a.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(past) + "\n")  # same original: read once
    assert B.is_prmbench(tmp_path) and B.is_prmbench(tmp_path / "a.jsonl") and not B.is_prmbench(tmp_path / "no")
    got = B.load_processbench(tmp_path)
    assert got == [{"id": "prmbench-x1", "problem": "q1", "steps": orig, "label": -1},
                   {"id": "prmbench-x1-confidence", "problem": "q1", "steps": ["s=0.9", "s=0.1", "s=0.2"],
                    "label": 1}]  # error_steps count from 1: the first error is step 2 -> index 1
    res = B.run_bench("processbench-gsm8k", FakeScorer(read_score), path=_pb_file(tmp_path), calibration=str(tmp_path),
                      n_boot=20)
    assert res["threshold_method"] == "calibration file" and res["calibration_rows"] == 2


def _pb_file(tmp_path):
    f = tmp_path / "pb" / "rows.jsonl"
    f.parent.mkdir()
    f.write_text("".join(json.dumps(r) + "\n" for r in pb_rows()))
    return f


def test_a_row_too_long_for_the_scorer_stops_the_bench_before_any_scoring():
    sc = FakeScorer(read_score)
    sc.length_error = lambda problem, steps: "9 tokens, over the limit of 8" if len(steps) > 3 else None
    rows = pb_rows()
    rows[25]["steps"] = rows[25]["steps"] + ["s=0.9"]
    with pytest.raises(ValueError, match="row 'pb-25' of 40 solutions is 9 tokens, over the limit of 8"):
        B.processbench(sc, rows, threshold=0.5, n_boot=20)
    cal = pb_rows()[:4]
    cal[3]["steps"] = cal[3]["steps"] * 2
    with pytest.raises(ValueError, match="row 'pb-3' of 4 calibration rows is 9 tokens"):
        B.processbench(sc, pb_rows(), calibration_rows=cal, n_boot=20)
    with pytest.raises(ValueError, match="item 1 \\(0-based\\) of 2 solutions is 9 tokens"):
        B.score_all(sc, ["p", "p"], [["s=1"], ["s=1"] * 4])
    assert sc.stats.calls == 0  # nothing was scored before the errors
    sc.granularity = "outcome"  # prefixes are never longer than their solution: one check per solution
    with pytest.raises(ValueError, match="row 'pb-25'"):
        B.processbench(sc, rows, threshold=0.5, n_boot=20)
    assert sc.stats.calls == 0
    ok = B.processbench(sc, pb_rows(), threshold=0.5, n_boot=20)
    assert ok["f1"] == 1.0


def test_processbench_outcome_scorer_scores_prefixes():
    sc = FakeScorer(lambda p, s: [read_score(p, s)[-1]])
    sc.granularity = "outcome"
    res = B.processbench(sc, pb_rows(), threshold=0.5, n_boot=50)
    assert res["f1"] == 1.0
    assert sc.stats.candidates == 40 * 3  # one call per prefix


def test_pairs_bench_ties_count_half(tmp_path):
    rows = [
        {"id": "a", "problem": "q1", "chosen": "s=0.9", "rejected": "s=0.1"},  # right
        {"id": "a", "problem": "q1", "chosen": "s=0.5", "rejected": "s=0.5"},  # tie
        {"id": "b", "problem": "q2", "chosen": ["s=0.2"], "rejected": ["s=0.7"]},  # wrong
        {"id": "c", "problem": "q3", "chosen": "s=0.8\n\ns=0.6", "rejected": "s=0.3"},  # right
    ]
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probs = B.load_pairs(f)
    assert [len(p["pairs"]) for p in probs] == [2, 1, 1]
    res = B.pairs_bench(FakeScorer(read_score), probs, agg="min", n_boot=100)
    assert res["pair_acc"] == pytest.approx(2.5 / 4) and res["ties"] == 1 and res["pairs"] == 4
    assert res["shorter_wins_acc"] == pytest.approx(1.5 / 4)  # equal lengths tie in a, a, b; c: chosen is longer


def test_pool_bench_hand_computed(tmp_path):
    rows = [
        {"id": "1", "problem": "q", "gold": "3", "candidates": [
            {"steps": ["s=0.6", "The answer is 2."], "correct": False, "answer": "2"},
            {"steps": ["s=0.4"], "correct": True, "answer": "3"},
            {"steps": ["s=0.3"], "correct": True, "answer": "3"}]},
        {"id": "2", "problem": "q", "gold": "5", "candidates": [
            {"steps": ["s=0.2"], "correct": False, "answer": "4"},
            {"steps": ["s=0.8"], "correct": True, "answer": "5"}]},
        {"id": "3", "problem": "q", "gold": "1", "candidates": []},  # empty pool: left out
    ]
    f = tmp_path / "pool.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def score(p, steps):
        return [float(s.split("=")[1]) if s.startswith("s=") else 1.0 for s in steps]

    res = B.pool_bench(FakeScorer(score), B.load_pool(f), agg="min", n_boot=100)
    m = {k: v["acc"] for k, v in res["methods"].items()}
    assert res["problems"] == 2
    assert m["scorer argmax (RM@n)"] == 0.5  # P1 picks 0.6 (wrong), P2 picks 0.8 (right)
    assert m["scorer weighted vote"] == 1.0  # P1: class "3" sums 0.4 + 0.3 > 0.6
    assert m["random choice"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["majority vote"] == pytest.approx(0.5)  # P1: "3" has 2 votes; P2: tie -> first (wrong)
    assert m["oracle (any correct)"] == 1.0


def test_pool_reads_search_records(tmp_path):
    from test_eval_sweep import hand_records, write_jsonl

    f = write_jsonl(tmp_path / "run.jsonl", hand_records())
    pool = B.load_pool(f)
    assert [p["id"] for p in pool] == ["p1", "p2", "p3", "p4"]
    assert pool[0]["candidates"][0] == {"steps": ["s", "s"], "correct": True, "answer": "1"}
    res = B.pool_bench(FakeScorer(lambda p, s: [0.5] * len(s)), pool, n_boot=50)
    # p3 (no gold, no verdicts) and p4 (no candidates) are left out
    assert res["problems"] == 2 and res["methods"]["oracle (any correct)"]["acc"] == 1.0


# ---------------------------------------------------------------- shared data and CLI


def test_default_files_load(shared_data_dir):
    rows = B.load_processbench(B.default_path("processbench-gsm8k", shared_data_dir), limit=40)
    labels = [r["label"] for r in rows]
    assert len(rows) == 40 and any(y < 0 for y in labels) and any(y >= 0 for y in labels)
    probs = B.load_pairs(B.default_path("gsm8k-pairs", shared_data_dir), limit=20)
    assert probs and all(p["pairs"] and p["gold"] for p in probs)
    pool = B.load_pool(B.default_path("bon-pool", shared_data_dir), limit=10)
    assert len(pool) == 10 and all(len(p["candidates"]) == 4 for p in pool)
    assert pool[0]["gold"] == "18" and all(c["answer"] for c in pool[0]["candidates"])


def test_shared_prmbench_folder_loads_as_calibration_rows(shared_data_dir):
    rows = B.load_processbench(shared_data_dir / "prm_step_labels" / "prmbench_train", limit=60)
    labels = [r["label"] for r in rows]
    assert len(rows) == 60 and any(y < 0 for y in labels) and any(y >= 0 for y in labels)
    assert all(0 <= r["label"] < len(r["steps"]) for r in rows if r["label"] >= 0)


def test_eval_scorer_cli(shared_data_dir, tmp_path, capsys):
    import cli

    out = tmp_path / "r.json"
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "processbench-gsm8k", "--limit", "30",
                   "--bootstrap", "100", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["limit"] == 30 and res["solutions"] == 30 and "fold0" in res["thresholds"]
    assert "F1" in capsys.readouterr().out
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "processbench-gsm8k", "--limit", "30",
                   "--calibration", "processbench-gsm8k", "--out", str(out)])
    assert rc == 2 and "another split" in capsys.readouterr().err
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "processbench-gsm8k", "--limit", "10",
                   "--calibration", str(shared_data_dir / "prm_step_labels" / "prmbench_train"),
                   "--calibration-limit", "20", "--bootstrap", "50", "--out", str(out)])
    assert rc == 0 and json.loads(out.read_text())["calibration_rows"] == 20
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "processbench-gsm8k", "--limit", "10",
                   "--calibration-limit", "20", "--out", str(out)])
    assert rc == 2 and "applies with --calibration" in capsys.readouterr().err
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "bon-pool", "--data", str(tmp_path / "no.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and "no.jsonl: no such file" in err and len(err.strip().splitlines()) == 1
    rc = cli.main(["eval", "scorer", "--reward", "verifier", "--bench", "processbench-gsm8k", "--limit", "4",
                   "--out", str(out)])
    assert rc == 2 and "needs a gold answer" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x"}\n')
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "gsm8k-pairs", "--data", str(bad)])
    assert rc == 2 and "needs 'problem'" in capsys.readouterr().err
    rc = cli.main(["eval", "scorer", "--reward", "none", "--bench", "processbench-gsm8k", "--max-length", "4096",
                   "--out", str(out)])
    assert rc == 2 and "--max-length applies to --reward prm or orm, not none" in capsys.readouterr().err


def test_verifier_agreement_wired(tmp_path, capsys):
    import cli

    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"gold": "2", "prediction": "2"}) + "\n")
    rc = cli.main(["eval", "verifier-agreement", str(f)])
    captured = capsys.readouterr()
    try:
        import math_verify  # noqa: F401
    except ImportError:
        assert rc == 2 and "math-verify" in captured.err.lower()
    else:
        assert rc == 0


def test_processbench_arithmetic_check_flags_false_equations_the_scorer_missed():
    def score(problem, steps):
        return [float(s.split("=")[1].split()[0]) for s in steps]

    rows = [  # the scorer's card threshold is 0.5; "| ..." is what the step writes
        {"id": "a", "problem": "p", "label": 1, "steps": ["s=0.9 | 2 + 2 = 4", "s=0.9 | 4 * 3 = 13", "s=0.9"]},
        {"id": "b", "problem": "p", "label": -1, "steps": ["s=0.9 | 2 + 2 = 4", "s=0.9 | 4 * 3 = 12"]},
        {"id": "c", "problem": "p", "label": 2, "steps": ["s=0.9 | 1 + 1 = 3", "s=0.9", "s=0.2"]},
        {"id": "d", "problem": "p", "label": 0, "steps": ["s=0.2 | 2 * 2 = 4", "s=0.9 | 1 + 1 = 3"]},
    ]
    sc = FakeScorer(score)
    sc.step_threshold = 0.5
    plain = B.processbench(sc, rows, n_boot=20)
    assert [r["pred"] for r in plain["per_row"]] == [-1, -1, 2, 0]
    res = B.processbench(sc, rows, n_boot=20, arithmetic=True)
    assert [r["pred"] for r in res["per_row"]] == [1, -1, 0, 0]  # the earlier of the two first errors
    ar = res["arithmetic"]
    assert ar["solutions_with_a_false_equation"] == 3 and ar["scorer_only"]["f1"] == plain["f1"]
    assert ar["arithmetic_only"]["error_acc"] == pytest.approx(1 / 3)  # a: step 1; c: step 0, not 2; d: step 1, not 0
    assert res["error_acc"] == pytest.approx(2 / 3) and res["correct_acc"] == 1.0
    shown = dict(B.result_rows({"bench": "processbench-gsm8k", **res}))
    assert "arithmetic check alone: F1" in shown and shown["solutions with a false equation"] == "3"
    assert B.with_arithmetic([-1, 3, 2], [1, -1, 0]) == [1, 3, 0]
