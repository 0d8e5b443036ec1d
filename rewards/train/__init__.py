"""Training the project's own scorers: data builders, importers and three trainers.

The public interface (what the command line and the tests import)::

    from rewards.train import TrainConfig, train
    card = train(TrainConfig(kind="orm"), ["data/outcome.jsonl"], "runs/orm")
    # or phase by phase: run = prepare(config, data); state = fit(run, out); card = save(run, state, out)

    rewards/train/
      config.py    TrainConfig: one frozen dataclass, help on every field (field_docs)
      data.py      JSONL records (outcome, steps, pairs), resumable writer, problem-level
                   splits, pair building, importers (PRM800K, Math-Shepherd, PRMBench,
                   GSM8K example solutions)
      build.py     data from the policy: outcome labels (sample n, grade) and Monte Carlo
                   step labels (roll out k completions from every step prefix); outcome
                   labels from a stored pool's graded samples (``outcome_from_pool``) and
                   Monte Carlo labels for its samples' steps (``step_labels_from_pool``)
      tasks.py     PRM / ORM / TinyRM: preprocessing (pure), loss, held-out metrics
      trainer.py   prepare / fit / save: peft LoRA/DoRA, layer freezing, AdamW with
                   transformers' linear warmup/decay, clipping, held-out eval + early stop,
                   best checkpoint (adapter + head + card, via rewards.checkpoint),
                   periodic resume checkpoints; rerunning into the same OUT continues
      resume.py    OUT/resume/: files, atomic writes, the "same run?" fingerprint check
      probe.py     logistic probes on the frozen policy's hidden states (``rewards.probe``
                   format; a module of its own: ``from rewards.train import probe``)

Checkpoints are written through ``rewards.checkpoint``, the module the scorer loaders read
them with. Command line: ``python cli.py train {orm,prm,tinyrm,data-outcome,data-steps,
data-import}`` (see docs/training.md). Importing this package imports no torch.
"""

from __future__ import annotations

from .build import (
    Budget,
    build_outcome_data,
    build_step_labels,
    default_grader,
    labelled_samples,
    mc_labels,
    outcome_from_pool,
    pick_samples,
    step_labels_from_pool,
    summary_line,
)
from .config import DEFAULT_BACKBONES, TRAIN_KINDS, TrainConfig, field_docs
from .data import (
    GSM8K_TEST_RESERVED,
    IMPORTERS,
    RECORD_KINDS,
    JsonlWriter,
    check_record,
    import_gsm8k_examples,
    import_math_shepherd,
    import_prm800k,
    import_prmbench,
    make_pairs,
    outcome_step_records,
    problem_key,
    read_jsonl,
    record_key,
    split_by_problem,
    write_jsonl,
)
from .tasks import IGNORE, TASKS, auc, orm_features, prm_features, tinyrm_features
from .trainer import EarlyStopping, FitState, Run, fit, prepare, save, train

__all__ = [
    # config
    "TrainConfig",
    "TRAIN_KINDS",
    "DEFAULT_BACKBONES",
    "field_docs",
    # the trainer
    "train",
    "prepare",
    "fit",
    "save",
    "Run",
    "FitState",
    "EarlyStopping",
    # tasks: pure preprocessing and metrics
    "TASKS",
    "IGNORE",
    "prm_features",
    "orm_features",
    "tinyrm_features",
    "auc",
    # data: records, splits, importers
    "RECORD_KINDS",
    "read_jsonl",
    "write_jsonl",
    "JsonlWriter",
    "check_record",
    "problem_key",
    "record_key",
    "split_by_problem",
    "make_pairs",
    "outcome_step_records",
    "IMPORTERS",
    "GSM8K_TEST_RESERVED",
    "import_prm800k",
    "import_math_shepherd",
    "import_prmbench",
    "import_gsm8k_examples",
    # data from the policy
    "Budget",
    "build_outcome_data",
    "build_step_labels",
    "default_grader",
    "labelled_samples",
    "mc_labels",
    "outcome_from_pool",
    "pick_samples",
    "step_labels_from_pool",
    "summary_line",
]
