"""Runner: JSONL records, grading, resume after an interruption, summary, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from search import SearchConfig
from search.runner import RunFile, RunMismatchError, run_search, summary_path
from search.testing import FakePolicy, FakeScorer, digit_scores

ROOT = Path(__file__).resolve().parent.parent
PROBS = [{"id": f"p{i}", "problem": f"Problem {i}?", "answer": str(i % 2)} for i in range(5)]
CFG = SearchConfig(strategy="beam", n=4, beam_width=2, agg="min")


def test_records_summary_and_grading(tmp_path):
    out = tmp_path / "run.jsonl"
    seen = []
    s = run_search(PROBS, FakePolicy(), FakeScorer(digit_scores), CFG, out=out,
                   identity={"search": CFG.as_dict(), "x": 1}, batch_problems=2, on_record=seen.append)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == [r["id"] for r in seen] and sorted(r["id"] for r in recs) == [p["id"] for p in PROBS]
    r = recs[0]
    assert r["config"] == {"search": CFG.as_dict(), "x": 1} and r["seed"] == 0
    assert r["tree"] and r["candidates"][0]["scores"] and r["candidates"][0]["verdict"]["status"] in ("correct", "wrong")
    assert r["candidates"][0]["answer"] is not None and r["answer"] is not None
    # the default script ends with "The answer is j % 2", final candidates j = 0, 1 -> both answers present
    assert isinstance(r["correct"], bool)
    assert r["ledger"]["verifier_calls"] >= len(r["candidates"])
    on_disk = json.loads(summary_path(out).read_text())
    assert on_disk["problems"] == 5 and on_disk["graded"] == 5
    assert on_disk["accuracy"] == pytest.approx(sum(r["correct"] for r in recs) / 5)
    assert on_disk["totals"]["generated_tokens"] == sum(r["ledger"]["generated_tokens"] for r in recs)
    assert s["last_invocation"]["ran"] == 5


def test_resume_skips_done_problems_and_loses_nothing(tmp_path):
    out = tmp_path / "run.jsonl"

    class Stop(Exception):
        pass

    def crash_after_two(rec, box=[]):  # noqa: B006
        box.append(rec)
        if len(box) == 2:
            raise Stop

    with pytest.raises(Stop):
        run_search(PROBS, FakePolicy(), FakeScorer(digit_scores), CFG, out=out, batch_problems=2,
                   on_record=crash_after_two)
    assert len(out.read_text().splitlines()) == 2
    pol = FakePolicy()
    s = run_search(PROBS, pol, FakeScorer(digit_scores), CFG, out=out, batch_problems=2)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == [p["id"] for p in PROBS] and len(set(ids)) == 5
    ran = {t for c in pol.calls for t in c.problems}
    assert ran == {p["problem"] for p in PROBS[2:]}  # done problems are not searched again
    assert s["last_invocation"] == {**s["last_invocation"], "ran": 3, "skipped": 2}
    # a third run has nothing to do
    pol = FakePolicy()
    run_search(PROBS, pol, FakeScorer(digit_scores), CFG, out=out)
    assert pol.calls == [] and len(out.read_text().splitlines()) == 5


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    out = tmp_path / "run.jsonl"
    run_search(PROBS[:2], FakePolicy(), None, CFG, out=out)
    with open(out, "a") as fh:
        fh.write('{"id": "p2", "config": ')  # killed mid-write
    run_search(PROBS[:3], FakePolicy(), None, CFG, out=out)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["p0", "p1", "p2"]


def test_other_settings_refuse_to_resume(tmp_path):
    out = tmp_path / "run.jsonl"
    run_search(PROBS[:1], FakePolicy(), None, CFG, out=out)
    other = SearchConfig(strategy="beam", n=4, beam_width=2, agg="prod")
    with pytest.raises(RunMismatchError, match=r"differs in: search\.agg, search\.final_agg"):
        run_search(PROBS, FakePolicy(), None, other, out=out)
    with pytest.raises(RunMismatchError):
        RunFile(out, {"search": CFG.as_dict(), "policy": {"temperature": 0.1}}).load()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from search import SearchConfig
    from search.runner import run_search
    from search.testing import FakePolicy, FakeScorer, digit_scores

    class Slow(FakePolicy):
        def extend(self, *a, **k):
            time.sleep(0.15)
            return super().extend(*a, **k)

    probs = [{{"id": f"p{{i}}", "problem": f"Problem {{i}}?", "answer": "1"}} for i in range(8)]
    run_search(probs, Slow(), FakeScorer(digit_scores), SearchConfig(strategy="beam", n=4, beam_width=2),
               out=sys.argv[1], batch_problems=1)
    """
)


def test_kill_mid_run_then_restart(tmp_path):
    out = tmp_path / "run.jsonl"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(out.read_text().splitlines())
    assert 2 <= n_before < 8
    subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"p{i}" for i in range(8))  # nothing lost, nothing twice


def test_cli_help_and_import_stay_light():
    code = (
        "import sys; sys.argv=['cli.py','search','--help'];"
        "import cli, search, search.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('vllm','torch')];"
        "assert not bad, bad;"
        "p=cli.build_parser(); a=p.parse_args(['search','--strategy','beam','--reward','prm','--agg','min']);"
        "assert a.strategy=='beam' and a.agg=='min'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_cli_rejects_bad_config_in_one_line():
    r = subprocess.run([sys.executable, "cli.py", "search", "--strategy", "beam", "--n", "5", "--beam-width", "2"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "n must be a multiple of beam_width" in r.stderr
    assert "Traceback" not in r.stderr
