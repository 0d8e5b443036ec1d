"""DeepConf online in the engine (search/deepconf.py, issue 15): the streaming stop rule
against the offline one, the strategy's threshold / stop / vote / ledger on the scripted
fake policy (search.testing.FakeTracePolicy), its agreement with the pool replay
(eval.budget), reproducibility whatever the arrival order, and its checks. No engine:
the SmolLM2 engine test is tests/test_deepconf_engine.py."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from eval import budget
from policies import GenRequest, KVBudget, Policy, SamplingConfig
from search import STRATEGIES, SearchConfig
from search.confidence import (
    WindowStop,
    group_means,
    lowest_group,
    online_threshold,
    online_votes,
    stop_position,
    trace_group,
    warmup_threshold,
)
from search.testing import FakePolicy, FakeTracePolicy

HI, LO = [8.0] * 4, [8.0, 1.0, 1.0, 8.0]  # group2: 8 and 1
EQ = lambda a, b: a == b  # noqa: E731  (answers compared as strings)


# ---------------------------------------------------------------- the streaming rule


def _first_stop(conf, window, threshold):
    w = WindowStop(window, threshold)
    return next((t for t, c in enumerate(conf) if w(c)), None)


@pytest.mark.parametrize("conf, window, threshold, expected", [
    ([5, 5, 1, 1, 5, 5], 2, 3.0, 3),   # window means 5, 3, 1: 3 is not below 3; 1 is, at token 3
    ([5, 5, 1, 1, 5, 5], 2, 3.5, 2),   # 3 < 3.5 at token 2
    ([5, 5, 1, 1, 5, 5], 2, 0.5, None),
    ([1, 1], 4, 9.0, None),            # shorter than the window: never stopped while streaming
    ([4, 4, 4, 0], 4, 3.5, 3),         # the first full window is the whole trace
    ([5, float("nan"), 1, 1], 2, 2.0, 3),  # a position without log-probs is skipped, as group_means drops it
])
def test_window_stop_hand_computed(conf, window, threshold, expected):
    assert _first_stop(conf, window, threshold) == expected


def test_window_stop_is_stop_position_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(500):
        size, window = int(rng.integers(1, 120)), int(rng.integers(1, 30))
        conf = rng.gamma(5.0, 0.5, size=size).tolist()
        g = group_means(conf, window)
        # thresholds equal to a window mean too: the comparisons must agree to the last bit
        threshold = float(rng.choice(g)) if rng.random() < 0.5 else float(np.percentile(g, 30))
        t = _first_stop(conf, window, threshold)
        offline = stop_position(conf, window, threshold)
        assert t == (offline if size >= window else None)
        if t is not None:
            assert stop_position(conf[: t + 1], window, threshold) == t  # the tokens it returns


def test_window_stop_checks_its_window():
    with pytest.raises(ValueError, match="window must be an int >= 1"):
        WindowStop(0, 1.0)


def test_online_threshold_and_votes_hand_computed():
    warm = [LO, HI, LO, HI]
    s = online_threshold(warm, 2, 50)          # median of 1, 8, 1, 8
    assert s == 4.5 == warmup_threshold([1, 8, 1, 8], 50)
    voters, stops = online_votes(warm, [HI, LO, [9.0]], 2, s)
    assert voters == [1, 3, 4, 6] and stops == [None, 2, None]
    # a short trace is judged at its end by its mean; a trace without confidences never votes
    voters, stops = online_votes([HI, None], [[1.0], []], 2, s)
    assert voters == [0] and stops == [0, None]
    assert trace_group([], 2) is None and trace_group([float("nan")], 2) is None
    assert online_threshold([None, []], 2, 50) == -np.inf  # nothing to set it from: nothing stops


# ---------------------------------------------------------------- the strategy on the fake


TABLE = {  # sample i of each problem: (answer, token confidences); warm-ups are 0..3
    "p0": [("1", LO), ("2", HI), ("1", LO), ("2", HI), ("1", LO), ("9", LO)],  # test_selection's toy pool
    "p1": [("5", HI), ("5", HI), ("5", HI), ("5", HI), ("5", HI), ("5", HI)],
    "p2": [("3", HI), ("3", LO), ("4", HI), ("3", [2.0, 2.0]), ("3", HI), ("4", LO + [8.0] * 4)],
}


def _script(problem, i):
    return TABLE[problem.split("#")[0]][i]  # "p0#3": another problem with p0's samples


def _run(policy, cfg=None, problems=("p0", "p1", "p2")):
    cfg = cfg or SearchConfig(strategy="deepconf", n=6, warmup=4, keep=50, window=2)
    return STRATEGIES["deepconf"](list(problems), policy, None, cfg, equal=EQ)


def test_deepconf_stops_counts_and_votes_hand_computed():
    pol = FakeTracePolicy(_script)
    p0, p1, p2 = _run(pol)
    # p0: warm-up group2 1, 8, 1, 8 -> threshold 4.5; samples 4 and 5 stop at token 2 (3 tokens
    # each, no answer); the voters are warm-ups 1 and 3, both "2"
    assert p0.details == {"threshold": 4.5, "warmup": 4, "voters": 2, "stopped": 2, "stopped_in_engine": 2,
                          "stop_at": [2, 2]}
    assert p0.answer == "2" and p0.chosen == 1
    assert [c.finish_reason for c in p0.candidates] == ["eos"] * 4 + ["early_stop"] * 2
    assert [c.generated_tokens for c in p0.candidates] == [4, 4, 4, 4, 3, 3]
    assert p0.ledger.generated_tokens == 22 and p0.ledger.policy_calls == 2 and p0.ledger.policy_requests == 2
    assert p0.votes == [{"answer": "2", "count": 2, "weight": 16.0, "members": [1, 3]}]
    assert [c.value for c in p0.candidates] == [1.0, 8.0, 1.0, 8.0, 1.0, 1.0]  # groupW, stopped ones too
    # p1: everything at 8, threshold 8: nothing is below it, all six vote
    assert p1.details["stopped"] == 0 and p1.details["voters"] == 6 and p1.answer == "5"
    assert p1.ledger.generated_tokens == 24
    # p2: warm-up groups 8, 1, 8, 2 -> threshold 5; sample 4 survives, sample 5 stops at token 1
    # of its 8 (first window 4.5); warm-ups 1 and 3 (mean 2 < 5) do not vote: "3" 8 + 8 against "4" 8
    assert p2.details["threshold"] == 5.0 and p2.details["stop_at"] == [None, 1]
    assert p2.answer == "3" and p2.votes[0]["members"] == [0, 4]
    assert p2.ledger.generated_tokens == 4 + 4 + 4 + 2 + 4 + 2
    # the warm-up request runs in full, the other is watched with that problem's threshold
    warm, rest = [r for r in pol.requests if r.problem == "p2"]
    assert (warm.n, warm.kind, warm.watch) == (4, "sample", None)
    assert rest.n == 2 and rest.watch.args == (2, 5.0)
    assert warm.seed is not None and rest.seed is not None and warm.seed != rest.seed


def test_deepconf_agrees_with_the_pool_replay():
    """The replay (eval.budget) on the full traces charges exactly the ledger's tokens and
    picks the same answer as the online run, which saw only the stopped traces' heads."""
    pol = FakeTracePolicy(_script)
    results = _run(pol)
    pool = [{"id": p, "gold": "2", "samples": [{"answer": a, "token_conf": c, "generated_tokens": len(c),
                                                "verdict": {"correct": a == "2"}} for a, c in TABLE[p]]}
            for p in ("p0", "p1", "p2")]
    for res, prob in zip(results, budget.problems_from_pool(pool, equal=EQ), strict=True):
        correct, tokens, n = budget.replay_early_stop(prob, list(range(6)), warmup=4, keep=50, window=2)
        assert tokens == res.ledger.generated_tokens and n == 6
        assert correct == float(res.answer == "2")


@pytest.mark.parametrize("arrival", [1, 2, 3])
def test_deepconf_is_the_same_whatever_the_arrival_order(arrival):
    ref = [r.as_dict() for r in _run(FakeTracePolicy(_script))]
    pol = FakeTracePolicy(_script, arrival=arrival, per_poll=1)
    got = [r.as_dict() for r in _run(pol)]
    for a, b in zip(ref, got, strict=True):
        a["ledger"].pop("wall_s"), b["ledger"].pop("wall_s")
    assert got == ref
    # the seeds belong to the requests, not to the order they were sent or came back in
    first = FakeTracePolicy(_script)
    _run(first)
    assert sorted((r.problem, r.n, r.seed) for r in pol.requests) == sorted(
        (r.problem, r.n, r.seed) for r in first.requests)


def test_deepconf_admits_within_the_budget_and_starts_problems_first():
    pol = FakeTracePolicy(_script, budget=KVBudget(max_seqs=6), per_poll=1)
    _run(pol)
    assert pol.max_live_seqs <= 6
    # p0's watched request went in ahead of p2's warm-up (started problems first)
    order = [(r.problem, r.watch is not None) for r in pol.requests]
    assert order.index(("p0", True)) < order.index(("p2", False))


def test_deepconf_with_warmup_n_is_the_offline_filter():
    pol = FakeTracePolicy(_script)
    cfg = SearchConfig(strategy="deepconf", n=4, warmup=4, keep=50, window=2)
    (p0,) = _run(pol, cfg, ("p0",))
    assert len(pol.requests) == 1 and p0.ledger.policy_calls == 1
    assert p0.details["stop_at"] == [] and p0.details["voters"] == 2 and p0.answer == "2"


def test_deepconf_through_the_runner_records_details(tmp_path):
    from search.runner import run_search

    pol = FakeTracePolicy(_script)
    cfg = SearchConfig(strategy="deepconf", n=6, warmup=4, keep=50, window=2)
    probs = [{"id": f"q{i}", "problem": f"p{i % 3}#{i}", "answer": "2"} for i in range(21)]
    s = run_search(probs, pol, None, cfg, out=tmp_path / "d.jsonl", batch_problems=2, equal=EQ)
    recs = {r["id"]: r for r in map(json.loads, (tmp_path / "d.jsonl").read_text().splitlines())}
    assert len(recs) == 21 and recs["q0"]["details"]["stopped"] == 2 and recs["q0"]["correct"] is True
    assert recs["q0"]["config"]["search"]["keep"] == 50 and "stop" not in recs["q0"]["config"]["search"]
    assert s["totals"]["generated_tokens"] == 7 * (22 + 24 + 20)
    # one call for all problems, not batches of --batch-problems: 21 warm-ups before any answer
    assert [r.watch is None for r in pol.requests[:21]] == [True] * 21
    # other strategies' records have no details key
    assert "details" not in STRATEGIES["majority"](["x"], FakePolicy(), None, SearchConfig(strategy="majority"))[0].as_dict()


def test_deepconf_refuses_what_it_cannot_run():
    from search.testing import FakeScorer

    cfg = SearchConfig(strategy="deepconf", n=6)
    with pytest.raises(ValueError, match="takes no scorer"):
        STRATEGIES["deepconf"](["p0"], FakeTracePolicy(_script), FakeScorer(), cfg)
    with pytest.raises(ValueError, match="cannot do; run it on the in-process engine"):
        STRATEGIES["deepconf"](["p0"], FakePolicy(), None, cfg)
    with pytest.raises(ValueError, match="SamplingConfig\\(logprobs=5\\)"):
        STRATEGIES["deepconf"](["p0"], FakeTracePolicy(_script, logprobs=0), None, cfg)


class _Blocking(Policy):
    """A policy with only the blocking stand-in of submit / poll."""

    def __init__(self):
        super().__init__(sampling=SamplingConfig(logprobs=5), prompt_style="plain", tokenizer=object())

    def _generate(self, prompts, n, max_tokens, *, stop, seed, tag):  # pragma: no cover - never reached
        raise AssertionError("no generation expected")


def test_a_policy_that_cannot_stop_refuses_a_watched_request():
    with pytest.raises(ValueError, match="cannot stop a sample inside the engine"):
        _Blocking().submit(GenRequest("P", n=1, kind="sample", watch=lambda: (lambda c: False)))
    with pytest.raises(ValueError, match="watch must be a callable"):
        GenRequest("P", watch=3)


@pytest.mark.parametrize("kw, msg", [
    (dict(warmup=0), "warmup must be an int >= 1"),
    (dict(window=0), "window must be an int >= 1"),
    (dict(keep=0), "keep must be a percentage in \\(0, 100\\]"),
    (dict(keep=101), "keep must be a percentage"),
    (dict(n=2, warmup=4), "warmup must be <= n for deepconf"),
])
def test_deepconf_config_checks(kw, msg):
    with pytest.raises(ValueError, match=msg):
        SearchConfig(strategy="deepconf", **kw)


def test_deepconf_config_identity_and_selection():
    c = SearchConfig(strategy="deepconf", n=16)
    assert c.select == "weighted_vote" and (c.warmup, c.keep, c.window) == (4, 90.0, 32)
    assert {"warmup", "keep", "window"} <= set(c.as_dict()) and "stop" not in c.as_dict()
    assert "warmup" not in SearchConfig(strategy="majority").as_dict()
    SearchConfig(strategy="majority", n=2)  # the warm-up bound is deepconf's alone
    with pytest.raises(ValueError, match="contradicts strategy='deepconf'"):
        SearchConfig(strategy="deepconf", select="majority")


def _args(argv):
    from search import cli as search_cli

    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    return p.parse_args(argv)


@pytest.mark.parametrize("argv, msg", [
    (["--strategy", "majority", "--warmup", "2"], "--warmup applies to --strategy deepconf"),
    (["--strategy", "best_of_n", "--keep", "10"], "--keep applies to --strategy deepconf"),
    (["--strategy", "deepconf", "--backend", "openai", "--endpoint", "http://127.0.0.1:8000/v1"],
     "use --backend inprocess"),
    (["--strategy", "deepconf", "--batch-problems", "4"], "--batch-problems does not apply"),
    (["--strategy", "deepconf", "--reward", "verifier"], "takes no scorer"),
])
def test_search_cli_deepconf_options(argv, msg):
    from search import cli as search_cli

    with pytest.raises(ValueError, match=msg):
        search_cli.check_args(_args(argv))


def test_search_cli_deepconf_config_name_and_logprobs():
    from search import cli as search_cli

    args = _args(["--strategy", "deepconf", "--n", "16", "--keep", "10", "--dataset", "gsm8k-heldout200"])
    search_cli.check_args(args)
    cfg = search_cli._config(args)
    assert (cfg.warmup, cfg.keep, cfg.window) == (4, 10.0, 32)
    assert search_cli.default_out(args, cfg).name == (
        "gsm8k-heldout200-deepconf-none-min-n16-w4-keep10-win32-seed0.jsonl")
    make_policy, make_scorer = search_cli.backends(args)  # factories: nothing is built
    assert make_policy.keywords["sampling"].logprobs == 5 and make_scorer is None
    assert search_cli.backends(_args(["--strategy", "majority"]))[0].keywords["sampling"].logprobs == 0


def test_lowest_group_of_a_trace_as_long_as_the_window_is_its_running_sum():
    # group_means takes the running-sum path from one full window on, as WindowStop does
    conf = [0.1, 0.2, 0.3]
    assert lowest_group(conf, 3) == (0.1 + 0.2 + 0.3) / 3
