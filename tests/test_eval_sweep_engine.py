"""`cli.py sweep --search` on the real vLLM CPU engine with the shipped default PRM.

Small: beam search on 2 GSM8K problems, n = 2, 2 steps of <= 32 tokens, two aggregators.
The policy the CLI builds runs on the session's engine (tests/conftest.py) with the
CLI's own sampling settings; the PRM is loaded by the CLI as in a user's run.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.engine


def test_sweep_search_beam_on_the_engine_with_the_default_prm(engine_policy, tmp_path, monkeypatch, capsys):
    import cli
    import policies
    from search import cli as search_cli

    real_policy = policies.VLLMPolicy
    made, scorers = [], []

    def on_session_engine(model=None, *, engine=None, sampling=None, prompt_style="gsm8k", **kw):
        made.append(sampling)
        return real_policy(engine=engine_policy.engine_config, sampling=sampling, prompt_style=prompt_style,
                           llm=engine_policy.llm)

    real_load = search_cli.load_scorer

    def counting_load(kind, model):
        scorers.append(real_load(kind, model))
        return scorers[-1]

    monkeypatch.setattr(policies, "VLLMPolicy", on_session_engine)
    monkeypatch.setattr(search_cli, "load_scorer", counting_load)
    argv = ["sweep", "--search", "--strategy", "beam", "--reward", "prm", "--agg", "min,last",
            "--dataset", "gsm8k", "--limit", "2", "--n", "2", "--beam-width", "2", "--max-steps", "2",
            "--max-step-tokens", "32", "--max-tokens", "64", "--seed", "5", "--quiet",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--bootstrap", "100"]
    assert cli.main(argv) == 0
    assert len(made) == 1 and len(scorers) == 1  # one policy and one scorer for both searches
    assert made[0].max_step_tokens == 32 and made[0].max_tokens == 64 and made[0].seed == 5
    assert scorers[0].trained is True  # the shipped default PRM, not a fresh head

    files = sorted((tmp_path / "runs").glob("*.jsonl"))
    assert [f.name for f in files] == ["gsm8k-beam-prm-last-n2-m2-seed5.jsonl", "gsm8k-beam-prm-min-n2-m2-seed5.jsonl"]
    for f, agg in zip(files, ("last", "min"), strict=True):
        recs = [json.loads(line) for line in f.read_text().splitlines()]
        assert len(recs) == 2
        for r in recs:
            assert r["config"]["search"]["agg"] == agg and r["config"]["reward"]["kind"] == "prm"
            assert r["config"]["policy"]["max_step_tokens"] == 32
            assert r["candidates"] and r["chosen"] is not None and r["tree"]
            for c in r["candidates"]:
                assert c["scores"] and all(0.0 <= s <= 1.0 for s in c["scores"])
                assert c["verdict"]["status"] in ("correct", "wrong", "no_answer", "unparsable")
            led = r["ledger"]
            assert led["generated_tokens"] > 0 and led["scorer_calls"] >= 1 and led["scorer_tokens"] > 0
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert sorted(r["config"]["search"]["agg"] for r in summary["runs"]) == ["last", "min"]
    assert all(r["ks"] == [2] and r["problems"] == 2 for r in summary["runs"])
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "steered the search" in md and "| min |" in md and "| last |" in md
    capsys.readouterr()

    # rerun: both searches are finished, so neither a policy nor a scorer is built
    before = [f.read_bytes() for f in files]
    assert cli.main(argv) == 0
    assert len(made) == 1 and len(scorers) == 1
    assert capsys.readouterr().out.count("2 done, 0 to run") == 2
    assert [f.read_bytes() for f in files] == before
