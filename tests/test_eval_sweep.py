"""eval.sweep / eval.report / `cli.py sweep`: hand-built records in the runner's format,
a hand-computed replay table, seeds, and a report from a small saved run (fake policy)."""

from __future__ import annotations

import json
import operator

import pytest

from eval import sweep as S
from eval.report import write_report

CONFIG = {
    "search": {"strategy": "best_of_n", "n": 2, "beam_width": 2, "max_steps": 8, "agg": "min", "final_agg": "min",
               "select": "argmax", "beam_rule": "top_n_over_m", "node_budget": 32, "c_puct": 1.0,
               "rollouts": False, "seed": 0},
    "policy": {"model": "smollm2-135m", "temperature": 0.8, "top_p": 1.0, "max_tokens": 384,
               "max_step_tokens": 128, "prompt_style": "gsm8k"},
    "reward": {"kind": "prm", "model": None},
    "data": {"dataset": "gsm8k", "problem_field": None, "answer_field": None},
}


def cand(answer, correct, scores, tokens=10):
    return {"steps": ["s"] * max(len(scores or []), 1), "scores": scores, "value": None, "finish_reason": "eos",
            "generated_tokens": tokens, "logprob": -1.0 * tokens, "node": None, "group": None, "answer": answer,
            "verdict": None if correct is None else {"correct": correct, "status": "correct" if correct else "wrong",
                                                     "extracted": answer}}


def record(pid, gold, cands, seed=0, config=CONFIG):
    cfg = json.loads(json.dumps(config))
    cfg["search"]["seed"] = seed
    led = {"policy_calls": 1, "policy_requests": 2, "prompt_tokens": 100, "cached_tokens": 40,
           "generated_tokens": sum(c["generated_tokens"] for c in cands), "scorer_calls": 1,
           "scorer_candidates": len(cands), "scorer_tokens": 50.0, "scorer_cache_hits": 0, "verifier_calls": 2,
           "wall_s": 1.0, "policy_params": 1000, "scorer_params": 100}
    return {"config": cfg, "seed": seed, "id": pid, "problem": f"problem {pid}", "gold": gold, "answer": None,
            "chosen": None, "votes": [], "candidates": cands, "tree": None, "ledger": led,
            "correct": None, "status": None}


def hand_records(seed=0):
    """P1: argmax picks B (wrong) under min/last/prod; mean ties 0.55/0.55 -> A (correct).
    P2: B (correct) under every aggregator. P3: no gold (left out). P4: no candidates."""
    return [
        record("p1", "1", [cand("1", True, [0.9, 0.2]), cand("2", False, [0.5, 0.6])], seed),
        record("p2", "4", [cand("3", False, [0.4]), cand("4", True, [0.8, 0.9])], seed),
        record("p3", None, [cand("5", None, [0.9]), cand("6", None, [0.1])], seed),
        record("p4", "7", [], seed),
    ]


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def cells(run):
    return {(c["agg"], c["rule"], c["k"]): c["acc"] for c in run["cells"]}


def base(run):
    return {(b["metric"], b["k"]): b["acc"] for b in run["baselines"]}


def test_replay_hand_computed(tmp_path):
    f = write_jsonl(tmp_path / "r.jsonl", hand_records())
    runs = S.load_runs([f])
    assert len(runs) == 1 and runs[0].seeds.keys() == {0}
    res = S.sweep(runs, aggs=["min", "last", "prod", "mean"], n_boot=200, equal=operator.eq)
    run = res["runs"][0]
    assert run["problems"] == 3 and run["ungraded"] == 1 and run["ks"] == [1, 2]
    c = cells(run)
    for agg in ("min", "last", "prod"):
        assert c[(agg, "argmax", 2)] == pytest.approx(1 / 3)
        assert c[(agg, "weighted_vote", 2)] == pytest.approx(1 / 3)
    assert c[("mean", "argmax", 2)] == pytest.approx(2 / 3)
    # k=1: every rule picks the one sample -> mean correctness
    for agg in ("min", "mean"):
        assert c[(agg, "argmax", 1)] == pytest.approx(1 / 3)
    b = base(run)
    assert b[("pass@n", 2)] == pytest.approx(2 / 3) and b[("pass@n", 1)] == pytest.approx(1 / 3)
    # plain majority: 1-1 ties go to the first class: P1 correct, P2 wrong
    assert b[("maj@n", 2)] == pytest.approx(1 / 3)
    best = S.best_cell(run)
    assert best["agg"] == "mean" and best["rule"] == "argmax" and best["k"] == 2
    lo, hi = best["ci"]
    assert 0 <= lo <= best["acc"] <= hi <= 1
    # compute: ledger scaled by n'/n
    comp = {x["k"]: x for x in run["compute"]}
    assert comp[2]["computed_prompt_tokens"] == pytest.approx(60)
    assert comp[1]["computed_prompt_tokens"] == pytest.approx((30 + 30 + 60) / 3)  # p4 has no candidates: unscaled
    # generated: 20, 20, 0 (p4) -> mean 40/3; FLOPs = 2 x params x tokens
    assert comp[2]["flops"] == pytest.approx(2 * 1000 * (60 + 40 / 3) + 2 * 100 * 50)


def test_seeds_pool_into_mean_and_sd(tmp_path):
    r0 = hand_records(0)
    r1 = hand_records(1)
    # seed 1: P1's mean tie now resolved against A -> mean/argmax 1/3
    r1[0]["candidates"][0]["scores"] = [0.9, 0.1]
    f0, f1 = write_jsonl(tmp_path / "s0.jsonl", r0), write_jsonl(tmp_path / "s1.jsonl", r1)
    runs = S.load_runs([f0, f1])
    assert len(runs) == 1 and sorted(runs[0].seeds) == [0, 1]
    run = S.sweep(runs, aggs=["mean"], rules=["argmax"], n_boot=200, equal=operator.eq)["runs"][0]
    cell = next(c for c in run["cells"] if c["k"] == 2)
    assert cell["acc"] == pytest.approx(0.5)  # (2/3 + 1/3) / 2
    assert cell["seed_mean"] == pytest.approx(0.5)
    assert cell["seed_sd"] == pytest.approx(((1 / 6) ** 2 * 2) ** 0.5)
    assert run["seeds"] == [0, 1]


def test_subsampling_reproducible(tmp_path):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["search"]["n"] = 12
    recs = [record(f"q{i}", "1", [cand(str(j % 3), j % 3 == 1, [0.1 * (j % 7), 0.5]) for j in range(12)], 0, cfg)
            for i in range(3)]
    f = write_jsonl(tmp_path / "r.jsonl", recs)
    a = S.sweep(S.load_runs([f]), aggs=["min"], max_subsets=20, n_boot=100, equal=operator.eq)
    b = S.sweep(S.load_runs([f]), aggs=["min"], max_subsets=20, n_boot=100, equal=operator.eq)
    c = S.sweep(S.load_runs([f]), aggs=["min"], max_subsets=20, n_boot=100, seed=1, equal=operator.eq)
    assert a == b
    assert a["runs"][0]["ks"] == [1, 2, 4, 8, 12]
    assert cells(a["runs"][0]) != cells(c["runs"][0])  # C(12,4) = 495 > 20: random subsets depend on the seed


def test_outcome_and_unscored_runs_collapse_aggregators(tmp_path):
    recs = [record("p1", "1", [cand("1", True, [0.9]), cand("2", False, [0.1])])]
    run = S.sweep(S.load_runs([write_jsonl(tmp_path / "o.jsonl", recs)]), aggs=["min", "prod"], n_boot=50,
                  equal=operator.eq)["runs"][0]
    assert run["aggs"] == ["outcome"] and "same value" in run["notes"][0]
    recs = [record("p1", "1", [cand("1", True, None, 10), cand("2", False, None, 10)])]
    recs[0]["candidates"][0]["logprob"] = -1.0  # more confident
    run = S.sweep(S.load_runs([write_jsonl(tmp_path / "n.jsonl", recs)]), aggs=["min"], n_boot=50,
                  equal=operator.eq)["runs"][0]
    assert run["aggs"] == ["confidence"] and cells(run)[("confidence", "argmax", 2)] == 1.0


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        S.load_runs([tmp_path / "missing.jsonl"])
    (tmp_path / "s.json").write_text('{"accuracy": 1}\n')
    with pytest.raises(ValueError, match="not a search record"):
        S.load_runs([tmp_path / "s.json"])
    f = write_jsonl(tmp_path / "r.jsonl", hand_records())
    with pytest.raises(ValueError, match="valid"):
        S.sweep(S.load_runs([f]), aggs=["nope"])
    with pytest.raises(ValueError, match="select rule"):
        S.sweep(S.load_runs([f]), rules=["best"])
    # a torn last line is skipped
    t = tmp_path / "t.jsonl"
    t.write_text(f.read_text() + '{"config": {')
    assert len(S.read_records(t)) == 4


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A small real-format run: best-of-4 on 3 problems with the scripted fake policy."""
    from search import SearchConfig
    from search.runner import run_search
    from search.testing import FakePolicy, FakeScorer, digit_scores

    def script(problem, steps, j, seed):
        d = len(steps)
        if d >= 2:
            return f"The answer is {(j + len(problem)) % 3}.", "eos"
        return f"s{d}.{j}", "step"

    out = tmp_path_factory.mktemp("run") / "fake-seed0.jsonl"
    problems = [{"id": f"p{i}", "problem": "x" * i, "answer": "1"} for i in range(3)]
    cfg = SearchConfig(strategy="best_of_n", n=4, agg="min", seed=0)
    run_search(problems, FakePolicy(script), FakeScorer(digit_scores), cfg, out=out)
    return out


def test_report_from_saved_run(saved_run, tmp_path):
    res = S.sweep(S.load_runs([saved_run]), aggs=["min", "last", "prod", "mean"], n_boot=200)
    run = res["runs"][0]
    assert run["problems"] == 3 and run["ks"] == [1, 2, 4]
    assert run["compute"][-1]["generated_tokens"] > 0 and run["compute"][-1]["flops"] > 0
    paths = write_report(res, tmp_path / "rep", command="python cli.py sweep x.jsonl")
    md = (tmp_path / "rep" / "report.md").read_text()
    for title in ("## Overview", "Accuracy at n = 4: aggregator x selection", "Accuracy vs n", "Compute per problem"):
        assert title in md
    for agg in ("min", "last", "prod", "mean"):
        assert f"| {agg} |" in md
    assert "★" in md and "pass@n" in md and "maj@n" in md
    pngs = sorted(p.name for p in (tmp_path / "rep" / "plots").glob("*.png"))
    assert "acc_vs_tokens.png" in pngs and "acc_vs_flops.png" in pngs
    assert any(p.startswith("acc_vs_n_") for p in pngs)
    for p in pngs:
        assert f"plots/{p}" in md
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs) and "<table>" in page and "plots/" not in page
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["command"].startswith("python cli.py sweep") and len(summary["runs"]) == 1
    assert sorted(summary["plots"]) == sorted(f"plots/{p}" for p in pngs)
    assert paths["md"].endswith("report.md")


def test_sweep_cli(saved_run, tmp_path, capsys):
    import cli

    rc = cli.main(["sweep", str(saved_run), "--agg", "min,last", "--select", "argmax,majority",
                   "--bootstrap", "100", "--out", str(tmp_path / "rep")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "RM@n" in out and "report:" in out
    assert (tmp_path / "rep" / "report.html").is_file()
    rc = cli.main(["sweep", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "missing.jsonl: no such file" in err and len(err.strip().splitlines()) == 1
    rc = cli.main(["sweep", str(saved_run), "--agg", "min,bogus", "--out", str(tmp_path / "x")])
    assert rc == 2 and "--agg" in capsys.readouterr().err
    rc = cli.main(["sweep", "--out", str(tmp_path / "x")])
    assert rc == 2 and "no run files" in capsys.readouterr().err


def test_sweep_search_runs_one_search_per_aggregator(tmp_path, monkeypatch, capsys):
    """`sweep --search`: one resumable run per aggregator on one (fake) policy, then one report."""
    import cli
    import policies
    from search import cli as search_cli
    from search.testing import FakePolicy, FakeScorer, digit_scores

    made = []

    def fake_policy(*a, **kw):
        made.append(FakePolicy())
        return made[-1]

    monkeypatch.setattr(policies, "VLLMPolicy", fake_policy)
    monkeypatch.setattr(search_cli, "load_scorer", lambda kind, model: FakeScorer(digit_scores))
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"problem {i}", "answer": "1"}) + "\n" for i in range(3)))
    argv = ["sweep", "--search", "--strategy", "beam", "--agg", "min,last", "--n", "4", "--beam-width", "2",
            "--max-steps", "4", "--reward", "prm", "--dataset", str(ds), "--prompt-style", "plain",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--bootstrap", "100"]
    assert cli.main(argv) == 0
    assert len(made) == 1  # one engine for both searches
    files = sorted((tmp_path / "runs").glob("*.jsonl"))
    assert [f.name.split("-")[3] for f in files] == ["last", "min"]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert sorted(r["config"]["search"]["agg"] for r in summary["runs"]) == ["last", "min"]
    assert all(r["ks"] == [4] and r["problems"] == 3 for r in summary["runs"])
    assert "steered the search" in (tmp_path / "rep" / "report.md").read_text()
    # rerun: everything is done, no engine is started
    assert cli.main(argv) == 0 and len(made) == 1
    assert "3 done, 0 to run" in capsys.readouterr().out


def test_run_without_any_gold_still_reports(tmp_path):
    recs = [record("p3", None, [cand("5", None, [0.9]), cand("6", None, [0.1])])]
    res = S.sweep(S.load_runs([write_jsonl(tmp_path / "g.jsonl", recs)]), n_boot=50, equal=operator.eq)
    run = res["runs"][0]
    assert run["problems"] == 0 and run["ungraded"] == 1
    assert all(c["acc"] is None for c in run["cells"]) and S.best_cell(run) is None
    write_report(res, tmp_path / "rep")
    assert "| best_of_n prm n=2 gsm8k | 0 | – |" in (tmp_path / "rep" / "report.md").read_text()
    json.loads((tmp_path / "rep" / "summary.json").read_text())


def test_label_names_the_scorer_model_and_step_check(tmp_path):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["search"]["strategy"] = "beam"
    cfg["reward"] = {"kind": "probe", "model": "rewards/trained/probe-gsm8k128"}
    plain = S.load_runs([write_jsonl(tmp_path / "a.jsonl", [record("p1", "1", [cand("1", True, [0.9])],
                                                                   config=cfg)])])[0]
    cfg["reward"]["step_check"] = "arithmetic"
    checked = S.load_runs([write_jsonl(tmp_path / "b.jsonl", [record("p1", "1", [cand("1", True, [0.9])],
                                                                     config=cfg)])])[0]
    assert plain.label.startswith("beam probe(probe-gsm8k128) agg=min n=2")
    assert checked.label.startswith("beam probe(probe-gsm8k128)+arithmetic agg=min n=2")
    assert plain.key != checked.key  # two configurations, never merged into one run
