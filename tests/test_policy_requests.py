"""The policy's non-blocking interface (submit / poll) without an engine: the blocking
stand-in of the base class, and VLLMPolicy's add_request / step path on a stand-in for
vLLM's engine (the real engine: tests/test_search_engine.py, marked `engine`)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from policies import Completion, GenRequest, KVBudget, Policy, SamplingConfig, derive_seed
from policies.base import per_prompt_counts
from policies.config import kv_bytes_per_token


class PlainTokenizer:
    """No chat template (prompts are plain text); one token per character."""

    chat_template = None

    def encode(self, text):
        return list(text)


class ScriptedPolicy(Policy):
    """A policy whose one hook writes each sample's derived seed into its text."""

    def __init__(self, seed=5):
        super().__init__(sampling=SamplingConfig(seed=seed, max_step_tokens=7, max_tokens=30),
                         prompt_style="plain", tokenizer=PlainTokenizer())
        self.calls = []

    def _generate(self, prompts, n, max_tokens, *, stop, seed, tag):
        ns = per_prompt_counts(n, len(prompts), "n")
        self.calls.append((tag, seed, max_tokens, stop, list(prompts), ns))
        return [[Completion(text=f"{tag}:{derive_seed(seed, tag, p, j) if seed is not None else j}",
                            generated_tokens=1, prompt_tokens=len(p) if j == 0 else 0, cached_tokens=0,
                            finish_reason="stop") for j in range(m)] for p, m in zip(prompts, ns, strict=True)]


def test_the_blocking_stand_in_returns_what_extend_and_sample_return():
    pol = ScriptedPolicy()
    a = pol.submit(GenRequest("P1", ("s1",), n=3, kind="extend", seed=9))
    b = pol.submit(GenRequest("P2", (), n=2, kind="extend", seed=9))
    c = pol.submit(GenRequest("P1", ("s1", "s2"), n=1, kind="sample", seed=4))
    assert pol.pending() == 6
    done = dict(pol.poll())
    assert pol.pending() == 0 and pol.poll() == []
    assert done[a] == pol.extend(["P1"], [["s1"]], 3, seed=9)[0]
    assert done[b] == pol.extend(["P2"], [[]], 2, seed=9)[0]
    assert done[c] == pol.sample(["P1"], 1, seed=4, prefixes=[["s1", "s2"]])[0]
    # one generation call per (kind, seed, cap), with the caps and stops of extend / sample
    tags = [(t, s, cap, stop) for t, s, cap, stop, _p, _n in pol.calls[:2]]
    assert tags == [("extend", 9, 7, ["\n\n"]), ("sample", 4, 30, None)]
    assert pol.calls[0][5] == [3, 2]
    # no seed: the sampling config's, as extend takes it
    d = pol.submit(GenRequest("P3", n=1))
    assert dict(pol.poll())[d] == pol.extend(["P3"], [[]], 1)[0]
    pol.submit(GenRequest("P4", n=2))
    pol.abort()
    assert pol.pending() == 0 and pol.poll() == []
    assert pol.kv_budget() is None and not pol.incremental


def test_request_tokens_count_the_prompt_with_the_tokenizer():
    pol = ScriptedPolicy()
    budget = KVBudget(max_seqs=8, block_size=1)
    r = GenRequest("P", ("ab",), n=2)
    prompt = len(pol.prefix("P", ["ab"]))
    assert pol.request_tokens(r, budget) == prompt + 2 * 7  # the step cap of extend
    s = GenRequest("P", ("ab",), n=1, kind="sample", max_tokens=11)
    assert pol.request_tokens(s, budget) == prompt + 11


@pytest.mark.parametrize("kw, msg", [
    (dict(kind="rollout"), "kind must be one of extend, sample"),
    (dict(n=0), "n must be an int >= 1"),
    (dict(max_tokens=0), "max_tokens must be >= 1 or None"),
])
def test_gen_request_checks(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GenRequest("P", **kw)
    assert GenRequest("P", ["a", "b"]).steps == ("a", "b")  # steps kept as a tuple (hashable)


def test_kv_bytes_per_token():
    qwen05 = SimpleNamespace(num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                             hidden_size=896, head_dim=64)
    assert kv_bytes_per_token(qwen05) == 2 * 24 * 2 * 64 * 2  # 12 KiB: 2 GiB hold ~175k tokens
    smollm = SimpleNamespace(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    assert kv_bytes_per_token(smollm, 2) == 2 * 30 * 3 * 64 * 2


# ---- VLLMPolicy on a stand-in engine ----------------------------------------------------
def _output(rid, prompt, sp):
    """What vLLM's engine returns for one finished request: the samples name their seed."""
    outs = [SimpleNamespace(text=f"{sp.seed}:{k}", token_ids=[1] * (k + 2), finish_reason="stop",
                            cumulative_logprob=-1.0 - k, stop_reason="\n\n", logprobs=None) for k in range(sp.n)]
    return SimpleNamespace(request_id=rid, finished=True, prompt_token_ids=[0] * len(prompt),
                           num_cached_tokens=len(prompt) // 2, outputs=outs)


class StandInEngine:
    """`LLMEngine`'s add_request / step / abort_request: each step finishes one request
    chosen at random (and reports one unfinished), so requests overtake each other."""

    def __init__(self, seed=0):
        from vllm.sampling_params import RequestOutputKind

        self.final_only = RequestOutputKind.FINAL_ONLY
        self.rng = random.Random(seed)
        self.live, self.added, self.aborted = [], [], []
        self.vllm_config = SimpleNamespace(
            cache_config=SimpleNamespace(block_size=32, num_gpu_blocks=100, kv_cache_size_tokens=None,
                                         kv_cache_memory_bytes=None),
            scheduler_config=SimpleNamespace(max_num_seqs=64),
            model_config=SimpleNamespace(max_model_len=2048, hf_config=None, dtype=None),
        )

    def add_request(self, rid, prompt, params):
        assert isinstance(rid, str) and isinstance(prompt, str)  # rendered by vLLM as LLM.generate renders it
        assert params.output_kind == self.final_only
        self.live.append((rid, prompt, params))
        self.added.append(rid)

    def step(self):
        if not self.live:
            return []
        rid, prompt, sp = self.live.pop(self.rng.randrange(len(self.live)))
        running = SimpleNamespace(request_id="ignored", finished=False)
        return [running, _output(rid, prompt, sp)]

    def abort_request(self, ids):
        self.aborted += ids
        self.live = [x for x in self.live if x[0] not in ids]


class StandInLLM:
    def __init__(self, seed=0):
        self.llm_engine = StandInEngine(seed)

    def get_tokenizer(self):
        return PlainTokenizer()

    def generate(self, prompts, params, use_tqdm=False):
        return [_output(str(i), p, sp) for i, (p, sp) in enumerate(zip(prompts, params, strict=True))]


@pytest.fixture(scope="module")
def vllm_installed():
    return pytest.importorskip("vllm")  # SamplingParams only: no engine starts


def _policy(seed, engine_seed=0):
    from policies import VLLMPolicy

    return VLLMPolicy(sampling=SamplingConfig(seed=seed, max_step_tokens=16), prompt_style="plain",
                      llm=StandInLLM(engine_seed))


@pytest.mark.parametrize("seed", [7, None], ids=["seeded", "unseeded"])
def test_vllm_submit_poll_gives_what_extend_gives_in_any_finishing_order(vllm_installed, seed):
    pol = _policy(seed)
    problems, steps, ks = ["A?", "B?", "A?"], [[], ["b1"], ["a1", "a2"]], [3, 1, 2]
    ref = pol.extend(problems, steps, ks, seed=11 if seed else None)
    for engine_seed in range(3):
        pol = _policy(seed, engine_seed)
        tickets = [pol.submit(GenRequest(p, tuple(s), n=k, seed=11 if seed else None))
                   for p, s, k in zip(problems, steps, ks, strict=True)]
        assert pol.pending() == sum(ks)
        got = {}
        while pol.pending():
            before = pol.pending()
            got.update(pol.poll())
            # seeded: each engine step ends one sample, which leaves `pending` at once (its
            # request returns with its last sample); unseeded: a request of n, n at once
            assert before - pol.pending() in ((1,) if seed else tuple(ks))
        assert [got[t] for t in tickets] == ref
        engine = pol.llm.llm_engine
        # seeded: one single-sample engine request per sample; unseeded: one of n
        assert len(engine.added) == (sum(ks) if seed else len(ks))
        assert pol.usage.requests == len(ks) and pol.usage.generated_tokens == sum(
            c.generated_tokens for row in ref for c in row)


def test_vllm_seeds_are_derived_as_extend_derives_them(vllm_installed):
    pol = _policy(3)
    pol.submit(GenRequest("A?", ("x",), n=2, kind="sample", seed=5))
    (_t, comps), = pol.poll() or pol.poll()
    prompt = pol.prefix("A?", ["x"])
    assert [c.text for c in comps] == [f"{derive_seed(5, 'sample', prompt, j)}:0" for j in range(2)]


def test_vllm_blocking_calls_wait_for_no_one_and_abort_clears(vllm_installed):
    pol = _policy(1)
    pol.submit(GenRequest("A?", n=2))
    with pytest.raises(RuntimeError, match="still in the engine; poll them to the end"):
        pol.extend(["B?"], [[]], 1)
    pol.abort()
    assert pol.pending() == 0 and len(pol.llm.llm_engine.aborted) == 2 and pol.poll() == []
    assert pol.extend(["B?"], [[]], 1)  # the engine is ours again


def test_vllm_an_output_this_policy_did_not_submit_is_an_error(vllm_installed):
    pol = _policy(1)
    pol.submit(GenRequest("A?", n=1))
    engine = pol.llm.llm_engine
    engine.live = [("someone-else", "x", engine.live[0][2])]
    with pytest.raises(RuntimeError, match="did not submit"):
        pol.poll()


def test_vllm_kv_budget_reads_the_engine(vllm_installed):
    pol = _policy(1)
    b = pol.kv_budget()
    assert b == KVBudget(max_seqs=64, kv_tokens=100 * 32, max_model_len=2048, block_size=32)
    pol.llm.llm_engine.vllm_config.cache_config.kv_cache_size_tokens = 5000  # vLLM's own count first
    assert pol.kv_budget().kv_tokens == 5000
    cache = pol.llm.llm_engine.vllm_config.cache_config
    cache.kv_cache_size_tokens, cache.num_gpu_blocks, cache.kv_cache_memory_bytes = None, None, 2**21
    model = pol.llm.llm_engine.vllm_config.model_config
    model.hf_config = SimpleNamespace(num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                      hidden_size=256)
    assert pol.kv_budget().kv_tokens == 2**21 // (2 * 4 * 2 * 64 * 2)  # bytes over bytes per token
    assert pol.incremental


# ---- early stop (GenRequest.watch) on a stand-in streaming engine ----------------------
class StreamingEngine:
    """`LLMEngine` for streamed requests: every step adds one token to every live request,
    with the confidences of `script` (the top-5 log-probs of position t are all -script[t]);
    CUMULATIVE requests report every step, FINAL_ONLY ones only their end."""

    def __init__(self, script):
        from vllm.sampling_params import RequestOutputKind

        self.cumulative = RequestOutputKind.CUMULATIVE
        self.script = script
        self.live, self.added, self.aborted, self.made = {}, [], [], {}
        self.kinds = {}

    def add_request(self, rid, prompt, params):
        self.live[rid] = (prompt, params)
        self.added.append(rid)
        self.kinds[rid] = params.output_kind
        self.made[rid] = 0

    def _output(self, rid, prompt, params, finished):
        m = self.made[rid]
        conf = self.script[:m]
        logprobs = [{t: SimpleNamespace(logprob=-c, rank=1, decoded_token=f"t{t} "),
                     **{1000 + r: SimpleNamespace(logprob=-c, rank=r, decoded_token="x") for r in range(2, 6)}}
                    for t, c in enumerate(conf)]
        out = SimpleNamespace(text="".join(f"t{t} " for t in range(m)), token_ids=list(range(m)),
                              finish_reason="stop" if finished else None, cumulative_logprob=-float(sum(conf)),
                              stop_reason=None, logprobs=logprobs)
        return SimpleNamespace(request_id=rid, finished=finished, prompt_token_ids=[0] * len(prompt),
                               num_cached_tokens=0, outputs=[out])

    def step(self):
        outs = []
        for rid, (prompt, params) in list(self.live.items()):
            self.made[rid] += 1
            finished = self.made[rid] == len(self.script)
            if finished:
                del self.live[rid]
            if finished or params.output_kind == self.cumulative:
                outs.append(self._output(rid, prompt, params, finished))
        return outs

    def abort_request(self, ids):
        self.aborted += ids
        for rid in ids:
            self.live.pop(rid, None)


def _streaming_policy(script, seed=3):
    from policies import VLLMPolicy

    llm = SimpleNamespace(llm_engine=StreamingEngine(script), get_tokenizer=PlainTokenizer)
    return VLLMPolicy(sampling=SamplingConfig(seed=seed, logprobs=5, max_tokens=50), prompt_style="plain", llm=llm)


def _drain(pol):
    got = {}
    while pol.pending():
        got.update(pol.poll())
    return got


def test_vllm_watch_aborts_a_sample_at_its_watchers_token(vllm_installed):
    import functools

    from search.confidence import WindowStop, stop_position

    pol = _streaming_policy([5.0, 5.0, 1.0, 1.0, 5.0, 5.0])  # window-2 means 5, 3, 1, 3, 5
    watched = pol.submit(GenRequest("A?", n=2, kind="sample", seed=1, watch=functools.partial(WindowStop, 2, 3.0)))
    plain = pol.submit(GenRequest("B?", n=1, kind="sample", seed=1))
    got = _drain(pol)
    engine = pol.llm.llm_engine
    for c in got[watched]:  # stopped at token 3 (mean 1 < 3): 4 tokens, no more made
        assert (c.generated_tokens, c.finish_reason, c.token_confidence) == (4, "early_stop", (5.0, 5.0, 1.0, 1.0))
        assert c.text == "t0 t1 t2 t3 " and stop_position(c.token_confidence, 2, 3.0) == 3
    assert sorted(engine.aborted) == sorted(r for r in engine.added if r.startswith(f"tts-{watched}-"))
    assert [engine.made[r] for r in engine.aborted] == [4, 4]
    (c,) = got[plain]
    assert (c.generated_tokens, c.finish_reason) == (6, "stop")
    assert {str(k) for k in engine.kinds.values()} == {"RequestOutputKind.CUMULATIVE", "RequestOutputKind.FINAL_ONLY"}
    assert pol.usage.generated_tokens == 4 + 4 + 6 and pol.pending() == 0


def test_vllm_watch_at_the_last_token_is_the_samples_own_end(vllm_installed):
    import functools

    from search.confidence import WindowStop

    pol = _streaming_policy([5.0, 5.0, 1.0], seed=None)  # window-2 mean 3 < 3.5 only at the last token
    t = pol.submit(GenRequest("A?", n=3, kind="sample", watch=functools.partial(WindowStop, 2, 3.5)))
    got = _drain(pol)
    assert [(c.generated_tokens, c.finish_reason) for c in got[t]] == [(3, "stop")] * 3
    engine = pol.llm.llm_engine
    assert len(engine.added) == 3 and not engine.aborted  # unseeded, still one engine request per sample


def test_cut_completion_keeps_the_tokens_up_to_the_stop():
    from policies.vllm_policy import cut_completion

    c = Completion(text="ab c", generated_tokens=3, prompt_tokens=5, cached_tokens=0, finish_reason="length",
                   cumulative_logprob=-6.0, token_logprobs=(-1.0, -2.0, -3.0), token_confidence=(1.0, 2.0, 3.0),
                   token_text=("a", "b", " c"))
    cut = cut_completion(c, 2)
    assert (cut.text, cut.generated_tokens, cut.cumulative_logprob, cut.finish_reason) == ("ab", 2, -3.0, "early_stop")
    assert cut.token_confidence == (1.0, 2.0) and cut.prompt_tokens == 5
    assert cut_completion(c, 3).text == "ab c"
