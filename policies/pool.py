"""Stored sample pools: N sampled solutions per problem with everything a replay needs.

A pool is generated once (`python cli.py pool ...`, search/pool.py) and then read by
`sweep`, `eval` and the scorer benches, which re-select and re-score without
starting the policy engine.

Format `tts-math-pool/1`: JSON Lines, plain or gzip-compressed (`.jsonl.gz`), one
record per problem, written as each problem finishes (resumable like a search run):

    {
      "format": "tts-math-pool/1",
      "id": "gsm8k-1000", "problem": "...", "gold": "18", "source": "gsm8k",
      "config": {                          # the pool identity; equal on every record
        "policy": {"model": "qwen2.5-coder-0.5b", "model_sha256": "1d96...", "temperature": 0.8,
                   "top_p": 1.0, "max_tokens": 512, "prompt_style": "gsm8k", "logprobs": 5},
        "n": 16, "seed": 0, "data": {"dataset": "gsm8k", ...}
      },
      "samples": [                          # n of them, in sample-index order
        {"text": "...", "steps": ["...", ...],          # steps: text split at the step delimiter
         "generated_tokens": 212, "prompt_tokens": 161, "finish_reason": "stop",
         "logprob": -31.2,                              # sum of token log-probs
         "token_logprob": [-0.01, ...],                 # per generated token (3 decimals)
         "token_conf": [4.21, ...],                     # DeepConf token confidence (3 decimals)
         "step_token_ends": [57, 120, 212],             # exclusive token end of each step segment
         "step_conf": [3.9, 4.4, 4.8],                  # mean token confidence per segment
         "answer": "18", "verdict": {"correct": true, "status": "ok"}}
      ],
      "command": "python cli.py pool ...", "versions": {...}, "wall_s": 12.3
    }

The token confidence is minus the mean log-probability of the top-k candidates at
that position (k = `config.policy.logprobs`), as in DeepConf (Fu et al., 2025):
high when the model is sure. Step segments end at the token that completes a step
delimiter; they match `steps` one to one except where the text holds empty steps
(runs of blank lines), which `steps` drops. Pools read by older readers may lack the token fields.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

FORMAT = "tts-math-pool/1"


class PoolFormatError(ValueError):
    """A file that is not a sample pool of a format this reader knows."""


def step_token_ends(token_text: Sequence[str], delimiter: str = "\n\n") -> list[int]:
    """Exclusive token index at which each step ends: a step ends with the token that
    completes a `delimiter` (a delimiter split over two tokens ends at the second), and
    the last step ends with the last token. Linear in the number of tokens.

    >>> step_token_ends(["a", "\n", "\n", "b", "c"])
    [3, 5]
    """
    ends: list[int] = []
    keep = len(delimiter) - 1
    tail = ""
    for i, piece in enumerate(token_text):
        window = tail + piece
        if delimiter in window:
            ends.append(i + 1)
        tail = window[-keep:] if keep else ""
    if not ends or ends[-1] != len(token_text):
        ends.append(len(token_text))
    return ends


def _r(x: float | None, nd: int = 3) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


def sample_record(completion, delimiter: str = "\n\n") -> dict:
    """One pool sample from a policies.types.Completion (answer and verdict added later)."""
    text = completion.text
    steps = [s for s in text.split(delimiter) if s.strip()] or [text]
    rec = {
        "text": text,
        "steps": steps,
        "generated_tokens": completion.generated_tokens,
        "prompt_tokens": completion.prompt_tokens,
        "cached_tokens": completion.cached_tokens,
        "finish_reason": completion.finish_reason,
        "logprob": _r(completion.cumulative_logprob, 4),
    }
    if completion.token_confidence is not None:
        conf = completion.token_confidence
        ends = step_token_ends(completion.token_text or ("",) * len(conf), delimiter)
        starts = [0, *ends[:-1]]
        rec["token_logprob"] = [_r(x) for x in completion.token_logprobs]
        rec["token_conf"] = [_r(x) for x in conf]
        rec["step_token_ends"] = ends
        rec["step_conf"] = [_r(_mean(conf[a:b])) for a, b in zip(starts, ends, strict=True)]
    return rec


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def open_text(path: str | os.PathLike) -> io.TextIOBase:
    """A pool file for reading, gzip or plain, by its magic bytes."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_pool(path: str | os.PathLike) -> Iterator[dict]:
    """The records of a pool file, checked for the format tag (a torn last line of
    an interrupted plain file is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pool {path}: no such file")
    with open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if not line.endswith("\n"):
                break  # torn last line: the writer was killed mid-record
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise PoolFormatError(f"{path}:{n}: not JSON; a pool is JSONL written by `cli.py pool`") from None
            if not isinstance(rec, dict) or rec.get("format") != FORMAT:
                got = rec.get("format") if isinstance(rec, dict) else type(rec).__name__
                raise PoolFormatError(f"{path}:{n}: format {got!r}, expected {FORMAT!r}; "
                                      "regenerate it with `cli.py pool`")
            yield rec


def read_pool(path: str | os.PathLike) -> list[dict]:
    recs = list(iter_pool(path))
    if not recs:
        raise PoolFormatError(f"pool {path} holds no record")
    by_id: dict[str, dict] = {}
    for r in recs:  # a problem written twice (a line copied by hand): the last record wins
        by_id[str(r["id"])] = r
    if len(by_id) != len(recs):
        import logging

        logging.getLogger(__name__).warning("pool %s: %d problem ids appear more than once; keeping the last of each",
                                            path, len(recs) - len(by_id))
    return list(by_id.values())


def is_pool(path: str | os.PathLike) -> bool:
    """True when the file's first record carries the pool format tag."""
    try:
        with open_text(path) as fh:
            first = fh.readline()
        return json.loads(first).get("format") == FORMAT
    except (OSError, ValueError, AttributeError, EOFError, gzip.BadGzipFile):
        return False
