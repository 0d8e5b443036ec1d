"""The deepconf strategy on the real vLLM CPU engine (embedded SmolLM2-135M): traces are
really stopped inside the engine, at the token the offline rule names on their own
returned confidences, and the online answer is the offline rule's on those tokens.
2 GSM8K problems, 6 traces of <= 96 tokens each (2 warm-ups), window 8, keep 10 (a high
threshold, so that most later traces stop)."""

from __future__ import annotations

import pytest

from search import STRATEGIES, SearchConfig

pytestmark = pytest.mark.engine

MAX_TOKENS, WINDOW = 96, 8


def test_deepconf_stops_traces_in_the_engine_as_the_offline_rule_says(engine_policy):
    from eval import budget
    from policies import SamplingConfig, VLLMPolicy
    from policies.datasets import load_problems
    from search.confidence import lowest_group, stop_position, warmup_threshold
    from search.select import select
    from search.types import Candidate

    policy = VLLMPolicy(engine=engine_policy.engine_config, llm=engine_policy.llm,
                        sampling=SamplingConfig(temperature=0.8, max_tokens=MAX_TOKENS, seed=7, logprobs=5))
    sent, back = {}, {}
    submit, poll = policy.submit, policy.poll

    def spy_submit(request):
        t = submit(request)
        sent[t] = request
        return t

    def spy_poll():
        out = poll()
        back.update(out)
        return out

    policy.submit, policy.poll = spy_submit, spy_poll
    problems = load_problems("gsm8k", limit=2)
    cfg = SearchConfig(strategy="deepconf", n=6, warmup=2, keep=10, window=WINDOW, seed=3)
    gen0 = policy.usage.generated_tokens
    results = STRATEGIES["deepconf"](problems, policy, None, cfg)

    cut = 0
    for res in results:
        (w_t,) = [t for t, r in sent.items() if r.problem == res.problem.text and r.watch is None]
        (r_t,) = [t for t, r in sent.items() if r.problem == res.problem.text and r.watch is not None]
        warm, rest = back[w_t], back[r_t]
        s = warmup_threshold([lowest_group(c.token_confidence, WINDOW) for c in warm], 10)
        assert res.details["threshold"] == s and sent[r_t].watch.args == (WINDOW, s)
        assert all(c.finish_reason != "early_stop" for c in warm)
        stops = [stop_position(c.token_confidence, WINDOW, s) for c in rest]
        for c, t in zip(rest, stops, strict=True):
            assert len(c.token_confidence) == c.generated_tokens
            if c.finish_reason == "early_stop":  # cut in the engine: right after the offline stop token
                cut += 1
                assert c.generated_tokens < MAX_TOKENS and t == c.generated_tokens - 1
            else:  # ran to its own end: never below before its last token
                assert t is None or t == c.generated_tokens - 1
        assert res.details["stop_at"] == stops
        comps = warm + rest
        assert [c.generated_tokens for c in res.candidates] == [c.generated_tokens for c in comps]
        assert res.ledger.generated_tokens == sum(c.generated_tokens for c in comps)
        # the offline rule on the returned tokens: its voters, its weighted vote, its token count
        groups = [lowest_group(c.token_confidence, WINDOW) for c in comps]
        voters = [i for i in range(2) if groups[i] >= s] + [2 + j for j, t in enumerate(stops) if t is None]
        cands = [Candidate(steps=[], answer=res.candidates[i].answer, value=groups[i]) for i in voters]
        chosen, answer, _votes, _calls = select(cands, "weighted_vote")
        assert res.answer == answer and res.chosen == (None if chosen is None else voters[chosen])
        prob = budget.Problem(id=res.problem.id, correct=(False,) * 6, labels=(None,) * 6,
                              tokens=tuple(c.generated_tokens for c in comps),
                              conf=tuple(tuple(c.token_confidence) for c in comps))
        _c, tokens, _n = budget.replay_early_stop(prob, list(range(6)), warmup=2, keep=10, window=WINDOW)
        assert tokens == res.ledger.generated_tokens
    assert cut >= 1  # traces were really stopped inside the engine
    assert policy.usage.generated_tokens - gen0 == sum(r.ledger.generated_tokens for r in results)
