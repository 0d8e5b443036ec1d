"""Scorer cost: forward FLOPs per scored token and per candidate (the "accuracy per FLOP" axis).

A transformer's forward pass costs about 2 x (the parameters a token passes through) FLOPs
per token (one multiply and one add per weight; attention's own quadratic term is left
out, as in Kaplan et al. 2020). Embedding lookups are no multiplication and are not
counted; a head applied once per sequence (a value head at the last tag, TinyRM's MLM
head at the mask, a probe's logistic head) is negligible beside the tokens and is not
counted either. What each kind runs per token:

- PRM / ORM (``rewards.hf``): every decoder layer (no LM head: PRM reads two of its rows,
  the ORM a value head, at the tags only);
- TinyRM: every encoder layer, over each ordered pair it judges (a candidate takes part
  in several pairs: the tokens counted are those of all its pairs);
- probe: the policy's decoder layers up to the one read (the pass stops there).

    flops_per_candidate(flops_per_token=2 * forward_params, tokens=scored_tokens, candidates=n)

Pure except ``forward_params`` (a torch module) and ``decoder_params_upto`` (a model's
config, built on the meta device: no weights are read).
"""

from __future__ import annotations

__all__ = ["forward_params", "flops_per_token", "flops_per_candidate", "decoder_params_upto"]


def forward_params(module, *, layers=None) -> int:
    """Parameters a token passes through in ``module`` (a torch module): every parameter
    except those of embedding tables, each shared tensor once. layers: count only these
    blocks (e.g. ``model.layers[:16]``) instead of the whole module."""
    import torch

    parts = list(layers) if layers is not None else [module]
    seen: set[int] = set()
    n = 0
    for part in parts:
        for mod in part.modules():
            if isinstance(mod, torch.nn.Embedding):
                seen.update(id(p) for p in mod.parameters(recurse=False))
                continue
            for p in mod.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
    return n


def flops_per_token(params: int) -> int:
    """Forward FLOPs per token through ``params`` parameters: 2 x params."""
    if params < 0:
        raise ValueError(f"params must be >= 0, got {params}")
    return 2 * int(params)


def flops_per_candidate(*, flops_per_token: float, tokens: float, candidates: int) -> float:
    """Mean forward FLOPs per candidate: ``tokens`` scored in all (prompt and solution, every
    pair for TinyRM) x FLOPs per token / ``candidates``."""
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    if tokens < 0 or flops_per_token < 0:
        raise ValueError(f"tokens and flops_per_token must be >= 0, got {tokens}, {flops_per_token}")
    return float(flops_per_token) * float(tokens) / candidates


def decoder_params_upto(model: str, layer: int | None = None) -> int:
    """``forward_params`` of a causal LM's first ``layer`` decoder layers (all with None),
    from its config alone: the model is built on the meta device, no weights are loaded.

    model: a ``--model`` value (``policies.models.resolve_model``: an embedded name, a
    checkpoint directory, a .gguf or a hub id in the local cache)."""
    import torch
    from transformers import AutoConfig, AutoModel

    from policies.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model, "scorer backbone"), local_files_only=True)
    with torch.device("meta"):
        m = AutoModel.from_config(config)
    blocks = getattr(m, "layers", None)
    if blocks is None:
        raise ValueError(f"{model}: no decoder layer list (.layers); cannot count its layers")
    if layer is not None and not 1 <= layer <= len(blocks):
        raise ValueError(f"layer {layer} out of range: {model} has decoder layers 1..{len(blocks)}")
    return forward_params(m, layers=blocks[:layer] if layer is not None else None)
