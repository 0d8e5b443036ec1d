"""A learned aggregator: a small logistic model from a candidate's step scores and trace
confidence to P(correct), used as a selection value like any aggregator.

    python cli.py sweep pools/scored/x-probe-prm.jsonl.gz --agg min,last,prod,learned:eval/defaults/learned-agg-probe-prm.json
    python cli.py eval pool-table pools/scored/x-probe-prm.jsonl.gz --agg min,last,prod,learned:PATH

A value source named ``learned:PATH`` reads the model file PATH (written by
`python -m eval.learn_agg`, format `FORMAT`) and values each candidate record by the
model's probability. Its inputs (`INPUTS`, the model lists the ones it uses):

==================  ==========================================================
input               of a candidate with step scores s_1..s_T (T >= 1)
==================  ==========================================================
``step:min``        min_t s_t
``step:last``       s_T
``step:mean``       (1/T) sum_t s_t
``step:logprod``    sum_t log(max(s_t, 1e-6))   (the log of ``prod``)
``step:count``      T
``conf:NAME``       search.confidence summary NAME of the token confidences
==================  ==========================================================

A candidate missing an input (no step scores, no token confidences) gets None, which
never wins a selection. The model is a standardised logistic read-out
(`rewards.probe.ProbeHead`), stored as JSON so a diff shows it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PREFIX = "learned:"
FORMAT = "tts-math-learned-agg/1"
STEP_INPUTS = ("step:min", "step:last", "step:mean", "step:logprod", "step:count")
INPUTS = STEP_INPUTS + ("conf:NAME",)


def check_input(name: str) -> str:
    """`name` if it is a known input; unknown names list the valid ones."""
    if name in STEP_INPUTS:
        return name
    if name.startswith("conf:"):
        from search.confidence import check

        check(name[len("conf:"):])
        return name
    raise ValueError(f"unknown learned-aggregator input {name!r}; valid: {', '.join(INPUTS)} "
                     "(NAME a search.confidence summary, e.g. conf:group32)")


def input_value(cand: dict, name: str) -> float | None:
    """One input of one candidate record (see the module table); None when it is missing."""
    if name.startswith("conf:"):
        tc = cand.get("token_conf")
        if not tc:
            return None
        from search.confidence import summary

        return float(summary(name[len("conf:"):])(tc))
    s = cand.get("scores")
    if not s:
        return None
    if name == "step:min":
        return float(min(s))
    if name == "step:last":
        return float(s[-1])
    if name == "step:mean":
        return float(sum(s) / len(s))
    if name == "step:logprod":
        return float(sum(math.log(max(float(x), 1e-6)) for x in s))
    if name == "step:count":
        return float(len(s))
    check_input(name)  # unknown names raise here, with the valid list
    raise ValueError(f"learned-aggregator input {name!r} has no value rule")


def input_vector(cand: dict, names: Sequence[str]) -> list[float] | None:
    """The inputs `names` of one candidate record, or None when any is missing."""
    out = []
    for n in names:
        v = input_value(cand, n)
        if v is None:
            return None
        out.append(v)
    return out


def model_dict(head, inputs: Sequence[str], **meta) -> dict:
    """A fitted `rewards.probe.ProbeHead` over `inputs` as a model file's JSON."""
    return {"format": FORMAT, "inputs": list(inputs), "weight": [float(x) for x in head.weight],
            "bias": float(head.bias), "mean": [float(x) for x in head.mean], "scale": [float(x) for x in head.scale],
            **meta}


@functools.lru_cache(maxsize=8)
def load_model(path: str) -> tuple[tuple[str, ...], object]:
    """(inputs, head) of a model file; errors name the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"learned aggregator {path}: no such file; fit one with `python -m eval.learn_agg`")
    d = json.loads(p.read_text())
    if d.get("format") != FORMAT:
        raise ValueError(f"{path}: not a learned-aggregator model (format {d.get('format')!r}, want {FORMAT!r})")
    from rewards.probe import ProbeHead

    inputs = tuple(check_input(n) for n in d["inputs"])
    head = ProbeHead(weight=np.asarray(d["weight"], float), bias=float(d["bias"]), mean=np.asarray(d["mean"], float),
                     scale=np.asarray(d["scale"], float))
    if head.dim != len(inputs):
        raise ValueError(f"{path}: {len(inputs)} inputs but {head.dim} weights")
    return inputs, head


def check(source: str) -> str:
    """A ``learned:PATH`` value source whose model loads."""
    if not source.startswith(PREFIX):
        raise ValueError(f"a learned value source reads learned:PATH, got {source!r}")
    load_model(source[len(PREFIX):])
    return source


def values(cands: Sequence[dict], source: str) -> list[float | None]:
    """P(correct) of each candidate record under the model of ``learned:PATH``."""
    inputs, head = load_model(source[len(PREFIX):] if source.startswith(PREFIX) else source)
    vecs = [input_vector(c, inputs) for c in cands]
    rows = [v for v in vecs if v is not None]
    probs = iter(head.probs(np.asarray(rows, float)).tolist() if rows else [])
    return [None if v is None else float(next(probs)) for v in vecs]
