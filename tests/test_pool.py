"""Sample pools: format, token statistics, resumable generation, replay by sweep (no engine)."""

from __future__ import annotations

import gzip
import json
import math
import shutil

import pytest

from policies import Completion
from policies.pool import (
    FORMAT,
    PoolFormatError,
    is_pool,
    read_pool,
    sample_record,
    step_token_ends,
)
from search.pool import generate_pool
from search.testing import FakePolicy


def test_step_token_ends_splits_at_the_token_that_completes_the_delimiter():
    assert step_token_ends(["a", "\n", "\n", "b", "c"]) == [3, 5]
    assert step_token_ends(["a", "\n\n", "b"]) == [2, 3]
    assert step_token_ends(["a", "b\n\n"]) == [2]  # ends with a delimiter: no empty last step
    assert step_token_ends(["x"]) == [1]
    assert step_token_ends(["1", "\n\nx", "\n\n", "y"], "\n\n") == [2, 3, 4]


def test_step_token_ends_is_linear():
    pieces = ["ab"] * 200_000 + ["\n\n", "c"]
    assert step_token_ends(pieces) == [200_001, 200_002]


def _comp(text, pieces, lps, confs, reason="stop"):
    return Completion(text=text, generated_tokens=len(pieces), prompt_tokens=7, cached_tokens=0,
                      finish_reason=reason, cumulative_logprob=sum(lps), stop_reason=None,
                      token_logprobs=tuple(lps), token_confidence=tuple(confs), token_text=tuple(pieces))


def test_sample_record_keeps_token_statistics_and_step_confidence():
    c = _comp("2+2=4\n\nSo \\boxed{4}", ["2+2", "=4", "\n\n", "So", " \\boxed{4}"],
              [-0.1, -0.2, -0.3, -0.4, -0.5], [5.0, 3.0, 1.0, 2.0, 4.0])
    r = sample_record(c)
    assert r["steps"] == ["2+2=4", "So \\boxed{4}"]
    assert r["step_token_ends"] == [3, 5]
    assert r["step_conf"] == [3.0, 3.0]
    assert r["token_conf"] == [5.0, 3.0, 1.0, 2.0, 4.0]
    assert math.isclose(r["logprob"], -1.5)


def test_sample_record_without_logprobs_has_no_token_fields():
    c = Completion(text="a\n\nb", generated_tokens=3, prompt_tokens=5, cached_tokens=0, finish_reason="length")
    r = sample_record(c)
    assert "token_conf" not in r and r["steps"] == ["a", "b"] and r["finish_reason"] == "length"


def _script(problem, steps, j, seed):
    # sample j answers (j % 3); gold is 0, so samples 0, 3, 6, ... are right
    if not steps:
        return "Let us think.", "step"
    return f"The answer is \\boxed{{{j % 3}}}.", "eos"


IDENT = {"policy": {"model": "fake"}, "n": 4, "seed": 0, "data": {"dataset": "t"}}


def _problems(k):
    return [{"id": f"p{i}", "problem": f"problem {i}", "answer": "0"} for i in range(k)]


def test_generate_pool_grades_writes_and_resumes(tmp_path):
    out = tmp_path / "pool.jsonl"
    policy = FakePolicy(_script)
    s1 = generate_pool(_problems(3), policy, n=4, out=out, identity=IDENT, batch_problems=2)
    assert s1["problems"] == 3 and s1["samples"] == 12
    assert s1["pass@1"] == pytest.approx(0.5) and s1["pass@n"] == 1.0  # j = 0, 3 of 0..3 are right
    recs = read_pool(out)
    assert [r["id"] for r in recs] == ["p0", "p1", "p2"]
    assert recs[0]["format"] == FORMAT and recs[0]["samples"][0]["verdict"]["correct"] is True
    assert recs[0]["samples"][1]["answer"] == "1"
    calls = policy.count("sample")
    # more problems: only the new ones are sampled, and in batches formed from problem order
    s2 = generate_pool(_problems(5), policy, n=4, out=out, identity=IDENT, batch_problems=2)
    assert s2["problems"] == 5 and policy.count("sample") == calls + 1
    assert policy.calls[-1].problems == ["problem 3", "problem 4"]
    # another identity refuses to resume
    with pytest.raises(ValueError, match="other settings"):
        generate_pool(_problems(5), policy, n=8, out=out, identity={**IDENT, "n": 8})


def test_invalid_gold_is_recorded_and_the_run_goes_on(tmp_path):
    out = tmp_path / "pool.jsonl"
    probs = _problems(2) + [{"id": "bad", "problem": "p", "answer": ""}]
    s = generate_pool(probs, FakePolicy(_script), n=2, out=out, identity=IDENT)
    recs = {r["id"]: r for r in read_pool(out)}
    assert recs["bad"]["status"] == "invalid_gold" and recs["bad"]["samples"] == []
    assert s["problems"] == 3 and s["graded"] == 2


def test_gzip_pool_reads_and_sweep_replays_it_without_an_engine(tmp_path):
    from eval.sweep import load_runs, sweep

    out = tmp_path / "pool.jsonl"
    generate_pool(_problems(4), FakePolicy(_script), n=4, out=out, identity=IDENT)
    gz = tmp_path / "pool.jsonl.gz"
    with open(out, "rb") as a, gzip.open(gz, "wb") as b:
        shutil.copyfileobj(a, b)
    assert is_pool(gz) and len(read_pool(gz)) == 4
    runs = load_runs([gz])
    assert len(runs) == 1 and runs[0].n == 4 and runs[0].strategy == "majority"
    res = sweep(runs, rules=["majority"], n_boot=50)["runs"][0]
    base = {(b["metric"], b["k"]): b["acc"] for b in res["baselines"]}
    assert base[("pass@n", 1)] == pytest.approx(0.5)
    assert base[("pass@n", 4)] == 1.0


def test_read_pool_refuses_other_files(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"id": 1, "candidates": []}) + "\n")
    with pytest.raises(PoolFormatError, match="expected 'tts-math-pool/1'"):
        read_pool(p)
    assert not is_pool(p)


def test_sweep_skips_invalid_golds_keeps_the_last_duplicate_and_reads_u2028(tmp_path):
    from eval.sweep import load_runs, sweep

    out = tmp_path / "pool.jsonl"
    probs = _problems(2) + [{"id": "bad", "problem": "p\u2028q", "answer": ""}]
    generate_pool(probs, FakePolicy(_script), n=4, out=out, identity=IDENT)
    lines = out.read_text(encoding="utf-8").split("\n")[:-1]
    dup = json.loads(lines[0])
    for s in dup["samples"]:
        s["verdict"]["correct"] = False  # the later copy of p0 says every sample is wrong
    out.write_text("\n".join(lines + [json.dumps(dup, ensure_ascii=False)]) + "\n", encoding="utf-8")
    res = sweep(load_runs([out]), rules=["majority"], n_boot=20)["runs"][0]
    assert res["problems"] == 2 and res["ungraded"] == 1
    base = {(b["metric"], b["k"]): b["acc"] for b in res["baselines"]}
    assert base[("pass@n", 4)] == 0.5  # p0 now has no correct sample, p1 has
