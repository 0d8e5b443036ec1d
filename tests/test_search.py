"""Search strategies on a scripted fake policy and scorer (milliseconds each)."""

from __future__ import annotations

import pytest

from search import STRATEGIES, Candidate, Problem, SearchConfig, answer_classes, select
from search.beam import beam
from search.best_of_n import best_of_n
from search.dvts import dvts
from search.majority import majority, weighted_majority
from search.mcts import mcts
from search.testing import FakePolicy, FakeScorer, digit_scores

PROBS = [Problem("a", "What is 1?", "1"), Problem("b", "What is 0?", "0"), Problem("c", "Third?", "1")]


def eq(a, b):  # a verifier stand-in: numbers equal by value
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


# ---- config -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(n=0), "n must be an int >= 1, got 0"),
        (dict(strategy="bfs"), "strategy must be one of"),
        (dict(strategy="beam", n=5, beam_width=2), "n must be a multiple of beam_width"),
        (dict(agg="median"), "agg: unknown aggregator 'median'"),
        (dict(final_agg="nope"), "final_agg: unknown aggregator"),
        (dict(select="vote"), "select must be one of"),
        (dict(strategy="majority", select="argmax"), "contradicts strategy='majority'"),
        (dict(beam_rule="wide"), "beam_rule must be one of"),
        (dict(strategy="mcts", node_budget=1, beam_width=3), "node_budget must be >= beam_width"),
    ],
)
def test_config_errors_name_field_and_value(kw, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        SearchConfig(**kw)


def test_config_resolves_defaults():
    c = SearchConfig(strategy="weighted_majority", agg="prod")
    assert (c.final_agg, c.select) == ("prod", "weighted_vote")
    assert SearchConfig(strategy="majority").select == "majority"
    assert SearchConfig(strategy="beam", final_agg="last").final_agg == "last"
    assert set(STRATEGIES) == {"best_of_n", "majority", "weighted_majority", "beam", "dvts", "mcts", "particle_filter",
                               "adaptive", "deepconf"}


def test_strategy_registry_drives_config_and_cli_tables():
    from search import strategies
    from search.cli import _defaults

    # the per-strategy facts the registry replaced, as they were written out by hand
    assert {n: SearchConfig(strategy=n).select for n in strategies.NAMES} == {
        "best_of_n": "argmax", "majority": "majority", "weighted_majority": "weighted_vote", "beam": "argmax",
        "dvts": "argmax", "mcts": "argmax", "particle_filter": "argmax", "adaptive": "majority",
        "deepconf": "weighted_vote"}
    assert [n for n in strategies.NAMES if SearchConfig(strategy=n).step_level] == [
        "beam", "dvts", "mcts", "particle_filter"]
    assert strategies.option_strategies() == {
        "beam_width": ("beam", "dvts", "mcts"), "beam_rule": ("beam",),
        "max_steps": ("beam", "dvts", "mcts", "particle_filter"),
        "max_step_tokens": ("beam", "dvts", "mcts", "particle_filter"),
        "node_budget": ("mcts",), "c_puct": ("mcts",), "rollouts": ("mcts",),
        "stop": ("adaptive",), "first_round": ("adaptive",), "round_size": ("adaptive",),
        "warmup": ("deepconf",), "keep": ("deepconf",), "window": ("deepconf",),
        "confidence": ("adaptive",)}
    assert set(strategies.option_strategies()) <= set(_defaults())  # every option is a CLI flag
    assert [n for n, s in strategies.REGISTRY.items() if s.iid] == ["best_of_n", "majority", "weighted_majority"]
    assert [n for n, s in strategies.REGISTRY.items() if s.streams] == ["deepconf"]
    assert all(STRATEGIES[n] is strategies.load(n) for n in strategies.NAMES)
    with pytest.raises(ValueError, match="strategy must be one of best_of_n, majority"):
        strategies.get("bfs")


# ---- selection ----------------------------------------------------------------------
def C(answer, value):
    return Candidate(steps=["x"], answer=answer, value=value)


def test_select_rules():
    cands = [C("2", 0.9), C("3", 0.5), C("3.0", 0.5), C("3", 0.1), C(None, 0.99)]
    i, a, votes, calls = select(cands, "argmax", equal=eq)
    assert (i, a) == (4, None)  # argmax is on value only
    i, a, votes, _ = select(cands, "majority", equal=eq)
    assert (i, a) == (1, "3") and votes[0]["count"] == 3 and votes[0]["members"] == [1, 2, 3]
    i, a, votes, _ = select(cands, "weighted_vote", equal=eq)
    assert a == "3" and votes[0]["weight"] == pytest.approx(1.1)
    i, a, _, _ = select([C("2", 0.9), C("3", 0.5), C("3", 0.3)], "weighted_vote", equal=eq)
    assert a == "2"  # 0.9 > 0.8


def test_select_none_values_never_win_and_fallbacks():
    i, a, _, _ = select([C("5", None), C("7", 0.01)], "argmax", equal=eq)
    assert a == "7"
    # nothing has a value: argmax falls back to majority, ties to the first
    i, a, _, _ = select([C("5", None), C("7", None), C("7", None)], "argmax", equal=eq)
    assert a == "7" and i == 1
    i, a, _, _ = select([C("5", None), C("7", None)], "argmax", equal=eq)
    assert i == 0
    assert select([], "argmax") == (None, None, [], 0)
    i, a, _, _ = select([C(None, 0.2), C(None, 0.4)], "majority", equal=eq)
    assert (i, a) == (1, None)


def test_answer_classes_use_equivalence_and_count_calls():
    labels, reps, calls = answer_classes(["1", "1.0", None, "2", "1"], eq)
    assert labels == [0, 0, None, 1, 0] and reps == ["1", "2"]
    assert calls == 2  # "1.0" vs "1", "2" vs "1"; exact repeats cost nothing


def test_answer_classes_default_to_the_verifier():
    labels, _, _ = answer_classes(["\\frac{1}{2}", "0.5", "3"])
    assert labels == [0, 0, 1]


# ---- best-of-n and voting -----------------------------------------------------------
def bon_script(problem, steps, j, seed):
    # sample j answers j % 3; steps carry the digit the fake PRM scores
    if len(steps) >= 1:
        return f"The answer is {j % 3}.", "eos"
    return f"step {j}", "step"


def test_best_of_n_one_policy_and_one_scorer_call_for_all_problems():
    pol, sc = FakePolicy(bon_script), FakeScorer(digit_scores)
    res = best_of_n(PROBS, pol, sc, SearchConfig(n=4, agg="min"), equal=eq)
    assert pol.count("sample") == 1 and pol.count("extend") == 0 and sc.stats.calls == 1
    assert len(sc.log[0][1]) == 12  # 3 problems x 4 samples in one scorer call
    r = res[0]
    assert len(r.candidates) == 4
    # min over ["step j", "The answer is j%3."]: j=3 -> min(0.7, 0.1)=0.1 ; j=2 -> min(0.5, 0.5)
    assert r.chosen == 2 and r.answer == "2"
    assert r.candidates[0].scores == [pytest.approx(0.1), pytest.approx(0.1)]
    led = r.ledger
    assert led.policy_calls == 1 and led.scorer_calls == 1 and led.generated_tokens == 4 * 10
    assert led.prompt_tokens == 10 and led.cached_tokens == 5
    assert led.flops == 2 * 1000 * (5 + 40) + 2 * 100 * led.scorer_tokens


def test_final_agg_and_select_are_honoured():
    pol, sc = FakePolicy(bon_script), FakeScorer(digit_scores)
    r = best_of_n(PROBS[:1], pol, sc, SearchConfig(n=4, agg="min", final_agg="max"), equal=eq)[0]
    assert r.chosen == 3  # max over steps: j=3 has "step 3" -> 0.7
    r = best_of_n(PROBS[:1], pol, sc, SearchConfig(n=6, select="majority"), equal=eq)[0]
    # 2-2-2 tie in counts: broken by summed values (class "2": 0.5 + 0.5)
    assert r.votes[0]["count"] == 2 and r.answer == "2"


def test_best_of_n_without_scorer_uses_policy_confidence():
    def script(problem, steps, j, seed):
        return (f"The answer is {j}." + " pad" * j, "eos")

    class P(FakePolicy):
        def sample(self, problems, n, **kw):
            out = super().sample(problems, n, **kw)
            # sample j: 5 tokens, logprob -(j+1): confidence exp(-(j+1)/5), best is j=0
            return [[c.__class__(**{**{s: getattr(c, s) for s in c.__slots__}, "cumulative_logprob": -(j + 1.0)})
                     for j, c in enumerate(row)] for row in out]

    r = best_of_n(PROBS[:1], P(script), None, SearchConfig(n=3), equal=eq)[0]
    assert r.chosen == 0 and r.candidates[0].scores is None
    assert r.candidates[0].value == pytest.approx(2.718281828 ** (-1 / 5))
    assert r.ledger.scorer_calls == 0


def test_empty_candidate_never_wins():
    def script(problem, steps, j, seed):
        return ("", "eos") if j == 0 else (f"The answer is {j}.", "eos")

    sc = FakeScorer(lambda p, s: [0.2] * len(s))
    r = best_of_n(PROBS[:1], FakePolicy(script), sc, SearchConfig(n=3, agg="prod"), equal=eq)[0]
    assert r.candidates[0].steps == [] and r.candidates[0].value is None
    assert r.chosen == 1  # prod([]) would be 1.0 and win; it must not
    assert all(len(s) > 0 for s in sc.log[0][1])  # empty candidates are not sent


def test_majority_and_weighted_majority():
    pol = FakePolicy(bon_script)
    r = majority(PROBS[:1], pol, None, SearchConfig(strategy="majority", n=7), equal=eq)[0]
    assert r.answer == "0" and r.votes[0]["count"] == 3
    sc = FakeScorer(lambda p, s: [0.9 if "2" in s[-1] else 0.1])
    r = weighted_majority(PROBS[:1], pol, sc, SearchConfig(strategy="weighted_majority", n=7), equal=eq)[0]
    assert r.answer == "2"  # 2 x 0.9 beats 3 x 0.1


# ---- beam search --------------------------------------------------------------------
def test_beam_one_policy_and_one_scorer_call_per_depth_for_all_problems():
    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=6)
    res = beam(PROBS, pol, sc, cfg, equal=eq)
    ext = [c for c in pol.calls if c.kind == "extend"]
    # depths 0..3 (the default script ends every path at depth 3)
    assert len(ext) == 4 and pol.count("sample") == 0
    assert sc.stats.calls == len(ext)
    for c in ext:
        assert set(c.problems) == {p.text for p in PROBS}  # all problems in every call
    # N/M rule: depth 0 the root gets N; then N/M = 2 beams per problem get M = 2 each
    assert ext[0].k == 4 and len(ext[0].steps) == 3
    for c in ext[1:]:
        assert c.k == 2 and len(c.steps) == 3 * 2
    # the N/M best survive: at depth 1 the two best first steps (s0.3, s0.2) were expanded
    assert sorted(s[0] for s in ext[1].steps[:2]) == ["s0.2", "s0.3"]
    r = res[0]
    assert all(c.finish_reason == "eos" for c in r.candidates)
    assert len(r.candidates) == 4  # finished beams kept: 2 live beams x 2 final continuations
    statuses = {n["status"] for n in r.tree}
    assert {"root", "expanded", "pruned", "finished"} <= statuses
    assert r.ledger.policy_calls == 4 and r.ledger.scorer_calls == 4


def test_beam_filters_duplicate_steps():
    def script(problem, steps, j, seed):
        if len(steps) >= 2:
            return "The answer is 1.", "eos"
        return ("same", "step") if j < 3 else (f"other{j}", "step")

    sc = FakeScorer(lambda p, s: [0.5] * len(s))
    r = beam(PROBS[:1], FakePolicy(script), sc, SearchConfig(strategy="beam", n=4, beam_width=2), equal=eq)[0]
    depth1 = [n for n in r.tree if n["depth"] == 1]
    assert [n["status"] for n in depth1].count("duplicate") == 2
    assert len(sc.log[0][1]) == 2  # only the 2 distinct steps were scored


def test_beam_finished_beams_kept_and_early_stop():
    def script(problem, steps, j, seed):  # half of every expansion finishes at once
        return (f"The answer is {len(steps)}{j}.", "eos") if j % 2 else (f"s{len(steps)}.{j}", "step")

    pol = FakePolicy(script)
    r = beam(PROBS[:1], pol, FakeScorer(digit_scores), SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=10), equal=eq)[0]
    # depth 0: 2 finished, 2 live; depth 1: 2 more finished -> 4 >= N: stop
    assert len(r.candidates) == 4 and pol.count("extend") == 2 and pol.count("sample") == 0


def test_beam_step_limit_rolls_out_live_beams():
    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    res = beam(PROBS, pol, sc, SearchConfig(strategy="beam", n=4, beam_width=2, max_steps=2), equal=eq)
    assert pol.count("extend") == 2 and pol.count("sample") == 1 and sc.stats.calls == 3
    roll = pol.calls[-1]
    assert roll.k == 1 and len(roll.steps) == 3 * 2 and all(len(s) == 2 for s in roll.steps)
    r = res[0]
    assert len(r.candidates) == 2 and all(c.steps[-1].startswith("The answer") for c in r.candidates)
    assert any(n["status"] == "rollout" for n in r.tree)


def test_beam_expand_all_rule():
    pol = FakePolicy()
    beam(PROBS[:2], pol, FakeScorer(digit_scores), SearchConfig(strategy="beam", n=4, beam_width=2, beam_rule="expand_all"), equal=eq)
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert ext[0].k == 4 and ext[1].k == 2 and len(ext[1].steps) == 2 * 4  # every one of N beams gets M


def test_beam_without_scorer_ranks_by_confidence():
    def script(problem, steps, j, seed):
        if len(steps) >= 2:
            return "The answer is 3.", "eos"
        return f"s{len(steps)}.{j}", "step"

    class P(FakePolicy):
        def extend(self, problems, steps, k=1, **kw):
            out = super().extend(problems, steps, k, **kw)
            return [[c.__class__(**{**{s: getattr(c, s) for s in c.__slots__}, "cumulative_logprob": -float(j)})
                     for j, c in enumerate(row)] for row in out]

    pol = P(script)
    r = beam(PROBS[:1], pol, None, SearchConfig(strategy="beam", n=4, beam_width=2), equal=eq)[0]
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert sorted(s[0] for s in ext[1].steps) == ["s0.0", "s0.1"]  # the two most confident
    assert r.answer == "3" and r.ledger.scorer_calls == 0


def test_seeded_runs_are_reproducible_and_seeds_differ_per_depth():
    pol1, pol2 = FakePolicy(), FakePolicy()
    cfg = SearchConfig(strategy="beam", n=4, beam_width=2, seed=7)
    a = beam(PROBS, pol1, FakeScorer(digit_scores), cfg, equal=eq)
    b = beam(PROBS, pol2, FakeScorer(digit_scores), cfg, equal=eq)
    assert [r.as_dict() | {"ledger": None} for r in a] == [r.as_dict() | {"ledger": None} for r in b]
    seeds = [c.seed for c in pol1.calls]
    assert len(set(seeds)) == len(seeds) and seeds == [c.seed for c in pol2.calls]


# ---- DVTS ---------------------------------------------------------------------------
def test_dvts_subtrees_are_independent_greedy_paths():
    # subtree g gets root samples j = 2g, 2g+1; deeper steps name their subtree's root step
    def script(problem, steps, j, seed):
        if len(steps) >= 3:
            return f"The answer is {steps[0][1]}.", "eos"
        if not steps:
            return f"r{j}", "step"
        return f"{steps[0]}-d{len(steps)}.{j}", "step"

    def fn(problem, steps):
        return [0.9 if s.endswith(".1") or s == "r0" or s == "r3" else 0.2 for s in steps]

    pol, sc = FakePolicy(script), FakeScorer(fn)
    cfg = SearchConfig(strategy="dvts", n=4, beam_width=2, max_steps=8)
    res = dvts(PROBS, pol, sc, cfg, equal=eq)
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert ext[0].k == 4 and len(ext[0].steps) == 3  # the root: N = G * M, dealt M per subtree
    for c in ext[1:]:
        assert c.k == 2 and len(c.steps) == 3 * 2  # each of G = 2 subtrees expands its own node
    assert sc.stats.calls == len(ext)
    r = res[0]
    greedy = [c for c in r.candidates if c.steps[-1].startswith("The answer")]
    # subtree 0 took r0 (0.9 > 0.2 for r1), subtree 1 took r3: each greedy in its own samples
    # (both final continuations of a subtree are the same text: one is a duplicate)
    assert sorted(c.steps[0] for c in greedy) == ["r0", "r3"]
    assert {c.group for c in greedy} == {0, 1}
    for c in greedy:
        assert all(s.startswith(c.steps[0]) for s in c.steps[1:-1])  # never crossed subtrees


def test_dvts_subtree_does_not_follow_another_onto_the_same_path():
    def script(problem, steps, j, seed):
        if len(steps) >= 2:
            return "The answer is 4.", "eos"
        return ("same", "step") if j % 2 == 0 else (f"x{j}", "step")

    sc = FakeScorer(lambda p, s: [0.9 if x == "same" else 0.1 for x in s])
    pol = FakePolicy(script)
    dvts(PROBS[:1], pol, sc, SearchConfig(strategy="dvts", n=4, beam_width=2), equal=eq)
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert sorted(s[0] for s in ext[1].steps) == ["same", "x3"]


# ---- MCTS ---------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [2, 5, 9])
def test_mcts_respects_node_budget(budget):
    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    res = mcts(PROBS, pol, sc, SearchConfig(strategy="mcts", beam_width=2, node_budget=budget), equal=eq)
    for r in res:
        made = [n for n in r.tree if n["parent"] is not None and n["status"] != "rollout"]
        assert len(made) <= budget
        assert r.candidates  # the principal variation was rolled out if unfinished
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert sc.stats.calls == len(ext) + pol.count("sample")
    for c in ext:
        assert len(c.steps) <= len(PROBS)  # one leaf per problem per iteration


def test_mcts_explores_by_puct_and_finds_answers():
    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    r = mcts(PROBS[:1], pol, sc, SearchConfig(strategy="mcts", beam_width=3, node_budget=30, c_puct=0.5), equal=eq)[0]
    root = r.tree[0]
    assert root["visits"] == sum(1 for n in r.tree if n["parent"] is not None and n["status"] not in ("duplicate", "rollout"))
    assert any(c.finish_reason == "eos" for c in r.candidates)
    assert r.answer in ("0", "1")


def test_mcts_rollouts_value_nodes_by_their_rollout():
    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    r = mcts(PROBS[:1], pol, sc, SearchConfig(strategy="mcts", beam_width=2, node_budget=4, rollouts=True), equal=eq)[0]
    assert pol.count("sample") >= 2
    assert sum(n["status"] == "rollout" for n in r.tree) >= 2


def test_verifier_scorer_gets_golds():
    sc = FakeScorer(lambda p, s: [1.0], needs_golds=True)
    best_of_n(PROBS, FakePolicy(bon_script), sc, SearchConfig(n=2), equal=eq)
    assert sc.log[0][2] == ["1", "1", "0", "0", "1", "1"]


def test_on_done_called_once_per_problem_as_each_finishes():
    seen = []

    def script(problem, steps, j, seed):  # problem "b" finishes at depth 0, others at depth 3
        if problem == "What is 0?" or len(steps) >= 3:
            return "The answer is 0.", "eos"
        return f"s{len(steps)}.{j}", "step"

    pol = FakePolicy(script)
    beam(PROBS, pol, FakeScorer(digit_scores), SearchConfig(strategy="beam", n=4, beam_width=2),
         on_done=lambda r: seen.append((r.problem.id, len(pol.calls))), equal=eq)
    assert seen[0] == ("b", 1) and sorted(s[0] for s in seen) == ["a", "b", "c"]
    assert "What is 0?" not in pol.calls[1].problems  # a done problem leaves the batch


def test_common_extend_merges_equal_prefixes_and_asks_each_its_own_count():
    from search import common
    from search.ledger import Ledger

    pol = FakePolicy()
    probs = [Problem(id="a", text="P1"), Problem(id="b", text="P2")]
    items = [(0, ["s"], 2), (0, ["s"], 1), (1, [], 1)]  # two items share a prefix
    led = [Ledger(), Ledger()]
    out = common.extend(pol, probs, items, 7, led)
    assert [len(o) for o in out] == [2, 1, 1]
    call = pol.calls[-1]
    assert call.k == [3, 1] and len(call.steps) == 2  # one request of 3, one of 1: nothing discarded
    assert len({c.text for c in out[0] + out[1]}) == 3  # merged samples get distinct sample indices
    assert led[0].generated_tokens == 3 * pol.tps and led[1].generated_tokens == pol.tps
    common.extend(pol, probs, [(0, [], 2), (1, [], 2)], 7, led)
    assert pol.calls[-1].k == 2  # equal counts: one int, as before


# ---- particle filtering ----------------------------------------------------------
def test_systematic_resampling_counts():
    import random

    from search.particle_filter import systematic_resample

    for seed in range(20):  # n * w_i is whole: every draw gives exactly those counts
        idx = systematic_resample([0.0, 1.0, 0.0, 3.0], 4, random.Random(seed))
        assert sorted(idx) == [1, 3, 3, 3]
    for seed in range(20):  # otherwise floor or ceil of n * w_i
        idx = systematic_resample([0.1, 0.3, 0.5, 0.7], 4, random.Random(seed))
        counts = [idx.count(i) for i in range(4)]
        assert sum(counts) == 4 and counts[0] <= 1 and counts[1] <= 1 and 1 <= counts[2] <= 2 and 1 <= counts[3] <= 2
    assert sorted(systematic_resample([0.0, 0.0, 0.0], 3, random.Random(0))) == [0, 1, 2]  # no weight: uniform


def test_particle_filter_one_call_per_depth_keeps_n_particles_and_favours_high_scores():
    from search.particle_filter import particle_filter

    pol, sc = FakePolicy(), FakeScorer(digit_scores)
    cfg = SearchConfig(strategy="particle_filter", n=4, max_steps=6, seed=3)
    res = particle_filter(PROBS, pol, sc, cfg, equal=eq)
    ext = [c for c in pol.calls if c.kind == "extend"]
    assert len(ext) == 4 and pol.count("sample") == 0 and sc.stats.calls == 4  # depths 0..3, all finish at 3
    for c in ext:
        assert set(c.problems) == {p.text for p in PROBS}
        ks = c.k if isinstance(c.k, list) else [c.k] * len(c.problems)
        for p in PROBS:  # every problem's 4 particles are extended, copies of a node together
            assert sum(k for k, q in zip(ks, c.problems, strict=True) if q == p.text) == 4
    assert ext[0].k == 4 and len(ext[0].steps) == 3  # the root holds all N particles
    r = res[0]
    depth1 = {n["step"]: n for n in r.tree if n["depth"] == 1}
    # weights 0.1, 0.3, 0.5, 0.7: s0.2 and s0.3 get 1 or 2 particles each, never 0
    assert depth1["s0.2"]["visits"] >= 1 and depth1["s0.3"]["visits"] >= 1
    assert sum(n["visits"] for n in depth1.values()) == 4
    assert all(n["status"] == "pruned" for n in depth1.values() if n["visits"] == 0)
    assert r.candidates and all(c.finish_reason == "eos" for c in r.candidates)
    assert len({c.node for c in r.candidates}) == len(r.candidates)  # distinct finished nodes
    assert r.ledger.policy_calls == 4 and r.ledger.generated_tokens == 4 * 4 * pol.tps
    # seeded: the same run twice gives the same tree
    again = particle_filter(PROBS, FakePolicy(), FakeScorer(digit_scores), cfg, equal=eq)[0]
    assert again.tree == r.tree


def test_particle_filter_repeated_steps_share_a_node_and_step_limit_rolls_out():
    from search.particle_filter import particle_filter

    def script(problem, steps, j, seed):
        return ("same", "step") if len(steps) < 5 else ("The answer is 1.", "eos")

    pol, sc = FakePolicy(script), FakeScorer(lambda p, s: [0.5] * len(s))
    r = particle_filter(PROBS[:1], pol, sc, SearchConfig(strategy="particle_filter", n=3, max_steps=2), equal=eq)[0]
    assert [n["visits"] for n in r.tree if n["depth"] == 1] == [3]  # 3 draws of one step: one node
    assert [len(solutions) for _probs, solutions, _golds in sc.log[:2]] == [1, 1]  # one new node scored per depth
    roll = pol.calls[-1]
    assert roll.kind == "sample" and len(roll.steps) == 1  # the shared node is rolled out once
    assert len(r.candidates) == 1 and r.candidates[0].steps[-1] == "The answer is 1."
