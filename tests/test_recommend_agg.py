"""The recommended aggregator: the rule (eval/recommend_agg.py), the card field it writes
(rewards.checkpoint), and `--agg auto` reading it (search, score, a scorer server's /info)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from eval.recommend_agg import CANDIDATES, recommend
from rewards.checkpoint import (
    DEFAULTS_DIR,
    recommended_agg,
    resolve_agg,
    scorer_card_path,
    set_recommended_agg,
)

ROOT = Path(__file__).resolve().parent.parent
VAL200_PRM = ROOT / "pools" / "scored" / "gsm8k-train-val200-n8-prm-mc2.mixed.jsonl.gz"  # the shipped prm's weights
# the same slice scored by the prm default before 2026-12-07 01:11 UTC, under the same directory name
VAL200_OLD_PRM = ROOT / "pools" / "scored" / "gsm8k-train-val200-n8-prm.mixed.jsonl.gz"


def _records(problems: int, make_scores, seed: int = 0) -> list[dict]:
    """Search-shaped records of `problems` mixed problems x 4 samples (2 right, 2 wrong);
    make_scores(right, rng) -> the sample's step scores."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(problems):
        cands = []
        for j in range(4):
            right = j < 2
            cands.append({"scores": make_scores(right, rng), "answer": "1" if right else str(j),
                          "verdict": {"correct": right, "status": "ok"}, "generated_tokens": 10})
        out.append({"id": f"p{i}", "problem": f"problem {i}", "candidates": cands, "config": {"reward": None}})
    return out


def test_a_clearly_better_aggregator_is_picked_and_a_close_one_is_not():
    # the last step tells right from wrong; an early step is noise that drags `min` to chance
    def last_decides(right, rng):
        return [float(rng.uniform(0.0, 0.2)), 0.6, 0.9 if right else 0.7]

    r = recommend(_records(40, last_decides))
    assert r["granularity"] == "step" and r["mixed_problems"] == 40
    assert r["within_problem_auc"]["last"][0] == pytest.approx(1.0)
    assert r["within_problem_auc"]["min"][0] == pytest.approx(0.5, abs=0.15)
    assert r["minus_default"]["last"]["ci"][0] > 0
    assert r["name"] == "last" and "above 0" in r["reason"]

    # `last` a little better on average, but its interval against min reaches 0: min stays
    def nearly(right, rng):
        x = float(rng.uniform(0, 1))
        return [x, x + (0.02 if right else 0.0) + float(rng.normal(0, 0.3))]

    r = recommend(_records(12, nearly, seed=3))
    best = max(CANDIDATES, key=lambda a: r["within_problem_auc"][a][0])
    if best != "min":
        assert r["minus_default"][best]["ci"][0] <= 0
    assert r["name"] == "min"


def test_an_outcome_scorer_keeps_the_default():
    def one_score(right, rng):
        return [0.8 if right else 0.2]  # perfect, and the same under every aggregator

    r = recommend(_records(10, one_score))
    assert r["granularity"] == "outcome" and r["name"] == "min" and "outcome scorer" in r["reason"]
    assert {a: v[0] for a, v in r["within_problem_auc"].items()} == {a: 1.0 for a in CANDIDATES}


def test_unscored_or_unmixed_pools_are_refused():
    with pytest.raises(ValueError, match="not a scored pool"):
        recommend(_records(3, lambda right, rng: None))
    rows = _records(3, lambda right, rng: [0.5])
    for rec in rows:
        for c in rec["candidates"]:
            c["verdict"] = {"correct": True, "status": "ok"}
    with pytest.raises(ValueError, match="no problem with both right and wrong samples"):
        recommend(rows)


def test_card_field_read_written_and_resolved(tmp_path):
    d = tmp_path / "scorer"
    d.mkdir()
    assert scorer_card_path("prm", d) is None and recommended_agg("prm", d) is None
    assert resolve_agg("auto", "prm", d) == "min"  # no card: the fallback
    (d / "card.json").write_text(json.dumps({"kind": "prm", "metrics": {"x": 1}}))
    assert recommended_agg("prm", d) is None
    set_recommended_agg(d / "card.json", {"name": "last", "reason": "r"})
    card = json.loads((d / "card.json").read_text())
    assert card["metrics"] == {"x": 1} and card["recommended_agg"]["name"] == "last"  # the rest kept
    assert resolve_agg("auto", "prm", d) == "last" and resolve_agg("prod", "prm", d) == "prod"
    p = tmp_path / "probe"
    p.mkdir()
    (p / "probe.json").write_text(json.dumps({"format": "tts-math-probe/1", "recommended_agg": {"name": "mean"}}))
    assert scorer_card_path("probe", p) == p / "probe.json" and resolve_agg("auto", "probe", p) == "mean"
    assert resolve_agg("auto", "none") == "min" and resolve_agg("auto", "verifier") == "min"
    assert scorer_card_path("prm") == DEFAULTS_DIR / "prm" / "card.json"
    (d / "card.json").write_text("{broken")
    with pytest.raises(ValueError, match="invalid JSON"):
        recommended_agg("prm", d)


def test_the_shipped_prm_card_holds_the_rules_pick_from_its_validation_pool(tmp_path, capsys):
    """The CLI on the committed validation pool reproduces the pick the shipped card holds."""
    import cli

    out = tmp_path / "rec.json"
    assert cli.main(["eval", "recommend-agg", str(VAL200_PRM), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    shipped = json.loads((DEFAULTS_DIR / "prm" / "card.json").read_text())["recommended_agg"]
    assert got["name"] == shipped["name"] and got["validation"]["mixed_problems"] == 113
    assert got["validation"]["within_problem_auc"] == shipped["validation"]["within_problem_auc"]
    assert "recommended:" in capsys.readouterr().out


def test_recommend_agg_cli_refuses_a_held_out_pool_and_a_card_of_another_scorer(tmp_path, capsys):
    import gzip

    import cli
    from policies.datasets import load_problems

    rows = [json.loads(line) for line in gzip.open(VAL200_PRM, "rt")][:3]
    held = load_problems("gsm8k-heldout200", limit=1)[0]
    rows[0]["problem"] = held["problem"]
    bad = tmp_path / "held.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["eval", "recommend-agg", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "held-out slice" in err and "Traceback" not in err
    other = tmp_path / "other"
    other.mkdir()
    (other / "card.json").write_text(json.dumps({"kind": "prm"}))
    assert cli.main(["eval", "recommend-agg", str(VAL200_PRM), "--card", str(other)]) == 2
    assert "holds no weight files" in capsys.readouterr().err
    (other / "value_head.safetensors").write_bytes(b"other weights")
    assert cli.main(["eval", "recommend-agg", str(VAL200_PRM), "--card", str(other)]) == 2
    assert "whose weights are not" in capsys.readouterr().err
    # a header that names the card's own directory, written before weight fingerprints: the default it
    # names was replaced since (this file was scored by the previous prm default), so it is refused
    assert cli.main(["eval", "recommend-agg", str(VAL200_OLD_PRM), "--card", str(DEFAULTS_DIR / "prm")]) == 2
    assert "predates weight fingerprints" in capsys.readouterr().err
    assert "recommended_agg" not in json.loads((other / "card.json").read_text())
    assert cli.main(["eval", "recommend-agg", str(VAL200_PRM), "--card", str(tmp_path)]) == 2
    assert "no card.json or probe.json" in capsys.readouterr().err


def _search_args(argv):
    from search import cli as search_cli

    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    return p.parse_args(argv)


def test_search_agg_auto_reads_the_scorers_card(tmp_path):
    from search import cli as search_cli

    shipped = recommended_agg("prm")
    assert shipped in CANDIDATES  # the shipped PRM's card names one
    args = _search_args(["--strategy", "beam", "--reward", "prm"])
    cfg = search_cli._config(args)
    assert cfg.agg == shipped and cfg.final_agg == shipped
    assert f"-prm-{shipped}-n4-" in search_cli.default_out(args, cfg).name  # the file names the resolved one
    assert search_cli._config(_search_args(["--reward", "prm", "--agg", "prod"])).agg == "prod"
    assert search_cli._config(_search_args(["--reward", "none"])).agg == "min"
    cfg = search_cli._config(_search_args(["--reward", "prm", "--agg", "prod", "--final-agg", "auto"]))
    assert (cfg.agg, cfg.final_agg) == ("prod", shipped)
    d = tmp_path / "mine"
    d.mkdir()
    (d / "card.json").write_text(json.dumps({"kind": "prm", "recommended_agg": {"name": "mean"}}))
    assert search_cli._config(_search_args(["--reward", "prm", "--scorer-model", str(d)])).agg == "mean"
    # a served scorer: its server's /info says what its card recommends
    args = _search_args(["--reward", "prm", "--scorer-endpoint", "http://127.0.0.1:9"])
    args.scorer_info = {"kind": "prm", "recommended_agg": "prod"}
    assert search_cli._config(args).agg == "prod"
    args.scorer_info = {"kind": "prm", "recommended_agg": None}
    args.agg = "auto"
    assert search_cli._config(args).agg == "min"


def test_a_scorer_servers_info_carries_the_recommended_aggregator():
    from rewards.base import NoneScorer
    from rewards.server import ScorerServer

    s = NoneScorer()
    srv = ScorerServer(s, port=0)
    try:
        assert srv.info()["recommended_agg"] is None
        s.recommended_agg = "last"
        assert srv.info()["recommended_agg"] == "last"
    finally:
        srv.httpd.server_close()


def test_load_scorer_sets_no_recommendation_without_a_card():
    from rewards import load_scorer

    assert load_scorer("none").recommended_agg is None
    assert load_scorer("verifier").recommended_agg is None


def test_same_scorer_reads_the_weights_fingerprint(tmp_path):
    from eval.recommend_agg import same_scorer
    from rewards.checkpoint import weights_sha256

    a, b = tmp_path / "a", tmp_path / "b"
    for d, w in ((a, b"A"), (b, b"B")):
        d.mkdir()
        (d / "head.safetensors").write_bytes(w)
    assert weights_sha256(a) != weights_sha256(b) and weights_sha256(tmp_path) is None
    assert same_scorer({"kind": "tinyrm", "model": "x", "weights_sha256": weights_sha256(a)}, a) is None
    assert "not the one of" in same_scorer({"kind": "tinyrm", "model": str(a), "weights_sha256": weights_sha256(b)}, a)
    assert same_scorer({"kind": "tinyrm", "model": str(a)}, a).startswith("its header predates")
    c = tmp_path / "c"  # a copy of a's weights under another name (a default copied from its run folder)
    c.mkdir()
    (c / "head.safetensors").write_bytes(b"A")
    assert same_scorer({"kind": "tinyrm", "model": str(c)}, a) is None
    assert "whose weights are not" in same_scorer({"kind": "tinyrm", "model": str(b)}, a)


def test_served_search_resolves_auto_per_reward_kind():
    from search import server

    served = ["prm", "orm", "none"]
    defaults = {"strategy": "beam", "n": 4, "beam_width": 2, "max_steps": 4, "agg": "auto", "final_agg": None,
                "select": None, "seed": 0, "reward": "prm", "auto_aggs": {"prm": "last", "orm": None}}
    cfg, reward, _ = server.resolve_options("tts-math", None, defaults, served)
    assert (reward, cfg.agg, cfg.final_agg) == ("prm", "last", "last")
    cfg, reward, _ = server.resolve_options("beam-orm-auto-n4", None, defaults, served)
    assert (reward, cfg.agg) == ("orm", "min")  # a kind whose card names none
    cfg, _, _ = server.resolve_options("beam-prm-prod-final_auto-n4", None, defaults, served)
    assert (cfg.agg, cfg.final_agg) == ("prod", "last")
    cfg, _, _ = server.resolve_options("tts-math", {"reward": "none", "agg": "auto"}, defaults, served)
    assert cfg.agg == "min"
    assert server.parse_model("beam-prm-auto-n8")["agg"] == "auto"

    p = argparse.ArgumentParser()
    server.add_arguments(p)
    args = p.parse_args(["--strategy", "beam", "--reward", "prm", "--rewards", "orm"])
    assert args.agg == "auto"
    assert server.auto_aggs(args) == {"prm": recommended_agg("prm"), "orm": recommended_agg("orm")}
    assert server.serve_defaults(args)["auto_aggs"]["prm"] == recommended_agg("prm")
