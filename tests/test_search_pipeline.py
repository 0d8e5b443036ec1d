"""The pipelined driver (search/drive.py) on the scripted fake policy and scorer: the
same results as the lockstep reference whatever order requests finish in, and never
more live sequences or KV tokens than the engine's budget."""

from __future__ import annotations

import json

import pytest

from policies import KVBudget
from search import SearchConfig
from search.beam import beam
from search.drive import Admission
from search.dvts import dvts
from search.mcts import mcts
from search.particle_filter import particle_filter
from search.runner import run_search
from search.testing import FakePolicy, FakeScorer, digit_scores
from search.types import Problem

PROBS = [Problem(f"p{i}", f"Problem {i}?", str(i % 2)) for i in range(6)]
STRATEGY = {"beam": beam, "dvts": dvts, "mcts": mcts, "particle_filter": particle_filter}


def eq(a, b):  # a verifier stand-in: numbers equal by value
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def varied(problem, steps, j, seed):
    """Problems end at different depths; some steps are empty, repeated or cut by length."""
    d, i = len(steps), int(problem.split()[1].rstrip("?"))
    h = (seed * 7 + i * 13 + d * 5 + j * 3) % 11
    if d >= 2 + i % 3 or h == 0:
        return f"The answer is {h % 3}.", "eos"
    if h == 1:
        return "", "step"
    if h == 2:
        return f"dup{d}", "step"
    return f"s{d}.{j}.{h}", ("length" if h == 10 else "step")


CASES = [
    ("beam", dict(n=4, beam_width=2)),
    ("beam", dict(n=6, beam_width=2, beam_rule="expand_all", max_steps=3)),
    ("beam", dict(n=8, beam_width=4, max_steps=2)),  # step limit: rollouts
    ("dvts", dict(n=4, beam_width=2)),
    ("dvts", dict(n=8, beam_width=2, max_steps=3)),
    ("mcts", dict(beam_width=2, node_budget=7)),
    ("mcts", dict(beam_width=3, node_budget=9, rollouts=True, max_steps=3)),
    ("particle_filter", dict(n=4)),
    ("particle_filter", dict(n=5, max_steps=2, agg="last")),
]
# what legitimately differs between drivers: times, and the scorer's tokens and cache
# hits, which a batched scorer call shares among its problems by submitted characters
VARIES = ("wall_s", "scorer_tokens", "scorer_flops", "flops", "scorer_cache_hits")


def _records(results) -> list[dict]:
    out = []
    for r in results:
        d = r.as_dict()
        for k in VARIES:
            d["ledger"].pop(k)
        out.append(d)
    return out


def _run(strategy, kw, *, pipeline, scorer=True, script=varied, **policy_kw):
    pol = FakePolicy(script, **policy_kw)
    sc = FakeScorer(digit_scores) if scorer else None
    cfg = SearchConfig(strategy=strategy, seed=3, **kw)
    opts = {"score_batch": 3} if pipeline else {}
    return _records(STRATEGY[strategy](PROBS, pol, sc, cfg, equal=eq, pipeline=pipeline, **opts)), pol


@pytest.mark.parametrize("strategy, kw", CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
@pytest.mark.parametrize("scorer", [True, False], ids=["prm", "no-scorer"])
def test_pipelined_results_equal_the_lockstep_reference(strategy, kw, scorer):
    """Same candidates, scores, values, trees, chosen answers and ledgers (policy calls,
    requests, tokens, scorer calls), whichever order the requests come back in."""
    ref, lock_pol = _run(strategy, kw, pipeline=False, scorer=scorer)
    assert lock_pol.requests == []  # the reference makes blocking calls only
    for policy_kw in (
        {},  # all in flight come back at once
        {"arrival": 1, "per_poll": 1},  # one at a time, shuffled
        {"arrival": 2, "per_poll": 3},
        {"arrival": 3, "budget": KVBudget(max_seqs=5, kv_tokens=3000, max_model_len=512, block_size=16)},
    ):
        got, pol = _run(strategy, kw, pipeline=True, scorer=scorer, **policy_kw)
        assert pol.calls == [] and pol.requests  # the pipelined driver submits only
        assert got == ref, policy_kw


def test_lockstep_and_pipelined_seeds_are_the_same_per_request():
    """Each request carries the seed of its place in the search (strategy, depth), so a
    request's samples do not depend on the driver."""
    _, lock = _run("beam", dict(n=4, beam_width=2), pipeline=False)
    _, pipe = _run("beam", dict(n=4, beam_width=2), pipeline=True, arrival=5, per_poll=2)
    blocking = {(p, tuple(s), c.seed) for c in lock.calls for p, s in zip(c.problems, c.steps, strict=True)}
    submitted = {(r.problem, r.steps, r.seed) for r in pipe.requests}
    assert submitted == blocking


@pytest.mark.parametrize("strategy", ["beam", "particle_filter"])
def test_shuffled_arrival_gives_identical_records(tmp_path, strategy):
    """run_search pipelined (its default for step-level strategies on this policy): the
    records written do not depend on the order in which requests finish; only the order
    of the lines does."""
    probs = [{"id": f"q{i}", "problem": f"Problem {i}?", "answer": str(i % 2)} for i in range(9)]
    cfg = SearchConfig(strategy=strategy, n=4, beam_width=2, max_steps=3, seed=11)

    def records(name, pipeline, **policy_kw):
        out = tmp_path / f"{name}.jsonl"
        s = run_search(probs, FakePolicy(varied, **policy_kw), FakeScorer(digit_scores), cfg, out=out,
                       pipeline=pipeline, batch_problems=4)
        assert s["last_invocation"]["pipeline"] == (pipeline is not False)
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        for r in recs:
            for k in VARIES:
                r["ledger"].pop(k)
        return {r["id"]: r for r in recs}, [r["id"] for r in recs]

    ref, _ = records("lockstep", False)
    orders = set()
    for seed in range(4):
        got, order = records(f"shuffled{seed}", None, arrival=seed, per_poll=2,
                             budget=KVBudget(max_seqs=6, kv_tokens=None))
        assert got == ref
        orders.add(tuple(order))
    assert len(orders) > 1  # the arrival order did change which problem finished first


def test_a_resumed_pipelined_run_equals_an_uninterrupted_one(tmp_path):
    probs = [{"id": f"q{i}", "problem": f"Problem {i}?", "answer": str(i % 2)} for i in range(7)]
    cfg = SearchConfig(strategy="dvts", n=4, beam_width=2, max_steps=3, seed=2)
    run_search(probs, FakePolicy(varied, arrival=0, per_poll=1), FakeScorer(digit_scores), cfg,
               out=tmp_path / "full.jsonl")

    class Stop(Exception):
        pass

    def stop_after_three(rec, box=[]):  # noqa: B006
        box.append(rec)
        if len(box) == 3:
            raise Stop

    cut = tmp_path / "cut.jsonl"
    pol = FakePolicy(varied, arrival=1, per_poll=2)
    with pytest.raises(Stop):
        run_search(probs, pol, FakeScorer(digit_scores), cfg, out=cut, on_record=stop_after_three)
    assert pol.pending() == 0  # the driver aborted what was still in flight
    s = run_search(probs, FakePolicy(varied, arrival=2, per_poll=3), FakeScorer(digit_scores), cfg, out=cut)
    assert s["last_invocation"]["ran"] == 4 and s["last_invocation"]["rerun_for_batches"] == 0

    def key(path):
        recs = [json.loads(x) for x in path.read_text().splitlines()]
        return {r["id"]: (r["answer"], r["correct"], r["candidates"], r["tree"]) for r in recs}, len(recs)

    assert key(cut) == key(tmp_path / "full.jsonl")


# ---- admission control ---------------------------------------------------------------
@pytest.mark.parametrize("budget", [
    KVBudget(max_seqs=128, kv_tokens=None, max_model_len=2048, block_size=32),  # sequences bind
    KVBudget(max_seqs=128, kv_tokens=20_000, max_model_len=2048, block_size=32),  # KV tokens bind
], ids=["max-seqs", "kv-tokens"])
def test_admission_never_exceeds_the_budget_at_2000_problems_n16(budget):
    """The issue's scale: 2,000 problems at N = 16 (beam, M = 4). Live sequences never
    exceed max_num_seqs and reserved KV tokens never exceed the cache, and the driver
    keeps the engine close to full."""
    probs = [Problem(f"x{i}", f"Problem {i}?", str(i % 2)) for i in range(2000)]
    pol = FakePolicy(budget=budget, arrival=7, per_poll=8)
    cfg = SearchConfig(strategy="beam", n=16, beam_width=4, max_steps=6, seed=0)
    res = beam(probs, pol, None, cfg, equal=eq, pipeline=True)
    assert all(r is not None and r.candidates for r in res)
    assert pol.max_live_seqs <= budget.max_seqs
    assert budget.kv_tokens is None or pol.max_live_tokens <= budget.kv_tokens
    if budget.kv_tokens is None:
        assert pol.max_live_seqs == budget.max_seqs  # full, never over
    else:
        assert pol.max_live_tokens > 0.8 * budget.kv_tokens
    assert pol.pending() == 0 and len(pol.requests) >= 2000 * 4


def test_problems_start_in_order_and_overlap_at_different_depths():
    from search.beam import _beam
    from search.tree import TreeSearch

    probs = [Problem(f"x{i}", f"Problem {i}?", "1") for i in range(12)]
    pol = FakePolicy(varied, budget=KVBudget(max_seqs=8), arrival=4, per_poll=1)
    run_cfg = SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=4, seed=1)
    run = TreeSearch(probs, pol, FakeScorer(digit_scores), run_cfg, equal=eq)
    run.drive(_beam, pipeline=True, score_batch=1)  # score at once: the fake policy takes no time
    assert run.stats.started == list(range(12))
    depths = [len(r.steps) for r in pol.requests]
    # not depth by depth: a later problem's first step goes in after an earlier one's deeper steps
    assert any(a > b for a, b in zip(depths, depths[1:], strict=False))
    assert run.stats.max_seqs <= 8 and pol.max_live_seqs <= 8


def test_admission_rules():
    live = [0]
    a = Admission(KVBudget(max_seqs=4, kv_tokens=100), None, seats=lambda: live[0])
    assert a.fits(9, 10_000)  # an idle engine takes any one request
    live[0] = 3
    a.reserve(60)
    assert a.fits(1, 40) and not a.fits(2, 10) and not a.fits(1, 41)
    live[0] = 1  # two of the request's samples finished: their seats are free, its tokens still held
    assert a.fits(3, 40) and not a.fits(4, 10) and not a.fits(1, 41)
    live[0] = 0
    a.free(60)
    assert a.seqs == 0 and a.tokens == 0
    assert Admission(KVBudget(max_seqs=64), 16, seats=lambda: 0).max_seqs == 16  # a cap below the engine's
    idle = Admission(None, None, seats=lambda: 0)
    assert idle.max_seqs > 0 and idle.kv_tokens is None


def test_kv_budget_request_tokens():
    b = KVBudget(max_seqs=8, kv_tokens=10_000, max_model_len=100, block_size=16)
    # prompt 40 = 2 shared full blocks (32) + 8 own; each sample: 8 + 20 -> 2 blocks of 16
    assert b.request_tokens(40, 1, 20) == 32 + 32
    assert b.request_tokens(40, 4, 20) == 32 + 4 * 32
    # capped at max_model_len: 90 prompt tokens leave 10 to generate
    assert b.request_tokens(90, 2, 500) == 80 + 2 * 32
    assert KVBudget(max_seqs=1, block_size=1).request_tokens(10, 3, 5) == 10 + 3 * 5


@pytest.mark.parametrize("kw, msg", [
    (dict(max_seqs=0), "max_seqs must be >= 1"),
    (dict(max_seqs=1, kv_tokens=0), "kv_tokens must be >= 1 or None"),
    (dict(max_seqs=1, block_size=0), "block_size must be >= 1"),
])
def test_kv_budget_checks(kw, msg):
    with pytest.raises(ValueError, match=msg):
        KVBudget(**kw)


def test_scores_wait_for_a_batch_but_not_longer_than_the_bound():
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=4, seed=0)

    def scorer_calls(**opts):
        sc = FakeScorer(digit_scores)
        pol = FakePolicy(varied, arrival=0, per_poll=1)
        res = beam(PROBS, pol, sc, cfg, equal=eq, pipeline=True, **opts)
        return _records(res), [len(sols) for _p, sols, _g in sc.log]

    eager, eager_sizes = scorer_calls(score_batch=1, score_wait_s=0)
    patient, patient_sizes = scorer_calls(score_batch=10**6, score_wait_s=10**6)
    assert eager == patient  # batching changes calls, not results
    assert len(patient_sizes) < len(eager_sizes)  # waiting (while generation goes on) makes fewer, larger calls
    assert max(patient_sizes) > max(eager_sizes)


def test_pipeline_needs_the_non_blocking_interface_and_lockstep_takes_no_options():
    class Blocking:  # a policy with sample / extend only
        sampling = FakePolicy().sampling

        def extend(self, *a, **k):
            raise AssertionError

    with pytest.raises(TypeError, match="needs a policy with the non-blocking interface.*pipeline=False"):
        beam(PROBS, Blocking(), None, SearchConfig(strategy="beam", n=2, beam_width=1), pipeline=True)
    with pytest.raises(TypeError, match="apply to a pipelined run"):
        beam(PROBS, FakePolicy(), None, SearchConfig(strategy="beam", n=2, beam_width=1), score_batch=4)
    with pytest.raises(ValueError, match="pipeline applies to the step-level strategies"):
        run_search(PROBS, FakePolicy(), None, SearchConfig(n=2), out="unused.jsonl", pipeline=True)


def test_a_failing_record_aborts_what_is_in_flight():
    class Boom(Exception):
        pass

    def explode(_res):
        raise Boom

    pol = FakePolicy(varied, arrival=0, per_poll=1)
    with pytest.raises(Boom):
        beam(PROBS, pol, None, SearchConfig(strategy="beam", n=4, beam_width=2), on_done=explode, pipeline=True)
    assert pol.pending() == 0


@pytest.mark.parametrize("flags, pipelined", [([], True), (["--no-pipeline", "--batch-problems", "2"], False)],
                         ids=["default", "no-pipeline"])
def test_cli_search_runs_step_level_strategies_pipelined_by_default(monkeypatch, tmp_path, flags, pipelined):
    import cli
    import policies
    from search import cli as search_cli

    built = []

    def fake_policy(*a, **kw):  # the in-process engine's stand-in
        built.append(FakePolicy(varied, budget=KVBudget(max_seqs=8)))
        return built[-1]

    monkeypatch.setattr(policies, "VLLMPolicy", fake_policy)
    monkeypatch.setattr(search_cli, "load_scorer", lambda kind, model: FakeScorer(digit_scores))
    ds = tmp_path / "ds.jsonl"
    ds.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"Problem {i}?", "answer": str(i % 2)}) + "\n"
                          for i in range(5)))
    out = tmp_path / "run.jsonl"
    rc = cli.main(["search", "--dataset", str(ds), "--strategy", "beam", "--n", "4", "--beam-width", "2",
                   "--reward", "prm", "--out", str(out), "--prompt-style", "plain", "--quiet", *flags])
    assert rc == 0
    summary = json.loads(out.with_name("run.summary.json").read_text())
    assert summary["last_invocation"]["pipeline"] is pipelined and summary["problems"] == 5
    pol = built[0]
    assert bool(pol.requests) is pipelined and bool(pol.calls) is not pipelined


def test_finished_samples_free_their_seats_before_their_request_returns():
    """The engine ends a request's samples one by one: the driver fills the freed seats at
    once (pending drops per sample), never runs more than the budget, and gets the same
    results as lockstep."""
    from search.beam import _beam
    from search.tree import TreeSearch

    probs = [Problem(f"x{i}", f"Problem {i}?", "1") for i in range(10)]
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=4, seed=1)
    seen = {}
    for sample_wise in (False, True):
        pol = FakePolicy(varied, budget=KVBudget(max_seqs=6), arrival=5, per_poll=1, sample_wise=sample_wise)
        overlap = []
        submit = pol.submit

        def counted(request, pol=pol, submit=submit, overlap=overlap):
            overlap.append(any(0 < left < r.n for left, (r, _a, _t) in zip(pol._left.values(), pol._live.values(),
                                                                                strict=True)))
            return submit(request)

        pol.submit = counted
        run = TreeSearch(probs, pol, FakeScorer(digit_scores), cfg, equal=eq)
        run.drive(_beam, pipeline=True, score_batch=1)
        assert pol.max_live_seqs <= 6 and pol.pending() == 0
        seen[sample_wise] = (_records(run.results), any(overlap))
    assert seen[True][0] == seen[False][0]  # the same search, whatever the engine's granularity
    assert seen[True][1] and not seen[False][1]  # requests went in beside partly finished ones
