"""The fixed held-out slices that reports are measured on and no training may use.

    problems = load_slice("gsm8k-heldout200")      # GSM8K test problems 1000..1199
    problems = load_slice("math500-heldout100")    # MATH-500: the first 20 of each level 1..5
    assert not heldout_texts() & {p["problem"] for p in training_problems}

Nothing is tuned on these problems: thresholds, hyper-parameters and checkpoints are
chosen on training pools or on other test problems. `heldout_texts()` lets a data
builder drop them from anything it reads (GSM8K's example-solution file, for one,
covers the whole test set).
"""

from __future__ import annotations

from functools import lru_cache

SLICES = {
    "gsm8k-heldout200": {"dataset": "gsm8k", "offset": 1000, "limit": 200},
    "math500-heldout100": {"dataset": "math500", "per_level": 20},
}


def load_slice(name: str) -> list[dict]:
    """The problems of a held-out slice, in a fixed order."""
    from eval.datasets import load_problems

    if name not in SLICES:
        raise ValueError(f"unknown held-out slice {name!r}; choose one of {sorted(SLICES)}")
    spec = SLICES[name]
    if "per_level" in spec:
        rows = load_problems(spec["dataset"])
        out, seen = [], {}
        for r in rows:  # dataset order within each level
            lvl = r.get("level")
            if seen.get(lvl, 0) < spec["per_level"]:
                seen[lvl] = seen.get(lvl, 0) + 1
                out.append(r)
        return out
    return load_problems(spec["dataset"], offset=spec["offset"], limit=spec["limit"])


@lru_cache(maxsize=1)
def heldout_texts() -> frozenset[str]:
    """Problem texts of every held-out slice (whitespace-normalised)."""
    return frozenset(normalize(p["problem"]) for name in SLICES for p in load_slice(name))


def normalize(text: str) -> str:
    return " ".join(text.split())


def is_heldout(problem_text: str) -> bool:
    return normalize(problem_text) in heldout_texts()
