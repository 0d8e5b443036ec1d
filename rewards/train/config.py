"""TrainConfig: every setting of the three trainers, documented where it is declared."""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..kinds import SCORER_KINDS  # plain data

__all__ = ["TrainConfig", "TRAIN_KINDS", "DEFAULT_BACKBONES", "RESUME_FREE_FIELDS", "field_docs"]

# the trainable kinds (rewards.kinds: those with `train`) and what each starts from
TRAIN_KINDS = tuple(k for k, v in SCORER_KINDS.items() if v.train)
DEFAULT_BACKBONES = {k: SCORER_KINDS[k].backbone for k in TRAIN_KINDS}
RESUME_FREE_FIELDS = ("max_seconds", "save_every_steps", "save_every_seconds", "threads", "device")
"""Fields a resumed run may change (budgets and where it runs); any other difference from
the run in OUT/resume/ is refused, since it would change what is trained."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How a scorer is trained. ``TrainConfig(kind="prm")`` gives the documented CPU defaults."""

    kind: str
    """"prm" (loss at every step tag), "orm" (loss at the tag after the last step) or
    "tinyrm" (cloze: MLM cross-entropy on "0"/"1" at the mask, both orders of every pair)."""
    model: str | None = None
    """Backbone: "smollm2-135m" (PRM/ORM default: the policy itself), "all-minilm-l6-v2"
    (TinyRM default), or any HF checkpoint directory / hub id (hub ids: local cache only)."""
    adapter: str | None = None
    """PRM/ORM input format (rewards/adapters name or JSON path); default: the kind's adapter in
    rewards.kinds ("tts-prm"/"tts-orm"), the formats the shipped defaults are read with."""
    peft: str = "lora"
    """"lora" or "dora" (peft ``LoraConfig(use_dora=True)``)."""
    lora_r: int = 8
    """Adapter rank."""
    lora_alpha: float = 16.0
    """Adapter scale numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: str = "all-linear"
    """Linear layers that get adapters: "all-linear" (every linear layer inside the numbered
    transformer layers, never the heads or embeddings) or comma-separated name suffixes,
    e.g. "q_proj,v_proj" or "query,value"."""
    freeze_layers: int = 0
    """The first k transformer layers get no adapter (and no backward pass through them is
    needed); the TinyRM paper's best k is ~12-15 of 28 for reasoning."""
    lr: float = 2e-4
    """Peak learning rate of the adapter weights."""
    head_lr: float = 1e-3
    """Peak learning rate of fully trained heads (ORM value head, TinyRM MLM head transform)."""
    weight_decay: float = 1e-5
    """AdamW weight decay (TinyRM paper: 1e-5)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas (TinyRM paper)."""
    eps: float = 1e-6
    """AdamW epsilon (TinyRM paper)."""
    warmup_ratio: float = 0.06
    """Share of the optimiser steps with linear warmup; then linear decay to 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global L2 norm); 0 disables."""
    epochs: float = 1.0
    """Passes over the training split (fractions allowed)."""
    max_steps: int | None = None
    """Cap on optimiser steps (the schedule is laid out over this many when smaller)."""
    max_seconds: float | None = None
    """Wall-clock budget of one invocation: training stops after the step that crosses it,
    writes a resume checkpoint, evaluates and keeps the best checkpoint; rerunning the same
    command continues for another budget. The schedule still assumes ``max_steps``/epochs."""
    save_every_steps: int | None = None
    """Write a resume checkpoint (OUT/resume/: trainable weights, optimiser, schedule, RNG
    states, data position, history) every N optimiser steps; None: by time only."""
    save_every_seconds: float | None = 600.0
    """Write a resume checkpoint when this many seconds have passed since the last one (or
    the start); None: by steps only. Rerunning the same command continues from OUT/resume/."""
    batch_size: int = 8
    """Sequences per forward pass."""
    grad_accum: int = 1
    """Forward passes per optimiser step (effective batch = batch_size x grad_accum)."""
    max_length: int = 1024
    """Longest sequence in tokens. PRM/ORM examples over it are dropped (truncating would
    cut tags); TinyRM pairs are truncated inside the solutions, never at the mask."""
    max_train_examples: int | None = None
    """Use at most this many training examples (seeded sample), for budgeted runs."""
    max_eval_examples: int | None = 512
    """Evaluate on at most this many held-out examples (seeded sample) to keep evals cheap."""
    heldout_fraction: float = 0.1
    """Share of *problems* held out (never of rows: a problem is wholly on one side)."""
    split_seed: int = 0
    """Seed of the problem-level split."""
    eval_every: int | None = None
    """Evaluate every N optimiser steps (and at the end of every epoch); None: per epoch only."""
    patience: int | None = 2
    """Stop after this many evaluations without a held-out loss improvement; None: never."""
    seed: int = 0
    """Seed of the adapter/head initialisation, data order and dropout."""
    label: str = "soft"
    """PRM: "soft" (Monte Carlo fraction kept as a probability; BCE) or "hard" (any rollout
    correct -> 1; rows without hard_labels use labels >= 0.5)."""
    last_step_only: bool = False
    """PRM: train only at the last step tag of each solution."""
    outcome_targets: bool = False
    """PRM: train on outcome records too (a pool's graded samples via --pool, or outcome files):
    every step of a sample labelled with its verdict, so a step's score estimates P(this solution
    ends right) (outcome-supervised value targets). A sample that also has a steps record (Monte
    Carlo labels) keeps those. Off: outcome records are not read."""
    balance: str = "none"
    """ORM, for outcome labels with few positives (a 0.5B policy's pool: ~23% correct):
    "none" (plain BCE, value head randomly initialised); "prior" (plain BCE; the value head
    starts with weights 0 and the training split's log-odds as bias, so every score starts at
    the base rate); "weight" (as
    "prior", and the positives' BCE term weighted by negatives/positives, a balanced loss; the
    read-out subtracts log(weight) from the logit, so a score still estimates P(correct) and
    the held-out loss is plain BCE)."""
    prefix: str = "Which response is more correct? "
    """TinyRM: FLAN-style instruction before "Question: ..." (paper's reasoning prefix)."""
    max_pairs_per_problem: int = 8
    """TinyRM: pairs drawn per problem when the data holds outcome records."""
    train_head: bool = True
    """TinyRM: train the MLM head transform fully (all-MiniLM-L6-v2 ships without it, so it
    must be trained; with a full MLM checkpoint False keeps it frozen). ORM value head is
    always trained."""
    init: str | None = None
    """PRM/ORM: a trained scorer directory (`cli.py train` output or a shipped default: card.json,
    peft adapter, value head if any) whose adapter weights, and value head where this run reads
    one too, start the run instead of a fresh adapter, e.g. a PRM with a value-head adapter
    (tts-prm-value) from the ORM; its backbone, LoRA rank, alpha, LoRA/DoRA and adapted layers
    must be this run's."""
    device: str = "cpu"
    """Torch device ("cpu", "cuda", "cuda:1", ...)."""
    dtype: str = "float32"
    """Weights dtype ("float32"; "bfloat16" on GPU)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    def __post_init__(self) -> None:
        if self.kind not in TRAIN_KINDS:
            raise ValueError(f"kind must be one of {TRAIN_KINDS}, got {self.kind!r}")
        if self.peft not in ("lora", "dora"):
            raise ValueError(f"peft must be 'lora' or 'dora', got {self.peft!r}")
        if self.balance not in ("none", "prior", "weight"):
            raise ValueError(f"balance must be 'none', 'prior' or 'weight', got {self.balance!r}")
        if self.balance != "none" and self.kind != "orm":
            raise ValueError(f"balance applies to the ORM's value head; a {self.kind} takes --balance none "
                             "(TinyRM pairs are balanced by construction: a correct and a wrong solution)")
        if self.outcome_targets and self.kind != "prm":
            raise ValueError(f"outcome_targets turns outcome records into PRM step targets; a {self.kind} reads "
                             "outcome records as they are (drop --outcome-targets)")
        if self.label not in ("soft", "hard"):
            raise ValueError(f"label must be 'soft' or 'hard', got {self.label!r}")
        for name in ("lora_r", "batch_size", "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.freeze_layers < 0:
            raise ValueError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise ValueError(f"lr and head_lr must be > 0, got {self.lr}, {self.head_lr}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.save_every_steps is not None and self.save_every_steps < 1:
            raise ValueError(f"save_every_steps must be >= 1 or None, got {self.save_every_steps}")
        for name in ("save_every_seconds", "max_seconds"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 or None, got {getattr(self, name)}")
        if self.init is not None and self.kind == "tinyrm":
            raise ValueError("init applies to a prm or orm (a peft adapter on a causal backbone), not a tinyrm")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        object.__setattr__(self, "betas", tuple(self.betas))

    @property
    def backbone(self) -> str:
        return self.model or DEFAULT_BACKBONES[self.kind]

    @property
    def adapter_name(self) -> str | None:
        default = SCORER_KINDS[self.kind].adapter
        return (self.adapter or default) if default else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def field_docs() -> dict[str, str]:
    """Each TrainConfig field's docstring, one line each (read from this file's source, so the
    command-line help and the declarations are one text)."""
    tree = ast.parse(Path(__file__).read_text())
    docs = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "TrainConfig":
            for a, b in zip(node.body, node.body[1:], strict=False):
                if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                    docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs
