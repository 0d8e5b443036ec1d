"""The training loop shared by the PRM, ORM and TinyRM trainers.

    from rewards.train import TrainConfig, train
    train(TrainConfig(kind="orm", max_seconds=1800), ["data/outcome.jsonl"], "runs/orm")

Steps: read records -> the task keeps its kind (steps / outcome / pairs) -> problem-level
split (train / held-out never share a problem; checked) -> backbone + peft LoRA/DoRA on the
selected linear layers (none in the first ``freeze_layers`` layers) + fully trained heads ->
AdamW, linear warmup then linear decay, gradient clipping -> held-out evaluation before
training (the untrained baseline), every ``eval_every`` steps and at each epoch end -> early
stop on the held-out loss -> the best checkpoint is kept in ``out``:

    out/adapter_config.json, adapter_model.safetensors   peft adapter
    out/value_head.safetensors                           ORM value head
    out/head.safetensors                                 TinyRM MLM head (trained parts)
    out/card.json                                        what ``load_scorer`` reads, plus data,
                                                         config, metrics, command, versions
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import shutil
import time
from pathlib import Path

from .config import TrainConfig
from .data import check_record, read_jsonl, record_key, split_by_problem
from .tasks import TASKS, collate

log = logging.getLogger(__name__)

__all__ = ["train", "select_target_modules", "add_adapter", "lr_lambda"]

_LAYER_INDEX = re.compile(r"\.(\d+)\.")
_HEADS = ("lm_head", "cls.", "head.", "decoder", "score", "classifier", "pooler")


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
    import torch
    from peft import LoraConfig, get_peft_model

    targets = select_target_modules(model, config.target_modules, config.freeze_layers)
    lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, use_dora=config.peft == "dora", bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return get_peft_model(model, lcfg)


def lr_lambda(warmup: int, total: int):
    """Linear warmup over ``warmup`` steps to 1, then linear decay to 0 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def _load_records(data) -> tuple[list[dict], list[dict]]:
    records, info = [], []
    for item in data:
        if isinstance(item, dict):
            records.append(item)
            continue
        p = Path(item)
        rows = [r for r in read_jsonl(p) if r.get("kind") != "skipped"]
        for i, r in enumerate(rows):
            check_record(r, i)
        records += rows
        with open(p, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        info.append({"path": str(p), "sha256": digest, "rows": len(rows)})
    if any(isinstance(x, dict) for x in data):
        info.append({"path": "<in-memory>", "rows": sum(isinstance(x, dict) for x in data)})
    return records, info


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


def train(config: TrainConfig, data, out: str, *, progress: bool = True, command: str | None = None) -> dict:
    """Train a scorer; write the best checkpoint and its card to ``out``; return the card.

    data: JSONL paths (or record dicts, for tests). See the module docstring for the steps.
    """
    import torch

    t0 = time.monotonic()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out)
    records, data_info = _load_records(data)
    task = TASKS[config.kind](config)
    recs = task.records(records)
    train_recs, held_recs = split_by_problem(recs, config.heldout_fraction, seed=config.split_seed)
    train_keys = {record_key(r) for r in train_recs}
    held_keys = {record_key(r) for r in held_recs}
    assert not train_keys & held_keys, "train and held-out splits share a problem"
    rng = random.Random(config.seed)
    if config.max_train_examples is not None and len(train_recs) > config.max_train_examples:
        train_recs = rng.sample(train_recs, config.max_train_examples)
    if config.max_eval_examples is not None and len(held_recs) > config.max_eval_examples:
        held_recs = random.Random(config.split_seed).sample(held_recs, config.max_eval_examples)
    if not train_recs:
        raise ValueError("no training records after the split; add data or lower heldout_fraction")

    torch.manual_seed(config.seed)
    model = task.load()
    model = add_adapter(model, config)
    heads = task.head_parameters(model)
    for p in heads.values():
        p.requires_grad_(True)
    device = torch.device(config.device)
    model.to(device)
    for m in task.heads.values():
        m.to(device)
    train_ex, dropped_train = _features(task, train_recs, config)
    held_ex, dropped_held = _features(task, held_recs, config)
    if dropped_train or dropped_held:
        log.warning("dropped %d train / %d held-out examples over max_length=%d tokens",
                    dropped_train, dropped_held, config.max_length)
    if not train_ex:
        raise ValueError(f"every training example is longer than max_length={config.max_length}; raise it")

    adapter_params = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    groups = [{"params": adapter_params, "lr": config.lr}]
    if heads:
        groups.append({"params": list(heads.values()), "lr": config.head_lr})
    opt = torch.optim.AdamW(groups, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(train_ex) / config.batch_size)
    total_micro = math.ceil(per_epoch * config.epochs)
    total = math.ceil(total_micro / config.grad_accum)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = int(config.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total))

    def to_dev(b):
        return {k: v.to(device) for k, v in b.items()}

    eval_batches = [to_dev(collate(held_ex[i: i + 2 * config.batch_size], task.pad_id))
                    for i in range(0, len(held_ex), 2 * config.batch_size)]

    def evaluate() -> dict | None:
        if not eval_batches:
            return None
        model.eval()
        for m in task.heads.values():
            m.eval()
        res = task.evaluate(model, eval_batches)
        model.train()
        for m in task.heads.values():
            m.train()
        return res

    n_trainable = sum(p.numel() for p in adapter_params) + sum(p.numel() for p in heads.values())
    log.info("%s: %d train / %d held-out examples (%d / %d problems), %d trainable parameters, %d steps",
             config.kind, len(train_ex), len(held_ex), len(train_keys), len(held_keys), n_trainable, total)
    untrained = evaluate()
    history = [{"step": 0, "epoch": 0.0, "train_loss": None, **(untrained or {})}]
    best = {"loss": float("inf")}
    bad_evals = 0
    stopped = "schedule"
    card: dict = {}

    def checkpoint(metrics: dict | None, step: int) -> None:
        nonlocal card
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        model.save_pretrained(str(tmp))
        task.save_heads(tmp, model)
        card = _card(config, task, data_info, metrics, untrained, history, step, stopped,
                     len(train_keys), len(held_keys), len(train_ex), len(held_ex),
                     dropped_train + dropped_held, n_trainable, time.monotonic() - t0, command)
        model.eval()
        for m in task.heads.values():
            m.eval()
        card["training"]["reload_check"] = task.probe(model, (held_recs or train_recs)[:2])
        model.train()
        for m in task.heads.values():
            m.train()
        (tmp / "card.json").write_text(json.dumps(card, indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)

    def after_eval(step: int, epoch: float, train_loss: float | None) -> bool:
        """Record an evaluation, keep the best checkpoint; True = stop early."""
        nonlocal bad_evals
        m = evaluate()
        history.append({"step": step, "epoch": round(epoch, 3), "train_loss": train_loss, **(m or {})})
        log.info("step %d: held-out %s", step, {k: v for k, v in (m or {}).items()})
        if m is None:
            return False
        if m["loss"] < best["loss"]:
            best.clear()
            best.update(m, step=step)
            bad_evals = 0
            checkpoint(m, step)
        else:
            bad_evals += 1
        return config.patience is not None and bad_evals >= config.patience

    model.train()
    t_loop = time.monotonic()
    step = micro = 0
    run_loss, run_n = 0.0, 0
    done = False
    epochs = math.ceil(config.epochs)
    from policies.progress import Progress

    # a bar on a terminal, plain lines every 30 s / 10 % elsewhere (CI logs, nohup)
    with Progress(f"train {config.kind}", total, unit="steps", enabled=progress) as bar:
        for epoch in range(epochs):
            batches = _train_batches(train_ex, config.batch_size, random.Random(config.seed * 1000 + epoch))
            for batch in batches:
                loss_sum, n = task.loss(model, to_dev(collate(batch, task.pad_id)))
                (loss_sum / max(1, n) / config.grad_accum).backward()
                run_loss += loss_sum.item()
                run_n += n
                micro += 1
                if micro % config.grad_accum:
                    continue
                if config.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], config.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                bar.advance(info=f"loss {run_loss / max(1, run_n):.4f}")
                if not progress and step % 10 == 0:
                    log.info("step %d/%d: train loss %.4f, lr %.2e, %.1f s/step", step, total,
                             run_loss / max(1, run_n), sched.get_last_lr()[0], (time.monotonic() - t_loop) / step)
                if config.eval_every and step % config.eval_every == 0:
                    tl = run_loss / max(1, run_n)
                    run_loss, run_n = 0.0, 0
                    if after_eval(step, micro / per_epoch, tl):
                        stopped, done = "early_stop", True
                if step >= total:
                    done = True
                if config.max_seconds is not None and time.monotonic() - t0 >= config.max_seconds:
                    stopped, done = "max_seconds", True
                if done or micro >= total_micro:
                    break
            if micro >= total_micro and not done:
                done = True
            if not (config.eval_every and step % config.eval_every == 0):
                if after_eval(step, micro / per_epoch, run_loss / max(1, run_n) if run_n else None):
                    stopped = "early_stop"
                    done = True
                run_loss, run_n = 0.0, 0
            if done:
                break
    if not eval_batches:  # nothing to select on: keep the last weights
        checkpoint(None, step)
    # the card of the kept checkpoint gets the whole history and why training ended
    card["metrics"]["history"] = history
    card["training"]["stopped"] = stopped
    card["training"]["steps_run"] = step
    card["training"]["seconds_total"] = round(time.monotonic() - t0, 1)
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


def _card(config, task, data_info, metrics, untrained, history, step, stopped, n_train_p, n_held_p,
          n_train_ex, n_held_ex, dropped, n_trainable, seconds, command) -> dict:
    import peft
    import torch
    import transformers

    card = {
        "kind": config.kind,
        "base_model": config.backbone,
        "trained": True,
        **task.card(),
        "training": {
            "command": command,
            "config": config.to_dict(),
            "data": data_info,
            "split": {"by": "problem (hash of normalised text)", "heldout_fraction": config.heldout_fraction,
                      "seed": config.split_seed, "train_problems": n_train_p, "heldout_problems": n_held_p,
                      "train_examples": n_train_ex, "heldout_examples": n_held_ex, "dropped_over_max_length": dropped},
            "trainable_parameters": n_trainable,
            "best_step": step,
            "seconds_at_best": round(seconds, 1),
            "stopped": stopped,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        },
        "metrics": {"heldout_untrained": untrained, "heldout_best": metrics, "history": list(history)},
    }
    return card
