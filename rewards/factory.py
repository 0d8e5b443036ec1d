"""``load_scorer(kind, model=None, **options)``: the one way to build a scorer.

Kinds: ``prm``, ``orm``, ``tinyrm``, ``verifier`` (oracle from gold answers) and
``none`` (constant). ``model=None`` loads the project's trained default from
``rewards/defaults/{prm,orm,tinyrm}/`` when it holds weights, and otherwise the
untrained backbone with a fresh head, with a warning (``scorer.trained`` is False).
Trained scorer directories (the defaults, or what ``cli.py train`` writes) are described
in ``rewards.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path

from .base import NoneScorer, Scorer
from .checkpoint import (
    DEFAULTS_DIR,
    VALUE_HEAD_FILE,
    backbone_path,
    has_peft,
    is_trained,
    load_card,
    read_head,
    recommended_agg,
    seeded_init,
    warn_untrained,
)
from .kinds import MODEL_KINDS, SCORER_KINDS

__all__ = ["SCORER_KINDS", "load_scorer"]


def load_scorer(kind: str, model: str | None = None, **options) -> Scorer:
    """Build a scorer.

    kind: one of ``SCORER_KINDS``.
    model: checkpoint directory, hub id (local cache only) or "smollm2-135m"; a
        directory with a ``card.json`` is a trained scorer. None: the default.

    Options (keyword-only, by kind):
      prm/orm: ``adapter`` (shipped name, JSON path or AdapterConfig; default: matched by
        the model's hub id, else the kind's ``adapter`` in ``rewards.kinds``), ``peft`` (peft adapter directory),
        ``device`` ("cpu"), ``dtype`` ("float32"), ``backend`` ("transformers" or "vllm"),
        ``token_budget`` (8192), ``max_batch_size`` (64), ``cache_size``,
        ``kv_cache_tokens`` (8192; 0 disables the KV prefix cache), ``max_length`` (the
        longest candidate in tokens; default the adapter's, bounded by the model's positions).
        backend "vllm": ``device`` ("auto"; "cpu" or "gpu"/"cuda" pick the engine
        defaults), ``dtype`` ("auto": the checkpoint's), ``cache_size`` and the fields of
        ``policies.config.EngineConfig`` (``kv_cache_gib``, ``max_model_len``, ...); see
        ``rewards.vllm_backend``.
      tinyrm: see ``rewards.tinyrm.TinyRMScorer`` (``prefix``, ``tournament``, ``rounds``,
        ``peft``, ``device``, ``token_budget``, ``max_length``).
      probe: ``token_budget`` (8192), ``dtype`` (bfloat16; float32 on a CPU without hardware bfloat16), ``prompt_style`` (the policy's
        dataset prompt; default the card's), ``kv_cache_tokens`` (2**18; 0 disables the
        prefix cache); `model` is a probe directory
        (default: the shipped one, see ``rewards.probe``).
      verifier: ``max_workers``. none: ``value`` (0.5).
    """
    if kind not in SCORER_KINDS:
        raise ValueError(f"unknown scorer kind {kind!r}; valid: {', '.join(SCORER_KINDS)}")
    scorer = _build(kind, model, **options)
    # what `--agg auto` reads for this scorer (its card's validated aggregator), e.g. through a scorer server's /info
    scorer.recommended_agg = recommended_agg(kind, model) if kind in MODEL_KINDS else None
    return scorer


def _build(kind: str, model: str | None, **options) -> Scorer:
    if kind == "none":
        return NoneScorer(**options)
    if kind == "verifier":
        from .oracle import VerifierScorer

        return VerifierScorer(**options)
    if kind == "probe":
        from .probe import ProbeScorer, default_probe

        return ProbeScorer(model or default_probe(), **options)
    if kind == "tinyrm":
        from .tinyrm import load_tinyrm

        return load_tinyrm(model, **options)
    return _load_prm_orm(kind, model, **options)


def _load_prm_orm(
    kind: str,
    model: str | None,
    *,
    adapter=None,
    peft: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    backend: str = "transformers",
    max_length: int | None = None,
    **scorer_options,
) -> Scorer:
    from .adapters import load_adapter, match_adapter

    directory = None
    card = None
    if model is None:
        directory = DEFAULTS_DIR / kind
        card = load_card(directory)
    elif Path(str(model)).is_dir() and load_card(model) is not None:
        directory = Path(model)
        card = load_card(directory)
    if card is not None:
        if card.get("kind", kind) != kind:
            raise ValueError(f"{directory}: card.json says kind {card.get('kind')!r}, but {kind!r} was asked for")
        if adapter is None:
            adapter = card.get("adapter")
            if isinstance(adapter, dict):
                from .adapters import AdapterConfig

                adapter = AdapterConfig.from_dict(adapter, source=f"{directory}/card.json")
        if peft is None and has_peft(directory):
            peft = str(directory)
    if adapter is None:
        matched = match_adapter(model) if model is not None else None
        adapter = matched or SCORER_KINDS[kind].adapter
    cfg = load_adapter(adapter)
    if max_length is not None:  # the longest candidate scored (AdapterConfig checks it); the model's positions bound it
        import dataclasses

        cfg = dataclasses.replace(cfg, max_length=int(max_length))
    expect = "step" if kind == "prm" else "outcome"
    if cfg.granularity != expect:
        raise ValueError(
            f"adapter {cfg.name!r} has granularity {cfg.granularity!r}, but a {kind} needs {expect!r}; "
            f"pick a {kind} adapter"
        )
    backbone = (card or {}).get("base_model") if (model is None or card is not None) else model
    backbone = backbone or cfg.base_model
    if backbone is None:
        raise ValueError(f"no model given and adapter {cfg.name!r} names no base_model; pass model=...")
    path = backbone_path(backbone)
    if backend == "vllm":
        from .vllm_backend import VLLMScorer

        if peft:
            raise ValueError("backend 'vllm' does not load peft adapters here; merge the adapter first")
        if device is not None:  # engine defaults per device; torch-style "cuda:0" means GPU
            scorer_options["device"] = device if device in ("cpu", "auto") else "gpu"
        if dtype is not None:
            scorer_options["dtype"] = dtype
        return VLLMScorer(path, cfg, **scorer_options)
    if backend != "transformers":
        raise ValueError(f"backend must be 'transformers' or 'vllm', got {backend!r}")

    import torch
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    device = device or "cpu"
    dtype = dtype or "float32"
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dtype must name a torch dtype such as 'float32' or 'bfloat16', got {dtype!r}")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=cfg.trust_remote_code)
    fresh: list[str] = []
    with seeded_init():
        if cfg.model_class == "causal_lm":
            m, info = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype, local_files_only=True, output_loading_info=True
            )
        else:
            hf_cfg = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=cfg.trust_remote_code)
            if cfg.trust_remote_code and "AutoModel" in (getattr(hf_cfg, "auto_map", None) or {}):
                # e.g. Qwen2ForProcessRewardModel: the checkpoint brings its own head class
                m, info = AutoModel.from_pretrained(
                    path, dtype=torch_dtype, local_files_only=True, trust_remote_code=True, output_loading_info=True
                )
            else:
                m, info = AutoModelForTokenClassification.from_pretrained(
                    path, num_labels=cfg.num_labels, dtype=torch_dtype, local_files_only=True,
                    output_loading_info=True,
                )
        fresh += list(info.get("missing_keys", []))
        value_head = None
        if cfg.readout == "value_head":
            value_head = torch.nn.Linear(m.config.hidden_size, 1, dtype=torch_dtype)
            state = read_head(directory, VALUE_HEAD_FILE)
            if state is not None:
                value_head.load_state_dict(state)
            else:
                fresh.append("value_head")
    if peft:
        from peft import PeftModel

        m = PeftModel.from_pretrained(m, peft, local_files_only=True).merge_and_unload()
    m = m.to(device)
    if value_head is not None:
        value_head = value_head.to(device).eval()
    # a bare checkpoint passed by path is trained for an adapter that names no base model of
    # ours (e.g. math-shepherd); a label-token readout of ours on a bare LM is not
    trained = is_trained(fresh, peft=bool(peft), card=card,
                         bare_is_trained=model is not None and cfg.base_model is None)
    if not trained:
        warn_untrained(kind, cfg.name, backbone, fresh)
    from .hf import TransformersScorer

    return TransformersScorer(m, tok, cfg, value_head=value_head, trained=trained, **scorer_options)
