"""Scorer training: data builders on a scripted policy, importers, splits, loss masks,
a few steps on tiny random models, and save -> load_scorer reproducing the scores."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from policies.types import Completion
from rewards.train import (
    Budget,
    EarlyStopping,
    JsonlWriter,
    build_outcome_data,
    build_step_labels,
    import_gsm8k_examples,
    import_math_shepherd,
    import_prm800k,
    import_prmbench,
    make_pairs,
    mc_labels,
    read_jsonl,
    record_key,
    split_by_problem,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ scripted policy
class ScriptedPolicy:
    """sample(): fixed solutions per problem; from a step prefix, rollout j of k reaches the
    gold answer iff j < WINS[last step of the prefix]. Counts calls and requests."""

    SOLUTIONS = {
        "P1": ["a1\n\na2\n\nSo the answer is \\boxed{5}.", "b1\n\nThe answer is \\boxed{3}."],
        "P2": ["c1\n\nc2\n\nc3\n\nThe answer is \\boxed{7}.", ""],
    }
    GOLD = {"P1": "5", "P2": "7"}
    WINS = {"a1": 3, "a2": 4, "b1": 1, "c1": 0, "c2": 2, "c3": 4}

    def __init__(self):
        self.calls = 0
        self.requests = 0

    def sample(self, problems, n, *, max_tokens=None, seed=None, prefixes=None):
        self.calls += 1
        self.requests += len(problems)
        out = []
        for i, p in enumerate(problems):
            if prefixes is None:
                sols = (self.SOLUTIONS[p] * n)[:n]
                out.append([Completion(s, 10, 5, 0, "stop") for s in sols])
            else:
                wins = self.WINS[prefixes[i][-1]]
                gold = self.GOLD[p]
                out.append([Completion(f"so \\boxed{{{gold if j < wins else 'no'}}}", 3, 5, 0, "stop")
                            for j in range(n)])
        return out


PROBLEMS = [{"id": "p1", "problem": "P1", "answer": "5"}, {"id": "p2", "problem": "P2", "answer": "7"}]


def test_mc_labels_pure():
    soft, hard = mc_labels([[True, False, False, False], [False] * 4], True)
    assert soft == [0.25, 0.0, 1.0] and hard == [1.0, 0.0, 1.0]


def test_step_labels_on_scripted_policy_are_exact(tmp_path):
    pol = ScriptedPolicy()
    out = tmp_path / "steps.jsonl"
    s = build_step_labels(pol, PROBLEMS, str(out), n=2, k=4, chunk=8)
    assert s["problems_done"] == 2 and s["stopped"] == "complete"
    assert pol.calls == 2  # one sample call + one batched rollout call for every prefix of the chunk
    rows = {(r["problem_id"], r["sample"]): r for r in read_jsonl(out)}
    a = rows[("p1", 0)]
    assert a["steps"] == ["a1", "a2", "So the answer is \\boxed{5}."]
    assert a["labels"] == [3 / 4, 4 / 4, 1.0] and a["hard_labels"] == [1.0, 1.0, 1.0]
    b = rows[("p1", 1)]
    assert b["labels"] == [1 / 4, 0.0] and b["hard_labels"] == [1.0, 0.0] and b["correct"] is False
    c = rows[("p2", 0)]
    assert c["labels"] == [0.0, 2 / 4, 1.0, 1.0] and c["hard_labels"] == [0.0, 1.0, 1.0, 1.0]
    assert ("p2", 1) not in rows  # the empty solution is skipped
    # resume: nothing left to do, no policy call
    pol2 = ScriptedPolicy()
    s2 = build_step_labels(pol2, PROBLEMS, str(out), n=2, k=4, chunk=8)
    assert pol2.calls == 0 and s2["problems_skipped_as_done"] == 2
    with pytest.raises(ValueError, match="other settings"):
        build_step_labels(pol2, PROBLEMS, str(out), n=2, k=8)


def test_outcome_builder_budget_resume_and_torn_line(tmp_path):
    out = tmp_path / "outcome.jsonl"
    pol = ScriptedPolicy()
    s = build_outcome_data(pol, PROBLEMS, str(out), n=2, chunk=1, budget=Budget(max_problems=1))
    assert s["problems_done"] == 1 and s["problems_remaining"] == 1 and s["stopped"] == "max_problems"
    rows = read_jsonl(out)
    assert [r["correct"] for r in rows] == [True, False] and rows[0]["steps"][0] == "a1"
    with open(out, "a") as fh:  # a killed writer: half a line
        fh.write('{"kind": "outcome", "problem_id": "p2", "probl')
    s = build_outcome_data(ScriptedPolicy(), PROBLEMS, str(out), n=2, chunk=1)
    rows = read_jsonl(out)
    assert s["problems_done"] == 1 and len(rows) == 4 and {r["problem_id"] for r in rows} == {"p1", "p2"}
    pairs = make_pairs(rows)
    assert len(pairs) == 1 and pairs[0]["chosen"][-1].endswith("\\boxed{5}.")


def test_partial_problem_is_redone(tmp_path):
    out = tmp_path / "o.jsonl"
    w = JsonlWriter(out, {"x": 1})
    w.write([{"problem_id": "a", "of": 2}, {"problem_id": "a", "of": 2}, {"problem_id": "b", "of": 2}])
    w.close()
    w = JsonlWriter(out, {"x": 1})
    assert w.done == {"a"} and w.rows == 2
    w.close()


def test_each_session_of_a_data_file_records_its_engine_and_machine(tmp_path):
    out = tmp_path / "o.jsonl"
    build_outcome_data(ScriptedPolicy(), PROBLEMS[:1], str(out), n=2, chunk=1)
    meta = json.loads((tmp_path / "o.jsonl.meta.json").read_text())
    (run,) = meta["runs"]
    assert run["rows_before"] == 0 and "dtype" not in run  # the scripted policy has no engine dtype
    assert run["machine"]["cores"] >= 1 and isinstance(run["machine"]["isa"], list)

    class Float32Policy(ScriptedPolicy):
        compute_dtype = "float32"

    build_outcome_data(Float32Policy(), PROBLEMS, str(out), n=2, chunk=1)  # resumes: the config is unchanged
    meta = json.loads((tmp_path / "o.jsonl.meta.json").read_text())
    assert [r["rows_before"] for r in meta["runs"]] == [0, 2] and meta["runs"][1]["dtype"] == "float32"
    assert meta["config"] == {"builder": "outcome", "n": 2, "seed": 0}
    JsonlWriter(out, meta["config"]).close()  # without provenance nothing is appended
    assert len(json.loads((tmp_path / "o.jsonl.meta.json").read_text())["runs"]) == 2


# ------------------------------------------------------------------------ importers
def test_importers_on_handmade_rows(tmp_path):
    ms = tmp_path / "ms.jsonl"
    inp = "What is 2+3? Step 1: 2+3=5 ки\nStep 2: The answer is 6 ки"
    ms.write_text(json.dumps({"input": inp, "label": inp.replace("ки", "+", 1).replace("ки", "-"), "task": "t"}) + "\n")
    (r,) = import_math_shepherd(ms)
    assert r["problem"] == "What is 2+3?" and r["steps"] == ["2+3=5", "The answer is 6"] and r["labels"] == [1.0, 0.0]

    pb = tmp_path / "pb.jsonl"
    pb.write_text(json.dumps({"idx": "x", "original_question": "Q", "modified_question": "Q'",
                              "original_process": ["s1", "s2", "s3"], "modified_process": ["s1", "t2", "t3"],
                              "error_steps": [2], "classification": "c"}) + "\n")
    orig, mod = import_prmbench(pb)
    assert orig["labels"] == [1.0, 1.0, 1.0] and mod["labels"] == [1.0, 0.0, 0.0]
    assert record_key(orig) == record_key(mod)  # the rewritten question splits with its original

    p8 = tmp_path / "p8.jsonl"
    steps = [{"completions": [{"text": "ok", "rating": 1}], "chosen_completion": 0},
             {"completions": [{"text": "meh", "rating": 0}, {"text": "bad", "rating": -1}], "chosen_completion": 0},
             {"completions": [{"text": "wrong", "rating": -1}], "chosen_completion": None}]
    p8.write_text(json.dumps({"question": {"problem": "Q", "ground_truth_answer": "1"}, "label": {"steps": steps}}) + "\n")
    rows = import_prm800k(p8, neutral=0.5)
    main = [r for r in rows if r["problem_id"] == "prm800k-0"][0]
    assert main["steps"] == ["ok", "meh", "wrong"] and main["labels"] == [1.0, 0.5, 0.0]
    branch = [r for r in rows if r["problem_id"] != "prm800k-0"][0]
    assert branch["steps"] == ["ok", "bad"] and branch["labels"] == [1.0, 0.0]


def test_importers_on_shared_samples(shared_data_dir):
    d = shared_data_dir / "prm_step_labels"
    assert len(import_prm800k(d / "format_samples/samples_prm800k.jsonl")) > 0
    ms = import_math_shepherd(d / "format_samples/samples_math-shepherd.jsonl")
    assert len(ms) == 7 and all(len(r["steps"]) == len(r["labels"]) for r in ms)
    pb = import_prmbench(d / "prmbench_train/prm800k_train_p1_first400_4o_circular.jsonl")
    assert len(pb) > 700 and all(min(r["labels"]) in (0.0, 1.0) for r in pb)
    ex = import_gsm8k_examples(shared_data_dir / "gsm8k/example_model_solutions.jsonl")
    assert min(int(r["problem_id"].rsplit("-", 1)[1]) for r in ex) == 500  # test problems 0..499 stay unseen
    assert all("<<" not in s for r in ex for s in r["steps"])
    assert any(r["steps"][-1].startswith("The answer is \\boxed{") for r in ex)


# --------------------------------------------------------------------------- splits
def test_split_never_shares_a_problem():
    recs = [{"problem": f"Problem {i % 37}" + (" " if i % 2 else ""), "i": i} for i in range(400)]
    recs += [{"problem": "problem 3", "i": -1}]  # case/whitespace variant of "Problem 3"
    train, held = split_by_problem(recs, 0.25, seed=1)
    assert len(train) + len(held) == len(recs) and held and train
    assert not {record_key(r) for r in train} & {record_key(r) for r in held}
    # a problem's side does not depend on the rest of the file
    t2, h2 = split_by_problem(recs[:50], 0.25, seed=1)
    assert {record_key(r) for r in h2} <= {record_key(r) for r in held}


# ------------------------------------------------------------------ early stopping
def test_early_stopping_keeps_the_best_and_counts_patience():
    stop = EarlyStopping(patience=2)
    assert stop.update(1.0, 10) and not stop.should_stop  # first evaluation is always a best
    assert not stop.update(1.0, 20) and not stop.should_stop  # equal is not better
    assert stop.update(0.5, 30) and stop.bad_evals == 0 and stop.best_step == 30
    assert not stop.update(0.7, 40) and not stop.should_stop
    assert not stop.update(0.6, 50) and stop.should_stop and stop.best_loss == 0.5
    never = EarlyStopping(patience=None)
    for step in range(1, 20):
        never.update(float(step), step)
    assert not never.should_stop and never.best_step == 1


# --------------------------------------------------------------------- tiny models
torch = pytest.importorskip("torch")


def _tiny_causal(root: Path) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from policies.models import resolve_model

    out = root / "tiny-llama"
    if (out / "config.json").exists():
        return str(out)
    tok = AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True)
    torch.manual_seed(1)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=512,
                      tie_word_embeddings=True)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _tiny_bert(root: Path) -> str:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from policies.models import embedded_encoder_path

    out = root / "tiny-bert"
    if (out / "config.json").exists():
        return str(out)
    tok = AutoTokenizer.from_pretrained(embedded_encoder_path(), local_files_only=True)
    torch.manual_seed(2)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256)
    BertModel(cfg).save_pretrained(out)  # like all-MiniLM-L6-v2: an encoder without the MLM head
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("train_tiny")


def _step_records(n_problems=12):
    """Steps saying 'good' are right (label 1), 'bad' wrong from there on (prefix labels)."""
    recs = []
    for i in range(n_problems):
        q = f"Tom has {i + 2} apples and buys {i + 3} more. How many?"
        recs.append({"kind": "steps", "problem": q, "steps": [f"good {i}", "good step", f"good, the answer is {2 * i + 5}"],
                     "labels": [1.0, 1.0, 1.0]})
        recs.append({"kind": "steps", "problem": q, "steps": [f"good {i}", "bad step", f"bad, the answer is {i}"],
                     "labels": [1.0, 0.25, 0.0]})
    return recs


def test_loss_masks_only_at_tags_and_mask(tiny_root):
    from transformers import AutoTokenizer

    from rewards.adapters import load_adapter
    from rewards.hf import encode_candidate, render_prompt
    from rewards.tinyrm import TinyRMScorer
    from rewards.train import IGNORE, orm_features, prm_features, tinyrm_features

    tok = AutoTokenizer.from_pretrained(_tiny_causal(tiny_root), local_files_only=True)
    prm = load_adapter("tts-prm")
    steps, labels = ["2 + 3 = 5", "5 * 2 = 10", "The answer is \\boxed{10}."], [1.0, 0.5, 0.0]
    prompt = render_prompt(prm, tok, "What is (2+3)*2?")
    f = prm_features(prm, tok, prompt, steps, labels)
    enc = encode_candidate(prm, tok, prompt, steps)
    tag_id = tok.convert_tokens_to_ids("<file_sep>")
    at = [i for i, y in enumerate(f["labels"]) if y != IGNORE]
    assert at == list(enc.tag_positions) and [f["input_ids"][i] for i in at] == [tag_id] * 3
    assert [f["labels"][i] for i in at] == labels  # soft labels kept as probabilities
    f1 = prm_features(prm, tok, prompt, steps, labels, last_step_only=True)
    assert [i for i, y in enumerate(f1["labels"]) if y != IGNORE] == [enc.tag_positions[-1]]
    orm = load_adapter("tts-orm")
    g = orm_features(orm, tok, render_prompt(orm, tok, "What is (2+3)*2?"), steps, True)
    at = [i for i, y in enumerate(g["labels"]) if y != IGNORE]
    assert at == [len(g["input_ids"]) - 1] and g["input_ids"][-1] == tag_id and g["labels"][-1] == 1.0

    from transformers import BertForMaskedLM

    btok = AutoTokenizer.from_pretrained(_tiny_bert(tiny_root), local_files_only=True)
    judge = TinyRMScorer(BertForMaskedLM.from_pretrained(_tiny_bert(tiny_root)), btok, max_length=64)
    for first in (True, False):
        t = tinyrm_features(judge, "Q " * 10, "right " * 30 + "7", "wrong " * 30 + "8", chosen_first=first)
        at = [i for i, y in enumerate(t["labels"]) if y != IGNORE]
        assert len(t["input_ids"]) <= 64 and len(at) == 1 and t["input_ids"][at[0]] == btok.mask_token_id
        assert t["labels"][at[0]] == judge.choice_ids[0 if first else 1]


def _cfg(kind, model=None, **kw):
    from rewards.train import TrainConfig

    base = dict(kind=kind, model=model, lr=5e-3, head_lr=1e-2, epochs=30, batch_size=8, heldout_fraction=0.2,
                patience=None, lora_r=4, lora_dropout=0.0, warmup_ratio=0.0, seed=0, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_prm_trains_and_reloads_exactly(tiny_root, tmp_path):
    from rewards import load_scorer
    from rewards.train import train

    out = tmp_path / "prm"
    card = train(_cfg("prm", _tiny_causal(tiny_root), peft="dora"), _step_records(), str(out), progress=False)
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"] * 0.8
    assert (out / "adapter_model.safetensors").is_file() and card["adapter"] == "tts-prm" and card["trained"]
    s = load_scorer("prm", model=str(out))
    assert s.trained
    for probe in card["training"]["reload_check"]:
        got = s.score([probe["problem"]], [probe["steps"]])[0]
        assert got == pytest.approx(probe["scores"], abs=1e-5)


def test_orm_trains_and_reloads_exactly(tiny_root, tmp_path):
    from rewards import load_scorer
    from rewards.train import train

    recs = [{"kind": "outcome", "problem": r["problem"], "steps": r["steps"], "correct": r["labels"][-1] == 1.0}
            for r in _step_records()]
    out = tmp_path / "orm"
    card = train(_cfg("orm", _tiny_causal(tiny_root), freeze_layers=1), recs, str(out), progress=False)
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"] * 0.8
    assert (out / "value_head.safetensors").is_file()
    s = load_scorer("orm", model=str(out))
    assert s.trained
    for probe in card["training"]["reload_check"]:
        assert s.score([probe["problem"]], [probe["steps"]])[0] == pytest.approx(probe["scores"], abs=1e-5)
    adapter_cfg = json.loads((out / "adapter_config.json").read_text())
    assert all(".layers.1." in t for t in adapter_cfg["target_modules"])  # layer 0 frozen


def test_a_value_head_prm_starts_from_a_trained_orm_and_reloads_exactly(tiny_root, tmp_path):
    """--init: the ORM's adapter and value head start a PRM read by a value head at every step
    tag (tts-prm-value); before any step the PRM scores a one-step solution as the ORM does
    (the same text, the same tag); it then trains on step labels and reloads exactly."""
    from rewards import load_scorer
    from rewards.train import prepare, train

    model = _tiny_causal(tiny_root)
    recs = [{"kind": "outcome", "problem": r["problem"], "steps": r["steps"], "correct": r["labels"][-1] == 1.0}
            for r in _step_records()]
    orm_dir = tmp_path / "orm"
    train(_cfg("orm", model, freeze_layers=1, epochs=10), recs, str(orm_dir), progress=False)
    orm = load_scorer("orm", model=str(orm_dir))
    cfg = _cfg("prm", model, adapter="tts-prm-value", freeze_layers=1, init=str(orm_dir))
    run = prepare(cfg, _step_records())
    one = {"problem": recs[0]["problem"], "steps": recs[0]["steps"][:1], "labels": [1.0]}
    assert run.task.probe(run.model, [one])[0]["scores"] == pytest.approx(
        orm.score([one["problem"]], [one["steps"]])[0], abs=1e-5)
    fresh = prepare(_cfg("prm", model, adapter="tts-prm-value", freeze_layers=1), _step_records())
    assert fresh.task.probe(fresh.model, [one])[0]["scores"] != pytest.approx(
        orm.score([one["problem"]], [one["steps"]])[0], abs=1e-3)
    out = tmp_path / "prm"
    card = train(cfg, _step_records(), str(out), progress=False)
    init = card["training"]["init"]
    assert init["path"] == str(orm_dir) and init["kind"] == "orm" and init["heads"] == ["value_head"]
    assert card["adapter"] == "tts-prm-value" and (out / "value_head.safetensors").is_file()
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"]
    s = load_scorer("prm", model=str(out))
    assert s.trained and s.adapter.readout == "value_head"
    for probe in card["training"]["reload_check"]:
        assert s.score([probe["problem"]], [probe["steps"]])[0] == pytest.approx(probe["scores"], abs=1e-5)
    # an init of other shapes or from elsewhere: one line naming the setting to pass
    other = tmp_path / "other"
    other.mkdir()
    for kw, match in ((dict(lora_r=8), "its adapter has r 4, this run 8; pass the --lora-r"),
                      (dict(freeze_layers=0), "covers other layers than this run's .* --freeze-layers"),
                      (dict(init=str(tmp_path / "none")), "not a trained PRM/ORM directory"),
                      (dict(model=_tiny_causal(other)), "trained on .* pass --model")):
        settings = {"model": model, "adapter": "tts-prm-value", "freeze_layers": 1, "init": str(orm_dir), **kw}
        with pytest.raises(ValueError, match=match):
            prepare(_cfg("prm", **settings), _step_records())
    with pytest.raises(ValueError, match="init applies to a prm or orm"):
        _cfg("tinyrm", model, init=str(orm_dir))


def _write_pool(path: Path, problems: list[tuple[str, list[tuple[list[str], bool]]]]) -> Path:
    """A gzip pool (policies.pool format) with the given (problem, [(steps, correct), ...])."""
    import gzip

    with gzip.open(path, "wt") as f:
        for i, (q, samples) in enumerate(problems):
            rec = {"format": "tts-math-pool/1", "id": f"q{i}", "problem": q, "gold": "5", "source": "test",
                   "config": {"n": len(samples)},
                   "samples": [{"text": "\n\n".join(st), "steps": st, "generated_tokens": 7, "prompt_tokens": 3,
                                "finish_reason": "stop", "verdict": {"correct": ok, "status": "ok" if ok else "wrong"}}
                               for st, ok in samples]}
            f.write(json.dumps(rec) + "\n")
    return path


def test_outcome_records_from_a_pool_drop_heldout_and_ungraded(tmp_path):
    from policies.pool import read_pool
    from rewards.train import outcome_from_pool

    pool = _write_pool(tmp_path / "p.jsonl.gz", [("Train problem", [(["a", "b"], True), (["c"], False)]),
                                                ("HELD OUT", [(["d"], True)])])
    rows = read_pool(pool)
    rows[0]["samples"].append({"steps": ["e"], "verdict": {"correct": None, "status": "invalid_gold"}})
    recs, summary = outcome_from_pool(rows, heldout=lambda text: text == "HELD OUT")
    assert [(r["problem_id"], r["steps"], r["correct"], r["sample"]) for r in recs] == [
        ("q0", ["a", "b"], True, 0), ("q0", ["c"], False, 1)]
    assert recs[0]["kind"] == "outcome" and recs[0]["answer"] == "5"
    assert summary == {"problems": 1, "samples": 2, "positives": 1, "positive_share": 0.5,
                       "heldout_problems_dropped": 1, "ungraded_samples_dropped": 1}


def test_pick_samples_alternates_right_and_wrong_and_skips_unusable():
    from rewards.train import pick_samples

    def smp(ok, n_steps=2):
        return {"steps": ["s"] * n_steps, "verdict": {"correct": ok, "status": "ok"}}

    samples = [smp(False), smp(False), smp(True), smp(False), smp(True), smp(None), smp(True, 0), smp(True, 9)]
    assert pick_samples(samples, None, max_steps=8) == [2, 0, 4, 1, 3]
    assert pick_samples(samples, 3, max_steps=8) == [2, 0, 4]
    assert pick_samples(samples, None, max_steps=9) == [2, 0, 4, 1, 7, 3]


def test_step_labels_from_a_pool_roll_out_only_the_stored_samples(tmp_path):
    from policies.pool import read_pool
    from rewards.train import step_labels_from_pool

    # the scripted policy rolls out by the last step of the prefix; problem text "P1" / "P2" picks the gold
    pool = read_pool(_write_pool(tmp_path / "p.jsonl.gz", [
        ("P1", [(["b1", "The answer is \\boxed{3}."], False), (["a1", "a2", "So \\boxed{5}."], True),
                (["c1", "x"], False)]),
        ("P2", [(["c1", "c2", "c3", "The answer is \\boxed{7}."], False)]),  # all wrong: not mixed
        ("HELD", [(["a1", "y"], True), (["b1", "z"], False)])]))
    ScriptedPolicy.GOLD["HELD"] = "5"
    pol = ScriptedPolicy()
    out = tmp_path / "mc.jsonl"
    s = step_labels_from_pool(pol, pool, str(out), k=4, samples_per_problem=2, mixed_only=True,
                              heldout=lambda text: text == "HELD")
    assert s["problems_done"] == 1 and s["problems_dropped"] == {"heldout": 1, "not_mixed": 1}
    assert pol.calls == 1  # no sampling: one batched rollout call for every prefix of the chunk
    rows = {r["sample"]: r for r in read_jsonl(out)}
    assert sorted(rows) == [0, 1]  # right first, then wrong: samples 1 and 0; sample 2 not picked
    assert rows[1]["steps"] == ["a1", "a2", "So \\boxed{5}."] and rows[1]["correct"] is True
    assert rows[1]["labels"] == [3 / 4, 4 / 4, 1.0] and rows[1]["rollouts"] == 4
    assert rows[0]["labels"] == [1 / 4, 0.0] and rows[0]["hard_labels"] == [1.0, 0.0] and rows[0]["correct"] is False
    assert {r["problem_id"] for r in rows.values()} == {"q0"} and all(r["of"] == 2 for r in rows.values())
    pol2 = ScriptedPolicy()  # resume: nothing left
    assert step_labels_from_pool(pol2, pool, str(out), k=4, samples_per_problem=2, mixed_only=True,
                                 heldout=lambda text: text == "HELD")["problems_skipped_as_done"] == 1
    assert pol2.calls == 0
    # a second file labels the next sample in the same order, passing over the first file's
    from rewards.train import labelled_samples

    skip = labelled_samples([str(out)], pool, "p.jsonl.gz")
    assert skip == {("q0", 0), ("q0", 1)}
    more = tmp_path / "mc-more.jsonl"
    s = step_labels_from_pool(ScriptedPolicy(), pool, str(more), k=4, samples_per_problem=3, mixed_only=True,
                              heldout=lambda text: text == "HELD", skip=skip)
    assert s["problems_done"] == 1 and [r["sample"] for r in read_jsonl(more)] == [2]
    assert s["config"]["skipped_samples"] == 2
    s = step_labels_from_pool(ScriptedPolicy(), pool, str(tmp_path / "none.jsonl"), k=4, samples_per_problem=2,
                              mixed_only=True, heldout=lambda text: text == "HELD", skip=skip)
    assert s["problems_dropped"]["labelled_before"] == 1 and s["problems_done"] == 0
    other = [dict(r) for r in read_jsonl(out)]
    other[0]["steps"] = ["not", "these"]
    bad = tmp_path / "other.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in other))
    with pytest.raises(ValueError, match="other steps"):
        labelled_samples([str(bad)], pool, "p.jsonl.gz")
    with pytest.raises(FileNotFoundError, match="--skip-labelled"):
        labelled_samples([str(tmp_path / "missing.jsonl")], pool, "p.jsonl.gz")


def test_orm_trains_on_a_pool_with_balanced_weights_and_reads_out_probabilities(tiny_root, tmp_path):
    """--pool: outcome labels of a stored pool (1 correct in 4); balance="weight" trains with
    pos_weight 3 and saves a head whose read-out is P(correct) (the loader reproduces it)."""
    import math

    from rewards import load_scorer
    from rewards.train import train

    problems = []
    for i in range(12):
        q = f"Tom has {i + 2} apples and buys {i + 3} more. How many?"
        problems.append((q, [([f"good {i}", f"good, the answer is {2 * i + 5}"], True)] +
                         [([f"bad {i} {j}", f"bad, the answer is {i + j}"], False) for j in range(3)]))
    pool = _write_pool(tmp_path / "train.jsonl.gz", problems)
    out = tmp_path / "orm-pool"
    card = train(_cfg("orm", _tiny_causal(tiny_root), balance="weight", epochs=20), [str(pool)], str(out),
                 progress=False)
    data = card["training"]["data"][0]
    assert data["format"] == "pool" and data["rows"] == 48 and data["positive_share"] == 0.25
    split = card["training"]["split"]
    assert split["balance"] == "weight" and split["pos_weight"] == pytest.approx(
        (1 - split["train_positive_share"]) / split["train_positive_share"], abs=1e-3)
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"]
    s = load_scorer("orm", model=str(out))
    for probe in card["training"]["reload_check"]:  # the saved bias holds the -log(pos_weight) read-out
        assert s.score([probe["problem"]], [probe["steps"]])[0] == pytest.approx(probe["scores"], abs=1e-5)
    # the untrained read-out is the training split's base rate for every input (weights 0, bias = log-odds)
    assert m["heldout_untrained"]["mean_score"] == pytest.approx(split["train_positive_share"], abs=1e-4)
    assert math.isfinite(m["heldout_best"]["loss"])


def test_outcome_step_records_label_every_step_and_count_a_sample_once():
    from rewards.train import outcome_step_records

    outcome = [{"kind": "outcome", "problem": "Q  one", "steps": ["a", "b"], "correct": True},
               {"kind": "outcome", "problem": "Q one", "steps": ["a", "c", "d"], "correct": False},
               {"kind": "outcome", "problem": "Q one", "steps": [], "correct": False},
               {"kind": "outcome", "problem": "Q two", "steps": ["a", "b"], "correct": False}]
    mc = [{"kind": "steps", "problem": "q ONE", "steps": ["a", "c", "d"], "labels": [0.5, 0.25, 0.0]}]
    got = outcome_step_records(outcome, mc)
    # the Monte Carlo twin (same problem up to whitespace and case, same steps) and the empty one are left out
    assert [(r["problem"], r["labels"]) for r in got] == [("Q  one", [1.0, 1.0]), ("Q two", [0.0, 0.0])]
    assert all(r["kind"] == "steps" and r["hard_labels"] == r["labels"] and r["targets"] == "outcome" for r in got)
    assert len(outcome_step_records(outcome)) == 3


def test_a_prm_reads_outcome_records_only_with_outcome_targets(tiny_root, tmp_path):
    """A pool trains a PRM only with outcome_targets (every step its sample's verdict); a Monte
    Carlo record of a pool sample replaces its outcome twin; a PRM on the pool alone learns."""
    from policies.pool import read_pool
    from rewards.train import TASKS, TrainConfig, train
    from rewards.train.build import outcome_from_pool

    problems = []
    for i in range(12):
        q = f"Tom has {i + 2} apples and buys {i + 3} more. How many?"
        problems.append((q, [([f"good {i}", f"good, the answer is {2 * i + 5}"], True)] +
                         [([f"good {i}", f"bad {i} {j}", f"bad, the answer is {i + j}"], False) for j in range(3)]))
    pool = _write_pool(tmp_path / "train.jsonl.gz", problems)
    outcome, _ = outcome_from_pool(read_pool(pool), heldout=lambda q: False)
    twin = {"kind": "steps", "problem": problems[0][0], "steps": problems[0][1][1][0], "labels": [1.0, 0.5, 0.0]}
    with pytest.raises(ValueError, match="outcome-targets true"):
        TASKS["prm"](TrainConfig(kind="prm")).records(outcome)
    with pytest.raises(ValueError, match="48 of the 49 records are outcome records"):  # not dropped beside step records
        TASKS["prm"](TrainConfig(kind="prm")).records([twin, *outcome])
    assert TASKS["prm"](TrainConfig(kind="prm")).records([twin]) == [twin]
    recs = TASKS["prm"](TrainConfig(kind="prm", outcome_targets=True)).records([twin, *outcome])
    assert len(recs) == 48 and recs[0] is twin
    assert sum(r["labels"] == [1.0, 1.0] for r in recs) == 12 and sum(r["labels"] == [0.0] * 3 for r in recs) == 35
    with pytest.raises(ValueError, match="outcome_targets turns outcome records"):
        TrainConfig(kind="orm", outcome_targets=True)

    out = tmp_path / "prm-pool"
    card = train(_cfg("prm", _tiny_causal(tiny_root), outcome_targets=True, epochs=20), [str(pool)], str(out),
                 progress=False)
    assert card["training"]["data"][0]["format"] == "pool"
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"] * 0.8


def test_train_prm_on_a_pool_asks_for_outcome_targets_in_one_line(tmp_path):
    pool = _write_pool(tmp_path / "p.jsonl.gz", [("Q", [(["a"], True), (["b"], False)])])
    r = subprocess.run([sys.executable, "cli.py", "train", "prm", "--pool", str(pool), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "add --outcome-targets true" in r.stderr and "Traceback" not in r.stderr


def test_balance_is_an_orm_setting():
    from rewards.train import TrainConfig

    with pytest.raises(ValueError, match="balance applies to the ORM"):
        TrainConfig(kind="tinyrm", balance="weight")
    with pytest.raises(ValueError, match="balance must be"):
        TrainConfig(kind="orm", balance="yes")


def test_tinyrm_trains_head_and_reloads_exactly(tiny_root, tmp_path):
    from rewards.tinyrm import load_tinyrm
    from rewards.train import train

    recs = []
    for i in range(12):
        q = f"Tom has {i + 2} apples and buys {i + 3} more. How many?"
        recs.append({"kind": "pair", "problem": q, "chosen": [f"good {i}", "good"], "rejected": [f"bad {i}", "bad"]})
    out = tmp_path / "tinyrm"
    card = train(_cfg("tinyrm", _tiny_bert(tiny_root), max_length=128, epochs=40, head_lr=3e-2), recs, str(out), progress=False)
    m = card["metrics"]
    assert m["heldout_best"]["loss"] < m["heldout_untrained"]["loss"] * 0.8
    assert (out / "head.safetensors").is_file()
    s = load_tinyrm(str(out), max_length=128)
    assert s.trained
    for probe in card["training"]["reload_check"]:
        assert s.p0([(probe["problem"], probe["a"], probe["b"])])[0] == pytest.approx(probe["p0"], abs=1e-5)


def test_scheduler_is_linear_warmup_then_decay():
    from rewards.train import TrainConfig
    from rewards.train.trainer import make_scheduler

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, TrainConfig(kind="prm", warmup_ratio=0.2), total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    assert sched.get_last_lr()[0] == 0.0


def test_phases_keep_the_best_checkpoint_and_stop_early(tiny_root, tmp_path):
    """prepare / fit / save one by one; a learning rate that overshoots makes the held-out
    loss rise, so early stopping ends the run and the kept checkpoint is the best one, not
    the last weights."""
    from rewards import load_scorer
    from rewards.train import fit, prepare, save

    config = _cfg("prm", _tiny_causal(tiny_root), lr=0.3, epochs=6, eval_every=1, patience=1)
    run = prepare(config, _step_records(), command="test")
    assert run.total_steps == 6 * run.batches_per_epoch and run.train_examples and run.eval_batches
    assert [g["lr"] for g in run.optimizer.param_groups] == [0.3]  # PRM: adapter only, no head group
    out = tmp_path / "prm"
    state = fit(run, out, progress=False)
    assert state.stopped == "early_stop" and state.step < run.total_steps
    losses = {h["step"]: h["loss"] for h in state.history[1:]}  # [0]: the untrained baseline
    best = min(losses, key=losses.get)
    assert best != state.step and state.card["training"]["best_step"] == best
    card = save(run, state, out)
    assert card["training"]["stopped"] == "early_stop" and card["training"]["steps_run"] == state.step
    assert card["metrics"]["heldout_best"]["loss"] == losses[best] and card["training"]["command"] == "test"
    assert json.loads((out / "card.json").read_text()) == card
    s = load_scorer("prm", model=str(out))
    for probe in card["training"]["reload_check"]:  # the best step's weights, not the last
        assert s.score([probe["problem"]], [probe["steps"]])[0] == pytest.approx(probe["scores"], abs=1e-5)


def _adapter_tensors(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


def _same_history(a: list[dict], b: list[dict]) -> bool:
    if [sorted(h) for h in a] != [sorted(h) for h in b]:
        return False
    return all(h[k] == pytest.approx(g[k], rel=1e-6, abs=1e-9) if isinstance(h[k], float) else h[k] == g[k]
               for h, g in zip(a, b, strict=True) for k in h)


def test_interrupted_runs_resume_to_the_uninterrupted_result(tiny_root, tmp_path, monkeypatch):
    """A run stopped by max_seconds at step 3 (mid-epoch), resumed, killed during step 5,
    resumed again, ends exactly where an uninterrupted run does: same history, best step,
    weights and reload scores. Dropout is on and grad_accum spans epochs, so the RNG states
    and the data position both matter. A changed setting or data is refused in one line."""
    from rewards.train import train, trainer

    recs = _step_records()
    cfg = _cfg("prm", _tiny_causal(tiny_root), lr=0.03, epochs=6, batch_size=4, grad_accum=2, lora_dropout=0.1,
               eval_every=2, save_every_steps=2, save_every_seconds=None)
    ref = train(cfg, recs, str(tmp_path / "ref"), progress=False)
    assert ref["training"]["resumed"] == [] and not (tmp_path / "ref" / "resume").exists()

    out = tmp_path / "run"
    out.mkdir()
    (out / "train.log").write_text("kept\n")  # not a checkpoint file: survives every checkpoint write
    # session 1: the time budget runs out at step 3 (not a save or eval step)
    calls = iter(range(1, 100))
    monkeypatch.setattr(trainer, "_time_is_up", lambda run: next(calls) == 3)
    card1 = train(cfg, recs, str(out), progress=False)
    monkeypatch.undo()
    assert card1["training"]["stopped"] == "max_seconds" and card1["training"]["steps_run"] == 3
    assert card1["metrics"]["history"][-1]["step"] == 3  # the stop evaluation (no eval at 3 otherwise)
    saved = json.loads((out / "resume" / "state.json").read_text())
    assert (saved["state"]["step"], saved["state"]["epoch"], saved["state"]["batch"]) == (3, 1, 1)
    assert saved["early_stopping"]["best_step"] == 2 and card1["training"]["best_step"] == 3  # see session 2

    # a changed setting or changed data is refused, naming what differs
    with pytest.raises(ValueError, match=r"settings differ \(lr 0.03 -> 0.01\).*delete .*resume"):
        train(dataclasses.replace(cfg, lr=0.01), recs, str(out), progress=False)
    with pytest.raises(ValueError, match="--data differs"):
        train(cfg, recs[:-2], str(out), progress=False)

    # session 2: killed in step 5, after the resume checkpoint of step 4
    real_step = trainer._optimizer_step

    def killed(run, state):
        if state.step == 4:
            raise KeyboardInterrupt("killed")
        real_step(run, state)

    monkeypatch.setattr(trainer, "_optimizer_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, recs, str(out), progress=False)
    monkeypatch.undo()
    # the resume put back the best checkpoint of its state (step 2), not session 1's stop evaluation
    assert json.loads((out / "card.json").read_text())["training"]["best_step"] == 2
    assert json.loads((out / "resume" / "state.json").read_text())["state"]["step"] == 4

    # session 3: the same command again runs to the end
    card = train(cfg, recs, str(out), progress=False)
    assert _same_history(card["metrics"]["history"], ref["metrics"]["history"])
    assert card["training"]["best_step"] == ref["training"]["best_step"]
    assert card["training"]["stopped"] == ref["training"]["stopped"] == "schedule"
    got, want = _adapter_tensors(out), _adapter_tensors(tmp_path / "ref")
    assert got.keys() == want.keys() and all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    for a, b in zip(card["training"]["reload_check"], ref["training"]["reload_check"], strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-6)
    # the card: throughput over the loop, the budget, where it was resumed
    t = card["training"]["throughput"]
    assert t["steps"] == ref["training"]["throughput"]["steps"] == card["training"]["budget"]["scheduled_steps"]
    assert t["examples"] == ref["training"]["throughput"]["examples"] and t["samples_per_second"] > 0
    assert [r["step"] for r in card["training"]["resumed"]] == [3, 4]
    assert not (out / "resume").exists() and (out / "train.log").read_text() == "kept\n"


def test_orm_value_head_resumes_exactly(tiny_root, tmp_path, monkeypatch):
    """The ORM's value head lives outside the peft model: a run killed in step 4 and resumed
    ends with the uninterrupted run's head and adapter."""
    from safetensors.torch import load_file

    from rewards.train import train, trainer

    recs = [{"kind": "outcome", "problem": r["problem"], "steps": r["steps"], "correct": r["labels"][-1] == 1.0}
            for r in _step_records()]
    cfg = _cfg("orm", _tiny_causal(tiny_root), epochs=3, batch_size=4, lora_dropout=0.1, eval_every=2,
               save_every_steps=3, save_every_seconds=None)
    ref = train(cfg, recs, str(tmp_path / "ref"), progress=False)
    real_step = trainer._optimizer_step

    def killed(run, state):
        if state.step == 4:
            raise KeyboardInterrupt("killed")
        real_step(run, state)

    monkeypatch.setattr(trainer, "_optimizer_step", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, recs, str(tmp_path / "run"), progress=False)
    monkeypatch.undo()
    card = train(cfg, recs, str(tmp_path / "run"), progress=False)
    assert [r["step"] for r in card["training"]["resumed"]] == [3]
    assert _same_history(card["metrics"]["history"], ref["metrics"]["history"])
    for f in ("value_head.safetensors", "adapter_model.safetensors"):
        got, want = load_file(str(tmp_path / "run" / f)), load_file(str(tmp_path / "ref" / f))
        assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)


def test_one_process_trains_into_a_directory_at_a_time(tmp_path):
    import fcntl

    from rewards.train.trainer import training_lock

    with training_lock(tmp_path), training_lock(tmp_path):  # re-entrant in the holder
        pass
    with open(tmp_path / "train.lock", "a+") as other:  # another holder (flock is per open file)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RuntimeError, match="another process .*choose another --out"):
            with training_lock(tmp_path):
                pass


def test_resume_fingerprint_mismatch_is_one_phrase():
    from rewards.train import TrainConfig
    from rewards.train.resume import fingerprint, mismatch

    def fp(config, data=(("a", 10),), n=40):
        return fingerprint(config, [{"sha256": s, "rows": r} for s, r in data], train_examples=n,
                           heldout_batches=2, total_steps=5, trainable={"w": [4, 4]})

    base = TrainConfig(kind="prm", lr=1e-4)
    assert mismatch(fp(base), fp(TrainConfig(kind="prm", lr=1e-4, max_seconds=60, threads=2))) is None
    assert mismatch(fp(base), fp(TrainConfig(kind="prm", lr=2e-4))) == "the settings differ (lr 0.0001 -> 0.0002)"
    assert "--data differs" in mismatch(fp(base), fp(base, data=(("b", 10),)))
    assert "training examples differ (40 -> 41" in mismatch(fp(base), fp(base, n=41))
    older = fp(base)  # saved before a setting existed: it counts as that setting's default
    del older["config"]["outcome_targets"]
    assert mismatch(older, fp(base)) is None
    assert mismatch(older, fp(TrainConfig(kind="prm", lr=1e-4, outcome_targets=True))) == (
        "the settings differ (outcome-targets false -> true)")


def test_config_errors_name_the_field():
    from rewards.train import TrainConfig

    with pytest.raises(ValueError, match="peft must be"):
        TrainConfig(kind="prm", peft="ia3")
    with pytest.raises(ValueError, match="kind must be"):
        TrainConfig(kind="rm")


def test_cli_help_and_import_without_torch(tmp_path, shared_data_dir):
    code = ("import sys, cli; p = cli.build_parser(); p.parse_args(['train', 'prm', '--data', 'x', '--out', 'y']); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "False", r.stderr
    out = tmp_path / "pb.jsonl"
    r = subprocess.run([sys.executable, "cli.py", "train", "data-import", "prmbench", "--input",
                        str(shared_data_dir / "prm_step_labels/prmbench_train/prm800k_train_p1_first400_4o_circular.jsonl"),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(out)) > 700


def test_data_steps_on_a_pool_refuses_another_policy_in_one_line(tmp_path):
    import gzip

    pool = tmp_path / "p.jsonl.gz"
    with gzip.open(pool, "wt") as f:
        f.write(json.dumps({"format": "tts-math-pool/1", "id": "q0", "problem": "P", "gold": "5",
                            "config": {"policy": {"model": "qwen2.5-coder-0.5b", "temperature": 0.8}},
                            "samples": [{"steps": ["a"], "verdict": {"correct": True}}]}) + "\n")
    base = [sys.executable, "cli.py", "train", "data-steps", "--out", str(tmp_path / "mc.jsonl")]
    r = subprocess.run([*base, "--pool", str(pool), "--model", "smollm2-135m"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode != 0 and "written by qwen2.5-coder-0.5b" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*base, "--pool", str(tmp_path / "none.jsonl")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*base, "--pool", str(pool), "--samples-per-problem", "0"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode != 0 and "--samples-per-problem must be >= 1" in r.stderr


@pytest.mark.engine
def test_outcome_builder_on_real_engine(engine_policy, tmp_path):
    problems = [{"id": "g0", "problem": "Tom has 2 apples and buys 3 more. How many apples does he have?", "answer": "5"}]
    s = build_outcome_data(engine_policy, problems, str(tmp_path / "o.jsonl"), n=2)
    rows = read_jsonl(tmp_path / "o.jsonl")
    assert s["problems_done"] == 1 and len(rows) == 2 and all(isinstance(r["correct"], bool) for r in rows)


@pytest.mark.engine
def test_pool_step_labels_on_real_engine(engine_policy, tmp_path):
    from policies.pool import read_pool
    from rewards.train import step_labels_from_pool

    q = "Tom has 2 apples and buys 3 more. How many apples does he have?"
    pool = read_pool(_write_pool(tmp_path / "p.jsonl.gz", [
        (q, [(["Tom starts with 2 apples.", "2 + 3 = 5, so the answer is \\boxed{5}."], True),
             (["Tom starts with 2 apples.", "2 + 2 = 4, so the answer is \\boxed{4}."], False)])]))
    s = step_labels_from_pool(engine_policy, pool, str(tmp_path / "mc.jsonl"), k=3, heldout=lambda text: False)
    rows = read_jsonl(tmp_path / "mc.jsonl")
    assert s["problems_done"] == 1 and s["generated_tokens"] > 0 and len(rows) == 2
    for r in rows:  # one prefix each, three rollouts; the last step keeps the pool's verdict
        assert len(r["labels"]) == 2 and r["labels"][0] in (0.0, 1 / 3, 2 / 3, 1.0)
        assert r["labels"][1] == float(r["correct"]) and r["rollouts"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prm", "orm", "tinyrm"])
def test_shipped_default_reproduces_its_training_time_scores(kind):
    """`--reward KIND` with no model loads rewards/defaults/KIND and gives exactly the
    scores the trainer computed in memory before saving (card.json reload_check)."""
    import json

    from rewards import load_scorer

    card_path = Path(__file__).resolve().parent.parent / "rewards" / "defaults" / kind / "card.json"
    if not card_path.is_file():
        pytest.skip(f"no shipped default {kind}")
    card = json.loads(card_path.read_text())
    probes = card["training"]["reload_check"]
    assert card["trained"] and card["kind"] == kind and probes
    s = load_scorer(kind)
    assert s.trained
    for probe in probes:
        if kind == "tinyrm":
            assert s.p0([(probe["problem"], probe["a"], probe["b"])])[0] == pytest.approx(probe["p0"], abs=1e-4)
        else:
            assert s.score([probe["problem"]], [probe["steps"]])[0] == pytest.approx(probe["scores"], abs=1e-4)
