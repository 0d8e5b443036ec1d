"""`cli.py score` and the TRL adapter, on the cheap scorers (none / verifier) and a tiny PRM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rewards import as_reward_function, load_scorer

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "score", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [
    {"problem": "What is 2+3?", "solution": "2+3=5.\n\nThe answer is \\boxed{5}.", "answer": "5"},
    {"problem": "What is 2+3?", "steps": ["2+3=6.", "The answer is 6."], "answer": "5"},
    {"problem": "x", "steps": [], "answer": "1"},
]


def test_score_verifier_writes_and_resumes(tmp_path):
    f, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(f, ROWS[:2])
    r = _cli("--reward", "verifier", "--agg", "min", f, "-o", out)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["header"] and lines[0]["aggregator"] == "min"
    assert [x["score"] for x in lines[1:]] == [1.0, 0.0]
    assert lines[1]["steps"] == ["2+3=5.", "The answer is \\boxed{5}."]
    _write(f, ROWS)  # one more line: only it is scored on rerun
    r = _cli("--reward", "verifier", f, "-o", out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["input_line"] == 3 and lines[-1]["score"] is None
    assert sum(1 for x in lines if x.get("header")) == 1


def test_score_none_per_step(tmp_path):
    f, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write(f, ROWS[:2])
    assert _cli("--reward", "none", "--agg", "sum", f, "-o", out).returncode == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()[1:]]
    assert lines[0]["step_scores"] == [0.5, 0.5] and lines[0]["score"] == 1.0
    out2 = tmp_path / "auto.jsonl"  # auto: the card's aggregator; `none` has no card, so min
    assert _cli("--reward", "none", "--agg", "auto", f, "-o", out2).returncode == 0
    head = json.loads(out2.read_text().splitlines()[0])
    assert head["aggregator"] == "min"


@pytest.mark.parametrize("content,msg", [
    ("not json\n", "not valid JSON"),
    ('{"solution": "a"}\n', 'needs a "problem"'),
    ('{"problem": "p"}\n', 'needs "steps"'),
    ('{"problem": "p", "steps": "abc"}\n', "list of strings"),
])
def test_bad_input_one_line(tmp_path, content, msg):
    f = tmp_path / "in.jsonl"
    f.write_text(content)
    r = _cli("--reward", "none", f)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_aggregator_and_missing_gold(tmp_path):
    f = tmp_path / "in.jsonl"
    _write(f, [{"problem": "p", "steps": ["a"]}])
    r = _cli("--reward", "none", "--agg", "median", f)
    assert r.returncode == 2 and "valid:" in r.stderr
    r = _cli("--reward", "verifier", f)
    assert r.returncode == 2 and '"answer"' in r.stderr


def test_trl_reward_function():
    fn = as_reward_function(load_scorer("verifier"), "last")
    prompts = ["What is 2+3?", [{"role": "user", "content": "What is 2+3?"}], "q"]
    completions = ["2+3=5\n\nSo \\boxed{5}", [{"role": "assistant", "content": "It is \\boxed{6}"}], ""]
    assert fn(prompts=prompts, completions=completions, answer=["5", "5", "5"]) == [1.0, 0.0, None]
    assert fn.__name__ == "verifier_last"
    none = as_reward_function(load_scorer("none"), "sum")
    assert none(prompts=["q"], completions=["a\n\nb\n\nc"]) == [1.5]
    with pytest.raises(ValueError, match="valid"):
        as_reward_function(load_scorer("none"), "median")
