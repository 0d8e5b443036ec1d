"""The main policy (Qwen2.5-Coder-0.5B from the PyPI parts) on the real CPU engine,
through `cli.py pool` as a user runs it: token statistics agree with the engine's own
sums, and a rerun resumes without starting the engine."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_pool_on_the_main_policy_keeps_token_statistics_and_resumes(tmp_path):
    pytest.importorskip("vllm")
    from policies.models import EMBEDDED, MAIN_POLICY
    from policies.pool import read_pool

    out = tmp_path / "pool.jsonl"
    cmd = [sys.executable, "cli.py", "pool", "--dataset", "gsm8k", "--limit", "2", "--n", "2",
           "--max-tokens", "96", "--kv-cache-gib", "0.5", "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = read_pool(out)
    assert [x["id"] for x in recs] == ["gsm8k-0", "gsm8k-1"]
    policy = recs[0]["config"]["policy"]
    assert policy["model"] == MAIN_POLICY and policy["model_sha256"] == EMBEDDED[MAIN_POLICY].sha256
    for rec in recs:
        assert len(rec["samples"]) == 2
        for s in rec["samples"]:
            n = s["generated_tokens"]
            assert n > 0 and len(s["token_conf"]) == n and len(s["token_logprob"]) == n
            assert s["step_token_ends"][-1] == n and len(s["step_conf"]) == len(s["step_token_ends"])
            # the stored per-token log-probs add up to the engine's cumulative log-prob
            assert math.isclose(sum(s["token_logprob"]), s["logprob"], abs_tol=0.002 * n + 0.01)
            # the top-5 mean log-prob is below the sampled token's whenever the model is sure
            assert all(c > 0 for c in s["token_conf"])
            assert s["verdict"]["status"] and s["answer"] is None or isinstance(s["answer"], str)
    r2 = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert len(out.read_text().splitlines()) == 2  # nothing sampled again
    assert "generated tok/s" not in r2.stderr  # no batch was sent to the engine
