"""The training loop shared by the PRM, ORM and TinyRM trainers: prepare, fit, save.

    from rewards.train import TrainConfig, train
    train(TrainConfig(kind="orm", max_seconds=1800), ["data/outcome.jsonl"], "runs/orm")

``train`` is the three phases in a row; each is a function of its own:

- ``prepare(config, data)`` -> ``Run``: read records -> the task keeps its kind (steps /
  outcome / pairs) -> problem-level split (train / held-out never share a problem;
  checked) -> backbone + peft LoRA/DoRA on the selected linear layers (none in the first
  ``freeze_layers`` layers) + fully trained heads -> AdamW with transformers' linear
  schedule (warmup, then linear decay to 0).
- ``fit(run, out)`` -> ``FitState``: held-out evaluation before training (the untrained
  baseline), every ``eval_every`` steps and at each epoch end; gradient clipping; each new
  best held-out loss writes its checkpoint to ``out``; ``patience`` evaluations without
  one stop early (``EarlyStopping``). Every ``save_every_steps`` / ``save_every_seconds``,
  and when ``max_seconds`` stops it, a resume checkpoint goes to ``out/resume/``
  (``resume.py``); when ``out/resume/`` holds the same run (settings, data), ``fit``
  continues from it, and the result equals an uninterrupted run's.
- ``save(run, state, out)`` -> the card: the kept checkpoint's card gets the whole history,
  why training ended, throughput (training examples per second of loop time), the budget
  and the resumes (with no held-out split, the last weights are kept).

A checkpoint (written through ``rewards.checkpoint.save_checkpoint``)::

    out/adapter_config.json, adapter_model.safetensors   peft adapter
    out/value_head.safetensors                           ORM value head
    out/head.safetensors                                 TinyRM MLM head (trained parts)
    out/card.json                                        what ``load_scorer`` reads, plus data,
                                                         config, metrics, command, versions
    out/resume/                                          while unfinished: the resume checkpoint
    out/train.lock                                       held while a process trains into ``out``
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import random
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..checkpoint import (
    copy_checkpoint,
    load_card,
    new_card,
    save_checkpoint,
    seeded_init,
    settle,
    write_card,
)
from .build import outcome_from_pool
from .config import TrainConfig
from .data import check_record, read_jsonl, record_key, split_by_problem
from .resume import (
    RESUME_DIR,
    fingerprint,
    mismatch,
    read_resume,
    records_sha256,
    remove_resume,
    write_resume,
)
from .tasks import TASKS, collate

log = logging.getLogger(__name__)

__all__ = [
    "train",
    "prepare",
    "fit",
    "save",
    "Run",
    "FitState",
    "EarlyStopping",
    "select_target_modules",
    "add_adapter",
    "make_scheduler",
    "training_lock",
]

_LAYER_INDEX = re.compile(r"\.(\d+)\.")
_HEADS = ("lm_head", "cls.", "head.", "decoder", "score", "classifier", "pooler")


# ------------------------------------------------------------------------ adapters
def select_target_modules(model, target_modules: str, freeze_layers: int) -> list[str]:
    """Full names of the linear layers that get an adapter (pure over the module tree).

    Only linear layers inside numbered transformer layers are eligible (never heads or
    embeddings); "all-linear" takes all of them, else the comma-separated name suffixes
    given; layers with index < freeze_layers are skipped.
    """
    import torch

    suffixes = None if target_modules == "all-linear" else {s.strip() for s in target_modules.split(",") if s.strip()}
    names, layers = [], set()
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear) or any(h in name for h in _HEADS):
            continue
        m = _LAYER_INDEX.search(name)
        if m is None:
            continue
        layers.add(int(m.group(1)))
        if suffixes is not None and name.rsplit(".", 1)[-1] not in suffixes:
            continue
        if int(m.group(1)) < freeze_layers:
            continue
        names.append(name)
    if not names:
        raise ValueError(
            f"no linear layer matches target_modules={target_modules!r} with freeze_layers={freeze_layers} "
            f"(the model has {len(layers)} numbered layers); pass names such as q_proj,v_proj or query,value, "
            "or freeze fewer layers"
        )
    return names


def add_adapter(model, config: TrainConfig):
    """Wrap the model with a fresh peft LoRA / DoRA adapter (seeded)."""
    from peft import LoraConfig, get_peft_model

    targets = select_target_modules(model, config.target_modules, config.freeze_layers)
    lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, use_dora=config.peft == "dora", bias="none")
    with seeded_init(config.seed):
        return get_peft_model(model, lcfg)


def make_scheduler(optimizer, config: TrainConfig, total_steps: int):
    """transformers' linear schedule: ``warmup_ratio`` of the steps from 0 up to the peak
    learning rate, then linear decay to 0 at ``total_steps``."""
    from transformers import get_scheduler

    return get_scheduler("linear", optimizer, num_warmup_steps=int(config.warmup_ratio * total_steps),
                         num_training_steps=total_steps)


# -------------------------------------------------------------------------- prepare
@dataclass(kw_only=True)
class Run:
    """What ``prepare`` builds and ``fit`` / ``save`` use: the model, its optimiser and the data."""

    config: TrainConfig
    task: object
    """The kind's task (``tasks.TASKS``): features, loss, held-out metrics, heads, probe."""
    model: object
    """The peft-wrapped backbone, on ``device``."""
    device: object
    """The torch device of ``config.device``."""
    trainable: list
    """Every trained parameter: adapter weights, then fully trained head weights."""
    trainable_names: list[str]
    """Their names (resume checkpoints are keyed by them)."""
    optimizer: object
    scheduler: object
    train_examples: list[dict]
    eval_batches: list[dict]
    """The held-out split, collated and on the device (empty: no held-out problems)."""
    probe_records: list[dict]
    """Two records whose training-time scores go into the card (``reload_check``)."""
    batches_per_epoch: int
    total_micro: int
    """Forward/backward passes the epochs allow."""
    total_steps: int
    """Optimiser steps the schedule is laid out over."""
    card_training: dict
    """Data files, split sizes and trainable parameters: the same in every card of the run."""
    fingerprint: dict
    """What a resume checkpoint must match to continue this run (``resume.fingerprint``)."""
    command: str | None = None
    started: float = field(default_factory=time.monotonic)


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_data_file(p: Path) -> tuple[list[dict], dict]:
    """(records, card entry) of one data file: training records, or a sample pool
    (``cli.py pool``; its graded samples become outcome records, held-out problems dropped)."""
    from policies.pool import is_pool, read_pool

    if p.is_file() and is_pool(p):
        rows, summary = outcome_from_pool(read_pool(p))
        if not rows:
            raise ValueError(f"{p}: the pool gives no training record ({summary}); train on a pool of "
                             "training problems with graded samples")
        return rows, {"path": str(p), "sha256": _file_sha256(p), "rows": len(rows), "format": "pool", **summary}
    rows = [r for r in read_jsonl(p) if r.get("kind") != "skipped"]
    for i, r in enumerate(rows):
        check_record(r, i)
    return rows, {"path": str(p), "sha256": _file_sha256(p), "rows": len(rows)}


def _load_records(data) -> tuple[list[dict], list[dict]]:
    records, info = [], []
    for item in data:
        if isinstance(item, dict):
            records.append(item)
            continue
        rows, entry = _read_data_file(Path(item))
        records += rows
        info.append(entry)
    in_memory = [x for x in data if isinstance(x, dict)]
    if in_memory:
        info.append({"path": "<in-memory>", "sha256": records_sha256(in_memory), "rows": len(in_memory)})
    return records, info


def _split(recs: list[dict], config: TrainConfig) -> tuple[list[dict], list[dict], dict]:
    """Train and held-out records (no shared problem; seeded caps applied) and the split's card entry."""
    train_recs, held_recs = split_by_problem(recs, config.heldout_fraction, seed=config.split_seed)
    train_keys = {record_key(r) for r in train_recs}
    held_keys = {record_key(r) for r in held_recs}
    assert not train_keys & held_keys, "train and held-out splits share a problem"
    if config.max_train_examples is not None and len(train_recs) > config.max_train_examples:
        train_recs = random.Random(config.seed).sample(train_recs, config.max_train_examples)
    if config.max_eval_examples is not None and len(held_recs) > config.max_eval_examples:
        held_recs = random.Random(config.split_seed).sample(held_recs, config.max_eval_examples)
    if not train_recs:
        raise ValueError("no training records after the split; add data or lower heldout_fraction")
    split = {"by": "problem (hash of normalised text)", "heldout_fraction": config.heldout_fraction,
             "seed": config.split_seed, "train_problems": len(train_keys), "heldout_problems": len(held_keys)}
    return train_recs, held_recs, split


def _features(task, recs: list[dict], config: TrainConfig) -> tuple[list[dict], int]:
    out, dropped = [], 0
    for r in recs:
        exs = task.features_pair(r) if task.kind == "tinyrm" else [task.features(r)]
        for e in exs:
            if len(e["input_ids"]) > config.max_length:
                dropped += 1
                continue
            out.append(e)
    return out, dropped


def _optimizer(config: TrainConfig, adapter_params: list, head_params: list):
    """AdamW: adapter weights at ``lr``, fully trained heads at ``head_lr``."""
    import torch

    groups = [{"params": adapter_params, "lr": config.lr}]
    if head_params:
        groups.append({"params": head_params, "lr": config.head_lr})
    return torch.optim.AdamW(groups, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)


def _schedule_lengths(config: TrainConfig, n_examples: int) -> tuple[int, int, int]:
    """(batches per epoch, forward/backward passes in all epochs, optimiser steps)."""
    per_epoch = math.ceil(n_examples / config.batch_size)
    total_micro = math.ceil(per_epoch * config.epochs)
    total = math.ceil(total_micro / config.grad_accum)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    return per_epoch, total_micro, total


def load_init(model, task, config: TrainConfig) -> dict:
    """Start the run from ``config.init``: its adapter weights into the peft ``model`` (built
    with this run's settings, so every tensor must match) and, where this run's task has a head
    of the same file, that head. Returns the card's ``training.init`` entry. Any mismatch is one
    ValueError naming the setting to pass."""
    import json

    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from ..checkpoint import PEFT_CONFIG_FILE, VALUE_HEAD_FILE, read_head

    d = Path(config.init)
    card = load_card(d) if d.is_dir() else None
    weights = d / "adapter_model.safetensors"
    if card is None or not (d / PEFT_CONFIG_FILE).is_file() or not weights.is_file():
        raise ValueError(f"--init {d}: not a trained PRM/ORM directory (card.json, {PEFT_CONFIG_FILE} and "
                         "adapter_model.safetensors); pass one written by `cli.py train prm|orm` or a shipped default")
    if card.get("base_model") != config.backbone:
        raise ValueError(f"--init {d}: trained on {card.get('base_model')!r}, this run trains {config.backbone!r}; "
                         f"pass --model {card.get('base_model')}")
    saved = json.loads((d / PEFT_CONFIG_FILE).read_text())
    for key, now, flag in (("r", config.lora_r, "--lora-r"), ("lora_alpha", config.lora_alpha, "--lora-alpha"),
                           ("use_dora", config.peft == "dora", "--peft")):
        if saved.get(key) != now:
            raise ValueError(f"--init {d}: its adapter has {key} {saved.get(key)!r}, this run {now!r}; "
                             f"pass the {flag} it was trained with")
    res = set_peft_model_state_dict(model, load_file(str(weights)))
    missing = [k for k in res.missing_keys if "lora_" in k]
    if missing or res.unexpected_keys:
        raise ValueError(f"--init {d}: its adapter covers other layers than this run's ({len(missing)} of this "
                         f"run's adapter tensors missing from it, {len(res.unexpected_keys)} not in this run); "
                         "pass the --freeze-layers and --target-modules it was trained with")
    heads = []
    state = read_head(d, VALUE_HEAD_FILE) if "value_head" in task.heads else None
    if state is not None:
        if task.shift:  # a saved head reads out P(correct); this run's head carries the shift
            state = {**state, "bias": state["bias"] + task.shift}
        task.heads["value_head"].load_state_dict(state)
        heads.append("value_head")
    return {"path": str(d), "kind": card.get("kind"), "adapter_sha256": _file_sha256(weights), "heads": heads}


def _load_model(task, config: TrainConfig):
    """(the backbone with a peft adapter, fresh or from ``config.init``, head parameters
    trained fully, device, the card's init entry or None), seeded."""
    import torch

    torch.manual_seed(config.seed)
    model = add_adapter(task.load(), config)
    init = load_init(model, task, config) if config.init is not None else None
    heads = task.head_parameters(model)
    for p in heads.values():
        p.requires_grad_(True)
    device = torch.device(config.device)
    model.to(device)
    for m in task.heads.values():
        m.to(device)
    return model, heads, device, init


def prepare(config: TrainConfig, data, *, command: str | None = None) -> Run:
    """Records -> split -> model with adapter and heads -> examples, optimiser and schedule.

    data: JSONL paths (or record dicts, for tests). command: the command line, for the card.
    """
    import torch

    started = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    records, data_info = _load_records(data)
    task = TASKS[config.kind](config)
    train_recs, held_recs, split = _split(task.records(records), config)
    split.update(task.observe(train_recs))
    model, heads, device, init = _load_model(task, config)
    train_ex, dropped_train = _features(task, train_recs, config)
    held_ex, dropped_held = _features(task, held_recs, config)
    if dropped_train or dropped_held:
        log.warning("dropped %d train / %d held-out examples over max_length=%d tokens",
                    dropped_train, dropped_held, config.max_length)
    if not train_ex:
        raise ValueError(f"every training example is longer than max_length={config.max_length}; raise it")

    adapter_named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    adapter_params = [p for _, p in adapter_named]
    optimizer = _optimizer(config, adapter_params, list(heads.values()))
    per_epoch, total_micro, total = _schedule_lengths(config, len(train_ex))
    eval_size = 2 * config.batch_size
    eval_batches = [{k: v.to(device) for k, v in collate(held_ex[i: i + eval_size], task.pad_id).items()}
                    for i in range(0, len(held_ex), eval_size)]
    n_trainable = sum(p.numel() for p in adapter_params) + sum(p.numel() for p in heads.values())
    log.info("%s: %d train / %d held-out examples (%d / %d problems), %d trainable parameters, %d steps",
             config.kind, len(train_ex), len(held_ex), split["train_problems"], split["heldout_problems"],
             n_trainable, total)
    split.update(train_examples=len(train_ex), heldout_examples=len(held_ex),
                 dropped_over_max_length=dropped_train + dropped_held)
    names = [n for n, _ in adapter_named] + list(heads)
    trainable = adapter_params + list(heads.values())
    return Run(
        config=config, task=task, model=model, device=device, trainable=trainable, trainable_names=names,
        optimizer=optimizer, scheduler=make_scheduler(optimizer, config, total),
        train_examples=train_ex, eval_batches=eval_batches, probe_records=(held_recs or train_recs)[:2],
        batches_per_epoch=per_epoch, total_micro=total_micro, total_steps=total,
        card_training={"data": data_info, "split": split, "trainable_parameters": n_trainable,
                       **({"init": init} if init is not None else {})},
        fingerprint=fingerprint(config, data_info, train_examples=len(train_ex), heldout_batches=len(eval_batches),
                                total_steps=total,
                                trainable={n: list(p.shape) for n, p in zip(names, trainable, strict=True)}),
        command=command, started=started,
    )


# ------------------------------------------------------------------------------ fit
@dataclass
class EarlyStopping:
    """The best held-out loss so far and the evaluations since it improved."""

    patience: int | None
    """Stop after this many evaluations without improvement; None: never."""
    best_loss: float = math.inf
    best_step: int | None = None
    bad_evals: int = 0

    def update(self, loss: float, step: int) -> bool:
        """Record one held-out loss; True when it is a new best (keep this checkpoint)."""
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.bad_evals = loss, step, 0
            return True
        self.bad_evals += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience


@dataclass
class FitState:
    """Where the loop is, in plain numbers, and what it has recorded."""

    step: int = 0
    """Optimiser steps taken."""
    micro: int = 0
    """Forward/backward passes taken (``grad_accum`` of them per step)."""
    epoch: int = 0
    batch: int = 0
    """Batches of ``epoch`` done: with ``epoch``, the data position a resumed run restarts at."""
    examples: int = 0
    """Training examples forwarded (all epochs)."""
    run_loss: float = 0.0
    """Summed training loss since the last evaluation, over ``run_n`` labels."""
    run_n: int = 0
    stopped: str = "schedule"
    """Why training ended: "schedule", "early_stop" or "max_seconds"."""
    untrained: dict | None = None
    """Held-out metrics before training."""
    history: list[dict] = field(default_factory=list)
    card: dict | None = None
    """The card of the kept (best) checkpoint; None until one is written."""
    resumed: list[dict] = field(default_factory=list)
    """One entry per resume: the step, epoch and batch it continued from, and the date."""
    loop_started: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` minus the loop seconds of earlier sessions (see ``loop_seconds``)."""

    @property
    def loop_seconds(self) -> float:
        """Seconds in the training loop over all sessions, up to where each was resumed from
        (work redone after a resume is not counted twice)."""
        return time.monotonic() - self.loop_started

    def take_train_loss(self) -> float | None:
        """Mean training loss since the last call (None if no labels were seen); resets it."""
        loss = self.run_loss / self.run_n if self.run_n else None
        self.run_loss, self.run_n = 0.0, 0
        return loss

    def to_dict(self) -> dict:
        """Plain JSON data (``loop_started`` becomes ``loop_seconds``)."""
        d = asdict(self)
        del d["loop_started"]
        d["loop_seconds"] = self.loop_seconds
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FitState:
        d = dict(d)
        seconds = d.pop("loop_seconds")
        return cls(**d, loop_started=time.monotonic() - seconds)


@contextmanager
def _eval_mode(run: Run):
    """Model and heads in eval mode inside (no dropout), back in train mode after."""
    modules = [run.model, *run.task.heads.values()]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m in modules:
            m.train()


def evaluate(run: Run) -> dict | None:
    """The task's held-out metrics (``loss`` among them); None without a held-out split."""
    if not run.eval_batches:
        return None
    with _eval_mode(run):
        return run.task.evaluate(run.model, run.eval_batches)


def _eval_due(config: TrainConfig, step: int) -> bool:
    return bool(config.eval_every) and step % config.eval_every == 0


def _time_is_up(run: Run) -> bool:
    return run.config.max_seconds is not None and time.monotonic() - run.started >= run.config.max_seconds


def _accumulate(run: Run, state: FitState, batch: list[dict]) -> None:
    """Forward and backward one micro-batch; the loss is averaged per label and over ``grad_accum``."""
    tensors = {k: v.to(run.device) for k, v in collate(batch, run.task.pad_id).items()}
    loss_sum, n = run.task.loss(run.model, tensors)
    (loss_sum / max(1, n) / run.config.grad_accum).backward()
    state.run_loss += loss_sum.item()
    state.run_n += n
    state.micro += 1
    state.batch += 1
    state.examples += len(batch)


def _optimizer_step(run: Run, state: FitState) -> None:
    import torch

    if run.config.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.trainable, run.config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    state.step += 1


def _evaluate_and_keep_best(run: Run, state: FitState, stopper: EarlyStopping, out: Path,
                            train_loss: float | None) -> bool:
    """Evaluate, record it in the history, write the checkpoint on a new best; True = stop early."""
    metrics = evaluate(run)
    state.history.append({"step": state.step, "epoch": round(state.micro / run.batches_per_epoch, 3),
                          "train_loss": train_loss, **(metrics or {})})
    log.info("step %d: held-out %s", state.step, dict(metrics or {}))
    if metrics is None:
        return False
    if stopper.update(metrics["loss"], state.step):
        state.card = _write_checkpoint(run, state, out, metrics)
    return stopper.should_stop


def _train_batches(examples: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled, then length-bucketed within windows of 50 batches (less padding), batches shuffled."""
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    batches = []
    window = batch_size * 50
    for w in range(0, len(idx), window):
        part = sorted(idx[w: w + window], key=lambda i: len(examples[i]["input_ids"]))
        batches += [[examples[i] for i in part[j: j + batch_size]] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


# ------------------------------------------------------------------- resume checkpoints
@dataclass
class _ResumeSaver:
    """When the next resume checkpoint is due (``save_every_steps`` / ``save_every_seconds``)."""

    every_steps: int | None
    every_seconds: float | None
    last: float = field(default_factory=time.monotonic)
    saves: int = 0

    def due(self, step: int) -> bool:
        by_steps = self.every_steps is not None and step % self.every_steps == 0
        return by_steps or (self.every_seconds is not None and time.monotonic() - self.last >= self.every_seconds)


def _save_resume(run: Run, state: FitState, stopper: EarlyStopping, out: Path, saver: _ResumeSaver) -> None:
    """Everything a resumed run needs, at an optimiser-step boundary (no gradient pending)."""
    import torch

    rng = {"torch": torch.get_rng_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    meta = {"fingerprint": run.fingerprint, "state": state.to_dict(), "early_stopping": asdict(stopper),
            "python_rng": random.getstate(), "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    write_resume(out, weights=dict(zip(run.trainable_names, run.trainable, strict=True)),
                 torch_state={"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                              "rng": rng},
                 meta=meta, best=state.card is not None)
    saver.last, saver.saves = time.monotonic(), saver.saves + 1
    log.info("step %d: resume checkpoint written to %s", state.step, out / RESUME_DIR)


def _restore_best(out: Path, state: FitState, best: Path | None) -> None:
    """Make OUT hold the best checkpoint the resume state knows (a run stopped by max_seconds,
    or killed after a later best, may have written another one since)."""
    if state.card is None:
        return
    on_disk = load_card(out) or {}
    if on_disk.get("training", {}).get("best_step") == state.card["training"]["best_step"]:
        return
    if best is None:
        raise RuntimeError(f"{out / RESUME_DIR} has no copy of the best checkpoint (step "
                           f"{state.card['training']['best_step']}); delete {out / RESUME_DIR} to start over")
    copy_checkpoint(best, out)


def _resume(run: Run, out: Path, stopper: EarlyStopping) -> FitState | None:
    """Load OUT/resume/ into the run (weights, optimiser, schedule, RNG) and return its loop
    state; None when there is none. A run with other settings or data is refused."""
    import torch

    settle(out)
    saved = read_resume(out, map_location=run.device)
    if saved is None:
        return None
    meta, weights, torch_state, best = saved
    problem = mismatch(meta["fingerprint"], run.fingerprint)
    if problem:
        raise ValueError(f"{out / RESUME_DIR} holds an unfinished run that this one cannot continue: {problem}; "
                         f"rerun with the settings and data it was started with (training.config in its "
                         f"state.json), or delete {out / RESUME_DIR} to start over")
    with torch.no_grad():
        for name, p in zip(run.trainable_names, run.trainable, strict=True):
            p.copy_(weights[name].to(device=p.device, dtype=p.dtype))
    run.optimizer.load_state_dict(torch_state["optimizer"])
    run.scheduler.load_state_dict(torch_state["scheduler"])
    py = meta["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(torch_state["rng"]["torch"].cpu())
    if run.device.type == "cuda" and "cuda" in torch_state["rng"]:
        torch.cuda.set_rng_state_all([t.cpu() for t in torch_state["rng"]["cuda"]])
    state = FitState.from_dict(meta["state"])
    for k, v in meta["early_stopping"].items():
        if k != "patience":
            setattr(stopper, k, v)
    _restore_best(out, state, best)
    state.resumed.append({"step": state.step, "epoch": state.epoch, "batch": state.batch,
                          "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
    log.info("resuming %s from %s: step %d/%d, epoch %d, batch %d/%d (written %s)", run.config.kind,
             out / RESUME_DIR, state.step, run.total_steps, state.epoch, state.batch, run.batches_per_epoch,
             meta.get("written"))
    return state


_LOCKS_HELD: set[str] = set()


@contextmanager
def training_lock(out: str | Path):
    """Hold OUT/train.lock (one process trains into a directory at a time; the lock goes
    when the process ends, however it ends). Re-entrant within a process."""
    out = Path(out)
    key = str(out.resolve())
    if key in _LOCKS_HELD:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise RuntimeError(f"{out} is being trained by another process (pid {fh.read().strip() or '?'}, "
                               f"{out / 'train.lock'}); wait for it to end, or choose another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        _LOCKS_HELD.add(key)
        try:
            yield
        finally:
            _LOCKS_HELD.discard(key)


# --------------------------------------------------------------------------- the loop
def _epoch(run: Run, state: FitState, stopper: EarlyStopping, out: Path, report, saver: _ResumeSaver) -> bool:
    """The rest of the epoch's batches (rebuilt from the epoch's seed; the first ``state.batch``
    are done); True = training is over."""
    config = run.config
    done = False
    batches = _train_batches(run.train_examples, config.batch_size, random.Random(config.seed * 1000 + state.epoch))
    for batch in batches[state.batch:]:
        _accumulate(run, state, batch)
        if state.micro % config.grad_accum:
            continue
        _optimizer_step(run, state)
        report(state)
        if _eval_due(config, state.step) and _evaluate_and_keep_best(run, state, stopper, out,
                                                                     state.take_train_loss()):
            state.stopped, done = "early_stop", True
        if state.step >= run.total_steps:
            done = True
        if not done and state.micro < run.total_micro and _time_is_up(run):
            # the resume point is before the stop evaluation below, as if there had been no stop
            _save_resume(run, state, stopper, out, saver)
            state.stopped, done = "max_seconds", True
        elif not done and state.micro < run.total_micro and saver.due(state.step):
            _save_resume(run, state, stopper, out, saver)
        if done or state.micro >= run.total_micro:
            break
    return done or state.micro >= run.total_micro


def fit(run: Run, out: str | Path, *, progress: bool = True, resume: bool = True) -> FitState:
    """Train until the schedule, early stopping or ``max_seconds`` ends it; each new best
    held-out loss writes its checkpoint to ``out``. Returns the loop's final state.

    resume: continue from ``out/resume/`` when it holds this run (the same settings, less
    ``RESUME_FREE_FIELDS``, and data; other runs are refused); False starts afresh (and
    deletes it). A finished run deletes ``out/resume/``; a ``max_seconds`` stop keeps it.
    """
    out = Path(out)
    config = run.config
    stopper = EarlyStopping(config.patience)
    with training_lock(out):
        state = _resume(run, out, stopper) if resume else None
        if state is None:
            remove_resume(out)
            state = FitState(untrained=evaluate(run))
            state.history.append({"step": 0, "epoch": 0.0, "train_loss": None, **(state.untrained or {})})
            state.loop_started = time.monotonic()
        _loop(run, state, stopper, out, progress)
        if state.stopped != "max_seconds":
            remove_resume(out)
    return state


def _loop(run: Run, state: FitState, stopper: EarlyStopping, out: Path, progress: bool) -> None:
    config = run.config
    run.model.train()
    saver = _ResumeSaver(config.save_every_steps, config.save_every_seconds)
    label = f"train {config.kind}" + (f" (resumed at step {state.step})" if state.resumed else "")
    from policies.progress import Progress

    # a bar on a terminal, plain lines every 30 s / 10 % elsewhere (CI logs, nohup)
    with Progress(label, max(0, run.total_steps - state.step), unit="steps", enabled=progress) as bar:

        def report(s: FitState) -> None:
            mean = s.run_loss / max(1, s.run_n)
            bar.advance(info=f"loss {mean:.4f}")
            if not progress and s.step % 10 == 0:
                log.info("step %d/%d: train loss %.4f, lr %.2e, %.1f s/step, %.1f samples/s", s.step,
                         run.total_steps, mean, run.scheduler.get_last_lr()[0], s.loop_seconds / s.step,
                         s.examples / max(1e-9, s.loop_seconds))

        for epoch in range(state.epoch, math.ceil(config.epochs)):
            if epoch != state.epoch:
                state.epoch, state.batch = epoch, 0
            done = _epoch(run, state, stopper, out, report, saver)
            if not _eval_due(config, state.step) and _evaluate_and_keep_best(run, state, stopper, out,
                                                                             state.take_train_loss()):
                state.stopped, done = "early_stop", True
            if done:
                break


# ----------------------------------------------------------------------------- save
def _run_record(run: Run, state: FitState) -> dict:
    """The card's budget (what the run was allowed) and throughput (what it did)."""
    config = run.config
    seconds = state.loop_seconds
    return {
        "budget": {"epochs": config.epochs, "max_steps": config.max_steps, "max_seconds": config.max_seconds,
                   "scheduled_steps": run.total_steps, "batch_size": config.batch_size,
                   "grad_accum": config.grad_accum, "device": config.device, "threads": config.threads},
        "throughput": {"steps": state.step, "examples": state.examples, "loop_seconds": round(seconds, 1),
                       "samples_per_second": round(state.examples / seconds, 3) if seconds > 0 else None},
        "resumed": list(state.resumed),
    }


def _training_card(run: Run, state: FitState, metrics: dict | None) -> dict:
    import peft
    import torch
    import transformers

    config = run.config
    training = {
        "command": run.command,
        "config": config.to_dict(),
        **run.card_training,
        "best_step": state.step,
        "seconds_at_best": round(state.loop_seconds, 1),
        "stopped": state.stopped,
        **_run_record(run, state),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    return new_card(config.kind, config.backbone, scorer=run.task.card(), training=training,
                    metrics={"heldout_untrained": state.untrained, "heldout_best": metrics,
                             "history": list(state.history)})


def _write_checkpoint(run: Run, state: FitState, out: Path, metrics: dict | None) -> dict:
    """The current weights and their card (with the probe scores ``reload_check``) into ``out``."""
    card = _training_card(run, state, metrics)
    with _eval_mode(run):
        card["training"]["reload_check"] = run.task.probe(run.model, run.probe_records)
    save_checkpoint(out, run.model, run.task.head_files(run.model), card)
    return card


def save(run: Run, state: FitState, out: str | Path) -> dict:
    """Finish the kept checkpoint: its card gets the whole history, why training ended, the
    budget, the throughput and the resumes. With nothing to select on (no held-out split)
    the last weights are kept. Returns the card.
    """
    out = Path(out)
    card = state.card if state.card is not None else _write_checkpoint(run, state, out, None)
    card["metrics"]["history"] = state.history
    card["training"]["stopped"] = state.stopped
    card["training"]["steps_run"] = state.step
    card["training"]["seconds_total"] = round(time.monotonic() - run.started, 1)
    card["training"].update(_run_record(run, state))
    write_card(out, card)
    return card


def train(config: TrainConfig, data, out: str, *, progress: bool = True, command: str | None = None,
          resume: bool = True) -> dict:
    """Train a scorer; write the best checkpoint and its card to ``out``; return the card.

    data: JSONL paths (or record dicts, for tests). ``prepare``, ``fit`` and ``save`` in a row;
    resume: continue from ``out/resume/`` when it holds this run (``fit``).
    """
    with training_lock(out):
        run = prepare(config, data, command=command)
        state = fit(run, out, progress=progress, resume=resume)
        return save(run, state, out)
