"""The learned aggregator (eval/learned.py) and its fit on a training pool (eval/learn_agg.py):
hand-computed inputs and values, a hand-written model file, out-of-fold step scores from
hand-written features, and its use as a value in sweep and the pool table (issue 15)."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from eval import learn_agg, learned, metrics
from rewards.probe import ProbeHead

TRACE = [5, 5, 1, 1, 5, 5]  # group2 means 5, 3, 1, 3, 5: lowest 1


@pytest.mark.parametrize("name, expected", [
    ("step:min", 0.2), ("step:last", 0.8), ("step:mean", 0.5), ("step:logprod", math.log(0.5 * 0.2 * 0.8)),
    ("step:count", 3.0), ("conf:group2", 1.0), ("conf:mean", 22 / 6),
])
def test_inputs_hand_computed(name, expected):
    cand = {"scores": [0.5, 0.2, 0.8], "token_conf": TRACE}
    assert learned.input_value(cand, name) == pytest.approx(expected)


def test_missing_inputs_and_unknown_names():
    assert learned.input_value({"scores": [], "token_conf": TRACE}, "step:min") is None
    assert learned.input_value({"scores": [0.5]}, "conf:mean") is None
    assert learned.input_vector({"scores": [0.5]}, ["step:min", "conf:mean"]) is None
    assert learned.input_value({"scores": [0.0]}, "step:logprod") == pytest.approx(math.log(1e-6))
    for bad in ("step:max", "conf:group0", "min"):
        with pytest.raises(ValueError, match="valid"):
            learned.check_input(bad)


def _model(path, inputs=("step:min", "step:count"), weight=(2.0, 0.0), bias=-1.0):
    head = ProbeHead(weight=np.array(weight), bias=bias, mean=np.zeros(len(weight)), scale=np.ones(len(weight)))
    path.write_text(json.dumps(learned.model_dict(head, inputs, l2=0.1)))
    learned.load_model.cache_clear()
    return path


def test_model_file_values_and_errors(tmp_path):
    path = _model(tmp_path / "m.json")
    cands = [{"scores": [0.5, 0.9]}, {"scores": []}, {"scores": [1.0]}]
    # sigmoid(2 * min - 1): min 0.5 -> 0.5, no scores -> None, min 1 -> sigmoid(1)
    got = learned.values(cands, f"learned:{path}")
    assert got[0] == pytest.approx(0.5) and got[1] is None and got[2] == pytest.approx(1 / (1 + math.exp(-1)))
    assert metrics.candidate_values(cands, f"learned:{path}") == got
    assert metrics.check_value_source(f"learned:{path}") == f"learned:{path}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a learned-aggregator model"):
        learned.check(f"learned:{bad}")
    with pytest.raises(FileNotFoundError, match="eval.learn_agg"):
        learned.check(f"learned:{tmp_path / 'none.json'}")
    d = json.loads(path.read_text())
    d["weight"], d["mean"], d["scale"] = [1.0], [0.0], [1.0]
    bad.write_text(json.dumps(d))
    learned.load_model.cache_clear()
    with pytest.raises(ValueError, match="2 inputs but 1 weights"):
        learned.check(f"learned:{bad}")


@pytest.mark.parametrize("name", ["min", "conf:group32", "mean"])
def test_check_value_source_passes_known_names(name):
    assert metrics.check_value_source(name) == name


def test_check_value_source_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown"):
        metrics.check_value_source("median")
    with pytest.raises(ValueError, match="unknown confidence summary"):
        metrics.check_value_source("conf:group0")


def test_grouped_folds():
    groups = ["a", "a", "b", "c", "c", "c", "d"]
    f = learn_agg.grouped_folds(groups, 2, seed=0)
    assert f[0] == f[1] and f[3] == f[4] == f[5]
    assert set(f.tolist()) == {0, 1}
    assert (f == learn_agg.grouped_folds(groups, 2, seed=0)).all()


def test_fit_aggregator_recovers_the_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    y = (x[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(float)   # noisy: the fit converges
    groups = [str(i // 4) for i in range(80)]
    fit = learn_agg.fit_aggregator(x, y, groups, l2_grid=(1e-3, 1e-2), folds=2)
    assert [r["l2"] for r in fit["cv"]] == [1e-3, 1e-2] and fit["l2"] in (1e-3, 1e-2)
    assert not np.isnan(fit["oof"]).any()
    assert min(r["auc"] for r in fit["cv"]) > 0.8                 # out of fold, so not in-sample
    assert abs(fit["head"].weight[0]) > 3 * abs(fit["head"].weight[1])


def _rec(pid, answers, correct, scores):
    return {"id": pid, "gold": "7", "candidates": [
        {"answer": a, "verdict": {"correct": c}, "scores": s, "token_conf": TRACE}
        for a, c, s in zip(answers, correct, scores, strict=True)]}


def test_selection_table_hand_computed():
    recs = [_rec("p0", ["9", "9", "7"], [False, False, True], [[0.2], [0.3], [0.9]]),
            _rec("p1", ["7", "7", "8"], [True, True, False], [[0.6], [0.6], [0.95]])]
    sources = {"min": [[0.2, 0.3, 0.9], [0.6, 0.6, 0.95]], "learned": [[0.1, 0.1, 0.9], [0.6, 0.6, 0.1]]}
    t = learn_agg.selection_table(recs, sources, n_boot=50, baselines=("min",))
    acc = {(r["source"], r["rule"]): r["acc"] for r in t["rows"]}
    assert acc[("maj", "majority")] == 0.5                      # p0's majority "9" is wrong
    assert acc[("min", "argmax")] == 0.5                        # p1: 0.95 picks the wrong "8"
    assert acc[("min", "weighted_vote")] == 1.0                 # p0: "9" 0.5 vs "7" 0.9; p1: "7" 1.2 vs "8" 0.95
    assert acc[("learned", "argmax")] == 1.0 and acc[("learned", "weighted_vote")] == 1.0
    d = {(x["vs"], x["rule"]): x["diff"] for x in t["diffs"]}
    assert d[("min", "argmax")] == 0.5


def _features(path, pids, n_steps, labels, dim=3, seed=0):
    """A hand-written features folder (cli.py train probe-features' layout), one layer 4."""
    rng = np.random.default_rng(seed)
    rows = []
    for lab, n in zip(labels, n_steps, strict=True):
        rows += [rng.normal(size=dim) + (2.0 if lab else -2.0) for _ in range(n)]
    path.mkdir()
    np.savez(path / "shard-00000.npz", feats=np.array([rows], np.float16), n_steps=np.array(n_steps, np.int32),
             label=np.array(labels, np.int8), pid=np.array([p for p, _ in pids]),
             sample=np.array([j for _, j in pids], np.int32), answer=np.array(["7"] * len(labels)))
    (path / "manifest.json").write_text(json.dumps({"format": "tts-math-probe-features/1", "pool": "pool.jsonl",
                                                    "model": "m", "layers": [4], "shards": ["shard-00000.npz"],
                                                    "done": sorted({p for p, _ in pids})}))
    return path


def test_oof_step_scores_from_features(tmp_path):
    pids = [(f"p{i}", j) for i in range(6) for j in range(2)]
    labels = [int(j == 1) for _, j in pids]
    feats = _features(tmp_path / "feats", pids, [2] * len(pids), labels)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "probe.json").write_text(json.dumps({"granularity": "step", "layer": 4, "training": {"l2": 0.1}}))
    scores = learn_agg.oof_step_scores(feats, probe, folds=3)
    assert set(scores) == set(pids) and all(len(s) == 2 for s in scores.values())
    assert min(scores[(p, 1)][0] for p, _ in pids) > 0.5 > max(scores[(p, 0)][0] for p, _ in pids)
    (probe / "probe.json").write_text(json.dumps({"granularity": "outcome", "layer": 4, "training": {"l2": 0.1}}))
    with pytest.raises(ValueError, match="step probe"):
        learn_agg.oof_step_scores(feats, probe)


def _scored_pool(path, problems=6, n=4):
    rows = []
    for i in range(problems):
        samples = []
        for j in range(n):
            good = j == n - 1  # one right sample in four; the wrong ones agree on 9 (majority is wrong)
            samples.append({"text": "x", "steps": ["a", "b"], "answer": "7" if good else "9", "generated_tokens": 6,
                            "logprob": -1.0, "token_conf": TRACE, "scores": [0.9, 0.8] if good else [0.3, 0.4],
                            "verdict": {"correct": good, "status": "ok"}})
        rows.append({"format": "tts-math-pool/1", "id": f"p{i}", "problem": f"P{i}", "gold": "7",
                     "config": {"policy": {"model": "m"}, "n": n, "seed": 0}, "samples": samples,
                     "reward": {"kind": "probe"}})
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_learned_value_in_sweep_and_pool_table(tmp_path):
    from eval.score_pool import pool_table
    from eval.sweep import load_runs, sweep

    pool = _scored_pool(tmp_path / "scored.jsonl.gz")
    src = f"learned:{_model(tmp_path / 'm.json')}"
    res = sweep(load_runs([pool]), aggs=["min", src], rules=["argmax", "majority"], n_boot=50)
    cell = {(c["agg"], c["rule"], c["k"]): c["acc"] for c in res["runs"][0]["cells"]}
    assert cell[(src, "argmax", 4)] == 1.0 and cell[(src, "majority", 4)] == 0.0
    t = pool_table([pool], aggs=["min", src], n_boot=50)
    assert {r["agg"] for r in t["rows"]} == {"min", src}


def test_learn_agg_cli_refuses_held_out_pools(tmp_path, capsys):
    with pytest.raises(SystemExit):
        learn_agg.main([str(tmp_path / "gsm8k-heldout200-n16.jsonl"), "--features", "f", "--probe", "p",
                        "--out", str(tmp_path / "m.json")])
    assert "held-out pool" in capsys.readouterr().err


def test_learned_value_through_the_clis(tmp_path, capsys):
    import cli

    pool = _scored_pool(tmp_path / "scored.jsonl.gz")
    src = f"learned:{_model(tmp_path / 'm.json')}"
    assert cli.main(["eval", "pool-table", str(pool), "--agg", f"min,{src}", "--bootstrap", "50",
                     "--out", str(tmp_path / "table")]) == 0
    assert src in (tmp_path / "table.md").read_text()
    assert cli.main(["sweep", str(pool), "--agg", f"min,{src}", "--select", "argmax", "--bootstrap", "50",
                     "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    assert cli.main(["sweep", str(pool), "--agg", f"learned:{tmp_path / 'none.json'}", "--out",
                     str(tmp_path / "x")]) == 2
    assert "--agg: learned aggregator" in capsys.readouterr().err
