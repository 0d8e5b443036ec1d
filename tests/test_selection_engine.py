"""ENGINE TEST FOR THE LEAD (not run by the session that wrote it: it must not start an
engine): the adaptive strategy on the real vLLM CPU engine (embedded SmolLM2-135M), 2 GSM8K
problems, at most 6 samples of <= 96 tokens each."""

from __future__ import annotations

import json

import pytest

from search import SearchConfig
from search.runner import run_search

pytestmark = pytest.mark.engine


def test_adaptive_on_the_engine_counts_every_round(engine_policy, tmp_path):
    from policies import SamplingConfig, VLLMPolicy
    from policies.datasets import load_problems

    policy = VLLMPolicy(engine=engine_policy.engine_config, llm=engine_policy.llm,
                        sampling=SamplingConfig(temperature=0.8, max_tokens=96, seed=7))
    problems = load_problems("gsm8k", limit=2)
    cfg = SearchConfig(strategy="adaptive", n=6, stop="beta0.95", first_round=2, round_size=2, seed=3)
    out = tmp_path / "adaptive.jsonl"
    calls0, gen0 = policy.usage.calls, policy.usage.generated_tokens
    s = run_search(problems, policy, None, cfg, out=out)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert s["problems"] == 2
    for r in recs:
        assert len(r["candidates"]) in (2, 4, 6)          # whole rounds only
        assert r["ledger"]["generated_tokens"] == sum(c["generated_tokens"] for c in r["candidates"])
    assert policy.usage.calls - calls0 <= 3                # at most three rounds, one engine call each
    assert policy.usage.generated_tokens - gen0 == sum(r["ledger"]["generated_tokens"] for r in recs)
