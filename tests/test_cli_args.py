"""Bad arguments of every subcommand that starts an engine: exit code 2, one line on
stderr, no traceback, and no policy, engine, scorer or Ray pool built (issue 19: 12 of
48 bad arguments ran generation first, or ended in a traceback, or did nothing and
exited 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class EngineStarted(BaseException):
    """Raised by every policy / scorer / Ray factory here: not an Exception, so no
    handler on the way can turn it into a clean error."""


def _forbidden(*a, **k):
    raise EngineStarted("a policy, engine, scorer or Ray pool was built for a bad command")


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    import policies
    import policies.openai_backend
    import policies.vllm_policy
    import rewards
    import search.cli
    import search.ray_runner

    for mod, name in ((policies, "VLLMPolicy"), (policies.vllm_policy, "VLLMPolicy"),
                      (policies.vllm_policy, "get_engine"), (policies.openai_backend, "OpenAIPolicy"),
                      (search.cli, "load_scorer"), (rewards, "load_scorer"),
                      (search.ray_runner, "SearchPool"), (search.ray_runner, "connect")):
        monkeypatch.setattr(mod, name, _forbidden, raising=False)
    monkeypatch.chdir(tmp_path)  # default outputs (runs/, reports/) land here


def _files(tmp_path: Path) -> dict:
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b" "answer": "2"}\n')
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "gsm8k-0", "config": {"search": {"strategy": "beam"}}}\n')
    nul = tmp_path / "nul.jsonl"
    nul.write_bytes(b"\0" * 20 + b"\n" + b'{"id": "gsm8k-0", "config": {}}\n')
    scored = tmp_path / "cands.jsonl"
    scored.write_text('{"problem": "1+1?", "steps": ["2"]}\n')
    return {"DIR": str(tmp_path), "FILE": str(a_file), "EMPTY": str(empty), "BAD": str(bad), "OTHER": str(other),
            "NUL": str(nul), "CANDS": str(scored), "UNDER_FILE": str(a_file / "run.jsonl")}


# (argv, a fragment of the one-line error); DIR, FILE, ... are replaced by paths
CASES = [
    # --out
    ("search --out DIR", "is a directory"),
    ("search --out UNDER_FILE", "is a file, not a folder"),
    ("search --out /sys/no/run.jsonl", "cannot write in /sys"),
    ("search --out OTHER", "holds a run with other settings"),
    ("search --out NUL", "line 1 holds NUL bytes"),
    # --limit / --offset
    ("search --limit 0", "--limit must be >= 1"),
    ("search --offset 5 --limit 0", "--limit must be >= 1"),
    ("search --limit -3", "--limit must be >= 1"),
    ("search --offset -1", "--offset must be >= 0"),
    ("search --offset 1319", "past the end of gsm8k (1319 problems)"),
    # options that do not apply
    ("search --answer-field gold", "--answer-field applies to JSONL datasets only"),
    ("search --dataset math500 --problem-field q", "--problem-field applies to JSONL datasets only"),
    ("search --data-dir DIR", "--data-dir applies to"),
    ("search --strategy best_of_n --rollouts", "--rollouts applies to --strategy mcts"),
    ("search --strategy best_of_n --c-puct 2", "--c-puct applies to --strategy mcts"),
    ("search --strategy best_of_n --node-budget 8", "--node-budget applies to --strategy mcts"),
    ("search --strategy dvts --beam-rule expand_all", "--beam-rule applies to --strategy beam"),
    ("search --strategy majority --max-steps 3", "--max-steps applies to"),
    ("search --strategy weighted_majority --beam-width 4", "--beam-width applies to"),
    ("search --scorer-model some/ckpt", "--scorer-model does not apply to --reward none"),
    ("search --reward verifier --scorer-model some/ckpt", "--scorer-model does not apply to --reward verifier"),
    ("search --concurrency 8", "--concurrency applies to --backend openai"),
    ("search --ray-actors 3", "--ray-actors needs --backend ray"),
    ("search --backend openai --endpoint http://127.0.0.1:9/v1 --kv-cache-gib 1", "does not apply with --endpoint"),
    ("search --endpoint http://127.0.0.1:9/v1", "--endpoint is for --backend openai"),
    ("search --backend openai", "needs at least one --endpoint"),
    ("search --ray-address auto", "need --backend ray"),
    ("search --strategy best_of_n --pipeline", "--pipeline / --no-pipeline apply to --strategy beam"),
    ("search --strategy majority --no-pipeline", "--pipeline / --no-pipeline apply to --strategy beam"),
    ("search --strategy beam --backend ray --pipeline", "--pipeline does not apply to --backend ray"),
    ("search --strategy dvts --batch-problems 4", "add --no-pipeline to run in batches"),
    # datasets
    ("search --dataset EMPTY", "is empty"),
    ("search --dataset BAD", "bad.jsonl:2: not valid JSON"),
    ("search --dataset nope", "no such file"),
    # values
    ("search --batch-problems 0", "--batch-problems must be >= 1"),
    ("search --backend ray --ray-actors 0", "--ray-actors must be >= 1"),
    ("search --tensor-parallel-size 0", "--tensor-parallel-size must be >= 1"),
    ("search --n 0", "n must be an int >= 1"),
    ("search --strategy beam --n 5", "n must be a multiple of beam_width"),
    ("search --agg nope", "unknown aggregator 'nope'"),
    ("search --prompt-style nope", "prompt template 'nope' not found"),
    ("search --temperature -1", "temperature must be >= 0"),
    ("search --top-p 1.5", "top_p must be in (0, 1]"),
    ("search --kv-cache-gib 0", "kv_cache_gib must be > 0"),
    ("search --max-tokens 0", "max_tokens and max_step_tokens must be >= 1"),
    ("search --scorer-endpoint localhost:8100", "--scorer-endpoint must be an http(s) URL"),
    ("search --step-check arithmetic", "--step-check arithmetic checks a scorer's steps; add --reward KIND"),
    # sweep --search: the same checks, and its own folders
    ("sweep --search --limit 0", "--limit must be >= 1"),
    ("sweep --search --answer-field gold", "--answer-field applies to JSONL datasets only"),
    ("sweep --search --out FILE", "is a file, not a folder"),
    ("sweep --search --runs-dir FILE", "is a file, not a folder"),
    ("sweep --search --strategy best_of_n --rollouts", "--rollouts applies to --strategy mcts"),
    # train data builders (a vLLM engine each)
    ("train data-outcome --dataset gsm8k --out DIR", "is a directory"),
    ("train data-outcome --dataset gsm8k --out run.jsonl --limit 0", "--limit must be >= 1"),
    ("train data-steps --dataset gsm8k --out run.jsonl --offset 99999", "past the end of gsm8k"),
    ("train data-outcome --dataset gsm8k --out run.jsonl --data-dir DIR", "--data-dir applies to"),
    # score (a scorer model)
    ("score CANDS --output DIR", "is a directory"),
    ("eval scorer --reward prm --bench gsm8k-pairs --data CANDS --out DIR", "is a directory"),
    ("eval scorer --reward prm --bench gsm8k-pairs --data CANDS --limit 0", "--limit must be >= 1"),
    ("eval scorer --reward prm --bench gsm8k-pairs --data CANDS --arithmetic-check",
     "--arithmetic-check applies to the processbench benches"),
]


@pytest.mark.parametrize("argv, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_arguments_fail_in_one_line_before_any_engine(no_engine, tmp_path, capsys, argv, fragment):
    import cli

    paths = _files(tmp_path)
    args = [paths.get(a, a) for a in argv.split()]
    rc = cli.main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert fragment in err, err


def test_the_same_in_a_real_process(tmp_path):
    """Three of the table through `python cli.py` itself: exit code, stderr, no traceback."""
    for argv, fragment in (("search --out DIR", "is a directory"), ("search --limit 0", "--limit must be >= 1"),
                           ("search --offset 1319", "past the end")):
        args = [str(tmp_path) if a == "DIR" else a for a in argv.split()]
        r = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
        err = r.stderr.strip()
        assert r.returncode == 2 and len(err.splitlines()) == 1 and fragment in err, (r.returncode, err)


def test_ungradable_golds_are_warned_about_before_the_engine(monkeypatch, tmp_path, capsys, caplog):
    """`cli.py search` on a JSONL with blank and unparsable golds: a warning per problem
    before the policy is built, every record written, exit 0."""
    import json

    import cli
    import policies
    from search import cli as search_cli
    from search.testing import FakePolicy

    warned_at_start = []

    def fake_policy(*a, **kw):
        warned_at_start.append(sorted(r.getMessage().split(":")[0] for r in caplog.records
                                      if "cannot be graded" in r.getMessage()))
        return FakePolicy()

    monkeypatch.setattr(policies, "VLLMPolicy", fake_policy)
    monkeypatch.setattr(search_cli, "load_scorer", _forbidden)
    ds = tmp_path / "ds.jsonl"
    golds = ["1", "", "$$$", "\\,", "°", "\u2028", None, "0"]
    ds.write_text("".join(json.dumps({"id": f"q{i}", "problem": f"problem {i}", "answer": g}) + "\n"
                          for i, g in enumerate(golds)))
    out = tmp_path / "run.jsonl"
    with caplog.at_level("WARNING"):
        rc = cli.main(["search", "--dataset", str(ds), "--n", "2", "--out", str(out), "--batch-problems", "3",
                       "--prompt-style", "plain"])
    assert rc == 0, capsys.readouterr().err
    bad = [f"problem q{i}" for i in range(1, 7)]
    assert warned_at_start == [bad]  # all six, before the one policy was built
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(recs) == [f"q{i}" for i in range(8)]
    assert [recs[f"q{i}"]["status"] for i in range(1, 7)] == ["invalid_gold"] * 6
    assert isinstance(recs["q0"]["correct"], bool) and isinstance(recs["q7"]["correct"], bool)
    assert "invalid golds (not searched)" in capsys.readouterr().out


def _choices(parser, dest: str, path=()) -> tuple | None:
    """The choices of option `dest` in the (sub)parser reached by `path`."""
    import argparse

    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    act = next(a for a in parser._actions if a.dest == dest)
    return tuple(act.choices)


def test_cli_choices_come_from_the_registries():
    sys.path.insert(0, str(ROOT))
    import cli
    from eval.registry import BENCHES
    from rewards.kinds import SCORER_KINDS
    from rewards.train import IMPORTERS, TASKS, TRAIN_KINDS
    from search.select import RULES
    from search.strategies import NAMES

    p = cli.build_parser()
    for path in (("search",), ("score",), ("serve-scorer",), ("eval", "scorer")):
        assert _choices(p, "reward", path) == tuple(SCORER_KINDS), path
    assert _choices(p, "reward", ("serve",)) == tuple(k for k in SCORER_KINDS if k != "verifier")  # needs golds
    assert _choices(p, "strategy", ("search",)) == _choices(p, "strategy", ("serve",)) == NAMES
    assert _choices(p, "select", ("serve",)) == tuple(RULES)
    assert TRAIN_KINDS == tuple(k for k, v in SCORER_KINDS.items() if v.train)
    assert set(TASKS) == set(TRAIN_KINDS)  # a trainable kind has its task (rewards/train/tasks.py)
    assert _choices(p, "train_command", ("train",))[:len(TRAIN_KINDS)] == TRAIN_KINDS
    assert _choices(p, "format", ("train", "data-import")) == tuple(IMPORTERS)
    assert _choices(p, "bench", ("eval", "scorer")) == tuple(BENCHES)
