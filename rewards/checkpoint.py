"""Trained scorer directories: the one module that knows their files and their card.

The loaders (``rewards.factory``, ``rewards.tinyrm``) read these directories and the
trainers (``rewards.train``) write them; both go through this module, which imports
neither of them. A trained scorer directory holds::

    card.json                      {"kind", "adapter" (PRM/ORM format name or inline dict),
                                    "base_model", "trained", "training": {...}, "metrics": {...}}
                                   TinyRM cards may also set "prefix" and "choice_tokens"
    adapter_config.json + adapter_model.safetensors   peft weights (optional)
    value_head.safetensors         ORM value head (readout "value_head")
    head.safetensors               TinyRM MLM head weights when not inside the peft adapter

Anything else in the directory (a trainer's ``train.log`` and ``resume/`` folder) is not
part of the checkpoint and survives when a new checkpoint is written over it.

``rewards/defaults/{prm,orm,tinyrm}/`` are such directories: what ``load_scorer(kind)``
loads when no model is given. Probe directories (``rewards.probe``) hold ``probe.json``
instead of ``card.json``. Either card may carry ``recommended_agg`` (the aggregator chosen
for the scorer on validation data, ``eval.recommend_agg``), which ``--agg auto`` reads
(``recommended_agg``). Importing this module imports no torch.
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

from policies.paths import write_json

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULTS_DIR",
    "CARD_FILE",
    "CHECKPOINT_FILES",
    "VALUE_HEAD_FILE",
    "TINYRM_HEAD_FILE",
    "DEFAULT_ENCODER",
    "INIT_SEED",
    "load_card",
    "has_peft",
    "read_head",
    "new_card",
    "save_checkpoint",
    "copy_checkpoint",
    "settle",
    "write_card",
    "PROBE_CARD_FILE",
    "scorer_card_path",
    "recommended_agg",
    "resolve_agg",
    "set_recommended_agg",
    "weights_sha256",
    "backbone_path",
    "encoder_path",
    "seeded_init",
    "is_trained",
    "warn_untrained",
]

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
CARD_FILE = "card.json"
PROBE_CARD_FILE = "probe.json"
AUTO_AGG = "auto"
"""The aggregator name that asks for the scorer card's ``recommended_agg``."""
FALLBACK_AGG = "min"
"""What ``auto`` gives for a scorer whose card recommends nothing."""
PEFT_CONFIG_FILE = "adapter_config.json"
VALUE_HEAD_FILE = "value_head.safetensors"
TINYRM_HEAD_FILE = "head.safetensors"
DEFAULT_ENCODER = "all-minilm-l6-v2"
INIT_SEED = 0
"""Fresh heads are initialised from this seed, so untrained scores are reproducible."""
CHECKPOINT_FILES = (CARD_FILE, PEFT_CONFIG_FILE, "adapter_model.safetensors", "adapter_model.bin", "README.md",
                    VALUE_HEAD_FILE, TINYRM_HEAD_FILE)
"""The files that make a checkpoint (peft's ``save_pretrained`` also writes README.md)."""


# ------------------------------------------------------------------------- reading
def load_card(directory: str | Path | None) -> dict | None:
    """The directory's card.json as a dict; None when there is none (or no directory)."""
    if directory is None:
        return None
    p = Path(directory) / CARD_FILE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: invalid JSON ({e}); fix or delete the file") from None


def has_peft(directory: str | Path | None) -> bool:
    """True when the directory holds a peft adapter (adapter_config.json)."""
    return directory is not None and (Path(directory) / PEFT_CONFIG_FILE).is_file()


def read_head(directory: str | Path | None, filename: str) -> dict | None:
    """A head's tensors (name -> tensor) from ``directory/filename``; None when absent."""
    if directory is None:
        return None
    p = Path(directory) / filename
    if not p.is_file():
        return None
    from safetensors.torch import load_file

    return load_file(str(p))


# ------------------------------------------------------------------------- writing
def new_card(kind: str, base_model: str, *, scorer: dict, training: dict, metrics: dict) -> dict:
    """A trained scorer's card, keys in the order a reader meets them.

    scorer: what the loader reads besides kind and base_model ("adapter" for PRM/ORM;
    "prefix", "choice_tokens", "max_length" for TinyRM); training: how it was made
    (command, config, data, split, ...); metrics: held-out results.
    """
    return {"kind": kind, "base_model": base_model, "trained": True, **scorer, "training": training,
            "metrics": metrics}


def save_checkpoint(out: str | Path, model, heads: dict[str, dict], card: dict) -> Path:
    """Write a trained scorer directory: peft adapter, head files, card.json.

    model: a peft model (``save_pretrained`` writes the adapter); heads: file name ->
    state dict (e.g. ``{VALUE_HEAD_FILE: ...}``). Written into ``OUT.tmp`` first, then
    renamed over ``out``, so a reader never sees a half-written checkpoint; entries of
    ``out`` that are not checkpoint files (``train.log``, ``resume/``) are moved into the
    new directory.
    """
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    for filename, state in heads.items():
        # cloned and contiguous: safetensors refuses tensors that share memory (tied weights)
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state.items()}, str(tmp / filename))
    write_card(tmp, card)
    _swap_in(tmp, out)
    return out


def settle(out: str | Path) -> None:
    """Finish a checkpoint swap that a killed process left half done (``OUT.old`` beside ``out``)."""
    out = Path(out)
    old = out.with_name(out.name + ".old")
    if not old.exists():
        return
    if not out.exists():  # killed between the two renames: the old checkpoint is the current one
        old.rename(out)
        return
    for entry in old.iterdir():  # killed while moving the other entries across
        if entry.name not in CHECKPOINT_FILES and not (out / entry.name).exists():
            entry.rename(out / entry.name)
    shutil.rmtree(old)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` over ``out``; ``out``'s entries that are not checkpoint files move across
    (renamed, so an open log file keeps being written)."""
    settle(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        tmp.rename(out)
        return
    old = out.with_name(out.name + ".old")
    out.rename(old)
    tmp.rename(out)
    settle(out)


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` hold the checkpoint files of ``src`` (and only those; ``dst``'s other
    entries stay), through a temporary copy renamed into place like ``save_checkpoint``."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    _swap_in(tmp, dst)


def write_card(directory: str | Path, card: dict) -> None:
    """Write (or rewrite) ``directory/card.json``."""
    write_json(Path(directory) / CARD_FILE, card)


# -------------------------------------------------------------- recommended aggregator
def scorer_card_path(kind: str, model: str | Path | None = None) -> Path | None:
    """The card file of the scorer ``load_scorer(kind, model)`` builds: the directory's
    card.json or probe.json (``model`` None: the kind's shipped default); None when the
    scorer has no card (a hub backbone, the verifier, ``none``)."""
    if model is None:
        if kind not in ("prm", "orm", "tinyrm", "probe"):
            return None
        directory = DEFAULTS_DIR / kind
    else:
        directory = Path(model)
    for name in (CARD_FILE, PROBE_CARD_FILE):
        if (directory / name).is_file():
            return directory / name
    return None


def recommended_agg(kind: str, model: str | Path | None = None) -> str | None:
    """The aggregator the scorer's card recommends (``recommended_agg.name``); None when
    it has no card or the card names none."""
    path = scorer_card_path(kind, model)
    if path is None:
        return None
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e}); fix or delete the file") from None
    name = (card.get("recommended_agg") or {}).get("name")
    return str(name) if name else None


def resolve_agg(agg: str, kind: str | None, model: str | Path | None = None) -> str:
    """``agg`` itself, or for ``auto`` the scorer card's recommended aggregator
    (``FALLBACK_AGG`` when it names none)."""
    if agg != AUTO_AGG:
        return agg
    return recommended_agg(kind or "none", model) or FALLBACK_AGG


WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", VALUE_HEAD_FILE, TINYRM_HEAD_FILE, "head.npz")
"""The files whose bytes make a scorer directory's scores (peft weights, heads, a probe's head)."""


def weights_sha256(directory: str | Path | None) -> str | None:
    """One sha256 over the directory's weight files (names and bytes, in `WEIGHT_FILES`
    order): what tells two scorer directories, or one directory before and after a new
    default was copied in, apart. None when it holds none."""
    import hashlib

    if directory is None:
        return None
    h, found = hashlib.sha256(), False
    for name in WEIGHT_FILES:
        p = Path(directory) / name
        if p.is_file():
            found = True
            h.update(name.encode() + b"\0")
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest() if found else None


def set_recommended_agg(card_path: str | Path, entry: dict) -> None:
    """Write ``entry`` ({"name", ...the evidence}) as the card's ``recommended_agg``; the
    rest of the card is kept as it is."""
    p = Path(card_path)
    card = json.loads(p.read_text())
    card["recommended_agg"] = entry
    write_json(p, card)


# ------------------------------------------------------------------------ backbones
def backbone_path(model: str | None) -> str:
    """A causal backbone name or path as a local checkpoint path (``policies.models.resolve_model``)."""
    from policies.models import resolve_model

    return resolve_model(model, what="scorer model")


def encoder_path(model: str | None) -> str:
    """An MLM encoder path; None or "all-minilm-l6-v2" is the embedded all-MiniLM-L6-v2."""
    if model is None or model == DEFAULT_ENCODER:
        from policies.models import embedded_encoder_path

        return str(embedded_encoder_path())
    return str(model)


@contextmanager
def seeded_init(seed: int = INIT_SEED):
    """Fresh weights created inside are seeded; the global torch RNG is left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------ trained or not
def is_trained(fresh: list[str], *, peft: bool, card: dict | None, bare_is_trained: bool) -> bool:
    """Whether a loaded scorer is trained for its task.

    fresh: weights initialised at load time (never trained: always untrained). Otherwise
    trained when a peft adapter was applied, the card says ``trained``, or there is no
    card and the caller's bare checkpoint counts as trained (``bare_is_trained``: a model
    passed by path whose format needs no head of ours).
    """
    if fresh:
        return False
    return bool(peft) or bool((card or {}).get("trained", False)) or (card is None and bare_is_trained)


def warn_untrained(kind: str, name: str, backbone: str, fresh: list[str]) -> None:
    """The one warning for an untrained scorer; it contains "UNTRAINED" and names the fix."""
    why = f"freshly initialised: {fresh[:4]}" if fresh else "no trained adapter or trained card"
    log.warning(
        "%s scorer %r on %s is UNTRAINED (%s); its scores are not meaningful until trained "
        "(python cli.py train %s --data ... --out DIR, then load DIR)", kind, name, backbone, why, kind,
    )
