"""Declarative PRM/ORM formats: one JSON file per model family, no code per model.

An adapter says how a (problem, steps) candidate is written as one token sequence
and where and how a score is read from it. The rendered text is::

    PROMPT + step_1 + step_tag + step_separator + step_2 + step_tag + ... + step_k + step_tag

(``granularity: "outcome"``: the steps are joined with ``step_separator`` and only
one ``step_tag`` follows the last step). ``PROMPT`` is ``prompt.format(problem=...)``
or, with ``chat_template: true``, the tokenizer's chat template applied to
``[system?, user: prompt.format(problem=...)]`` with the generation prompt, so the
solution sits in the assistant turn. The score of step i is read at the *last token*
of the i-th ``step_tag``:

- ``readout: "label_tokens"`` (causal LM): softmax over the LM logits of
  ``positive_token`` and ``negative_token`` at the tag, P(positive);
- ``readout: "class_index"`` (token-classification head): softmax over the head's
  classes at the tag, P(``positive_class``);
- ``readout: "value_head"`` (causal LM + a linear value head): sigmoid(head(h_tag)).

To add a PRM write a JSON file with these fields (see the shipped ones) and pass
``load_scorer("prm", model=..., adapter="path/to/file.json")``, or drop it into
this folder to make it selectable by name and matched by ``hub_ids``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

__all__ = ["AdapterConfig", "load_adapter", "list_adapters", "match_adapter", "ADAPTER_DIR"]

ADAPTER_DIR = Path(__file__).resolve().parent

_MODEL_CLASSES = ("causal_lm", "token_classification")
_READOUTS = ("label_tokens", "class_index", "value_head")


@dataclass(frozen=True)
class AdapterConfig:
    """One model family's input format and score readout (frozen: hashable, keys caches)."""

    name: str
    """Short identifier, e.g. "math-shepherd"."""
    description: str = ""
    """Where the format comes from; free text."""
    model_class: str = "causal_lm"
    """"causal_lm" (AutoModelForCausalLM) or "token_classification" (a per-token head)."""
    readout: str = "label_tokens"
    """"label_tokens", "class_index" or "value_head" (see module docstring)."""
    granularity: str = "step"
    """"step" (PRM: a tag after every step) or "outcome" (ORM: one tag after the last step)."""
    prompt: str = "{problem}"
    """Text before the first step; ``{problem}`` is replaced by the problem."""
    chat_template: bool = False
    """Render the prompt with the tokenizer's chat template (solution in the assistant turn)."""
    system: str | None = None
    """System message for the chat template (ignored without chat_template)."""
    step_tag: str = "\n"
    """Appended after each scored step; the score is read at its last token."""
    step_separator: str = ""
    """Written between a step's tag and the next step."""
    positive_token: str | None = None
    """label_tokens: text of the "step is correct" token (must be one token)."""
    negative_token: str | None = None
    """label_tokens: text of the "step is wrong" token (must be one token)."""
    positive_class: int = 1
    """class_index: index of the positive class."""
    num_labels: int = 2
    """class_index: number of classes of the head."""
    add_special_tokens: bool = True
    """Let the tokenizer add its BOS etc. (False when the prompt already carries them)."""
    max_length: int = 4096
    """Longest candidate in tokens; longer ones are rejected with an error, never truncated."""
    trust_remote_code: bool = False
    """Allow a checkpoint's own modelling code (e.g. Qwen2ForProcessRewardModel); opt-in."""
    hub_ids: tuple[str, ...] = field(default_factory=tuple)
    """Checkpoints this format belongs to; ``load_scorer`` picks the adapter by them."""
    base_model: str | None = None
    """Default backbone when ``load_scorer`` gets no model ("smollm2-135m" = the embedded one)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hub_ids", tuple(self.hub_ids))
        if not self.name:
            raise ValueError("adapter name must be a non-empty string")
        if self.model_class not in _MODEL_CLASSES:
            raise ValueError(f"adapter {self.name!r}: model_class must be one of {_MODEL_CLASSES}, got {self.model_class!r}")
        if self.readout not in _READOUTS:
            raise ValueError(f"adapter {self.name!r}: readout must be one of {_READOUTS}, got {self.readout!r}")
        if self.granularity not in ("step", "outcome"):
            raise ValueError(f"adapter {self.name!r}: granularity must be 'step' or 'outcome', got {self.granularity!r}")
        if self.readout == "class_index" and self.model_class != "token_classification":
            raise ValueError(f"adapter {self.name!r}: readout 'class_index' needs model_class 'token_classification'")
        if self.readout in ("label_tokens", "value_head") and self.model_class != "causal_lm":
            raise ValueError(f"adapter {self.name!r}: readout {self.readout!r} needs model_class 'causal_lm'")
        if self.readout == "label_tokens" and not (self.positive_token and self.negative_token):
            raise ValueError(
                f"adapter {self.name!r}: readout 'label_tokens' needs positive_token and negative_token "
                '(e.g. "+" and "-")'
            )
        if self.readout == "class_index" and not 0 <= self.positive_class < self.num_labels:
            raise ValueError(
                f"adapter {self.name!r}: positive_class must be in [0, {self.num_labels}), got {self.positive_class}"
            )
        if not self.step_tag:
            raise ValueError(f"adapter {self.name!r}: step_tag must be non-empty (the score is read at it)")
        if "{problem}" not in self.prompt:
            raise ValueError(f"adapter {self.name!r}: prompt must contain {{problem}}, got {self.prompt!r}")
        if self.max_length < 8:
            raise ValueError(f"adapter {self.name!r}: max_length must be >= 8, got {self.max_length}")

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "<dict>") -> AdapterConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"$comment"})
        if unknown:
            raise ValueError(f"adapter {source}: unknown field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hub_ids"] = list(self.hub_ids)
        return d


def list_adapters() -> list[str]:
    """Names of the adapters shipped in this folder."""
    return sorted(p.stem for p in ADAPTER_DIR.glob("*.json"))


def load_adapter(name_or_path: str | Path | AdapterConfig) -> AdapterConfig:
    """An adapter by shipped name ("math-shepherd") or by path to a JSON file."""
    if isinstance(name_or_path, AdapterConfig):
        return name_or_path
    p = Path(name_or_path)
    if p.suffix != ".json" or not p.exists():
        shipped = ADAPTER_DIR / f"{name_or_path}.json"
        if not shipped.exists():
            raise ValueError(
                f"unknown adapter {str(name_or_path)!r}: not a JSON file and not one of "
                f"{list_adapters()}; write a JSON adapter file (see docs/rewards.md) and pass its path"
            )
        p = shipped
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"adapter file {p}: invalid JSON ({e})") from None
    return AdapterConfig.from_dict(d, source=str(p))


def match_adapter(model: str) -> AdapterConfig | None:
    """The shipped adapter whose ``hub_ids`` contain ``model`` (exact or as a path's tail)."""
    m = str(model).rstrip("/")
    for name in list_adapters():
        a = load_adapter(name)
        for hid in a.hub_ids:
            if m == hid or m.endswith("/" + hid) or m.endswith("/" + hid.split("/")[-1]):
                return a
    return None
