"""Training the project's own scorers: data builders, importers and three trainers.

    rewards/train/
      data.py      JSONL records (outcome, steps, pairs), resumable writer, problem-level
                   splits, pair building, importers (PRM800K, Math-Shepherd, PRMBench,
                   GSM8K example solutions)
      build.py     data from the policy: outcome labels (sample n, grade) and Monte Carlo
                   step labels (roll out k completions from every step prefix)
      config.py    TrainConfig: one frozen dataclass, help on every field
      tasks.py     PRM / ORM / TinyRM: preprocessing (pure), loss, held-out metrics
      trainer.py   the loop: peft LoRA/DoRA, layer freezing, AdamW + warmup/linear decay,
                   clipping, held-out eval + early stop, checkpoint = adapter + head + card

Command line: ``python cli.py train {orm,prm,tinyrm,data-outcome,data-steps,data-import}``
(see docs/training.md). Importing this package imports no torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config",
    "train": "trainer",
    "build_outcome_data": "build",
    "build_step_labels": "build",
    "read_jsonl": "data",
    "split_by_problem": "data",
    "make_pairs": "data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
