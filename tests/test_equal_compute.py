"""eval.equal_compute: search runs against sampling replayed from a scored pool (hand-computed)."""

from __future__ import annotations

import json

import pytest

from eval.equal_compute import equal_compute, markdown, plot


def _scored_pool(path):
    """Two problems x 4 samples of 10 tokens. p0: three wrong samples agree on 9 (score 0.2),
    the fourth is right (7, score 0.9). p1: every sample right (7, score 0.5)."""
    rows = []
    for pid, good in (("p0", [False, False, False, True]), ("p1", [True] * 4)):
        samples = []
        for g in good:
            score = 0.5 if pid == "p1" else (0.9 if g else 0.2)
            samples.append({"steps": ["a", "b"], "answer": "7" if g else "9", "generated_tokens": 10,
                            "scores": [0.5, score], "verdict": {"correct": g, "status": "ok"}})
        rows.append({"format": "tts-math-pool/1", "id": pid, "problem": pid, "gold": "7",
                     "config": {"policy": {"model": "m"}, "n": 4, "seed": 0}, "samples": samples,
                     "reward": {"kind": "fake"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(path, correct, tokens, n=4):
    """A search output as search.runner.make_record writes it: status is the chosen answer's
    verdict ("correct" / "wrong"), "no_answer" (counted wrong) or None with correct None
    (a gold that cannot be graded)."""
    cfg = {"search": {"strategy": "beam", "n": n, "seed": 0, "agg": "last", "beam_width": 2},
           "policy": {"model": "m"}, "reward": {"kind": "fake"}, "data": {"dataset": "d"}}
    status = {True: "correct", False: "wrong", None: None, "no_answer": "no_answer"}
    rows = [{"config": cfg, "seed": 0, "id": pid, "problem": pid, "candidates": [],
             "correct": False if c == "no_answer" else c, "status": status[c],
             "ledger": {"generated_tokens": t}} for pid, c, t in zip(("p0", "p1"), correct, tokens, strict=True)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_curves_and_paired_differences(tmp_path):
    pool = _scored_pool(tmp_path / "pool.jsonl")
    run = _run(tmp_path / "beam.jsonl", [True, True], [25, 15])
    res = equal_compute(pool, [run], agg="last", ns=[1, 2, 4], n_boot=200)
    c = res["curves"]
    # n' = 4: majority picks 9 on p0 (3 votes), 7 on p1 -> 0.5; the scorer picks the 0.9 sample -> 1.0
    assert c["maj"][4]["acc"] == 0.5 and c["rm"][4]["acc"] == 1.0
    # weighted vote on p0: 9 gets 3 x 0.2 = 0.6 < 0.9 for 7 -> right
    assert c["weighted"][4]["acc"] == 1.0
    # n' = 1: each subset is one sample: p0 right 1/4 of the time, p1 always -> (0.25 + 1) / 2
    assert c["maj"][1]["acc"] == pytest.approx(0.625)
    # n' = 2 on p0: of the 6 pairs, the 3 holding the right sample: maj ties -> the earlier (wrong) one,
    # the scorer takes the right one
    assert c["maj"][2]["acc"] == pytest.approx((0 + 1) / 2)
    assert c["rm"][2]["acc"] == pytest.approx((0.5 + 1) / 2)
    assert c["maj"][4]["tokens"] == 40 and c["maj"][1]["tokens"] == 10
    r = res["runs"][0]
    assert r["acc"] == 1.0 and r["tokens"] == 20 and r["n"] == 4
    assert r["vs"]["maj@4"]["mean"] == pytest.approx(0.5)
    assert r["vs"]["weighted@4"]["mean"] == 0.0
    assert r["equal_tokens_n"] == 2  # 20 tokens: n' = 2 spends 20
    assert r["vs"]["maj@2 (equal tokens)"]["mean"] == pytest.approx(0.5)
    assert "beam" in markdown(res, rows=(1, 4))
    assert plot(res, tmp_path / "p.png").stat().st_size > 0


def test_what_the_final_candidates_held(tmp_path):
    pool = _scored_pool(tmp_path / "pool.jsonl")
    run = _run(tmp_path / "beam.jsonl", [False, True], [20, 20])
    rows = [json.loads(x) for x in run.read_text().splitlines()]
    ok, bad = {"verdict": {"correct": True}}, {"verdict": {"correct": False}}
    # p0: the pick was wrong, a right candidate was there and the vote would take it
    rows[0]["candidates"] = [bad, ok, ok]
    rows[0]["votes"] = [{"answer": "9", "weight": 0.5, "members": [0]}, {"answer": "7", "weight": 0.8, "members": [1, 2]}]
    # p1: right pick; no right candidate left for the vote's winner
    rows[1]["candidates"] = [ok, bad]
    rows[1]["votes"] = [{"answer": "7", "weight": 0.1, "members": [0]}, {"answer": "8", "weight": 0.9, "members": [1]}]
    run.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = equal_compute(pool, [run], ns=[4], n_boot=50)["runs"][0]
    assert r["acc"] == 0.5 and r["final_any_correct"]["acc"] == 1.0 and r["final_weighted_vote"]["acc"] == 0.5
    assert "| any right [95% CI] |" in markdown(equal_compute(pool, [run], ns=[4], n_boot=50))


def test_unanswered_problems_count_wrong_and_ungradable_ones_are_left_out(tmp_path):
    pool = _scored_pool(tmp_path / "pool.jsonl")
    r = equal_compute(pool, [_run(tmp_path / "a.jsonl", [True, "no_answer"], [20, 20])], ns=[4], n_boot=50)
    assert r["problems"] == 2 and r["runs"][0]["acc"] == 0.5
    r = equal_compute(pool, [_run(tmp_path / "b.jsonl", [True, None], [20, 20])], ns=[4], n_boot=50)
    assert r["problems"] == 1 and r["ids"] == ["p0"] and r["runs"][0]["acc"] == 1.0


def test_runs_must_share_problems_with_the_pool(tmp_path):
    pool = _scored_pool(tmp_path / "pool.jsonl")
    run = _run(tmp_path / "beam.jsonl", [True, True], [1, 1])
    rows = [json.loads(x) for x in run.read_text().splitlines()]
    for r in rows:
        r["id"] = "q" + r["id"]
    run.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="share no problem"):
        equal_compute(pool, [run])
    with pytest.raises(ValueError, match="exceeds the pool"):
        equal_compute(pool, [_run(tmp_path / "b.jsonl", [True, True], [1, 1])], ns=[8])


def test_a_run_against_another_run_paired(tmp_path):
    pool = _scored_pool(tmp_path / "pool.jsonl")
    plain = _run(tmp_path / "plain.jsonl", [False, True], [20, 20])
    checked = _run(tmp_path / "checked.jsonl", [True, True], [20, 20])
    res = equal_compute(pool, [plain, checked], ns=[4], n_boot=50, versus={str(checked): str(plain)})
    r_plain, r_checked = res["runs"]
    assert r_checked["vs"][r_plain["label"]]["mean"] == pytest.approx(0.5)  # p0 right only when checked
    assert r_plain["label"] not in r_plain["vs"]
    with pytest.raises(ValueError, match="must be among the runs"):
        equal_compute(pool, [plain], ns=[4], n_boot=50, versus={str(checked): str(plain)})
