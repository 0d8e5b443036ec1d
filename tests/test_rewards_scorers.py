"""Scorers on tiny random models built here: adapter positions, batching, caches, TinyRM.

Each public PRM format is checked against an independent reimplementation of the
official reading code (tokenise the whole text, find the tag ids, full-vocab logits)
on a tiny model of the same architecture and tokenizer style.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

import rewards  # noqa: E402
from rewards import aggregate, load_scorer  # noqa: E402
from rewards.adapters import AdapterConfig, list_adapters, load_adapter  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "Step 1: 48 / 2 = 24 clips in May. Step 2: 48 + 24 = 72 clips. The answer is 72.",
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning.",
    "So 16 - 3 - 4 = 9 eggs are left, and 9 * 2 = 18 dollars. + - ки ки ки",
    "What is the value of x if 2x + 3 = 11? Subtract 3: 2x = 8. Divide: x = 4.",
] * 3

PROBLEM = "Janet's ducks lay 16 eggs per day. How many are left?"
STEPS = [
    ["16 - 3 = 13 eggs.", "13 - 4 = 9 eggs.", "The answer is 9."],
    ["16 + 3 = 19 eggs.", "The answer is 19."],
    ["So 9 * 2 = 18 dollars."],
    ["Step 1: 48 / 2 = 24.", "Step 2: 48 + 24 = 72.", "Subtract 3: 2x = 8.", "x = 4."],
]


def _bpe(special: list[str], *, byte_level: bool) -> Tokenizer:
    tk = Tokenizer(models.BPE(unk_token=None if byte_level else "<unk>"))
    if byte_level:
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:  # Llama/Mistral SentencePiece style: metaspace, "▁" marks a space
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special)
    tk.train_from_iterator(CORPUS + ["\n", "\n\n", " \n"], trainer)
    return tk


QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tiny_cfg(kind: str, vocab: int, **kw):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=512, **kw)
    return {"mistral": MistralConfig, "qwen2": Qwen2Config, "llama": LlamaConfig}[kind](**common)


def build_tiny(adapter: str, root) -> str:
    """Save a tiny random checkpoint in the adapter's architecture/tokenizer style; return its dir."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    out = root / adapter
    if (out / "config.json").exists():
        return str(out)
    torch.manual_seed(1)
    if adapter == "math-shepherd":
        tk = _bpe(["<unk>", "<s>", "</s>"], byte_level=False)
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        model = AutoModelForCausalLM.from_config(_tiny_cfg("mistral", len(tok)))
    elif adapter == "qwen2.5-math-prm":
        tk = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"], byte_level=True)
        tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        tok.chat_template = QWEN_TEMPLATE
        cfg = _tiny_cfg("qwen2", len(tok), num_labels=2)
        model = AutoModelForTokenClassification.from_config(cfg)
    elif adapter == "rlhflow-llama3":
        sp = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tk = _bpe(sp, byte_level=True)
        tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
        model = AutoModelForCausalLM.from_config(_tiny_cfg("llama", len(tok)))
    elif adapter in ("tts-prm", "tts-orm"):
        from policies.models import resolve_model

        tok = AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True)
        model = AutoModelForCausalLM.from_config(_tiny_cfg("llama", len(tok), tie_word_embeddings=True))
    else:
        raise KeyError(adapter)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_rm")


def _scorer(adapter, root, **kw):
    return load_scorer("orm" if adapter == "tts-orm" else "prm", model=build_tiny(adapter, root), adapter=adapter, **kw)


# --------------------------------------------------------------- references
def _reference(adapter: str, path: str, problem: str, steps: list[str]) -> tuple[list[int], list[float]]:
    """The official reading code of each family, reimplemented plainly (full-vocab logits)."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if adapter == "math-shepherd":
        # their snippet: input = f"{question} {output}", output = "s1 ки\ns2 ки"; read where id == ки id
        text = f"{problem} " + "\n".join(f"{s} ки" for s in steps)
        ids = tok(text)["input_ids"]
        tag_id = tok.encode(" ки", add_special_tokens=False)[-1]
        pos = [i for i, t in enumerate(ids) if t == tag_id]
        m = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        good, bad = tok.encode("+", add_special_tokens=False)[0], tok.encode("-", add_special_tokens=False)[0]
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0]
        p = torch.softmax(logits[:, [good, bad]], dim=-1)[:, 0]
        return pos, [p[i].item() for i in pos]
    if adapter == "qwen2.5-math-prm":
        # model card: assistant content "<extra_0>".join(steps) + "<extra_0>"; P(class 1) at each <extra_0>
        msgs = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": problem},
                {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        tag_id = tok.convert_tokens_to_ids("<extra_0>")
        pos = [i for i, t in enumerate(ids) if t == tag_id]
        m = AutoModelForTokenClassification.from_pretrained(path, local_files_only=True).eval()
        with torch.no_grad():
            p = torch.softmax(m(torch.tensor([ids])).logits[0], dim=-1)[:, 1]
        return pos, [p[i].item() for i in pos]
    if adapter == "rlhflow-llama3":
        # their loop: one conversation per prefix, user turns = steps (first with the question),
        # assistant "+", read logits[:, -3] (the token before "+" and "<|eot_id|>")
        m = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        good, bad = tok.encode("+", add_special_tokens=False)[0], tok.encode("-", add_special_tokens=False)[0]
        head = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>")
        pos, scores = [], []
        for k in range(len(steps)):
            text = head
            for j, s in enumerate(steps[: k + 1]):
                user = f"{problem} {s}" if j == 0 else s
                text += f"<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
                text += "<|start_header_id|>assistant<|end_header_id|>\n\n+<|eot_id|>"
            ids = tok(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = m(torch.tensor([ids])).logits[0]
            pos.append(len(ids) - 3)
            scores.append(torch.softmax(logits[-3, [good, bad]], dim=-1)[0].item())
        return pos, scores
    if adapter == "tts-prm":
        text = f"Problem: {problem}\nSolution:\n" + "\n\n".join(f"{s}<file_sep>" for s in steps)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        pos = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids("<file_sep>")]
        m = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        pos_id, neg_id = tok.encode(" +", add_special_tokens=False)[0], tok.encode(" -", add_special_tokens=False)[0]
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0]
        p = torch.softmax(logits[:, [pos_id, neg_id]], dim=-1)[:, 0]
        return pos, [p[i].item() for i in pos]
    raise KeyError(adapter)


PRM_ADAPTERS = ["math-shepherd", "qwen2.5-math-prm", "rlhflow-llama3", "tts-prm"]


def test_shipped_adapters_parse():
    assert set(PRM_ADAPTERS + ["tts-orm"]) <= set(list_adapters())
    for name in list_adapters():
        a = load_adapter(name)
        assert a.name == name and hash(a)


@pytest.mark.parametrize("adapter", PRM_ADAPTERS)
def test_adapter_positions_and_scores_match_reference(adapter, tiny_root):
    s = _scorer(adapter, tiny_root)
    path = build_tiny(adapter, tiny_root)
    for steps in STEPS[:3]:
        pos, ref = _reference(adapter, path, PROBLEM, steps)
        assert len(pos) == len(steps)
        enc = s.encode(PROBLEM, steps)
        if adapter == "rlhflow-llama3":
            # per-prefix reference: the tag position of step k in the full sequence equals the
            # readout index of the k-step conversation (causal prefix)
            assert list(enc.tag_positions) == pos
        else:
            assert list(enc.tag_positions) == pos
        got = s.score([PROBLEM], [steps])[0]
        assert got == pytest.approx(ref, abs=1e-5)
        assert all(0.0 <= x <= 1.0 for x in got)


def test_tag_token_is_tags_last_token(tiny_root):
    s = _scorer("tts-prm", tiny_root)
    enc = s.encode(PROBLEM, STEPS[0])
    tag = s.tokenizer.convert_tokens_to_ids("<file_sep>")
    assert [enc.ids[p] for p in enc.tag_positions] == [tag] * 3
    assert enc.tag_positions[-1] == len(enc.ids) - 1


def test_tag_merging_with_following_text_is_an_error(tiny_root):
    # tag "=" directly followed by "=" in the separator merges in a byte-level BPE? use a
    # tag that is a prefix of a longer token in the trained vocabulary: "eg" + "gs"
    from rewards.hf import encode_candidate

    s = _scorer("tts-prm", tiny_root)
    bad = AdapterConfig(name="bad", prompt="{problem}", step_tag=" eg", step_separator="gs",
                        positive_token=" +", negative_token=" -")
    with pytest.raises(ValueError, match="merges"):
        encode_candidate(bad, s.tokenizer, "Q: ", ["a", "b"])


def test_batched_equals_unbatched(tiny_root):
    s = _scorer("math-shepherd", tiny_root, kv_cache_tokens=0)
    problems = [PROBLEM] * len(STEPS)
    batched = s.score(problems, STEPS)
    assert s.stats.batches == 1
    one = _scorer("math-shepherd", tiny_root, kv_cache_tokens=0, token_budget=1)
    single = one.score(problems, STEPS)
    assert one.stats.batches == len(STEPS)
    for a, b in zip(batched, single, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    # and one call per candidate
    for i in range(len(STEPS)):
        assert _scorer("math-shepherd", tiny_root).score([PROBLEM], [STEPS[i]])[0] == pytest.approx(batched[i], abs=1e-5)


def test_cache_hit_identical_and_counted(tiny_root):
    s = _scorer("qwen2.5-math-prm", tiny_root)
    first = s.score([PROBLEM] * 2, STEPS[:2])
    fp, misses = s.stats.forward_passes, s.stats.cache_misses
    assert misses == 5 and s.stats.cache_hits == 0
    again = s.score([PROBLEM] * 2, STEPS[:2])
    assert again == first  # exact: served from the cache
    assert s.stats.forward_passes == fp and s.stats.cache_hits == 5
    # a prefix of a scored candidate is a full cache hit
    assert s.score([PROBLEM], [STEPS[0][:2]])[0] == first[0][:2]
    assert s.stats.forward_passes == fp


@pytest.mark.parametrize("adapter", ["tts-prm", "rlhflow-llama3"])
def test_beam_extension_reuses_prefix(adapter, tiny_root):
    s = _scorer(adapter, tiny_root)
    fresh = _scorer(adapter, tiny_root, kv_cache_tokens=0)
    beams = [STEPS[0][:1], STEPS[1][:1], STEPS[3][:2]]
    s.score([PROBLEM] * 3, beams)
    tokens0 = s.stats.tokens_scored
    extended = [b + [x] for b in beams for x in ("Then 5 - 1 = 4.", "The answer is 9.")]
    got = s.score([PROBLEM] * len(extended), extended)
    want = fresh.score([PROBLEM] * len(extended), extended)
    for a, b in zip(got, want, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
    assert s.stats.kv_reused_tokens > 0
    new_tokens = s.stats.tokens_scored - tokens0
    assert new_tokens < fresh.stats.tokens_scored / 2
    assert s.stats.cache_hits == sum(len(b) for b in beams) * 2


def test_orm_value_head_reads_last_token(tiny_root):
    s = _scorer("tts-orm", tiny_root)
    assert s.kind == "orm" and s.granularity == "outcome"
    out = s.score([PROBLEM] * 2, STEPS[:2])
    assert [len(x) for x in out] == [1, 1]
    enc = s.encode(PROBLEM, STEPS[0])
    assert len(enc.tag_positions) == 1 and enc.tag_positions[0] == len(enc.ids) - 1
    with torch.no_grad():
        h = s.backbone(torch.tensor([enc.ids])).last_hidden_state[0, -1]
        ref = torch.sigmoid(s.value_head(h)).item()
    assert out[0][0] == pytest.approx(ref, abs=1e-6)
    assert not s.trained  # fresh value head: must say so


def test_peft_adapter_is_applied(tiny_root, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = build_tiny("tts-prm", tiny_root)
    base = AutoModelForCausalLM.from_pretrained(path)
    torch.manual_seed(3)
    pm = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    pm.save_pretrained(tmp_path / "lora")
    plain = _scorer("tts-prm", tiny_root).score([PROBLEM], [STEPS[0]])[0]
    s = load_scorer("prm", model=path, adapter="tts-prm", peft=str(tmp_path / "lora"))
    got = s.score([PROBLEM], [STEPS[0]])[0]
    enc = s.encode(PROBLEM, STEPS[0])
    with torch.no_grad():
        logits = pm.eval()(torch.tensor([enc.ids])).logits[0]
    ids = s.label_token_ids
    ref = torch.softmax(logits[list(enc.tag_positions)][:, list(ids)], dim=-1)[:, 0].tolist()
    assert got == pytest.approx(ref, abs=1e-5)
    assert got != pytest.approx(plain, abs=1e-4)


def test_trained_dir_with_card(tiny_root, tmp_path):
    path = build_tiny("tts-prm", tiny_root)
    d = tmp_path / "trained"
    d.mkdir()
    (d / "card.json").write_text(json.dumps({"kind": "prm", "adapter": "tts-prm", "base_model": path, "trained": True}))
    s = load_scorer("prm", model=str(d))
    assert s.trained and s.adapter.name == "tts-prm"
    with pytest.raises(ValueError, match="kind"):
        load_scorer("orm", model=str(d))


def test_trained_or_not_one_rule():
    """rewards.checkpoint.is_trained, the rule both loaders (PRM/ORM and TinyRM) apply."""
    from rewards.checkpoint import is_trained

    assert not is_trained(["value_head"], peft=True, card={"trained": True}, bare_is_trained=True)  # fresh head
    assert is_trained([], peft=True, card=None, bare_is_trained=False)  # a peft adapter was applied
    assert is_trained([], peft=False, card={"trained": True}, bare_is_trained=False)
    assert not is_trained([], peft=False, card={"trained": False}, bare_is_trained=True)  # the card decides
    assert is_trained([], peft=False, card=None, bare_is_trained=True)  # e.g. a math-shepherd checkpoint
    assert not is_trained([], peft=False, card=None, bare_is_trained=False)  # bare LM read by our adapter


def test_tinyrm_loader_does_not_import_the_factory():
    """Checkpoint and card helpers live in rewards.checkpoint (no torch); the TinyRM loader
    imports them from there, so factory -> tinyrm is the only edge between the two."""
    code = "import sys, rewards.tinyrm; print('torch' in sys.modules, 'rewards.factory' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=rewards.__path__[0] + "/..")
    assert r.stdout.strip() == "False False", r.stderr


def test_user_adapter_from_json_file(tiny_root, tmp_path):
    cfg = load_adapter("tts-prm").to_dict() | {"name": "mine", "step_tag": "<empty_output>", "base_model": None}
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(cfg))
    s = load_scorer("prm", model=build_tiny("tts-prm", tiny_root), adapter=str(f))
    enc = s.encode(PROBLEM, STEPS[1])
    tag = s.tokenizer.convert_tokens_to_ids("<empty_output>")
    assert [enc.ids[p] for p in enc.tag_positions] == [tag, tag]


def test_adapter_validation_errors():
    with pytest.raises(ValueError, match="unknown field"):
        AdapterConfig.from_dict({"name": "x", "tag": "y"})
    with pytest.raises(ValueError, match="positive_token"):
        AdapterConfig(name="x", readout="label_tokens")
    with pytest.raises(ValueError, match="class_index"):
        AdapterConfig(name="x", readout="class_index")
    with pytest.raises(ValueError, match="unknown adapter"):
        load_adapter("nope")


def test_empty_candidate_and_input_errors(tiny_root):
    s = _scorer("math-shepherd", tiny_root)
    out = s.score([PROBLEM, PROBLEM], [[], STEPS[2]])
    assert out[0] == [] and len(out[1]) == 1
    with pytest.raises(ValueError, match="empty"):
        aggregate("prod", out[0])
    with pytest.raises(ValueError, match="problems"):
        s.score([PROBLEM], STEPS[:2])
    with pytest.raises(TypeError, match="split_steps"):
        s.score([PROBLEM], ["a whole solution string"])
    long = ["word " * 600]
    with pytest.raises(ValueError, match="tokens, over the limit"):
        s.score([PROBLEM], [long])


def test_max_length_option_bounds_the_candidates_a_scorer_takes(tiny_root):
    """load_scorer(max_length=N) replaces the adapter's limit; length_error says in advance
    what score() would refuse, and describe() records the limit a result was made with."""
    s = _scorer("math-shepherd", tiny_root)
    n = len(s.encode(PROBLEM, STEPS[2]).ids)
    assert s.length_error(PROBLEM, STEPS[2]) is None and s.length_error(PROBLEM, []) is None
    short = _scorer("math-shepherd", tiny_root, max_length=n - 1)
    assert short.describe()["max_length"] == n - 1 and s.describe()["max_length"] > n
    msg = short.length_error(PROBLEM, STEPS[2])
    assert msg.startswith(f"{n} tokens, over the limit of {n - 1}") and "--max-length" in msg
    with pytest.raises(ValueError, match=f"candidate 0 is {n} tokens, over the limit of {n - 1}"):
        short.score([PROBLEM], [STEPS[2]])
    exact = _scorer("math-shepherd", tiny_root, max_length=n)
    assert exact.score([PROBLEM], [STEPS[2]]) == s.score([PROBLEM], [STEPS[2]])  # same scores when it fits
    with pytest.raises(ValueError, match="max_length must be >= 8"):
        _scorer("math-shepherd", tiny_root, max_length=4)


def test_unknown_kind():
    from rewards.kinds import SCORER_KINDS

    with pytest.raises(ValueError, match=", ".join(SCORER_KINDS)):  # the error lists the registry
        load_scorer("rm")


def test_none_and_verifier_scorers():
    n = load_scorer("none")
    assert n.score(["q", "q"], [["a", "b"], []]) == [[0.5, 0.5], []]
    v = load_scorer("verifier")
    with pytest.raises(ValueError, match="golds"):
        v.score(["q"], [["x"]])
    out = v.score(["q"] * 3, [["2 + 3 = 5.", "The answer is $\\boxed{5}$."], ["The answer is \\boxed{6}."], []],
                  golds=["5", "5", "5"])
    assert out == [[1.0], [0.0], []]
    assert v.num_parameters == 0


def test_import_is_cheap():
    code = "import sys, rewards, rewards.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=rewards.__path__[0] + "/..")
    assert r.stdout.strip() == "False False", r.stderr


# ------------------------------------------------------------------ TinyRM
@pytest.fixture(scope="module")
def tiny_tinyrm(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from policies.models import embedded_encoder_path
    from rewards.tinyrm import TinyRMScorer

    tok = AutoTokenizer.from_pretrained(embedded_encoder_path(), local_files_only=True)
    torch.manual_seed(2)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128)
    return TinyRMScorer(BertForMaskedLM(cfg), tok, max_length=128)


def test_tinyrm_mask_position_and_p0(tiny_tinyrm):
    s = tiny_tinyrm
    e = s.encode_pair("What is 2+3?", "2+3=5", "2+3=6")
    assert e["input_ids"][e["mask"]] == s.tokenizer.mask_token_id
    text = s.tokenizer.decode(e["input_ids"])
    assert "choice 0 : 2 + 3 = 5 [SEP] choice 1 : 2 + 3 = 6 answer : [MASK]" in text
    assert e["token_type_ids"][e["mask"]] == 1
    with torch.no_grad():
        logits = s.model(input_ids=torch.tensor([e["input_ids"]]),
                         token_type_ids=torch.tensor([e["token_type_ids"]])).logits[0, e["mask"]]
    i0, i1 = s.tokenizer.convert_tokens_to_ids(["0", "1"])
    ref = torch.softmax(logits[[i0, i1]], dim=-1)[0].item()
    assert s.p0([("What is 2+3?", "2+3=5", "2+3=6")])[0] == pytest.approx(ref, abs=1e-6)


def test_tinyrm_forward_params_count_the_encoder_not_the_head(tiny_tinyrm):
    # hidden 32, 2 layers, intermediate 64: per layer q/k/v/o 4 x (32*32 + 32) = 4224, two
    # LayerNorms 2 x 64, FFN (32*64 + 64) + (64*32 + 32) = 4192 -> 8544; plus the embeddings'
    # LayerNorm 64. Embedding tables are lookups; the MLM head runs at the mask only.
    assert tiny_tinyrm.forward_params == 2 * 8544 + 64


def test_tinyrm_order_swap_symmetry(tiny_tinyrm):
    pairs = [("2+3=5", "2+3=6"), ("x = 4", "x = 5 so the answer is 5"), ("a", "a")]
    w = tiny_tinyrm.win("q", pairs)
    w_rev = tiny_tinyrm.win("q", [(b, a) for a, b in pairs])
    for x, y in zip(w, w_rev, strict=True):
        assert x + y == pytest.approx(1.0, abs=1e-12)
        assert 0.0 <= x <= 1.0
    assert w[2] == pytest.approx(0.5, abs=1e-12)


def test_tinyrm_truncation_keeps_answer_slot(tiny_tinyrm):
    s = tiny_tinyrm
    long_a = "step " * 200 + "final A"
    e = s.encode_pair("q?", long_a, "short B")
    assert len(e["input_ids"]) <= s.max_length
    text = s.tokenizer.decode(e["input_ids"])
    assert text.endswith("answer : [MASK] [SEP]") and "final a" in text and "short b" in text


def test_tinyrm_truncates_two_long_solutions_to_equal_shares(tiny_tinyrm):
    from rewards.tinyrm import fair_shares

    assert fair_shares({"a": 300, "b": 200, "q": 20}, 100) == {"q": 20, "b": 40, "a": 40}
    assert fair_shares({"a": 30, "b": 20, "q": 5}, 100) == {"q": 5, "b": 20, "a": 30}
    s = tiny_tinyrm
    # each solution alone is longer than the limit, so the longest cannot take the whole cut
    e = s.encode_pair("q?", "alpha " * 300 + "final A", "beta " * 250 + "final B")
    assert len(e["input_ids"]) <= s.max_length and e["input_ids"][e["mask"]] == s.tokenizer.mask_token_id
    text = s.tokenizer.decode(e["input_ids"])
    assert "final a" in text and "final b" in text and text.endswith("answer : [MASK] [SEP]")
    assert 0.3 < text.count("alpha") / text.count("beta") < 3


def test_tinyrm_tournaments_and_cost(tiny_tinyrm):
    s = tiny_tinyrm
    cands = [[f"candidate {i} says {i * 7}"] for i in range(5)]
    s.tournament = "round_robin"
    rr = s.score(["q"] * 5, cands)
    assert s.last_cost["comparisons"] == 10
    # round robin score = mean win against the others, so the scores sum to n/2
    assert sum(x[0] for x in rr) == pytest.approx(2.5, abs=1e-9)
    s.tournament = "swiss"
    s.rounds = 2
    s._pairs.clear()
    sw = s.score(["q"] * 5, cands)
    assert 1 <= s.last_cost["comparisons"] <= 4 and all(0 <= x[0] <= 1 for x in sw)
    assert s.last_cost["forward_passes"] == 2 * s.last_cost["comparisons"]
    ref = s.score(["q"] * 2, cands[:2], references=["the reference", "the reference"])
    assert s.last_cost["mode"] == "reference" and len(ref) == 2
    assert s.score(["q", "other"], [["only one"], ["alone"]]) == [[0.5], [0.5]]
    s.tournament, s.rounds = "auto", None


# ------------------------------------------------- real default backbones (offline)
@pytest.mark.slow
def test_default_prm_loads_offline_untrained(caplog):
    with caplog.at_level("WARNING"):
        s = load_scorer("prm")
    assert s.num_parameters > 100_000_000
    if not s.trained:
        assert "UNTRAINED" in caplog.text
    from rewards.checkpoint import recommended_agg

    assert s.recommended_agg == recommended_agg("prm") is not None  # what --agg auto and a server's /info give
    out = s.score([PROBLEM], [STEPS[0]])
    assert len(out[0]) == 3 and all(0 <= x <= 1 for x in out[0])


@pytest.mark.slow
def test_default_tinyrm_loads_offline(caplog):
    with caplog.at_level("WARNING"):
        s = load_scorer("tinyrm")
    assert 20_000_000 < s.num_parameters < 30_000_000
    if not s.trained:
        assert "UNTRAINED" in caplog.text
    w = s.win("q", [("a b", "c d")])[0]
    assert w + s.win("q", [("c d", "a b")])[0] == pytest.approx(1.0, abs=1e-12)


def test_token_budget_batches_keep_order_budget_and_size():
    from rewards.hf import token_budget_batches

    widths = [1, 2, 2, 3, 5, 5, 9, 20]
    got = list(token_budget_batches(widths, lambda w: w, 10))
    assert [w for b in got for w in b] == widths  # every item once, in order
    assert all(max(b) * len(b) <= 10 or len(b) == 1 for b in got)  # an item wider than the budget runs alone
    assert got == [[1, 2, 2], [3, 5], [5], [9], [20]]
    assert list(token_budget_batches([1] * 5, lambda w: w, 100, max_batch_size=2)) == [[1, 1], [1, 1], [1]]
    assert list(token_budget_batches([], lambda w: w, 10)) == []
