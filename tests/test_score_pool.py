"""eval/score_pool.py: scoring a stored pool once (resumable) and the scorer table."""

from __future__ import annotations

import gzip
import json

import pytest

from eval.score_pool import pool_table, score_pool, table_markdown
from rewards.base import Scorer


class LengthScorer(Scorer):
    """Step score = 0.9 when the step names the answer 7, else 0.2 (a perfect judge here)."""

    kind = "fake"

    def _score(self, problems, solutions, *, golds, references):
        return [[0.9 if "7" in s else 0.2 for s in sol] for sol in solutions]


def _write_pool(path, rows):
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def _pool(path, problems=5, n=4):
    rows = []
    for i in range(problems):
        samples = []
        for j in range(n):
            good = j == n - 1  # one correct sample in four, the last; the three wrong ones agree on 9
            steps = ["Add.", f"So it is {7 if good else 9}."]
            samples.append({"text": "\n\n".join(steps), "steps": steps, "answer": "7" if good else "9",
                            "generated_tokens": 10, "logprob": -1.0,
                            "verdict": {"correct": good, "status": "ok"}})
        rows.append({"format": "tts-math-pool/1", "id": f"p{i}", "problem": f"Problem {i}", "gold": "7",
                     "config": {"policy": {"model": "m"}, "n": n, "seed": 0}, "samples": samples})
    _write_pool(path, rows)
    return path


def test_score_pool_resumes_and_writes_a_pool(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl.gz")
    out = tmp_path / "scored.jsonl"
    sc = LengthScorer()
    assert score_pool(pool, sc, out, reward={"kind": "fake"}, limit=2) == 2
    with open(out, "a") as f:
        f.write('{"id": "torn')  # an interrupted write: that problem is redone
    assert score_pool(pool, sc, out, reward={"kind": "fake"}) == 3
    assert sc.stats.candidates == 20
    from policies.pool import read_pool

    rows = [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3", "p4"]
    assert rows[0]["samples"][3]["scores"] == [0.2, 0.9] and rows[0]["reward"] == {"kind": "fake"}
    with pytest.raises(ValueError, match="plain .jsonl"):
        score_pool(pool, sc, tmp_path / "x.jsonl.gz", reward={})
    assert len(read_pool(pool)) == 5


def test_only_mixed_scores_the_problems_a_scorer_can_change(tmp_path):
    from eval.score_pool import is_mixed

    pool = tmp_path / "pool.jsonl.gz"
    _pool(pool)
    rows = [json.loads(x) for x in gzip.open(pool, "rt")]
    for s in rows[1]["samples"]:
        s["verdict"] = {"correct": False, "status": "ok"}  # all wrong
    for s in rows[3]["samples"]:
        s["verdict"] = {"correct": True, "status": "ok"}  # all right
    rows[4]["samples"][0]["verdict"] = {"correct": None, "status": "invalid_gold"}  # not every sample graded
    _write_pool(pool, rows)
    assert [is_mixed(r) for r in rows] == [True, False, True, False, False]
    out, sc = tmp_path / "mixed.jsonl", LengthScorer()
    assert score_pool(pool, sc, out, reward={"kind": "fake"}, only_mixed=True, limit=1) == 1
    assert score_pool(pool, sc, out, reward={"kind": "fake"}, only_mixed=True) == 1  # resumes: p2 only
    assert sc.stats.candidates == 8
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["p0", "p2"]
    t = pool_table([out], aggs=["last"], n_boot=50)
    assert t["baseline"]["problems"] == 2 and t["rows"][0]["rm"]["acc"] == 1.0
    # the whole pool: p1 (all wrong) and p3 (all right) count as their outcome under every rule;
    # p4 (one sample ungraded) is left out, as problem_rows leaves it out of a scored file
    w = pool_table([out], aggs=["last"], n_boot=50, whole=pool)
    b, row = w["baseline"], w["rows"][0]
    assert b["problems"] == 4 and b["whole"] == {"pool": str(pool), "scored": 2, "all_right": 1, "all_wrong": 1}
    assert b["pass@1"]["acc"] == (0.25 + 0 + 0.25 + 1) / 4 and b["maj@4"]["acc"] == 0.25 and b["pass@4"]["acc"] == 0.75
    assert row["rm"]["acc"] == 0.75 and row["rm"]["minus_pass1"]["mean"] == 0.75 / 2
    assert row["auc"] == t["rows"][0]["auc"]  # over the scored problems only
    assert "4 problems (2 scored; 1 all right and 1 all wrong count as that outcome" in table_markdown(w)
    first2 = pool_table([out], aggs=["last"], n_boot=50, whole=pool, limit=2)  # p0 (scored) and p1 (all wrong)
    assert first2["baseline"]["problems"] == 2 and first2["ids"] == ["p0"]
    assert first2["baseline"]["whole"] == {"pool": str(pool), "scored": 1, "all_right": 0, "all_wrong": 1}
    with pytest.raises(ValueError, match="--limit must be >= 1, got -1"):  # not "all but the last"
        pool_table([out], aggs=["last"], whole=pool, limit=-1)
    rows[3]["samples"][0]["verdict"] = {"correct": False, "status": "ok"}  # p3 now mixed and not scored
    other = tmp_path / "other.jsonl.gz"
    _write_pool(other, rows)
    with pytest.raises(ValueError, match="problem p3 has right and wrong samples but no scored file holds it"):
        pool_table([out], aggs=["last"], whole=other)
    rows[0]["config"] = {**rows[0]["config"], "seed": 1}
    _write_pool(other, rows)
    with pytest.raises(ValueError, match="not cut from it \\(problem p0 differs\\)"):
        pool_table([out], aggs=["last"], whole=other)
    with pytest.raises(ValueError, match="differs in \\['only'\\]"):  # not the whole pool's file
        score_pool(pool, sc, out, reward={"kind": "fake"})


def test_pool_table_puts_the_scorer_beside_majority(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl.gz")
    out = tmp_path / "scored.jsonl"
    score_pool(pool, LengthScorer(), out, reward={"kind": "fake", "name": "judge"})
    out.write_text(out.read_text() + '{"id": "torn')  # torn tail is skipped by the reader
    t = pool_table([out], aggs=["min", "last"], n_boot=200)
    b = t["baseline"]
    assert b["problems"] == 5 and b["n"] == 4
    assert b["maj@4"]["acc"] == 0.0 and b["pass@1"]["acc"] == 0.25 and b["pass@4"]["acc"] == 1.0
    rows = {r["agg"]: r for r in t["rows"]}
    assert rows["last"]["rm"]["acc"] == 1.0 and rows["min"]["rm"]["acc"] == 0.0  # min sees "Add." = 0.2 for all
    assert rows["last"]["weighted"]["minus_maj"]["mean"] == 1.0  # 0.9 for 7 against 3 x 0.2 for 9
    assert rows["last"]["rm"]["minus_pass1"]["mean"] == 0.75
    assert rows["last"]["auc"] == 1.0
    md = table_markdown(t, "python cli.py eval pool-table x")
    assert "| judge | last |" in md and "maj@4 0.000" in md
    assert "first row" not in md and "minus_first" not in rows["last"]["rm"]


def test_pool_table_versus_first_pairs_each_row_with_the_first(tmp_path):
    pool = _pool(tmp_path / "pool.jsonl.gz")
    out = tmp_path / "scored.jsonl"
    score_pool(pool, LengthScorer(), out, reward={"kind": "fake", "name": "judge"})
    t = pool_table([out], aggs=["min", "last"], n_boot=200, versus_first=True)
    first, later = t["rows"]
    assert "minus_first" not in first["rm"]
    # last picks right on every problem, min on none: +1 over the first row, paired
    assert later["rm"]["minus_first"] == {"mean": 1.0, "ci": [1.0, 1.0]}
    assert later["weighted"]["minus_first"]["mean"] == 1.0
    md = table_markdown(t)
    assert "| RM - first row | weighted - first row |" in md
    assert md.splitlines()[4].endswith("| - | - |") and "+1.000 [+1.000, +1.000]" in md.splitlines()[5]


# ------------------------------------------------------------------ scorer cost (rewards.cost)
class TokenScorer(LengthScorer):
    """LengthScorer that reports 10 scored tokens per candidate, as a model scorer would."""

    def _score(self, problems, solutions, *, golds, references):
        self.stats.tokens_scored += 10 * len(solutions)
        return super()._score(problems, solutions, golds=golds, references=references)


def test_forward_params_and_flops_by_hand():
    import torch

    from rewards.cost import flops_per_candidate, flops_per_token, forward_params

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)  # a lookup: not counted
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)])  # 15 + 8
            self.head = torch.nn.Linear(2, 1)  # 3

    net = Net()
    assert forward_params(net) == 15 + 8 + 3
    assert forward_params(net, layers=net.layers[:1]) == 15  # a probe reading layer 1 stops there
    tied = torch.nn.Linear(4, 10, bias=False)
    tied.weight = net.embed.weight  # an output head tied to the embedding: one table, a lookup
    assert forward_params(torch.nn.ModuleList([net.embed, tied])) == 0
    assert flops_per_token(26) == 52
    # 52 FLOPs per token, 100 + 60 tokens scored for 4 candidates: 52 * 160 / 4
    assert flops_per_candidate(flops_per_token=52, tokens=160, candidates=4) == 2080.0
    with pytest.raises(ValueError, match="candidates"):
        flops_per_candidate(flops_per_token=52, tokens=160, candidates=0)


def test_pool_table_puts_scorer_flops_beside_accuracy(tmp_path, monkeypatch):
    import eval.score_pool as sp

    pool = _pool(tmp_path / "pool.jsonl.gz")  # 5 problems x 4 samples, 10 generated tokens each
    scored = tmp_path / "scored.jsonl"
    # 2 problems per score() call: 80 tokens per call, split 40 / 40 by candidates
    score_pool(pool, TokenScorer(), scored, reward={"kind": "fake", "name": "judge", "flops_per_token": 1000},
               batch_problems=2)
    rows = [json.loads(x) for x in scored.read_text().splitlines()]
    assert [r["scorer_tokens"] for r in rows] == [40, 40, 40, 40, 40]
    # a probe scored before the cost was recorded: FLOPs per token from its backbone (stubbed
    # here), tokens = the pool's prompt + generated tokens (0 + 10 per sample here)
    legacy = tmp_path / "legacy-probe.jsonl"
    recs = [{**r, "reward": {"kind": "probe", "name": "old-probe", "backbone": "b", "layer": 2}} for r in rows]
    for r in recs:
        del r["scorer_tokens"]
    legacy.write_text("".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setattr(sp, "_probe_flops_per_token", lambda backbone, layer: 300 * layer)
    t = pool_table([scored, legacy], aggs=["last"], n_boot=50)
    by = {r["reward"]["name"]: r["cost"] for r in t["rows"]}
    # judge: 1000 FLOPs/token x 200 tokens / 20 candidates = 10,000 per candidate
    assert by["judge"]["flops_per_candidate"] == 10_000.0 and by["judge"]["tokens_from"] == "scorer"
    # old probe: 600 FLOPs/token x (20 x 10 tokens) / 20 candidates = 6,000
    assert by["old-probe"]["flops_per_candidate"] == 6_000.0
    assert by["old-probe"]["tokens_from"].startswith("pool")
    md = table_markdown(t)
    assert "scorer GFLOP / candidate" in md and "| 1e-05 |" in md and "| 6e-06 |" in md
    # no recorded FLOPs per token (an oracle, or an older scored pool): the cell says "-"
    assert sp.gflops(sp.scorer_cost(rows, {"kind": "fake"})) == "-"


# ------------------------------------------------------------------ certainty_pool
class CharCertainty:
    """A self-certainty stand-in: one value per character of the text (its code / 100)."""

    vocab = 7

    def __init__(self) -> None:
        self.tokens_run = 0
        self.calls = 0

    def __call__(self, problems, texts):
        self.calls += 1
        self.tokens_run += sum(len(p) + len(t) for p, t in zip(problems, texts, strict=True))
        return [[ord(c) / 100 for c in t] for t in texts]


def test_certainty_pool_rewrites_token_conf_and_resumes(tmp_path):
    from eval.score_pool import certainty_pool

    pool = _pool(tmp_path / "pool.jsonl.gz", problems=3, n=2)
    out = tmp_path / "sc.jsonl"
    sc = CharCertainty()
    assert certainty_pool(pool, sc, out, model="m", batch_problems=2, limit=1) == 1
    assert certainty_pool(pool, sc, out, model="m", batch_problems=2) == 2  # the rest, in one batch
    assert sc.calls == 2
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1", "p2"]
    s = rows[0]["samples"][0]
    assert s["token_conf"] == [round(ord(c) / 100, 3) for c in s["text"]] and "step_conf" not in s
    assert rows[0]["confidence"] == {"kind": "self-certainty", "model": "m", "vocab": 7}
    # the batch's tokens are shared out over its problems, summing to what was run
    assert sum(r["confidence_tokens"] for r in rows) == sc.tokens_run
    with pytest.raises(ValueError):  # another measure for the same file is refused
        certainty_pool(pool, sc, out, model="other")
