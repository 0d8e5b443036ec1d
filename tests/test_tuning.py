"""Tuning on a training pool (eval/tune.py), declared settings (AdaptiveSpec, AllocSpec,
presets), and the adaptive strategy weighted by a token-confidence summary, checked
against the pool replay: hand-computed tables, the scripted fake policy, no engine (issue 15)."""

from __future__ import annotations

import json

import pytest

from eval import budget, tune
from search import STRATEGIES, SearchConfig
from search.adaptive import PRESETS, AdaptiveSpec, preset, sample_weights, should_stop
from search.allocate import AllocSpec, difficulty_bin
from search.allocate import preset as alloc_preset
from search.confidence import TOP_K
from search.stopping import stop_rule
from search.testing import FakePolicy
from search.types import Candidate
from tests.test_selection import HI, LO, _answer_script, _pool_rec, _sample, toy_pool

# ---------------------------------------------------------------- the criterion


def S(tokens, diff, lo, hi, acc=None):
    return tune.Scored(acc=0.5 + diff if acc is None else acc, tokens=tokens, samples=0.0, diff=diff, diff_ci=(lo, hi))


@pytest.mark.parametrize("s, ok", [
    (S(100, -0.02, -0.05, +0.01), False),   # loses more than tol = 0.01
    (S(100, -0.01, -0.04, +0.02), True),    # exactly tol
    (S(100, -0.005, -0.03, -0.001), False),  # the interval stays below 0
    (S(100, 0.0, -0.02, 0.0), True),         # the interval reaches 0
    (S(100, +0.03, +0.01, +0.05), True),
])
def test_eligible(s, ok):
    assert tune.eligible(s, 0.01) is ok


def test_cheapest_hand_computed():
    rows = [("a", S(100, -0.02, -0.05, 0.01)),   # cheapest, not eligible
            ("b", S(200, -0.005, -0.03, 0.02)),  # eligible, 200 tokens
            ("c", S(150, 0.0, -0.02, -0.001)),   # not eligible (interval below 0)
            ("d", S(200, +0.01, -0.01, 0.03)),   # eligible, 200 tokens, more accurate than b
            ("e", S(300, +0.05, 0.0, 0.1))]
    assert tune.cheapest(rows, 0.01)[0] == "d"
    assert tune.cheapest(rows[:3], 0.01)[0] == "b"
    assert tune.cheapest(rows[:1], 0.01) is None
    assert tune.cheapest([("x", S(1, 0, -1, 1)), ("y", S(1, 0, -1, 1))], 0.01)[0] == "x"  # ties: the earlier


def test_pareto_and_family():
    rows = [{"acc": 0.3, "tokens": 100}, {"acc": 0.2, "tokens": 150}, {"acc": 0.4, "tokens": 200},
            {"acc": 0.4, "tokens": 250}, {"acc": 0.35, "tokens": 90}]
    assert [r["tokens"] for r in tune.pareto(rows)] == [90, 200]
    assert [tune.family(s) for s in ("beta0.95", "cbeta0.5", "agree1", "cagree0.75")] == \
        ["beta", "cbeta", "agree", "cagree"]


def test_grids_cover_every_combination():
    g = {"thresholds": {"beta": (0.9,), "cagree": (0.8, 0.95)}, "first_round": (1, 2), "round_size": (1, None),
         "select": ("majority",)}
    specs = list(tune.adaptive_grid("mean", g))
    assert len(specs) == 3 * 2 * 2 and {s.confidence for s in specs} == {"mean"}
    assert specs[0] == AdaptiveSpec(stop="beta0.9", first_round=1, round_size=1, confidence="mean")
    allocs = list(tune.alloc_grid("group2", {"first_round": (1,), "weighted": (False, True), "alpha_new": (1.0,)}))
    assert [a.confidence for a in allocs] == [None, "group2"]


# ---------------------------------------------------------------- tune() on the toy pool

SMALL_ADAPTIVE = {"thresholds": {"beta": (0.95,)}, "first_round": (2,), "round_size": (1,), "select": ("majority",)}
SMALL_ALLOC = {"first_round": (2,), "weighted": (False,), "alpha_new": (1.0,)}


def test_tune_on_the_toy_pool_hand_computed():
    probs = budget.problems_from_pool(toy_pool(), equal=lambda a, b: a == b)
    out = tune.tune(probs, n_orders=1, n_boot=100, confs=("tail1", "group2"), alloc_ks=(4,), draws=300,
                    adaptive_grid_=SMALL_ADAPTIVE, alloc_grid_=SMALL_ALLOC)
    # maj@6: p0 ("1" x3, "2" x2, "9") wrong, p1 right
    assert out["n"] == 6 and out["maj"]["6"] == {"acc": 0.5, "tokens": 24.0}
    # weighted vote: tail1 gives LO and HI traces 8 each, so "1" (24) beats "2" (16): 0.5; group2 (1 vs 8): 1.0
    assert [(r["conf"], r["acc"]) for r in out["conf"]["rows"]] == [("tail1", 0.5), ("group2", 1.0)]
    assert out["conf"]["chosen"] == "group2"
    # beta0.95 from 2 samples, +1: p1 (unanimous) stops at 4 (16 tokens), p0 never (6, 24 tokens)
    beta = out["adaptive"]["chosen"]["beta"]
    assert (beta["acc"], beta["tokens"], beta["samples"], beta["capped"], beta["diff"]) == (0.5, 20.0, 5.0, 0.5, 0.0)
    assert beta["spec"] == {"stop": "beta0.95", "first_round": 2, "round_size": 1, "select": "majority",
                            "confidence": "group2"}
    assert out["adaptive"]["overall"] == beta["spec"]
    # allocation at maj@4's 32 tokens: 16 after the first round; p1 (2 of 2 agree) gains nothing, gets nothing
    row = out["allocation"]["rows"][0]
    assert out["allocation"]["before_bins"] == {"first_round": 2, "confidence": None, "alpha": 1.0, "alpha_new": 1.0,
                                                "select": ("majority",) * 3, "select_confidence": None}
    assert row["per_k"]["4"]["tokens"] <= 16.0 + 1e-9
    # step 4: p0's first round ("1", "2") is "scatter", p1's ("5", "5") "agree"; in p0's draws the
    # group2-weighted vote picks "2" (HI traces) where majority picks "1": scatter gets the weighted vote
    bins = out["allocation"]["bins"]
    assert [(b["bin"], b["share"], b["select"]) for b in bins["table"]] == [
        ("agree", 0.5, "majority"), ("split", 0.0, "majority"), ("scatter", 0.5, "weighted_vote")]
    assert out["allocation"]["chosen"]["select"] == ("majority", "majority", "weighted_vote")
    assert out["allocation"]["chosen"]["select_confidence"] == "group2"
    assert bins["per_k"]["4"]["acc"] == 1.0 and bins["per_k"]["4"]["diff"] == 0.5   # maj@4: p0's 2-2 tie goes to "1"
    json.dumps(out)
    md = tune.markdown(out, "python -m eval.tune toy.jsonl")
    assert "group2 **(chosen)**" in md and "| beta | beta0.95 (first 2, +1, majority, group2) |" in md


@pytest.mark.parametrize("counts, first, expected", [
    ([2], 2, 0), ([3], 3, 0), ([1], 1, 0),      # every first-round sample agrees
    ([2, 1], 3, 1), ([2, 1, 1], 4, 1),          # some agree
    ([1, 1], 2, 2), ([1, 1, 1], 3, 2), ([], 2, 2), ([1], 2, 2),  # none agree / one answer of two / no answer
])
def test_difficulty_bin(counts, first, expected):
    assert difficulty_bin(counts, first) == expected


def test_allocation_replay_votes_per_bin():
    p0, p1 = budget.problems_from_pool(toy_pool(), equal=lambda a, b: a == b)
    w = budget.conf_values([p0, p1], "group2")
    order_of = [list(range(6)), list(range(6))]
    kw = dict(budget=48, first=2, draws=500)
    plain = budget.replay_allocation([p0, p1], order_of, **kw)
    per_bin = budget.replay_allocation([p0, p1], order_of, select_rule=("majority", "majority", "weighted_vote"),
                                       select_weights=w, **kw)
    assert [r[2] for r in plain] == [r[2] for r in per_bin]      # the same draws, only the vote differs
    assert plain[0][0] == 0.0 and per_bin[0][0] == 1.0 and per_bin[1][0] == 1.0
    with pytest.raises(ValueError, match="one rule per bin"):
        AllocSpec(select="majority")
    with pytest.raises(ValueError, match="give select_confidence"):
        AllocSpec(select=("majority", "weighted_vote", "majority"))


def test_tune_refuses_budgets_the_first_round_fills():
    probs = budget.problems_from_pool(toy_pool(), equal=lambda a, b: a == b)
    with pytest.raises(ValueError, match="must exceed every first round"):
        tune.tune(probs, n_orders=1, n_boot=10, confs=("mean",), alloc_ks=(2,), adaptive_grid_=SMALL_ADAPTIVE,
                  alloc_grid_=SMALL_ALLOC)


def test_tune_cli_refuses_held_out_pools(tmp_path, capsys):
    path = tmp_path / "gsm8k-heldout200-n16.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    with pytest.raises(SystemExit):
        tune.main([str(path), "--out", str(tmp_path / "x")])
    assert "held-out pool" in capsys.readouterr().err


# ---------------------------------------------------------------- declared settings


def test_specs_label_search_args_and_checks():
    s = AdaptiveSpec(stop="cagree0.9", first_round=3, round_size=None, select="weighted_vote", confidence="group32")
    assert s.label == "cagree0.9 (first 3, x2, weighted_vote, group32)"
    assert s.search_args() == ("--strategy adaptive --stop cagree0.9 --first-round 3 --round-size double "
                               "--select weighted_vote --confidence group32")
    for kw, msg in (({"stop": "vote"}, "unknown stop rule"), ({"stop": "beta0.9", "select": "best"}, "select rule"),
                    ({"stop": "beta0.9", "confidence": "group0"}, "unknown confidence summary"),
                    ({"stop": "beta0.9", "first_round": 0}, "schedule needs")):
        with pytest.raises(ValueError, match=msg):
            AdaptiveSpec(**kw)
    assert AllocSpec().label == "first 2, group32 counts, alpha 1, alpha_new 1"
    with pytest.raises(ValueError, match="alpha and alpha_new"):
        AllocSpec(alpha_new=0)


def test_presets_a_priori_is_what_the_first_replay_ran():
    apriori = preset("a-priori")
    assert [s.stop for s in apriori] == ["beta0.95", "cbeta0.95", "agree0.75", "cagree0.95"]
    assert [(s.first_round, s.round_size) for s in apriori] == [(2, 1), (2, 1), (4, None), (4, None)]
    assert alloc_preset("a-priori") == AllocSpec(first_round=2, confidence="group32")
    with pytest.raises(ValueError, match="valid: a-priori, tuned-gsm8k-train"):
        preset("tuned-nothing")
    tuned = preset("tuned-gsm8k-train")  # what eval.tune chose on the training pool (docs/selection.md)
    assert [s.label for s in tuned] == ["beta0.7 (first 2, +1, majority, group64)",
                                        "cbeta0.7 (first 2, +1, majority, group64)",
                                        "agree0.6 (first 1, +1, majority, group64)",
                                        "cagree0.5 (first 3, +1, majority, group64)"]
    assert alloc_preset("tuned-gsm8k-train") == AllocSpec(first_round=2, confidence="group64")
    for name, specs in PRESETS.items():   # every preset replays on a pool (weights = a summary)
        for s in specs:
            budget.check_replayable(s)
        assert name


def test_replay_needs_a_summary_for_weighted_settings():
    with pytest.raises(ValueError, match="confidence='group32'"):
        budget.check_replayable(AdaptiveSpec(stop="cbeta0.9"))
    budget.check_replayable(AdaptiveSpec(stop="beta0.9"))


@pytest.mark.parametrize("labels, n_max, stop", [
    ([0, 0, 0, 0], 16, True),       # beta0.95: 4 unanimous
    ([0, 0, 0], 16, False),
    ([0, 1, 2], 3, True),           # the cap
])
def test_should_stop(labels, n_max, stop):
    assert should_stop(stop_rule("beta0.95"), labels, [None] * len(labels), n_max) is stop


def test_sample_weights_and_candidate_records():
    a = Candidate(steps=["x"], value=0.4, conf=7.0)
    b = Candidate(steps=["y"], value=0.6)
    assert sample_weights([a, b], "group32") == [7.0, None]
    assert sample_weights([a, b], None) == [0.4, 0.6]
    assert a.as_dict()["conf"] == 7.0 and "conf" not in b.as_dict()


def test_budget_cli_preset_rows(tmp_path, capsys):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    rc = budget.main([str(path), "--out", str(tmp_path / "rep"), "--orders", "2", "--bootstrap", "100",
                      "--conf", "group2", "--window", "2", "--warmup", "2", "--alloc-k", "4", "--preset", "a-priori"])
    assert rc == 0
    rows = json.loads((tmp_path / "rep" / "summary.json").read_text())["rows"]
    tagged = [r["name"] for r in rows if "[a-priori]" in r["name"]]
    assert len(tagged) == 5 and tagged[-1].startswith("allocate@4 [a-priori]")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        budget.main([str(path), "--preset", "nope"])
    assert "valid: a-priori" in capsys.readouterr().err


# ---------------------------------------------------------------- the strategy with a confidence summary


def _conf_of(answer_conf):
    def token_conf(problem, text):
        return answer_conf[text.rsplit(" ", 1)[-1].rstrip(".")]
    return token_conf


def test_adaptive_strategy_weighs_by_the_token_summary():
    answers = {"x": ["1", "2"]}
    conf = _conf_of({"1": [1.0] * 5, "2": [20.0] * 5})
    cfg = SearchConfig(strategy="adaptive", n=4, stop="cagree0.95", first_round=2, round_size=1,
                       select="weighted_vote", confidence="mean")
    (r,) = STRATEGIES["adaptive"](["x"], FakePolicy(_answer_script(answers), token_conf=conf), None, cfg,
                                  equal=lambda a, b: a == b)
    # weights 1 and 20: the leader "2" holds 20/21 = 0.952 >= 0.95 after the first round
    assert len(r.candidates) == 2 and r.answer == "2"
    assert [c.conf for c in r.candidates] == [1.0, 20.0] == [c.value for c in r.candidates]
    # without a summary the weights are exp(mean log-prob), equal here: 1/2 never reaches 0.95
    plain = SearchConfig(strategy="adaptive", n=4, stop="cagree0.95", first_round=2, round_size=1)
    (r,) = STRATEGIES["adaptive"](["x"], FakePolicy(_answer_script(answers)), None, plain, equal=lambda a, b: a == b)
    assert len(r.candidates) == 4 and all(c.conf is None for c in r.candidates)


def test_adaptive_strategy_needs_token_confidences():
    cfg = SearchConfig(strategy="adaptive", n=4, stop="cbeta0.9", confidence="group32")
    with pytest.raises(ValueError, match="token confidences"):
        STRATEGIES["adaptive"](["x"], FakePolicy(_answer_script({"x": ["1"]})), None, cfg)


SEQ = ["1", "2", "2", "1", "2", "2", "2", "1"]


@pytest.mark.parametrize("spec", [
    AdaptiveSpec(stop="cbeta0.8", first_round=2, round_size=1, select="weighted_vote", confidence="group2"),
    AdaptiveSpec(stop="cagree0.7", first_round=2, round_size=None, select="weighted_vote", confidence="group2"),
    AdaptiveSpec(stop="beta0.8", first_round=3, round_size=2, select="majority", confidence="group2"),
])
def test_strategy_and_replay_agree(spec):
    """The same answers and token confidences, drawn by the strategy and replayed from a pool:
    the same samples drawn, the same answer."""
    confs = {"1": LO, "2": HI}
    cfg = SearchConfig(strategy="adaptive", n=8, stop=spec.stop, first_round=spec.first_round,
                       round_size=spec.round_size, select=spec.select, confidence=spec.confidence)
    policy = FakePolicy(_answer_script({"x": SEQ}), tokens_per_step=4, token_conf=_conf_of(confs))
    (r,) = STRATEGIES["adaptive"](["x"], policy, None, cfg, equal=lambda a, b: a == b)
    pool = [_pool_rec("x", "2", [_sample(a, a == "2", confs[a]) for a in SEQ])]
    (p,) = budget.problems_from_pool(pool, equal=lambda a, b: a == b)
    arr = budget.adaptive_results([p], [[list(range(8))]], spec, 8)
    correct, tokens, samples = arr[0]
    assert samples == len(r.candidates) and tokens == r.ledger.generated_tokens
    assert correct == float(r.answer == "2")


def test_search_cli_confidence_option():
    import argparse

    from search import cli as search_cli

    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    args = p.parse_args(["--strategy", "adaptive", "--stop", "cbeta0.9", "--confidence", "group32"])
    cfg = search_cli._config(args)
    assert cfg.confidence == "group32" and cfg.as_dict()["confidence"] == "group32"
    assert "confidence" not in SearchConfig(strategy="adaptive").as_dict()  # earlier adaptive runs resume
    assert "conf-group32" in str(search_cli.default_out(args, cfg))
    make_policy, _ = search_cli.backends(args)
    assert make_policy.keywords["sampling"].logprobs == TOP_K
    with pytest.raises(SystemExit):
        p.parse_args(["--confidence", "group0"])
    args = p.parse_args(["--strategy", "majority", "--confidence", "group32"])
    with pytest.raises(ValueError, match="--confidence applies to --strategy adaptive"):
        search_cli.check_args(args)
    with pytest.raises(ValueError, match="confidence: unknown confidence summary"):
        SearchConfig(strategy="adaptive", confidence="median")



def test_tune_cli_writes_the_report(tmp_path, capsys):
    path = tmp_path / "toy-train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    rc = tune.main([str(path), "--out", str(tmp_path / "rep"), "--orders", "1", "--bootstrap", "20", "--draws", "50",
                    "--confs", "group2", "--alloc-k", "4,5"])
    assert rc == 0
    out = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert out["conf"]["chosen"] == "group2" and len(out["adaptive"]["rows"]) == 552
    assert out["command"].startswith("python -m eval.tune") and "## 4. Per-bin" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tune.main([str(path), "--confs", "group0"])
    assert "--confs: unknown confidence summary" in capsys.readouterr().err
