"""Confidence summaries, filtered selection rules, online early stop, adaptive stopping,
dataset allocation and their pool replays: hand-computed tables, the scripted fake policy,
no engine (issue 15)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from eval import budget
from eval.sweep import load_runs, pool_as_records, sweep
from policies.pool import FORMAT
from search import STRATEGIES, SearchConfig
from search.adaptive import schedule
from search.allocate import accuracy_curve, allocate
from search.confidence import (
    bottom_share,
    conf_mean,
    group_means,
    lowest_group,
    stop_position,
    summary,
    tail,
    warmup_threshold,
)
from search.select import check_rule, keep_top, rule_label, select
from search.stopping import beta_sf_half, stop_rule
from search.testing import FakePolicy
from search.types import Candidate

# ---------------------------------------------------------------- confidence summaries

TRACE = [5, 5, 1, 1, 5, 5]  # window-2 group means: 5, 3, 1, 3, 5


@pytest.mark.parametrize("name, conf, expected", [
    ("mean", TRACE, 22 / 6),
    ("group2", TRACE, 1.0),
    ("group3", TRACE, 7 / 3),           # windows 11/3, 7/3, 7/3, 11/3
    ("group4", [2, 4], 3.0),             # shorter than the window: the whole mean
    ("tail2", TRACE, 5.0),
    ("tail3", TRACE, 11 / 3),
    ("tail9", [2, 4], 3.0),
    ("bottom50", TRACE, None),           # window 32 > 6 tokens: one group, the mean
])
def test_summaries_hand_computed(name, conf, expected):
    want = conf_mean(conf) if expected is None else expected
    assert summary(name)(conf) == pytest.approx(want)


def test_group_and_bottom_share_with_explicit_window():
    assert group_means(TRACE, 2).tolist() == [5, 3, 1, 3, 5]
    assert lowest_group(TRACE, 2) == 1
    assert bottom_share(TRACE, 10, window=2) == 1.0          # ceil(0.5) = 1 group
    assert bottom_share(TRACE, 50, window=2) == pytest.approx(7 / 3)  # lowest 3 of 5: 1, 3, 3
    assert tail(TRACE, 1) == 5
    assert summary("mean")([3, None, 5]) == 4  # a missing token confidence is skipped


@pytest.mark.parametrize("name", ["group0", "tail", "bottom0", "bottom101", "median", "", "group2.5"])
def test_unknown_summaries_list_the_valid_ones(name):
    with pytest.raises(ValueError, match="valid: mean"):
        summary(name)


def test_empty_trace_raises():
    with pytest.raises(ValueError, match="empty trace"):
        summary("mean")([])


@pytest.mark.parametrize("conf, window, s, expected", [
    (TRACE, 2, 2.5, 3),     # group of tokens 2..3 (mean 1) is the first below 2.5: stop after 4 tokens
    (TRACE, 2, 3.5, 2),     # group of tokens 1..2 (mean 3)
    (TRACE, 2, 1.0, None),  # nothing strictly below 1
    ([2, 4], 4, 3.5, 1),    # shorter than the window: judged at its end
    ([2, 4], 4, 3.0, None),
])
def test_stop_position(conf, window, s, expected):
    assert stop_position(conf, window, s) == expected


def test_stop_iff_lowest_group_below_threshold():
    rng = np.random.default_rng(0)
    for _ in range(200):
        conf = rng.uniform(0, 10, size=int(rng.integers(1, 60))).round(3).tolist()
        w, s = int(rng.integers(1, 12)), float(rng.uniform(2, 8))
        t = stop_position(conf, w, s)
        assert (t is not None) == (lowest_group(conf, w) < s)
        if t is not None:
            assert 0 <= t < len(conf) and np.mean(conf[max(0, t - w + 1): t + 1]) < s


@pytest.mark.parametrize("warm, keep, expected", [
    ([1, 2, 3, 4, 5], 50, 3.0),
    ([1, 2, 3, 4, 5], 10, 4.6),   # 90th percentile, linear interpolation
    ([1, 2, 3, 4, 5], 90, 1.4),
    ([7], 10, 7.0),
])
def test_warmup_threshold(warm, keep, expected):
    assert warmup_threshold(warm, keep) == pytest.approx(expected)


@pytest.mark.parametrize("keep", [0, 101, -5])
def test_warmup_threshold_rejects_bad_keep(keep):
    with pytest.raises(ValueError, match="keep must be a percentage"):
        warmup_threshold([1.0], keep)


# ---------------------------------------------------------------- selection rules


@pytest.mark.parametrize("values, keep, expected", [
    ([0.1, 0.9, 0.5, 0.7], 50, [1, 3]),
    ([0.1, 0.9, 0.5, 0.7], 10, [1]),           # ceil(0.4) = 1
    ([0.1, 0.9, 0.5, 0.7], 100, [0, 1, 2, 3]),
    ([0.5, 0.5, 0.5], 34, [0, 1]),             # ceil(1.02) = 2, ties to the earlier
    ([None, 0.2, None], 50, [0, 1]),           # None ranks last; ceil(1.5) = 2
    ([], 50, []),
])
def test_keep_top(values, keep, expected):
    assert keep_top(values, keep) == expected


def _cands(answers, values):
    return [Candidate(steps=["x"], answer=a, value=v) for a, v in zip(answers, values, strict=True)]


@pytest.mark.parametrize("rule, chosen, answer", [
    ("majority", 0, "1"),            # "1" x3 beats "2" x2
    ("weighted_vote", 3, "2"),       # 0.5+0.2+0.3 = 1.0 vs 0.9+0.8 = 1.7; its best member
    ("top40_majority", 3, "2"),      # keep the two best (0.9, 0.8): both "2"
    ("top40_weighted", 3, "2"),
    ("top20_weighted", 3, "2"),      # the single best
    ("top100_majority", 0, "1"),     # = majority
])
def test_filtered_rules(rule, chosen, answer):
    cands = _cands(["1", "1", "1", "2", "2"], [0.5, 0.2, 0.3, 0.9, 0.8])
    i, a, votes, _ = select(cands, rule, equal=lambda x, y: x == y)
    assert (i, a) == (chosen, answer)
    if rule.startswith("top") and rule != "top100_majority":
        assert all(m in (3, 4) for t in votes for m in t["members"])  # pool indices, kept only


@pytest.mark.parametrize("rule", ["top0_majority", "top101_weighted", "top10_vote", "best", "top10"])
def test_bad_rules_name_the_valid_ones(rule):
    with pytest.raises(ValueError, match="topP_majority / topP_weighted"):
        check_rule(rule)
    with pytest.raises(ValueError, match="select must be one of .* topP_majority / topP_weighted"):
        SearchConfig(strategy="best_of_n", select=rule)


@pytest.mark.parametrize("rule, chosen, answer", [
    ("majority", 0, "1"),                   # "1" x3, two of them with a false sum, beats "2" x2
    ("checked:majority", 3, "2"),           # "1" keeps one vote (2 + 2 = 4): "2" x2 wins
    ("checked:argmax", 3, "2"),             # the best value (0.95, "1") writes 3 * 4 = 13
    ("checked:top20_weighted", 3, "2"),     # the filter first, then the top 20% of the rest
])
def test_checked_rules_drop_candidates_with_a_false_equation_first(rule, chosen, answer):
    steps = [["3 * 4 = 13"], ["2 + 2 = 4"], ["5 - 1 = 3"], ["9 / 3 = 3"], ["no sums"]]
    cands = [Candidate(steps=st, answer=a, value=v)
             for st, a, v in zip(steps, ["1", "1", "1", "2", "2"], [0.95, 0.2, 0.3, 0.9, 0.8], strict=True)]
    i, a, votes, _ = select(cands, rule, equal=lambda x, y: x == y)
    assert (i, a) == (chosen, answer)
    members = {m for t in votes for m in t["members"]}  # pool indices
    assert ({0, 2} <= members) if rule == "majority" else not {0, 2} & members  # checked: the flagged ones left out
    # every candidate flagged: all stay, as if unchecked
    bad = [Candidate(steps=["1 + 1 = 3"], answer=x, value=v) for x, v in (("7", 0.1), ("8", 0.9))]
    assert select(bad, "checked:argmax", equal=lambda x, y: x == y)[:2] == (1, "8")
    assert SearchConfig(strategy="best_of_n", select="checked:weighted_vote").select == "checked:weighted_vote"


def test_checked_rules_are_refused_by_replays_that_have_no_steps():
    from eval import metrics

    with pytest.raises(ValueError, match="replays of stored runs read answers and values, not steps"):
        metrics.check_rule("checked:majority")
    with pytest.raises(ValueError, match="not steps"):
        metrics.select_index([0.1, 0.2], [0, 1], "checked:argmax")
    with pytest.raises(ValueError, match="checked:RULE"):
        check_rule("checked:checked:majority")


def test_rule_labels():
    assert rule_label("checked:top10_weighted") == "checked+top10%+weighted@n"
    assert rule_label("majority") == "maj@n"
    assert rule_label("top10_weighted") == "top10%+weighted@n"
    assert rule_label("top12.5_majority") == "top12.5%+maj@n"


# ---------------------------------------------------------------- adaptive stopping


@pytest.mark.parametrize("a, b", [(1, 1), (2, 1), (5, 2), (7, 1), (12, 3), (3, 9)])
def test_beta_sf_half_matches_the_binomial_identity(a, b):
    # X ~ Beta(a, b), integers: P(X > 1/2) = P(Binomial(a + b - 1, 1/2) <= a - 1)
    m = a + b - 1
    exact = sum(math.comb(m, j) for j in range(a)) / 2 ** m
    assert beta_sf_half(a, b) == pytest.approx(exact, abs=1e-12)


def test_beta_sf_half_real_parameters():
    assert beta_sf_half(2.5, 2.5) == pytest.approx(0.5)
    assert beta_sf_half(3.5, 1.0) == pytest.approx(1 - 0.5 ** 3.5)  # Beta(a, 1): cdf x^a


W1 = None  # unweighted rules ignore weights


@pytest.mark.parametrize("name, labels, weights, stop", [
    ("beta0.95", [0, 0, 0, 0], W1, True),            # a=4, b=0: 31/32
    ("beta0.95", [0, 0, 0], W1, False),              # 15/16 = 0.9375
    ("beta0.95", [0, 0, 0, 0, 0, 1], W1, False),     # a=5, b=1: 1 - 8/128 = 0.9375
    ("beta0.95", [0] * 6 + [1], W1, True),           # a=6, b=1: 1 - 9/256 = 0.9648
    ("beta0.95", [0, 0, None, 0, 0], W1, True),      # no-answer samples do not count
    ("beta0.95", [None, None], W1, False),
    ("cbeta0.95", [0] * 6 + [1], [1.0] * 7, True),   # equal weights: beta exactly
    ("cbeta0.95", [0] * 6 + [1], [1] * 6 + [6], False),  # mean 12/7: a = b = 3.5, P = 1/2
    ("agree0.75", [0, 0, 0, 1], W1, True),
    ("agree0.75", [0, 0, 1, None], W1, False),       # 2/4: a no-answer counts against
    ("agree0.75", [0], W1, False),                   # at least two samples
    ("agree1", [0, 0], W1, True),
    ("cagree0.95", [0, 0, 1], [10, 10, 1], True),    # 20/21 = 0.952
    ("cagree0.95", [0, 0, 1], [10, 10, 2], False),   # 20/22 = 0.909
    ("never", [0] * 20, W1, False),
])
def test_stop_rules(name, labels, weights, stop):
    w = weights if weights is not None else [None] * len(labels)
    assert stop_rule(name)(labels, w) is stop


@pytest.mark.parametrize("name", ["beta", "beta0", "beta1.5", "vote0.9", "cbeta-1"])
def test_unknown_stop_rules(name):
    with pytest.raises(ValueError, match="valid: never"):
        stop_rule(name)
    with pytest.raises(ValueError, match="stop:"):
        SearchConfig(strategy="adaptive", stop=name)


@pytest.mark.parametrize("first, step, n_max, expected", [
    (2, 1, 5, [2, 3, 4, 5]),
    (4, None, 16, [4, 8, 16]),
    (3, None, 10, [3, 6, 10]),
    (2, 4, 16, [2, 6, 10, 14, 16]),
    (20, 1, 16, [16]),
])
def test_schedule(first, step, n_max, expected):
    assert schedule(first, step, n_max) == expected


def test_config_checks_rounds_and_keeps_other_identities():
    with pytest.raises(ValueError, match="first_round must be"):
        SearchConfig(strategy="adaptive", first_round=0)
    with pytest.raises(ValueError, match="round_size must be"):
        SearchConfig(strategy="adaptive", round_size=0)
    assert "stop" not in SearchConfig(strategy="majority").as_dict()  # old runs resume unchanged
    assert SearchConfig(strategy="adaptive").as_dict()["stop"] == "beta0.95"


def _answer_script(answers_by_problem):
    """Each call of a problem's sample gives the next answer of its list."""
    its = {p: itertools.cycle(a) for p, a in answers_by_problem.items()}

    def script(problem, steps, j, seed):
        return f"The answer is {next(its[problem])}.", "eos"
    return script


def test_adaptive_strategy_stops_settled_problems_early():
    policy = FakePolicy(_answer_script({"easy": ["7"], "split": ["1", "2"]}), tokens_per_step=5)
    cfg = SearchConfig(strategy="adaptive", n=6, stop="beta0.95", first_round=2, round_size=1)
    done = []
    res = STRATEGIES["adaptive"](["easy", "split"], policy, None, cfg, on_done=done.append,
                                 equal=lambda a, b: a == b)
    easy, split = res
    assert len(easy.candidates) == 4 and easy.answer == "7"        # 2, 3, 4 samples: stops at 4
    assert len(split.candidates) == 6                               # never safe: the cap
    assert [len(c.problems) for c in policy.calls] == [2, 2, 2, 1, 1]  # rounds at 2, 3, 4, 5, 6
    assert [c.k for c in policy.calls] == [2, 1, 1, 1, 1]
    assert len({c.seed for c in policy.calls}) == 5                 # a seed per round
    assert easy.ledger.generated_tokens == 4 * 5 and split.ledger.generated_tokens == 6 * 5
    assert easy.ledger.policy_calls == 3 and split.ledger.policy_calls == 5
    assert [r.problem.text for r in done] == ["easy", "split"]


def test_adaptive_doubling_agreement():
    policy = FakePolicy(_answer_script({"a": ["3", "3", "3", "4"], "b": ["1", "2", "3", "4"]}))
    cfg = SearchConfig(strategy="adaptive", n=16, stop="agree0.75", first_round=4, round_size=None)
    a, b = STRATEGIES["adaptive"](["a", "b"], policy, None, cfg, equal=lambda x, y: x == y)
    assert len(a.candidates) == 4 and a.answer == "3"
    assert len(b.candidates) == 16
    assert [c.k for c in policy.calls] == [4, 4, 8]


# ---------------------------------------------------------------- allocation


@pytest.mark.parametrize("curves, costs, budget, expected", [
    ([[0.5, 0.6, 0.65], [0.9, 0.9, 0.9], [0.2, 0.2, 0.5]], [1, 1, 1], 2, [0, 0, 2]),  # crosses p2's flat step
    ([[0.5, 0.6, 0.65], [0.9, 0.9, 0.9], [0.2, 0.2, 0.5]], [1, 1, 1], 3, [1, 0, 2]),
    ([[0.5, 0.6, 0.65], [0.9, 0.9, 0.9], [0.2, 0.2, 0.5]], [1, 1, 2], 3, [2, 0, 0]),  # p2's jump costs 4
    ([[0.5, 0.6], [0.5, 0.6]], [1, 1], 1, [1, 0]),                                     # tie: earlier problem
    ([[0.5, 0.6], [0.5, 0.6]], [1, 1], 0, [0, 0]),
    ([[0.9, 0.9, 0.9]], [1], 100, [0]),                                                # no gain: not bought
])
def test_allocate_hand_computed(curves, costs, budget, expected):
    assert allocate(curves, costs, budget) == expected


def test_allocate_rejects_bad_inputs():
    with pytest.raises(ValueError, match="align"):
        allocate([[0.1]], [1, 2], 3)
    with pytest.raises(ValueError, match="costs must be > 0"):
        allocate([[0.1]], [0], 3)


def test_accuracy_curve_model():
    # V(0) = E[pi_leader]; counts [3], alpha = alpha_new = 1: pi ~ Dirichlet(4, 1), pi_leader ~ Beta(4, 1): 4/5
    assert accuracy_curve([3], 0, draws=40000)[0] == pytest.approx(4 / 5, abs=0.01)
    # counts [2, 1]: Dirichlet(3, 2, 1); the leader is the first class: 3/6
    assert accuracy_curve([2, 1], 0, draws=40000)[0] == pytest.approx(3 / 6, abs=0.01)
    assert accuracy_curve([], 3) == [0, 0, 0, 0]
    gain = {name: (lambda v: v[-1] - v[0])(accuracy_curve(c, 12, draws=4000, seed=1))
            for name, c in {"settled": [4], "leaning": [3, 1], "contested": [2, 2], "four": [1, 1, 1, 1],
                            "eight": [1] * 8}.items()}
    assert gain["settled"] == 0          # one seen class: unseen answers never win the vote
    assert 0 < gain["leaning"] < gain["contested"]
    assert gain["eight"] < gain["four"]  # more scattered: less to gain
    v = accuracy_curve([2, 1], 12, draws=4000, seed=1)
    assert v == accuracy_curve([2, 1], 12, draws=4000, seed=1)  # seeded


# ---------------------------------------------------------------- pool replays


def _sample(answer, correct, conf):
    return {"text": f"The answer is {answer}.", "steps": ["x"], "generated_tokens": len(conf), "prompt_tokens": 10,
            "finish_reason": "stop", "logprob": -1.0, "token_logprob": [-0.1] * len(conf),
            "token_conf": conf, "step_token_ends": [len(conf)], "step_conf": [float(np.mean(conf))],
            "answer": answer, "verdict": {"correct": correct, "status": "ok"}}


def _pool_rec(pid, gold, samples):
    return {"format": FORMAT, "id": pid, "problem": f"problem {pid}", "gold": gold, "source": "toy",
            "config": {"policy": {"model": "toy", "logprobs": 5}, "n": len(samples), "seed": 0,
                       "data": {"dataset": "toy"}},
            "samples": samples}


HI, LO = [8.0] * 4, [8.0, 1.0, 1.0, 8.0]  # group2: 8 and 1


def toy_pool():
    return [
        # wrong majority "1" (low confidence), right minority "2" (high confidence)
        _pool_rec("p0", "2", [_sample("1", False, LO), _sample("2", True, HI), _sample("1", False, LO),
                              _sample("2", True, HI), _sample("1", False, LO), _sample("9", False, LO)]),
        _pool_rec("p1", "5", [_sample("5", True, HI)] * 6),
    ]


def _probs():
    return budget.problems_from_pool(toy_pool(), equal=lambda a, b: a == b)


def test_fixed_and_filtered_replay_hand_computed():
    p0, p1 = _probs()
    order = list(range(6))
    w0 = [summary("group2")(c) for c in p0.conf]
    assert budget.replay_fixed(p0, order, 6, "majority", None) == (0.0, 24.0, 6.0)
    assert budget.replay_fixed(p0, order, 6, "weighted_vote", w0)[0] == 1.0   # 16 vs 3
    assert budget.replay_fixed(p0, order, 6, "top10_weighted", w0)[0] == 1.0  # keeps sample 1
    assert budget.replay_fixed(p0, order, 2, "majority", None)[0] == 0.0      # 1-1 tie: the first
    assert budget.replay_fixed(p1, order, 1, "majority", None) == (1.0, 4.0, 1.0)


def test_early_stop_replay_counts_tokens_exactly():
    p0, _ = _probs()
    # warm-up 0..3: group2 = 1, 8, 1, 8; keep 50 -> threshold = median = 4.5; samples 4, 5 (LO,
    # windows 4.5, 1, 4.5) stop at token 2 (window over tokens 1..2 = 1 < 4.5): 3 tokens each
    c, tok, n = budget.replay_early_stop(p0, list(range(6)), warmup=4, keep=50, window=2)
    assert tok == 16 + 3 + 3 and n == 6
    assert c == 1.0   # survivors: warm-ups 1 and 3 ("2"), nothing else
    # threshold below every confidence: nothing stops, all vote (weighted 3+16+... "2" 16 vs "1" 3)
    c, tok, _ = budget.replay_early_stop(p0, list(range(6)), warmup=4, keep=100, window=2)
    assert tok == 24


def test_adaptive_replay():
    p0, p1 = _probs()
    w1 = [8.0] * 6
    assert budget.replay_adaptive(p1, list(range(6)), stop="beta0.95", first=2, step=1, n_max=6,
                                  weights=w1) == (1.0, 16.0, 4.0)
    c, tok, n = budget.replay_adaptive(p0, list(range(6)), stop="beta0.95", first=2, step=1, n_max=6,
                                       weights=[1.0] * 6)
    assert (tok, n) == (24.0, 6.0)


def test_allocation_replay_spends_on_the_contested_problem():
    p0, p1 = _probs()
    order_of = [list(range(6)), list(range(6))]
    # first round 2 each (16 tokens), budget for 8 more samples of 4 tokens: 32 left
    res = budget.replay_allocation([p0, p1], order_of, budget=48, first=2, draws=2000)
    assert res[1][2] <= 3      # settled (2 of 2 agree): at most one more
    assert res[0][2] >= 5      # the 1-1 split gets most of the rest
    assert sum(r[1] for r in res) <= 48


def test_run_replay_and_report(tmp_path):
    probs = _probs()
    out = budget.run_replay(probs, n_orders=3, n_boot=200, conf="group2", window=2, warmup=2,
                            alloc_ks=(4,), draws=500)
    names = [r["name"] for r in out["rows"]]
    assert "maj@6" in names and any(n.startswith("allocate@4") for n in names)
    ref = next(r for r in out["rows"] if r["name"] == "maj@6")
    assert ref["diff"] == 0 and ref["token_share"] == 1
    md = budget.markdown(out, "toy", "python -m eval.budget toy.jsonl")
    assert "| maj@6 |" in md
    json.dumps(out)  # JSON-able


def test_budget_cli(tmp_path, capsys):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    rc = budget.main([str(path), "--out", str(tmp_path / "rep"), "--orders", "2", "--bootstrap", "100",
                      "--conf", "group2", "--window", "2", "--warmup", "2", "--alloc-k", "4"])
    assert rc == 0 and (tmp_path / "rep" / "report.md").is_file()
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["problems"] == 2


def test_sweep_replays_confidence_rows_and_filtered_rules(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    assert pool_as_records(toy_pool())[0]["candidates"][0]["token_conf"] == LO
    res = sweep(load_runs([path]), rules=["majority", "weighted_vote", "top10_weighted"], conf=["group2"],
                n_boot=100, equal=lambda a, b: a == b)
    run = res["runs"][0]
    assert "conf:group2" in run["aggs"]
    cell = {(c["agg"], c["rule"], c["k"]): c["acc"] for c in run["cells"]}
    assert cell[("conf:group2", "majority", 6)] == 0.5          # p0 wrong, p1 right
    assert cell[("conf:group2", "weighted_vote", 6)] == 1.0
    assert cell[("conf:group2", "top10_weighted", 6)] == 1.0
    with pytest.raises(ValueError, match="topP_majority"):
        sweep(load_runs([path]), rules=["top0_weighted"])


@pytest.mark.parametrize("argv, msg", [
    (["--strategy", "majority", "--stop", "beta0.9"], "--stop applies to --strategy adaptive"),
    (["--strategy", "best_of_n", "--round-size", "double"], "--round-size applies to --strategy adaptive"),
    (["--strategy", "adaptive", "--stop", "vote"], "stop: unknown stop rule 'vote'"),
])
def test_search_cli_adaptive_options(argv, msg):
    import argparse

    from search import cli as search_cli

    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    args = p.parse_args(argv)
    with pytest.raises(ValueError, match=msg):
        search_cli.check_args(args)
        search_cli._config(args)


def test_search_cli_select_choices_come_from_the_registry():
    import argparse

    from search import cli as search_cli

    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    assert p.parse_args(["--select", "top10_weighted"]).select == "top10_weighted"
    assert p.parse_args(["--round-size", "double"]).round_size is None
    with pytest.raises(SystemExit):
        p.parse_args(["--select", "top0_weighted"])


def test_adaptive_through_the_runner_writes_every_sample(tmp_path):
    from search.runner import run_search

    policy = FakePolicy(_answer_script({"easy": ["7"], "split": ["1", "2"]}))
    cfg = SearchConfig(strategy="adaptive", n=6, stop="beta0.95")
    probs = [{"id": "e", "problem": "easy", "answer": "7"}, {"id": "s", "problem": "split", "answer": "2"}]
    s = run_search(probs, policy, None, cfg, out=tmp_path / "a.jsonl")
    recs = {r["id"]: r for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    assert len(recs["e"]["candidates"]) == 4 and len(recs["s"]["candidates"]) == 6
    assert recs["e"]["config"]["search"]["stop"] == "beta0.95"
    assert s["totals"]["generated_tokens"] == 10 * 5


def test_sweep_cli_conf_rows_and_rule_errors(tmp_path, capsys):
    import cli

    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    rc = cli.main(["sweep", str(path), "--conf", "group2,mean", "--select", "majority,top10_weighted",
                   "--bootstrap", "100", "--out", str(tmp_path / "rep")])
    assert rc == 0
    summary_ = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary_["runs"][0]["aggs"] == ["confidence", "conf:group2", "conf:mean"]
    assert "top10%+weighted@n" in (tmp_path / "rep" / "report.md").read_text()
    capsys.readouterr()
    for argv, msg in ((["--select", "top0_weighted"], "--select: select rule must be one of"),
                      (["--conf", "group0"], "--conf: unknown confidence summary 'group0'")):
        rc = cli.main(["sweep", str(path), *argv, "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- Borda voting

def test_borda_votes_by_rank_not_by_scale():
    from search.select import borda_votes

    # n = 4, ranks by value: #0 (r1), #2 (r2), #1 (r3); #3 has no value
    assert borda_votes([0.9, 0.1, 0.5, None]) == pytest.approx([2.0, math.sqrt(2), math.sqrt(3), None])
    assert borda_votes([7.0, 7.0]) == pytest.approx([math.sqrt(2), 1.0])  # a tie goes to the earlier one
    assert borda_votes([1e6, 3.0, 40.0]) == borda_votes([0.9, 0.1, 0.5])  # only the order matters
    assert rule_label("borda") == "borda@n" and check_rule("borda") == "borda"


def test_borda_picks_the_class_the_ranks_favour():
    cands = [Candidate(steps=["s"], value=v, answer=a) for v, a in
             [(0.9, "A"), (0.1, "B"), (0.5, "B"), (None, "A")]]
    # A: 2 (+0 for the valueless one); B: sqrt(3) + sqrt(2) = 3.15 -> B, by its best member #2
    i, answer, votes, _ = select(cands, "borda", equal=lambda a, b: a == b)
    assert (i, answer) == (2, "B")
    assert votes[0]["weight"] == pytest.approx(math.sqrt(3) + math.sqrt(2))
    # the other rules choose A here: weighted 0.9 vs 0.6; majority 2-2, ties to the weight
    assert select(cands, "weighted_vote", equal=lambda a, b: a == b)[1] == "A"
    assert select(cands, "majority", equal=lambda a, b: a == b)[1] == "A"
    # no values at all: no Borda votes, so the tie-break by count decides (a majority)
    bare = [Candidate(steps=["s"], value=None, answer=a) for a in "ABB"]
    assert select(bare, "borda", equal=lambda a, b: a == b)[1] == "B"


def test_sweep_replays_adaptive_rules_on_a_pool(tmp_path, capsys):
    import cli

    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_pool()))
    rc = cli.main(["sweep", str(path), "--select", "majority,borda", "--stops", "beta0.9,agree0.75",
                   "--bootstrap", "100", "--out", str(tmp_path / "rep")])
    assert rc == 0, capsys.readouterr().err
    report = (tmp_path / "rep" / "budget" / "report.md").read_text()
    assert "adaptive beta0.9" in report and "adaptive agree0.75" in report
    assert "borda@n" in (tmp_path / "rep" / "report.md").read_text()
    capsys.readouterr()
    run = tmp_path / "run.jsonl"  # a search run file is not a pool: nothing to draw one by one
    run.write_text("".join(json.dumps(r) + "\n" for r in pool_as_records(toy_pool())))
    rc = cli.main(["sweep", str(run), "--stops", "beta0.9", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert rc == 2 and "--stops / --preset replay sample pools" in err
    for argv, msg in ((["--stops", "zeta3"], "--stops: unknown stop rule 'zeta3'"),
                      (["--preset", "nope"], "--preset: unknown preset 'nope'")):
        rc = cli.main(["sweep", str(path), *argv, "--out", str(tmp_path / "z")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "z").exists()  # refused before any sweep ran
