"""Splitting a solution string into steps and joining steps back (pure functions)."""

from __future__ import annotations

import re

__all__ = ["split_steps", "join_steps"]

_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


def split_steps(solution: str) -> list[str]:
    """Split on blank lines; strip each step; drop empty ones. "" -> []."""
    if not isinstance(solution, str):
        raise TypeError(f"solution must be a str, got {type(solution).__name__}")
    return [s.strip() for s in _BLANK_LINES.split(solution) if s.strip()]


def join_steps(steps: list[str]) -> str:
    """Inverse of split_steps for stripped steps: join with a blank line."""
    return "\n\n".join(steps)
