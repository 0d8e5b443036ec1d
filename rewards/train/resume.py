"""Resume checkpoints: the folder OUT/resume/ that lets an interrupted training run continue.

The trainer (``trainer.fit``) decides what goes in; this module knows the folder, writes it
atomically and says whether a saved run is the one being started again::

    OUT/resume/state.json              fingerprint (config, data, examples, schedule, trainable
                                       shapes), the loop's state (step, epoch, batch within the
                                       epoch, history, ...), early stopping, Python RNG state
    OUT/resume/trainable.safetensors   every trained tensor (adapter + heads), by name
    OUT/resume/optimizer.pt            optimiser and scheduler state dicts, torch RNG states
    OUT/resume/best/                   a copy of the best checkpoint at that moment (absent
                                       before the first held-out evaluation)

It is written into OUT/resume.tmp and renamed into place (the previous one is moved to
OUT/resume.old first and deleted after), so a kill at any moment leaves one whole resume
state. The data position is (epoch, batches done in it): an epoch's batches are rebuilt from
its seeded RNG, so skipping that many batches puts the loop where it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..checkpoint import CARD_FILE, copy_checkpoint
from .config import RESUME_FREE_FIELDS, TrainConfig

__all__ = ["RESUME_DIR", "fingerprint", "records_sha256", "mismatch", "write_resume", "read_resume",
           "remove_resume"]

RESUME_DIR = "resume"
STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"
TORCH_FILE = "optimizer.pt"
BEST_DIR = "best"


def records_sha256(records: list[dict]) -> str:
    """A hash of in-memory records (what a file's sha256 is for --data files)."""
    text = json.dumps(records, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(config: TrainConfig, data: list[dict], *, train_examples: int, heldout_batches: int,
                total_steps: int, trainable: dict[str, list[int]]) -> dict:
    """What must be equal for a saved run to continue: the config (less ``RESUME_FREE_FIELDS``),
    the data files' contents in order, the example counts, the schedule and the trained tensors."""
    cfg = {k: v for k, v in config.to_dict().items() if k not in RESUME_FREE_FIELDS}
    return {"config": cfg, "data": [[d.get("sha256"), d["rows"]] for d in data],
            "train_examples": train_examples, "heldout_batches": heldout_batches, "total_steps": total_steps,
            "trainable": trainable}


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _field_defaults() -> dict:
    from dataclasses import MISSING, fields

    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
            for f in fields(TrainConfig) if f.default is not MISSING and f.name not in RESUME_FREE_FIELDS}


def mismatch(saved: dict, now: dict) -> str | None:
    """What differs between a saved fingerprint and the current one, in one phrase; None if equal.
    A setting the saved run predates (a field added to TrainConfig since) counts as its default."""
    cfg_n = now["config"]
    cfg_s = {**_field_defaults(), **saved.get("config", {})}
    diffs = [f"{k.replace('_', '-')} {_short(cfg_s.get(k))} -> {_short(cfg_n.get(k))}"
             for k in sorted(set(cfg_s) | set(cfg_n)) if cfg_s.get(k) != cfg_n.get(k)]
    if diffs:
        more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        return "the settings differ (" + ", ".join(diffs[:3]) + more + ")"
    if saved.get("data") != now["data"]:
        s_rows, n_rows = sum(r for _, r in saved.get("data", [])), sum(r for _, r in now["data"])
        return (f"the --data differs (saved: {len(saved.get('data', []))} sources, {s_rows} rows; now: "
                f"{len(now['data'])} sources, {n_rows} rows, compared by sha256 in order)")
    for key, what in (("train_examples", "training examples"), ("heldout_batches", "held-out batches"),
                      ("total_steps", "scheduled steps")):
        if saved.get(key) != now[key]:
            return f"the {what} differ ({saved.get(key)} -> {now[key]}; a changed backbone or tokenizer?)"
    if saved.get("trainable") != now["trainable"]:
        return "the trained tensors differ in names or shapes (a changed backbone?)"
    return None


def _swap(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def write_resume(out: str | Path, *, weights: dict, torch_state: dict, meta: dict, best: bool) -> Path:
    """Write OUT/resume/ atomically. weights: name -> tensor; torch_state: what ``torch.save``
    keeps (optimiser, scheduler, RNG tensors); meta: JSON (fingerprint, loop state); best:
    copy OUT's current checkpoint into resume/best/."""
    import torch
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out / (RESUME_DIR + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().clone().contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS_FILE))
    torch.save(torch_state, tmp / TORCH_FILE)
    if best and (out / CARD_FILE).is_file():
        copy_checkpoint(out, tmp / BEST_DIR)
    (tmp / STATE_FILE).write_text(json.dumps(meta, indent=1))
    _swap(tmp, out / RESUME_DIR)
    return out / RESUME_DIR


def read_resume(out: str | Path, *, map_location=None) -> tuple[dict, dict, dict, Path | None] | None:
    """(meta, weights, torch_state, best checkpoint folder or None) of OUT/resume/; None when
    there is none. A swap cut short by a kill is finished first (resume.old becomes resume)."""
    import torch
    from safetensors.torch import load_file

    out = Path(out)
    final, old = out / RESUME_DIR, out / (RESUME_DIR + ".old")
    if not final.exists() and old.exists():
        old.rename(final)
    if not (final / STATE_FILE).is_file():
        return None
    meta = json.loads((final / STATE_FILE).read_text())
    weights = load_file(str(final / WEIGHTS_FILE))
    torch_state = torch.load(final / TORCH_FILE, map_location=map_location, weights_only=True)
    best = final / BEST_DIR
    return meta, weights, torch_state, best if (best / CARD_FILE).is_file() else None


def remove_resume(out: str | Path) -> None:
    """Delete OUT/resume/ (a finished run needs none) and any leftovers of a cut-short write."""
    for name in (RESUME_DIR, RESUME_DIR + ".tmp", RESUME_DIR + ".old"):
        p = Path(out) / name
        if p.exists():
            shutil.rmtree(p)
