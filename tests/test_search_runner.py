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


def searched(pol) -> set[str]:
    """The problems a fake policy was asked about: blocking calls (lockstep) and
    submitted requests (pipelined, the runner's default for beam)."""
    return {t for c in pol.calls for t in c.problems} | {r.problem for r in pol.requests}


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
    assert searched(pol) == {p["problem"] for p in PROBS[2:]}  # done problems are not searched again
    assert s["last_invocation"] == {**s["last_invocation"], "ran": 3, "skipped": 2}
    # a third run has nothing to do
    pol = FakePolicy()
    run_search(PROBS, pol, FakeScorer(digit_scores), CFG, out=out)
    assert searched(pol) == set() and len(out.read_text().splitlines()) == 5


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

        def poll(self):  # the pipelined runner's way in
            time.sleep(0.15)
            return super().poll()

    probs = [{{"id": f"p{{i}}", "problem": f"Problem {{i}}?", "answer": "1"}} for i in range(8)]
    run_search(probs, Slow(), FakeScorer(digit_scores), SearchConfig(strategy="beam", n=4, beam_width=2),
               out=sys.argv[1], batch_problems=1, pipeline=False)  # one problem at a time: a kill lands mid-run
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


# ---- issue 19: golds, resume batches, summary, damaged files ---------------------------

BAD_GOLDS = ["", "$$$", "\\,", "°", "\u2028"]


def test_ungradable_golds_are_recorded_and_the_run_goes_on(tmp_path, caplog):
    """A blank or unparsable gold made grading raise after generation: the batch was lost."""
    probs = [{"id": f"g{i}", "problem": f"Problem {i}?", "answer": g} for i, g in enumerate(BAD_GOLDS)]
    probs += [{"id": f"ok{i}", "problem": f"Fine {i}?", "answer": str(i % 2)} for i in range(3)]
    out, pol = tmp_path / "run.jsonl", FakePolicy()
    with caplog.at_level("WARNING", logger="search.runner"):
        s = run_search(probs, pol, FakeScorer(digit_scores), CFG, out=out, batch_problems=4)
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(recs) == sorted(p["id"] for p in probs)  # every record written
    for i, _ in enumerate(BAD_GOLDS):
        r = recs[f"g{i}"]
        assert r["status"] == "invalid_gold" and r["correct"] is None and r["candidates"] == [] and r["detail"]
        assert f"problem g{i}: gold" in caplog.text
    assert all(isinstance(recs[f"ok{i}"]["correct"], bool) for i in range(3))
    assert searched(pol) == {f"Fine {i}?" for i in range(3)}  # no compute spent on ungradable problems
    assert s["graded"] == 3 and sorted(s["invalid_gold"]) == [f"g{i}" for i in range(5)]
    # a rerun has nothing to do; once the gold is fixed, that problem is searched
    pol = FakePolicy()
    run_search(probs, pol, None, CFG, out=out)
    assert searched(pol) == set()
    probs[0] = {**probs[0], "answer": "1"}
    s = run_search(probs, FakePolicy(), None, CFG, out=out)
    assert s["last_invocation"]["ran"] == 1 and s["problems"] == len(probs) and "g0" not in s["invalid_gold"]


def test_a_gold_the_checks_miss_still_leaves_the_record_ungraded(monkeypatch, tmp_path):
    import search.runner as runner

    monkeypatch.setattr(runner, "gold_problem", lambda gold: None)  # let "$$$" through to grading
    probs = [{"id": "a", "problem": "A?", "answer": "$$$"}, {"id": "b", "problem": "B?", "answer": "1"}]
    s = run_search(probs, FakePolicy(), None, CFG, out=tmp_path / "r.jsonl", batch_problems=2)
    recs = {r["id"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert recs["a"]["status"] == "invalid_gold" and recs["a"]["correct"] is None and recs["a"]["candidates"]
    assert isinstance(recs["b"]["correct"], bool) and s["graded"] == 1


class BatchSensitivePolicy(FakePolicy):
    """Its samples depend on which problems share the call, as CPU kernels' rounding
    depends on the batch: a run is reproducible only if the batches are."""

    def __init__(self):
        super().__init__(self.script_)
        self.first = None

    def script_(self, problem, steps, j, seed):
        if len(steps) >= 2:
            return f"The answer is {(self.first + j) % 2}.", "eos"
        return f"s{len(steps)}.{j}.{self.first}", "step"

    def sample(self, problems, n, **kw):
        self.first = min(int(p.split()[1].rstrip("?")) for p in problems)
        return super().sample(problems, n, **kw)

    def extend(self, problems, steps, k=1, **kw):
        self.first = min(int(p.split()[1].rstrip("?")) for p in problems)
        return super().extend(problems, steps, k, **kw)


@pytest.mark.parametrize("cfg", [SearchConfig(strategy="best_of_n", n=3, seed=7), CFG], ids=["best_of_n", "beam"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, cfg):
    """Batches form from the problem order alone: the block cut short is searched again
    whole (its recorded problem not rewritten). Before, the resumed run batched the
    problems left over, and 1 sample in 16 differed on the CPU engine. (The lockstep
    runner's batches; a pipelined run has none: tests/test_search_pipeline.py.)"""
    probs = [{"id": f"p{i}", "problem": f"Problem {i}?", "answer": str(i % 2)} for i in range(7)]
    full = tmp_path / "full.jsonl"
    run_search(probs, BatchSensitivePolicy(), FakeScorer(digit_scores), cfg, out=full, batch_problems=3,
               pipeline=False)

    class Stop(Exception):
        pass

    def stop_after_four(rec, box=[]):  # noqa: B006
        box.append(rec)
        if len(box) == 4:
            raise Stop

    cut = tmp_path / "cut.jsonl"
    with pytest.raises(Stop):
        run_search(probs, BatchSensitivePolicy(), FakeScorer(digit_scores), cfg, out=cut, batch_problems=3,
                   on_record=stop_after_four, pipeline=False)
    s = run_search(probs, BatchSensitivePolicy(), FakeScorer(digit_scores), cfg, out=cut, batch_problems=3,
                   pipeline=False)

    def key(path):
        recs = [json.loads(x) for x in path.read_text().splitlines()]
        return {r["id"]: (r["answer"], r["correct"], [c["steps"] for c in r["candidates"]]) for r in recs}, len(recs)

    assert key(cut) == key(full)  # same records, none twice
    assert s["last_invocation"]["ran"] == 3 and s["last_invocation"]["rerun_for_batches"] == 1


def test_plan_batches_are_blocks_of_the_problem_order():
    from search.runner import plan_batches
    from search.types import as_problems

    probs = as_problems([f"q{i}" for i in range(7)])
    blocks = plan_batches(probs, {"1", "4", "5", "6"}, 3)
    assert [[p.id for p in b] for b in blocks] == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert plan_batches(probs, {"6"}, 3) == [[probs[6]]]
    assert plan_batches(probs, set(), 3) == []


def test_the_summary_counts_a_duplicated_record_once(tmp_path):
    out = tmp_path / "run.jsonl"
    run_search(PROBS, FakePolicy(), None, CFG, out=out)
    lines = out.read_text().splitlines()
    with open(out, "a") as fh:
        fh.write(lines[0] + "\n")  # duplicated by hand
    s = run_search(PROBS, FakePolicy(), None, CFG, out=out)
    assert s["problems"] == 5 and s["graded"] == 5


def test_a_nul_padded_run_file(tmp_path, caplog):
    """A crash can leave the end of a file zero-filled; json.loads then guessed a UTF-32
    encoding and failed with a codec error."""
    out = tmp_path / "run.jsonl"
    run_search(PROBS[:2], FakePolicy(), None, CFG, out=out)
    good = out.read_bytes()
    out.write_bytes(good + b"\0" * 300 + b"\n" + b"\0" * 40)
    with caplog.at_level("WARNING"):
        s = run_search(PROBS[:3], FakePolicy(), None, CFG, out=out)
    assert "NUL bytes" in caplog.text and s["problems"] == 3
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["p0", "p1", "p2"]
    # NULs followed by records: the damaged line is named, not a codec error
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(lines[0] + b"\0" * 50 + b"\n" + lines[1])
    with pytest.raises(ValueError, match=r"line 2 holds NUL bytes"):
        RunFile(out, {"search": CFG.as_dict()}).load()
    out.write_bytes(lines[0] + b'{"id": "\xff"}\n')
    with pytest.raises(ValueError, match=r"line 2 is not UTF-8 JSON"):
        RunFile(out, {"search": CFG.as_dict()}).load()


def test_every_batch_starts_with_empty_caches(tmp_path):
    """A cached prefix is computed by other CPU kernels than a fresh one; a resumed run's
    first batch meets a fresh engine, so every batch starts with empty caches."""

    class Engine:
        resets = 0

        def reset_prefix_cache(self):
            Engine.resets += 1
            return True

    class Scorer(FakeScorer):
        clears = 0

        def clear_cache(self):
            Scorer.clears += 1

    pol = FakePolicy()
    pol._llm = Engine()
    run_search(PROBS, pol, Scorer(digit_scores), CFG, out=tmp_path / "r.jsonl", batch_problems=2, pipeline=False)
    assert Engine.resets == Scorer.clears == 3  # batches [p0 p1] [p2 p3] [p4]
    # pipelined: one driver for every problem, caches emptied once at its start
    run_search(PROBS, pol, Scorer(digit_scores), CFG, out=tmp_path / "p.jsonl", batch_problems=2)
    assert Engine.resets == Scorer.clears == 4
