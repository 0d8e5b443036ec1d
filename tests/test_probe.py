"""Probe scorers (rewards/probe.py) and their trainer (rewards/train/probe.py) on a tiny
random model with the embedded SmolLM2 tokenizer: positions, scorer = head(features),
resumable extraction, and the fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewards.probe import (
    PROBE_FORMAT,
    PolicyFeatures,
    ProbeHead,
    ProbeScorer,
    is_probe_dir,
    step_end_tokens,
)
from rewards.train import probe as tp


def test_step_end_tokens_takes_the_last_token_starting_before_each_end():
    offsets = [(0, 0), (0, 3), (3, 5), (5, 9), (9, 10)]  # a special token first
    assert step_end_tokens(offsets, [5, 6, 10]) == [2, 3, 4]
    assert step_end_tokens(offsets, [1]) == [1]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from policies.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    out = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


PROBLEM = "Tom has 3 apples and buys 4 more. How many apples?"
STEPS = ["Tom starts with 3 apples.", "He buys 4, so 3 + 4 = 7.", "The answer is \\boxed{7}."]


def test_render_ends_each_step_at_its_last_character(tiny_lm):
    f = PolicyFeatures(tiny_lm, layers=[1, 2])
    text, ends = f.render(PROBLEM, STEPS)
    assert [text[e - len(s) : e] for s, e in zip(STEPS, ends, strict=True)] == STEPS
    out = f([PROBLEM, PROBLEM], [STEPS, []])
    assert out[0].shape == (2, 3, 32) and out[1].shape == (2, 0, 32)


def test_features_do_not_depend_on_the_batch(tiny_lm):
    f = PolicyFeatures(tiny_lm, layers=[2], dtype="float32")
    alone = f([PROBLEM], [STEPS])[0]
    other = ["A much longer first step that pads the batch " * 5, "then the end."]
    together = PolicyFeatures(tiny_lm, layers=[2], dtype="float32", token_budget=100_000)(
        [PROBLEM, "Another problem?"], [STEPS, other])[0]
    np.testing.assert_allclose(alone, together, atol=1e-4)


def _write_probe(d, head, layer, granularity, model):
    d.mkdir(parents=True, exist_ok=True)
    head.save(d / "head.npz")
    (d / "probe.json").write_text(json.dumps({"format": PROBE_FORMAT, "granularity": granularity,
                                             "backbone": model, "layer": layer, "prompt_style": "gsm8k"}))


@pytest.mark.parametrize("granularity", ["step", "outcome"])
def test_scorer_is_the_head_on_the_features(tiny_lm, tmp_path, granularity):
    rng = np.random.default_rng(0)
    head = ProbeHead(weight=rng.normal(size=32), bias=0.1, mean=rng.normal(size=32), scale=np.full(32, 2.0))
    _write_probe(tmp_path / "p", head, 2, granularity, tiny_lm)
    assert is_probe_dir(tmp_path / "p") and not is_probe_dir(tmp_path)
    scorer = ProbeScorer(tmp_path / "p", dtype="float32")
    got = scorer.score([PROBLEM, PROBLEM], [STEPS, STEPS[:1]])
    feats = PolicyFeatures(tiny_lm, layers=[2], dtype="float32")([PROBLEM, PROBLEM], [STEPS, STEPS[:1]])
    want = [head.probs(f[0]) if granularity == "step" else head.probs(f[0][-1:]) for f in feats]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)
    assert len(got[0]) == (3 if granularity == "step" else 1)
    assert scorer.score([PROBLEM], [[]]) == [[]]
    assert scorer.stats.tokens_scored > 0


def test_scorer_rejects_a_folder_that_is_not_a_probe(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a probe directory"):
        ProbeScorer(tmp_path)


def _pool(path, n_problems=6, n=4):
    rows = []
    for i in range(n_problems):
        samples = []
        for j in range(n):
            good = (i + j) % 2 == 0
            steps = [f"Problem {i}: we add {j}.", "So the total is 7." if good else "So the total is 9."]
            samples.append({"text": "\n\n".join(steps), "steps": steps, "answer": "7" if good else "9",
                            "verdict": {"correct": good, "status": "ok"}})
        samples.append({"text": "", "steps": ["x"], "verdict": {"correct": None, "status": "invalid_gold"}})
        rows.append({"format": "tts-math-pool/1", "id": f"p{i}", "problem": f"Add things {i}.", "gold": "7",
                     "config": {"policy": {"model": "tiny", "prompt_style": "gsm8k"}, "n": n + 1, "seed": 0},
                     "samples": samples})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_extraction_resumes_and_the_fit_separates_the_labels(tiny_lm, tmp_path):
    pool = _pool(tmp_path / "pool.jsonl")
    out = tmp_path / "feats"
    man = tp.extract_pool_features(pool, out, model=tiny_lm, layers=[1, 2], problems_per_shard=2,
                                   exclude=["p4", "p5"])
    assert man["done"] == ["p0", "p1", "p2", "p3"] and len(man["shards"]) == 2
    man = tp.extract_pool_features(pool, out, model=tiny_lm, layers=[1, 2], problems_per_shard=2)
    assert man["done"][-2:] == ["p4", "p5"] and len(man["shards"]) == 3
    with pytest.raises(ValueError, match="another --out"):
        tp.extract_pool_features(pool, out, model=tiny_lm, layers=[2])
    f = tp.load_features(out)
    assert len(f.label) == 24 and f.feats.shape == (2, 48, 32)  # the ungradable sample is left out
    fit = tp.select_and_fit(f, granularity="outcome", folds=3, l2_grid=(1e-3, 1.0))
    assert {r["layer"] for r in fit["cv"]} == {1, 2} and fit["positive_share"] == 0.5
    x, y, _ = tp.design(f, fit["layer"], "outcome")
    assert tp.auc(fit["head"].probs(x), y) > 0.9  # "7" vs "9" in the last step: linearly visible
    d = tp.save_probe(tmp_path / "probe", fit, granularity="outcome", features=f, command="test")
    card = json.loads((d / "probe.json").read_text())
    assert card["training"]["samples"] == 24 and card["command"] == "test"
    # the scorer on the pool's text gives the head on the stored (float16) features
    scorer = ProbeScorer(d)
    got = scorer.score(["Add things 0."], [["Problem 0: we add 0.", "So the total is 7."]])[0][0]
    assert got == pytest.approx(float(fit["head"].probs(x[:1])[0]), abs=0.02)


def test_fit_logistic_recovers_a_direction_and_metrics_are_exact():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5))
    y = (x[:, 2] + 0.1 * rng.normal(size=400) > 0).astype(float)
    head = tp.fit_logistic(x, y, 1e-3)
    assert np.argmax(np.abs(head.weight)) == 2
    assert tp.auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert tp.auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)
    assert tp.expected_calibration_error(np.array([0.05, 0.95]), np.array([0, 1])) == pytest.approx(0.05)


def test_early_stop_reads_the_same_states_as_a_full_pass(tiny_lm):
    import torch

    f = PolicyFeatures(tiny_lm, layers=[1], dtype="float32")
    ids, pos = f._encode(PROBLEM, STEPS)
    with torch.inference_mode():
        full = f.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[1][0, pos]
    np.testing.assert_allclose(f([PROBLEM], [STEPS])[0][0], full.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="decoder layers 1..2"):
        PolicyFeatures(tiny_lm, layers=[0])


def test_train_cli_extracts_without_heldout_problems_and_fits(tiny_lm, tmp_path, capsys, monkeypatch):
    import sys

    import cli
    from policies.datasets import load_problems

    pool = _pool(tmp_path / "pool.jsonl")
    rows = [json.loads(x) for x in pool.read_text().splitlines()]
    rows[0]["problem"] = load_problems("gsm8k-heldout200", limit=1)[0]["problem"]  # a held-out problem
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    feats = tmp_path / "feats"
    assert cli.main(["train", "probe-features", "--pool", str(pool), "--model", tiny_lm, "--layers", "1,2",
                     "--out", str(feats)]) == 0
    assert "p0" not in json.loads((feats / "manifest.json").read_text())["done"]
    argv = ["train", "probe", "--features", str(feats), "--granularity", "step", "--folds", "2",
            "--l2", "0.01,1", "--out", str(tmp_path / "probe")]
    monkeypatch.setattr(sys, "argv", ["cli.py", *argv])
    assert cli.main(argv) == 0
    card = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert card["granularity"] == "step" and card["training"]["problems"] == 5
    assert card["command"].startswith("python cli.py train probe")
    assert cli.main(["train", "probe-features", "--pool", str(pool), "--model", tiny_lm, "--layers", "x",
                     "--out", str(feats)]) == 2
    assert "--layers 'x': give comma-separated integers" in capsys.readouterr().err
