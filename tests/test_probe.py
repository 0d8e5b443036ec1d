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
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from policies.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    out = tmp_path_factory.mktemp("tiny_lm")
    torch.manual_seed(0)  # the same random weights every run: scores and thresholds repeat
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


def test_prefix_cache_gives_the_uncached_states_and_runs_only_new_tokens(tiny_lm):
    plain = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32")
    cached = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32", kv_cache_tokens=10_000)
    other = ["He eats 2, so 7 - 2 = 5 left.", "The answer is \\boxed{5}."]
    rounds = [  # a beam grown step by step, a sibling branch, a second sample, a repeat
        ([PROBLEM], [STEPS[:1]]),
        ([PROBLEM, PROBLEM], [STEPS[:2], STEPS[:1] + other[:1]]),
        ([PROBLEM, PROBLEM, "Another problem?"], [STEPS, STEPS[:1] + other, ["First.", "Second"]]),
        ([PROBLEM], [STEPS]),
    ]
    runs = []
    for problems, sols in rounds:
        before = cached.tokens_run
        got = cached(problems, sols)
        runs.append(cached.tokens_run - before)
        want = plain(problems, sols)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=1e-4)
    full = [len(cached._encode(p, s)[0]) for p, s in zip(*rounds[2], strict=True)]
    assert cached.kv_reused_tokens > 0
    assert runs[2] < sum(full) - 2 * len(cached._prompt_tokens(PROBLEM))  # the two extensions ran their steps only
    assert runs[3] == 0  # scored before: every state from the cache


def test_samples_of_one_prompt_in_one_call_run_the_prompt_once(tiny_lm):
    plain = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32")
    cached = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32", kv_cache_tokens=10_000)
    other = ["He eats 2, so 7 - 2 = 5 left.", "The answer is \\boxed{5}."]
    problems = [PROBLEM, PROBLEM, "Another problem?", PROBLEM, PROBLEM]
    sols = [STEPS, other, ["First.", "Second"], STEPS[:1] + other[1:], STEPS]  # the last: a repeat
    got, want = cached(problems, sols), plain(problems, sols)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-4)
    ids = [cached._encode(p, s)[0] for p, s in zip(problems, sols, strict=True)]
    whole = [len(x) for x in ids]

    def common(a, b):
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    head = len(cached._prompt_tokens(PROBLEM))
    shared = [common(ids[0], ids[1]), common(ids[0], ids[3])]
    assert shared[0] >= head and shared[1] > head + 3  # the fourth shares the first step too
    # the first sample runs whole, the next two after what they share with it, the repeat not at all
    assert cached.tokens_run == whole[0] + whole[2] + (whole[1] - shared[0]) + (whole[3] - shared[1])
    assert cached.kv_reused_tokens == sum(shared) + whole[4]


def test_an_edited_copy_of_a_solution_starts_where_it_parts_from_it(tiny_lm):
    plain = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32")
    cached = PolicyFeatures(tiny_lm, layers=[1, 2], dtype="float32", kv_cache_tokens=10_000)
    original = ["She has 3 + 4 = 7 apples.", "She eats 2, so 7 - 2 = 5 are left.", "The answer is 5."]
    edited = original[:1] + ["She eats 2, so 7 - 2 = 6 are left.", "The answer is 6."]  # parts inside step 2
    got, want = cached([PROBLEM, PROBLEM], [original, edited]), plain([PROBLEM, PROBLEM], [original, edited])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    a, b = (cached._encode(PROBLEM, x)[0] for x in (original, edited))
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared > len(cached._prompt_tokens(PROBLEM)) + 5  # more than the prompt
    assert cached.kv_reused_tokens == shared and cached.tokens_run == len(a) + len(b) - shared


def test_extraction_with_the_prefix_cache_stores_the_same_states(tiny_lm, tmp_path):
    pool = _pool(tmp_path / "pool.jsonl", n_problems=3)
    a = tp.extract_pool_features(pool, tmp_path / "a", model=tiny_lm, layers=[2], problems_per_shard=2)
    b = tp.extract_pool_features(pool, tmp_path / "b", model=tiny_lm, layers=[2], problems_per_shard=2,
                                 kv_cache_tokens=0)
    fa, fb = tp.load_features(tmp_path / "a"), tp.load_features(tmp_path / "b")
    np.testing.assert_allclose(fa.feats.astype(np.float32), fb.feats.astype(np.float32), atol=2e-3)
    assert (fa.n_steps == fb.n_steps).all() and (fa.label == fb.label).all()
    assert b.get("tokens_from_cache", 0) == 0 < a["tokens_from_cache"]
    assert a["tokens"] + a["tokens_from_cache"] == b["tokens"]  # every token read once, some from the cache


def test_prefix_cache_is_bounded_and_can_be_cleared(tiny_lm):
    f = PolicyFeatures(tiny_lm, layers=[2], dtype="float32", kv_cache_tokens=60)
    f([PROBLEM], [STEPS])  # longer than 60 tokens: not kept; its prompt is
    assert f._kv.weight <= 60
    f.clear_cache()
    assert f._kv.weight == 0
    with pytest.raises(ValueError, match="kv_cache_tokens"):
        PolicyFeatures(tiny_lm, layers=[2], kv_cache_tokens=-1)


def test_the_index_of_cached_candidates_stays_bounded(tiny_lm):
    f = PolicyFeatures(tiny_lm, layers=[2], dtype="float32", kv_cache_tokens=200)
    for i in range(150):  # many problems through a cache that holds a few candidates
        f([f"Problem {i}?"], [[f"Step {i}.", "Done."]])
    assert 0 < len(f._kv) < 10
    assert f._n_problem_keys == sum(map(len, f._problem_keys.values())) <= 2 * len(f._kv) + 64
    assert len(f._problem_keys) <= 2 * len(f._kv) + 64 < 150


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
    # the policy's prompt, when given, overrides the card's (the states it had while sampling)
    other = ProbeScorer(tmp_path / "p", dtype="float32", prompt_style="math")
    assert other.features.prompt(PROBLEM) != scorer.features.prompt(PROBLEM)


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


def test_scores_from_stored_features_equal_the_scorer(tiny_lm, tmp_path):
    from eval.score_pool import FeatureProbe, score_pool, score_pool_from_features
    from policies.pool import read_pool

    pool = _pool(tmp_path / "pool.jsonl", n_problems=4)
    feats = tmp_path / "feats"
    tp.extract_pool_features(pool, feats, model=tiny_lm, layers=[1, 2])
    fit = tp.select_and_fit(tp.load_features(feats), granularity="step", folds=2, l2_grid=(0.1,))
    d = tp.save_probe(tmp_path / "probe", fit, granularity="step", features=tp.load_features(feats))
    score_pool_from_features(pool, FeatureProbe(d, feats), tmp_path / "a.jsonl", reward={"kind": "probe"})
    score_pool(pool, ProbeScorer(d), tmp_path / "b.jsonl", reward={"kind": "probe"})
    a, b = read_pool(tmp_path / "a.jsonl"), read_pool(tmp_path / "b.jsonl")
    for ra, rb in zip(a, b, strict=True):
        for sa, sb in zip(ra["samples"][:-1], rb["samples"][:-1], strict=True):
            np.testing.assert_allclose(sa["scores"], sb["scores"], atol=0.02)
        assert ra["samples"][-1]["scores"] == []  # the ungradable sample has no features
    with pytest.raises(KeyError, match="allow-heldout"):
        FeatureProbe(d, feats).scores("p9", 0)
    # the CLI's header names the weights that scored the pool, so a later default in the same folder is told apart
    import cli
    from rewards.checkpoint import weights_sha256

    assert cli.main(["eval", "score-pool", "--reward", "probe", "--scorer-model", str(d), "--features", str(feats),
                     "--pool", str(pool), "--out", str(tmp_path / "c.jsonl")]) == 0
    head = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])
    assert head["reward"]["weights_sha256"] == weights_sha256(d) is not None


# ---------------------------------------------------------------- the flagging threshold


def test_flag_threshold_hand_computed():
    # per-sample minima: wrong 0.2, 0.4, 0.6; right 0.3, 0.7, 0.85
    scores = [[0.9, 0.2], [0.5, 0.4], [0.7], [0.6, 0.8], [0.9, 0.85], [0.3], []]
    correct = [False, False, True, False, True, True, True]  # the step-less sample is left out
    # t = candidate: wrong flagged (min < t), right unflagged, balanced F1
    #   0.2: 0/3, 3/3, 0      0.3: 1/3, 3/3, 0.5     0.4: 1/3, 2/3, 4/9    0.6: 2/3, 2/3, 2/3
    #   0.7: 3/3, 2/3, 0.8    0.85: 3/3, 1/3, 0.5    inf: 3/3, 0/3, 0
    got = tp.choose_flag_threshold(scores, correct)
    assert got["value"] == pytest.approx(0.65)  # midpoint of the winner 0.7 and 0.6 below it
    assert got["balanced_f1"] == pytest.approx(0.8)
    assert (got["wrong_flagged"], got["right_unflagged"]) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert got["f1_wrong_class"] == pytest.approx(2 * 0.75 / 1.75)  # 3 of 4 flagged are wrong, all found
    assert (got["samples"], got["right"]) == (6, 3)
    # ties go to the lowest candidate (minima: wrong 0.2, 0.85; right 0.3, 0.9)
    tie = tp.choose_flag_threshold([[0.2], [0.3], [0.85], [0.9]], [False, True, False, True])
    #   0.3: 1/2, 2/2 -> 2/3;  0.85: 1/2, 1/2 -> 1/2;  0.9: 2/2, 1/2 -> 2/3 (tie with 0.3: the lower wins)
    assert tie["value"] == pytest.approx(0.25) and tie["balanced_f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="right and wrong samples"):
        tp.choose_flag_threshold([[0.5], [0.6]], [True, True])


def test_flag_threshold_does_not_depend_on_the_share_of_right_answers():
    rng = np.random.default_rng(3)
    wrong = [list(rng.uniform(0.0, 0.7, size=3)) for _ in range(20)]
    right = [list(rng.uniform(0.3, 1.0, size=3)) for _ in range(20)]
    base = tp.choose_flag_threshold(wrong + right, [False] * 20 + [True] * 20)
    many_wrong = tp.choose_flag_threshold(wrong * 4 + right, [False] * 80 + [True] * 20)
    assert many_wrong["value"] == pytest.approx(base["value"])
    assert many_wrong["balanced_f1"] == pytest.approx(base["balanced_f1"])
    assert base["value"] < 1.0  # not "flag everything"


def _features(rng, n_problems=8, n=4, d=6):
    """Synthetic training features: dimension 0 carries the outcome."""
    n_steps = rng.integers(1, 4, size=n_problems * n)
    label = rng.integers(0, 2, size=n_problems * n)
    label[:2] = [0, 1]
    owner = np.repeat(np.arange(len(n_steps)), n_steps)
    x = rng.normal(size=(len(owner), d))
    x[:, 0] += 2.0 * (label[owner] - 0.5)
    return tp.Features(layers=[3], feats=x[None].astype(np.float16), n_steps=n_steps.astype(np.int32),
                       label=label.astype(np.int8), pid=np.repeat([f"p{i}" for i in range(n_problems)], n),
                       sample=np.tile(np.arange(n), n_problems).astype(np.int32),
                       answer=np.array(["1"] * len(n_steps)), manifest={"pool": "pools/train.jsonl", "model": "m"})


def test_features_of_several_pools_join_into_one_training_set(tmp_path):
    rng = np.random.default_rng(3)
    a, b = _features(rng), _features(rng, n_problems=5)
    b.pid = np.array([f"m{x}" for x in b.pid])  # another pool's ids
    b.layers, b.feats = [1, 3], np.concatenate([b.feats + 1, b.feats])  # layer 1 only in b
    a.manifest = {**a.manifest, "prompt_style": "gsm8k", "tokens": 10, "seconds": 2.0}
    b.manifest = {"pool": "pools/math.jsonl", "model": "m", "prompt_style": "math", "tokens": 5, "seconds": 1.0}
    j = tp.merge_features([a, b])
    assert j.layers == [3] and len(j.n_steps) == len(a.n_steps) + len(b.n_steps)
    np.testing.assert_array_equal(j.layer(3), np.concatenate([a.layer(3), b.layer(3)]))
    np.testing.assert_array_equal(j.label, np.concatenate([a.label, b.label]))
    assert j.manifest["pool"] == ["pools/train.jsonl", "pools/math.jsonl"] and j.manifest["tokens"] == 15
    assert j.manifest["prompt_styles"] == {"pools/train.jsonl": "gsm8k", "pools/math.jsonl": "math"}
    assert j.manifest["prompt_style"] == "gsm8k"  # the first pool's: what a scorer defaults to
    fit = tp.select_and_fit(j, granularity="outcome", l2_grid=(0.1,), folds=3)
    assert fit["problems"] == 13 and fit["samples"] == len(j.label)
    card = json.loads((tp.save_probe(tmp_path / "p", fit, granularity="outcome", features=j) / "probe.json")
                      .read_text())
    assert card["training"]["pool"] == j.manifest["pool"] and card["training"]["prompt_styles"]["pools/math.jsonl"] == "math"
    with pytest.raises(ValueError, match="problem ids repeat"):
        tp.merge_features([a, a])
    b.manifest["model"] = "other"
    with pytest.raises(ValueError, match="different backbones"):
        tp.merge_features([a, b])
    assert tp.merge_features([a]) is a


def test_monte_carlo_step_labels_become_the_step_targets_of_their_samples(tmp_path):
    f = _features(np.random.default_rng(5))
    i = int(np.flatnonzero(f.n_steps == 3)[0])
    pid, j, y = str(f.pid[i]), int(f.sample[i]), float(f.label[i])
    recs = [{"kind": "steps", "problem_id": pid, "sample": j, "labels": [0.5, 0.25, y], "rollouts": 4,
             "correct": bool(y)},
            {"kind": "steps", "problem_id": "elsewhere", "sample": 0, "labels": [1.0], "rollouts": 4, "correct": True},
            {"kind": "skipped", "problem_id": "p9", "of": 1}]
    got = tp.attach_step_labels(f, recs, source="mc.jsonl")
    assert (got["samples"], got["prefixes"], got["unmatched_records"]) == (1, 2, 1)
    x, t, owner = tp.design(f, 3, "step")
    start = int(np.r_[0, np.cumsum(f.n_steps)][i])
    np.testing.assert_allclose(t[start: start + 3], [(4 * 0.5 + y) / 5, (4 * 0.25 + y) / 5, y])
    others = owner != i
    np.testing.assert_array_equal(t[others], f.label[owner][others])  # outcomes elsewhere
    _, yo, _ = tp.design(f, 3, "outcome")
    np.testing.assert_array_equal(yo, f.label)  # the outcome head is untouched
    fit = tp.select_and_fit(f, granularity="step", l2_grid=(0.1,), folds=3)
    card = json.loads((tp.save_probe(tmp_path / "p", fit, granularity="step", features=f) / "probe.json").read_text())
    assert card["training"]["step_labels"]["samples"] == 1 and "Monte Carlo" in card["training"]["labels"]
    with pytest.raises(ValueError, match="another pool"):
        tp.attach_step_labels(f, [{**recs[0], "labels": [0.5, y]}])
    with pytest.raises(ValueError, match="no step label matches"):
        tp.attach_step_labels(f, recs[1:])
    with pytest.raises(ValueError, match="pass the same files with --step-labels"):
        tp.write_threshold(tmp_path / "p", _features(np.random.default_rng(5)))
    again = _features(np.random.default_rng(5))
    tp.attach_step_labels(again, recs, source="mc.jsonl")
    assert tp.write_threshold(tmp_path / "p", again)["value"] is not None  # the same targets: refitted


def test_first_error_targets_mark_where_a_labelled_sample_went_wrong_and_drop_unlabelled_ones(tmp_path):
    f = _features(np.random.default_rng(5))
    f.pid = np.where(np.arange(len(f.pid)) >= 24, np.char.add(tp.STEPS_GROUP_PREFIX, f.pid.astype(str)), f.pid)
    labelled_steps = f.label[f.step_owner].astype(np.float64)  # the step-labelled solutions keep their targets
    f.step_target = labelled_steps.copy()
    wrong = int(np.flatnonzero((f.n_steps == 3) & (f.label == 0) & (np.arange(len(f.pid)) < 24))[0])
    right = int(np.flatnonzero((f.label == 1) & (np.arange(len(f.pid)) < 24))[0])
    recs = [{"kind": "steps", "problem_id": str(f.pid[wrong]), "sample": int(f.sample[wrong]), "rollouts": 4,
             "labels": [0.5, 0.0, 0.0], "hard_labels": [1, 0, 0], "correct": False},
            {"kind": "steps", "problem_id": str(f.pid[right]), "sample": int(f.sample[right]), "rollouts": 4,
             "labels": [0.0] * int(f.n_steps[right]), "hard_labels": [0] * int(f.n_steps[right]), "correct": True}]
    got = tp.attach_step_labels(f, recs, source="mc.jsonl", targets="first-error")
    assert got["targets"] == "first-error" and got["samples"] == 2
    start = f.first_step
    np.testing.assert_array_equal(f.step_target[start[wrong]: start[wrong] + 3], [1.0, 0.0, 0.0])
    right_t = f.step_target[start[right]: start[right] + f.n_steps[right]]
    np.testing.assert_array_equal(right_t, np.ones(int(f.n_steps[right])))  # a right answer: no error anywhere
    x, y, owner = tp.design(f, 3, "step")
    steps_rows = set(np.flatnonzero(np.arange(len(f.pid)) >= 24).tolist())
    assert set(owner.tolist()) == steps_rows | {wrong, right}  # the pool's unlabelled samples left the fit
    assert len(y) == len(x) == sum(int(f.n_steps[i]) for i in steps_rows | {wrong, right})
    np.testing.assert_array_equal(y[np.isin(owner, sorted(steps_rows))],
                                  labelled_steps[np.isin(f.step_owner, sorted(steps_rows))])
    oof = tp.oof_step_scores(f, layer=3, l2=0.1, granularity="step", folds=3)
    assert all(np.isfinite(s).all() for s in oof)  # left out of the fit, still scored
    fit = tp.select_and_fit(f, granularity="step", l2_grid=(0.1,), folds=3)
    card = json.loads((tp.save_probe(tmp_path / "p", fit, granularity="step", features=f) / "probe.json").read_text())
    assert tp.step_targets_of(card) == "first-error" and "first errors" in card["training"]["labels"]
    assert card["training"]["fit_samples"] == len(steps_rows) + 2 < card["training"]["samples"]
    value = _features(np.random.default_rng(5))
    value.pid, value.step_target = f.pid, labelled_steps.copy()
    tp.attach_step_labels(value, recs, source="mc.jsonl")
    with pytest.raises(ValueError, match="first-error step targets"):
        tp.write_threshold(tmp_path / "p", value)  # refitted as trained, or not at all
    plain = _features(np.random.default_rng(5))
    plain.pid, plain.step_target = f.pid, labelled_steps.copy()
    th = tp.write_threshold(tmp_path / "p", plain, step_labels=recs, step_label_source="mc.jsonl")
    assert th["value"] is not None and plain.manifest["step_labels"]["targets"] == "first-error"  # as the card says
    with pytest.raises(ValueError, match="step targets must be one of"):
        tp.attach_step_labels(value, recs, targets="soft")
    with pytest.raises(ValueError, match="no 'hard_labels'"):
        tp.attach_step_labels(value, [{k: v for k, v in recs[0].items() if k != "hard_labels"}], targets="first-error")


@pytest.mark.parametrize("granularity", ["step", "outcome"])
def test_out_of_fold_scores_come_from_heads_that_never_saw_the_problem(granularity):
    f = _features(np.random.default_rng(0))
    got = tp.oof_step_scores(f, layer=3, l2=0.1, granularity=granularity, folds=4, seed=1)
    assert [len(g) for g in got] == f.n_steps.tolist()
    fold = tp.grouped_folds(f.pid, 4, 1)
    x, y, owner = tp.design(f, 3, granularity)
    x_all = f.layer(3)
    starts = np.r_[0, np.cumsum(f.n_steps)[:-1]]
    for k in range(4):
        tr = fold[owner] != k
        head = tp.fit_logistic(x[tr], y[tr], 0.1, weight=tp._sample_weights(owner)[tr])
        for j in np.flatnonzero(fold == k):
            rows = x_all[starts[j] : starts[j] + f.n_steps[j]]
            np.testing.assert_allclose(got[j], head.probs(rows), atol=1e-9)
    th = tp.fit_threshold(f, layer=3, l2=0.1, granularity=granularity, folds=4, seed=1)
    assert th["value"] == pytest.approx(tp.choose_flag_threshold(got, f.label.astype(bool))["value"])
    assert th["pool"] == "pools/train.jsonl" and (th["folds"], th["seed"]) == (4, 1)
    assert "out-of-fold" in th["data"] and th["criterion"] == tp.THRESHOLD_CRITERION


def test_the_threshold_of_a_probe_with_step_labelled_solutions_maximises_first_error_f1():
    from rewards.flagging import choose_rule, choose_threshold

    rng = np.random.default_rng(11)
    f = _features(rng, n_problems=10)
    steps = np.char.startswith(f.pid.astype(str), "p") & (np.arange(len(f.pid)) >= 16)  # problems 4..9
    f.pid = np.where(steps, np.char.add(tp.STEPS_GROUP_PREFIX, f.pid.astype(str)), f.pid)
    target = f.label[f.step_owner].astype(np.float64)
    starts = f.first_step
    for j in np.flatnonzero(steps & (f.label == 0)):  # wrong solutions: the error at their last step
        target[starts[j] : starts[j] + f.n_steps[j] - 1] = 1.0
    f.step_target = target
    rows, labels = tp.first_error_rows(f)
    assert rows.tolist() == np.flatnonzero(steps).tolist()
    assert labels == [int(f.n_steps[r]) - 1 if f.label[r] == 0 else -1 for r in rows]
    th = tp.fit_threshold(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1)
    oof = tp.oof_step_scores(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1)
    t, f1 = choose_threshold([oof[r] for r in rows], labels)
    assert th["criterion"] == tp.FIRST_ERROR_CRITERION and th["value"] == pytest.approx(t)
    assert th["first_error_f1"] == pytest.approx(f1) and th["solutions"] == len(rows) and "ratio" not in th
    # --relative: threshold and drop ratio fitted together on the same out-of-fold scores
    rel = tp.fit_threshold(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1, relative=True)
    t2, r2, f2 = choose_rule([oof[r] for r in rows], labels)
    assert (rel["value"], rel["ratio"]) == (pytest.approx(t2), r2) and rel["first_error_f1"] == pytest.approx(f2)
    assert rel["first_error_f1"] >= th["first_error_f1"] - 1e-12 and "previous step" in rel["rule"]
    # a drop from the second step on, and the policy's own Monte Carlo first errors as a second set
    pool_rows = np.flatnonzero(~steps)
    records = []
    for j in pool_rows[:8]:
        hard = [1] * int(f.n_steps[j])
        if not f.label[j]:
            hard[-1] = 0
            if len(hard) > 1:
                hard[0] = 0  # no rollout from the first prefix reached the gold answer: the first error
        else:
            hard[0] = 0  # a right sample is error-free whatever its rollouts did
        records.append({"kind": "steps", "problem_id": str(f.pid[j]), "sample": int(f.sample[j]),
                        "hard_labels": hard, "labels": [float(h) for h in hard], "correct": bool(f.label[j]),
                        "rollouts": 4})
    records.append({"kind": "steps", "problem_id": "elsewhere", "sample": 0, "hard_labels": [1], "correct": True})
    mc_rows, mc_labels = tp.mc_first_error_rows(f, records)
    assert mc_rows.tolist() == pool_rows[:8].tolist()
    assert mc_labels == [-1 if f.label[j] else 0 for j in pool_rows[:8]]
    two = tp.fit_threshold(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1, relative=True, start=1,
                           first_errors=records)
    sets = ["step-labelled solutions"] * len(rows) + ["policy samples (Monte Carlo)"] * 8
    t3, r3, f3 = choose_rule([oof[r] for r in [*rows, *mc_rows]], labels + mc_labels, start=1, sets=sets)
    assert (two["value"], two["ratio"], two["ratio_start"]) == (pytest.approx(t3), r3, 1)
    assert two["mean_first_error_f1"] == pytest.approx(f3) and set(two["sets"]) == set(sets)
    assert "second step" in two["rule"] and two["solutions"] == len(rows) + 8
    bad = [dict(records[0], hard_labels=[1] * (int(f.n_steps[pool_rows[0]]) + 1))]
    with pytest.raises(ValueError, match="labels made from the features' own pool"):
        tp.mc_first_error_rows(f, bad)
    with pytest.raises(ValueError, match="appear twice"):  # two overlapping files
        tp.mc_first_error_rows(f, records + records[:1])
    with pytest.raises(ValueError, match="match no sample"):
        tp.fit_threshold(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1, first_errors=records[-1:])
    with pytest.raises(ValueError, match="with a drop ratio"):
        tp.fit_threshold(f, layer=3, l2=0.1, granularity="step", folds=4, seed=1, start=1)
    # without step-labelled rows (or for an outcome probe) the pool-level rule stands
    assert tp.fit_threshold(f, layer=3, l2=0.1, granularity="outcome", folds=4, seed=1)["criterion"] == \
        tp.THRESHOLD_CRITERION
    with pytest.raises(ValueError, match="step-labelled solutions"):
        tp.fit_threshold(f, layer=3, l2=0.1, granularity="outcome", folds=4, seed=1, relative=True)


def test_train_cli_stores_the_threshold_and_the_bench_uses_it(tiny_lm, tmp_path, capsys, monkeypatch):
    import sys

    import cli

    pool = _pool(tmp_path / "pool.jsonl")
    feats = tmp_path / "feats"
    tp.extract_pool_features(pool, feats, model=tiny_lm, layers=[2])
    argv = ["train", "probe", "--features", str(feats), "--granularity", "step", "--folds", "3",
            "--l2", "0.01", "--out", str(tmp_path / "probe")]
    monkeypatch.setattr(sys, "argv", ["cli.py", *argv])
    assert cli.main(argv) == 0
    assert "step-flagging threshold" in capsys.readouterr().out
    card_path = tmp_path / "probe" / "probe.json"
    card = json.loads(card_path.read_text())
    want = tp.fit_threshold(tp.load_features(feats), layer=2, l2=0.01, granularity="step", folds=3, seed=0)
    assert card["threshold"]["value"] == pytest.approx(want["value"]) and card["training"]["cv_seed"] == 0
    # probe-threshold refixes it on the card's pool (head untouched) and refuses another pool's features
    head = (tmp_path / "probe" / "head.npz").read_bytes()
    card["threshold"] = {"value": 0.5}
    card_path.write_text(json.dumps(card))
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats)]) == 0
    assert json.loads(card_path.read_text())["threshold"]["value"] == pytest.approx(want["value"])
    assert (tmp_path / "probe" / "head.npz").read_bytes() == head
    other = tmp_path / "other.jsonl"
    other.write_text(pool.read_text())
    tp.extract_pool_features(other, tmp_path / "feats-other", model=tiny_lm, layers=[2])
    capsys.readouterr()
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features",
                     str(tmp_path / "feats-other")]) == 2
    assert "pass the features of the probe's training pool" in capsys.readouterr().err
    assert tp._same_pool(["pools/a.jsonl", "x.jsonl"], ["pools/a.jsonl.gz", "x.jsonl"])  # the pool, gzipped
    assert not tp._same_pool(["pools/a.jsonl"], ["pools/a.jsonl", "x.jsonl"])
    # --relative needs step-labelled solutions: one line, card unchanged
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats),
                     "--relative"]) == 2
    assert "step-labelled solutions" in capsys.readouterr().err
    assert "ratio" not in json.loads(card_path.read_text())["threshold"]
    # the policy's own Monte Carlo first errors (a gzipped file) as first-error solutions; a drop from step 2
    import gzip

    mc = tmp_path / "mc.jsonl.gz"
    with gzip.open(mc, "wt") as fh:
        for i in range(6):
            for j in range(4):
                good = (i + j) % 2 == 0
                fh.write(json.dumps({"kind": "steps", "problem_id": f"p{i}", "sample": j, "correct": good,
                                     "hard_labels": [1, int(good)], "labels": [0.5, float(good)],
                                     "rollouts": 4}) + "\n")
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats),
                     "--drop-start", "1"]) == 2
    assert "--drop-start applies with --relative" in capsys.readouterr().err
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats),
                     "--relative", "--drop-start", "1", "--first-errors", str(mc)]) == 0
    assert "from the second step on" in capsys.readouterr().out
    th = json.loads(card_path.read_text())["threshold"]
    assert th["ratio_start"] == 1 and th["solutions"] == 24 and list(th["sets"]) == ["policy samples (Monte Carlo)"]
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats),
                     "--first-errors", str(tmp_path / "none.jsonl")]) == 2
    assert "--first-errors" in capsys.readouterr().err
    # first-error step targets from the same labels: trained, and refitted as the card says
    fe = str(tmp_path / "probe-fe")
    argv = ["train", "probe", "--features", str(feats), "--folds", "3", "--l2", "0.01", "--step-labels", str(mc),
            "--step-targets", "first-error", "--out", fe]
    monkeypatch.setattr(sys, "argv", ["cli.py", *argv])
    assert cli.main(argv) == 0 and "first-error targets" in capsys.readouterr().err
    assert tp.step_targets_of(json.loads((tmp_path / "probe-fe" / "probe.json").read_text())) == "first-error"
    assert cli.main(["train", "probe-threshold", "--probe", fe, "--features", str(feats), "--step-labels",
                     str(mc)]) == 0
    assert cli.main(["train", "probe", "--features", str(feats), "--step-targets", "first-error", "--out", fe]) == 2
    assert "--step-targets first-error: pass the Monte Carlo labels with --step-labels" in capsys.readouterr().err
    assert cli.main(["train", "probe-threshold", "--probe", str(tmp_path / "probe"), "--features", str(feats)]) == 0
    # the scorer carries it; ProcessBench uses it and says so
    scorer = ProbeScorer(tmp_path / "probe")
    assert scorer.step_threshold == pytest.approx(want["value"]) and scorer.describe()["threshold"] is not None
    rows = [{"id": f"r{i}", "problem": f"Add things {i}.", "steps": [f"Problem {i}: we add 1.", "So the total is 9."],
             "label": 1 if i % 2 else -1} for i in range(6)]
    data = tmp_path / "pb.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--bootstrap", "20", "--batch-size", "4",
                     "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "from the scorer's card (fixed on its training data" in cap.out
    assert "eval scorer: 4/6 solutions" in cap.err and "eval scorer: 6/6 solutions" in cap.err
    res = json.loads(out.read_text())
    assert res["thresholds"] == {"all": pytest.approx(want["value"])}
    assert res["threshold_method"].startswith("scorer card") and "two_fold_reference" in res
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--bootstrap", "20", "--no-card-threshold",
                     "--out", str(out)]) == 0
    assert json.loads(out.read_text())["threshold_method"].startswith("2-fold")
    # a card with a drop ratio: the scorer carries it, the bench flags with both and says so
    card = json.loads(card_path.read_text())
    card["threshold"]["ratio"] = 0.5
    card_path.write_text(json.dumps(card))
    assert ProbeScorer(tmp_path / "probe").step_ratio == 0.5
    capsys.readouterr()
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--bootstrap", "20", "--out", str(out)]) == 0
    assert "and drop ratio 0.5 from the scorer's card" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["thresholds"]["drop_ratio"] == 0.5 and "previous step" in res["rule"]
    from rewards.flagging import first_error

    assert [r["pred"] for r in res["per_row"]] == [first_error(r["scores"], want["value"], 0.5)
                                                    for r in res["per_row"]]
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--bootstrap", "20", "--drop-ratio", "0",
                     "--out", str(out)]) == 0
    assert "drop_ratio" not in json.loads(out.read_text())["thresholds"]
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--drop-ratio", "1.5", "--out", str(out)]) == 2
    assert "--drop-ratio must be in [0, 1)" in capsys.readouterr().err
    # a card whose drop starts at the second step: the scorer, the bench and its line say so
    card["threshold"]["ratio_start"] = 1
    card_path.write_text(json.dumps(card))
    assert ProbeScorer(tmp_path / "probe").step_ratio_start == 1
    assert cli.main(["eval", "scorer", "--reward", "probe", "--scorer-model", str(tmp_path / "probe"), "--bench",
                     "processbench-gsm8k", "--data", str(data), "--bootstrap", "20", "--out", str(out)]) == 0
    assert "drop ratio 0.5 from the second step on from the scorer's card" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["thresholds"]["drop_ratio_start"] == 1 and "from the second step on" in res["rule"]
    assert [r["pred"] for r in res["per_row"]] == [first_error(r["scores"], want["value"], 0.5, 1)
                                                    for r in res["per_row"]]
    card["threshold"]["ratio_start"] = 2
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="'ratio_start'"):
        ProbeScorer(tmp_path / "probe")
    card["threshold"]["ratio"] = 2
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="'ratio' must be in"):
        ProbeScorer(tmp_path / "probe")


def test_the_probe_reads_steps_stripped_as_the_policy_writes_them(tiny_lm):
    f = PolicyFeatures(tiny_lm, layers=[2], dtype="float32")
    assert f.render(PROBLEM, [" " + s + "\n" for s in STEPS]) == f.render(PROBLEM, STEPS)


def test_search_cli_builds_a_probe_scorer_under_the_runs_prompt(monkeypatch):
    # `cli.py search --reward probe` hands the run's prompt style to the probe's constructor
    import argparse

    import rewards
    from search import cli as search_cli

    got = {}

    def fake_load(kind, model=None, **options):
        got.update(kind=kind, model=model, **options)
        return "scorer"

    monkeypatch.setattr(rewards, "load_scorer", fake_load)
    p = argparse.ArgumentParser()
    search_cli.add_arguments(p)
    args = p.parse_args(["--strategy", "beam", "--reward", "probe", "--scorer-model", "some/probe",
                         "--prompt-style", "math"])
    _, make_scorer = search_cli.backends(args)
    assert make_scorer() == "scorer"
    assert got == {"kind": "probe", "model": "some/probe", "prompt_style": "math"}
    # other scorers take no prompt style
    args = p.parse_args(["--strategy", "beam", "--reward", "verifier"])
    got.clear()
    search_cli.backends(args)[1]()
    assert got == {"kind": "verifier", "model": None}


def _step_records(path, heldout_problem):
    q = "Sam has 5 pens and loses 2. How many are left?"
    recs = [
        {"kind": "steps", "problem_id": "pb-1", "problem": q, "steps": ["5 - 2 = 3.", "The answer is 3."],
         "labels": [1.0, 1.0], "source": "prmbench"},
        {"kind": "steps", "problem_id": "pb-1-x", "problem": q + " (again)", "split_key": q,
         "steps": ["5 - 2 = 3.", "3 + 1 = 5.", "The answer is 5."], "labels": [1.0, 0.0, 0.0], "source": "prmbench:x"},
        {"kind": "steps", "problem_id": "pb-2", "problem": "What is 2 + 2?", "steps": ["2 + 2 = 4.", "So 4."],
         "labels": [1.0, 1.0], "source": "prmbench"},
        {"kind": "steps", "problem_id": "pb-3", "problem": heldout_problem, "steps": ["x"], "labels": [1.0]},
        {"kind": "outcome", "problem_id": "o", "problem": "p", "steps": ["y"], "correct": True},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_step_labelled_solutions_join_a_pool_as_step_targets(tiny_lm, tmp_path, capsys):
    import cli
    from policies.datasets import load_problems

    heldout = load_problems("gsm8k-heldout200", limit=1)[0]["problem"]
    steps = _step_records(tmp_path / "prmbench.jsonl", heldout)
    out = tmp_path / "feats-steps"
    assert cli.main(["train", "probe-features", "--steps", str(steps), "--model", tiny_lm, "--layers", "1,2",
                     "--problems-per-shard", "1", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["source"] == "step labels" and len(man["done"]) == 2 and len(man["shards"]) == 2  # held-out left out
    assert man["prompt_style"] == "gsm8k"
    s = tp.load_features(out)
    # the original and its modified copy are one group (one CV fold); labels are the step targets
    assert len(set(s.pid.tolist())) == 2 and s.pid[0] == s.pid[1]
    assert s.label.tolist() == [1, 0, 1]
    np.testing.assert_array_equal(s.step_target, [1, 1, 1, 0, 0, 1, 1])
    # a resumed run adds nothing
    from policies.datasets import is_heldout

    assert tp.extract_step_features(steps, out, model=tiny_lm, layers=[1, 2],
                                    exclude_problem=is_heldout)["done"] == man["done"]
    pool = tmp_path / "feats-pool"
    tp.extract_pool_features(_pool(tmp_path / "pool.jsonl"), pool, model=tiny_lm, layers=[1, 2])
    j = tp.load_features([pool, out])
    n_pool = int(tp.load_features(pool).n_steps.sum())
    _, y, owner = tp.design(j, 1, "step")
    np.testing.assert_array_equal(y[:n_pool], j.label[owner][:n_pool])  # the pool's samples: their outcome
    np.testing.assert_array_equal(y[n_pool:], [1, 1, 1, 0, 0, 1, 1])
    fit = tp.select_and_fit(j, granularity="step", l2_grid=(0.1,), folds=2)
    card = json.loads((tp.save_probe(tmp_path / "p", fit, granularity="step", features=j) / "probe.json").read_text())
    assert card["training"]["step_label_sources"] == [str(steps)]
    assert "step-labelled solutions" in card["training"]["labels"]
    # the threshold is ProcessBench's F1 on the step-labelled solutions, not the pool-level rule
    assert card["threshold"]["criterion"] == tp.FIRST_ERROR_CRITERION and card["threshold"]["solutions"] == 3
    # bad input: one line each
    assert cli.main(["train", "probe-features", "--steps", str(tmp_path / "none.jsonl"), "--model", tiny_lm,
                     "--out", str(tmp_path / "x")]) == 2
    assert "--steps" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "steps", "problem_id": "b", "problem": "p", "steps": ["a", "b"],
                               "labels": [1.0]}) + "\n")
    assert cli.main(["train", "probe-features", "--steps", str(bad), "--model", tiny_lm, "--out",
                     str(tmp_path / "y")]) == 2
    assert "one label in [0, 1] per step" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "probe-features", "--steps", str(steps), "--pool", "p.jsonl", "--out", "z"])


def test_mc_first_error_rows_script_writes_one_side_of_the_trainers_split(tmp_path):
    """bench/mc_first_error_rows.py: the Monte Carlo records of the problems a trainer with the
    same --heldout-fraction holds out, as ProcessBench rows (first error by the hard estimate),
    which `eval scorer --calibration` reads; records without hard labels end in one line."""
    import subprocess
    import sys
    from pathlib import Path

    from eval.scorer_bench import load_processbench
    from rewards.train.data import split_by_problem

    records = []
    for p in range(12):
        for s, correct in enumerate((True, False)):
            hard = [1, 0, 0] if p % 3 else [0, 0, 0]
            records.append({"kind": "steps", "problem_id": f"q{p}", "problem": f"problem {p}", "sample": s,
                            "steps": ["a", "b", "c"], "labels": [0.5, 0.0, 0.0], "hard_labels": hard,
                            "correct": correct, "rollouts": 4})
    src = tmp_path / "mc.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    script = Path(__file__).resolve().parent.parent / "bench" / "mc_first_error_rows.py"
    out = tmp_path / "rows.jsonl"
    run = subprocess.run([sys.executable, str(script), "--labels", str(src), "--heldout-fraction", "0.3",
                          "--out", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    _, held = split_by_problem(records, 0.3, seed=0)
    rows = load_processbench(out)
    assert [r["id"] for r in rows] == [f"{r['problem_id']}-s{r['sample']}" for r in held] and rows
    assert [r["label"] for r in rows] == [-1 if r["correct"] else (1 if int(r["problem_id"][1:]) % 3 else 0)
                                         for r in held]
    assert tp.mc_first_error({"hard_labels": [1, 1], "correct": False}) == 1  # no zero: the last step
    # two label files read as one: the same rows as the one file they were cut from
    first, second = tmp_path / "mc1.jsonl", tmp_path / "mc2.jsonl"
    first.write_text("".join(json.dumps(r) + "\n" for r in records[:10]))
    second.write_text("".join(json.dumps(r) + "\n" for r in records[10:]))
    run = subprocess.run([sys.executable, str(script), "--labels", str(first), str(second),
                          "--heldout-fraction", "0.3", "--out", str(tmp_path / "rows2.jsonl")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "rows2.jsonl").read_text() == out.read_text()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({k: v for k, v in records[0].items() if k != "hard_labels"}) + "\n")
    run = subprocess.run([sys.executable, str(script), "--labels", str(bad), "--heldout-fraction", "0.3",
                          "--out", str(tmp_path / "x.jsonl")], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0 and "hard_labels" in run.stderr
    run = subprocess.run([sys.executable, str(script), "--labels", str(first), str(tmp_path / "gone.jsonl"),
                          "--heldout-fraction", "0.3", "--out", str(tmp_path / "y.jsonl")], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip().count("\n") == 0 and "gone.jsonl" in run.stderr
    assert not (tmp_path / "y.jsonl").exists()
