"""The one registry of scorer kinds: what `--reward` / `load_scorer(kind)` accept.

    from rewards.kinds import SCORER_KINDS, MODEL_KINDS
    parser.add_argument("--reward", choices=SCORER_KINDS, help=kinds_help())

A new kind is one entry of `SCORER_KINDS` plus its branch in `rewards.factory.load_scorer`.

Every command line (search, score, eval, serve, serve-scorer, train) builds its choices
and help from this table; `rewards.factory.load_scorer` builds the scorer. Plain data:
importing it loads no model and no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScorerKind", "SCORER_KINDS", "MODEL_KINDS", "ADAPTER_KINDS", "kinds_help"]


@dataclass(frozen=True)
class ScorerKind:
    help: str
    """One line: what the scorer judges."""
    model: bool = False
    """It loads a checkpoint: --scorer-model, --device and `cli.py train KIND` apply."""
    needs_golds: bool = False
    """It reads the gold answer (a request to a search server carries none)."""
    train: str | None = None
    """Help of `cli.py train KIND` (None: not trainable); the kinds with it are
    `rewards.train.TRAIN_KINDS`."""
    backbone: str | None = None
    """The backbone `cli.py train KIND` starts from when --model is not given (a name of
    `policies.models`, a checkpoint directory or a hub id)."""
    adapter: str | None = None
    """The PRM/ORM input format (a rewards/adapters name) used when neither the checkpoint's
    card nor the model's hub id names one. Set: the kind reads adapters, so --adapter applies."""

    def __post_init__(self) -> None:
        if self.train and not self.backbone:
            raise ValueError(f"a trainable scorer kind needs backbone= (what `cli.py train` starts from), "
                             f"e.g. backbone=\"smollm2-135m\"; got train={self.train!r} and no backbone")


SCORER_KINDS: dict[str, ScorerKind] = {
    "prm": ScorerKind("process reward model: one score per step", model=True,
                      train="train a process reward model (loss at every step tag)",
                      backbone="smollm2-135m", adapter="tts-prm"),
    "orm": ScorerKind("outcome reward model: one score for the whole solution", model=True,
                      train="train an outcome reward model (value head at the last token)",
                      backbone="smollm2-135m", adapter="tts-orm"),
    "tinyrm": ScorerKind("TinyRM: a small encoder that judges solutions against each other", model=True,
                         train="train a TinyRM cloze judge (MLM '0'/'1' at the mask, both orders)",
                         backbone="all-minilm-l6-v2"),
    "probe": ScorerKind("a logistic head on the frozen policy's own hidden states (PRM or ORM by its card)",
                        model=True),
    "verifier": ScorerKind("oracle: 1 when the answer equals the gold, else 0", needs_golds=True),
    "none": ScorerKind("no model (search ranks by the policy's confidence; `score` gives 0.5)"),
}
MODEL_KINDS = tuple(k for k, v in SCORER_KINDS.items() if v.model)
ADAPTER_KINDS = tuple(k for k, v in SCORER_KINDS.items() if v.adapter)


def kinds_help(kinds=None) -> str:
    """`name: help; ...` of the kinds given (default all), for --help texts."""
    return "; ".join(f"{k}: {SCORER_KINDS[k].help}" for k in (kinds or SCORER_KINDS))
