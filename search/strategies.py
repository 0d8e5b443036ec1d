"""The one registry of search strategies: name -> where its function lives and what it uses.

    from search.strategies import NAMES, get, load
    get("beam").step_level          # True
    fn = load("beam")               # search.beam.beam, imported on first use

A new strategy is one file holding a function ``(problems, policy, scorer, config, *,
on_done=None, equal=None) -> list[SearchResult]`` and one line in `REGISTRY`. Everything
else reads this table: `SearchConfig` (valid names, the default selection rule, which
fields a run's identity keeps), `search.STRATEGIES`, the `search` / `serve` / `sweep`
command lines (choices, which options apply to which strategy, default file names) and
the sweep's replay (which runs are iid samples).

Plain data: importing it imports no strategy, so `SearchConfig` and the CLIs can read it
without loading them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Strategy", "REGISTRY", "NAMES", "get", "load", "uses", "option_strategies"]

STEP_OPTIONS = ("max_steps", "max_step_tokens")  # every step-level strategy reads them


@dataclass(frozen=True)
class Strategy:
    function: str
    """"module:function" of the strategy."""
    select: str
    """Selection rule when --select is not given (search.select)."""
    options: tuple[str, ...] = ()
    """Options (SearchConfig fields / CLI flags) that apply to this strategy and not to all;
    a run of another strategy refuses them. With "max_steps" the strategy is step-level."""
    fixed_select: bool = False
    """The strategy is its selection rule (majority voting): another --select contradicts it."""
    iid: bool = False
    """It draws n independent samples: a sweep replays subsets at every n' < n."""
    width_multiple: bool = False
    """n must be a multiple of beam_width."""
    streams: bool = False
    """It drives the engine itself, request by request (`submit` / `poll`), and stops samples
    inside it: it needs per-token confidences (the policy samples with
    `search.confidence.TOP_K` log-probs) and gets every problem of a run at once."""

    def __post_init__(self) -> None:
        module, sep, attr = self.function.partition(":")
        if not (module and sep and attr):
            raise ValueError(f'function must read "module:function", e.g. "search.beam:beam", got {self.function!r}')

    @property
    def step_level(self) -> bool:
        """It grows solutions step by step (policy.extend) rather than sampling them whole."""
        return "max_steps" in self.options


REGISTRY: dict[str, Strategy] = {
    "best_of_n": Strategy("search.best_of_n:best_of_n", "argmax", iid=True),
    "majority": Strategy("search.majority:majority", "majority", fixed_select=True, iid=True),
    "weighted_majority": Strategy("search.majority:weighted_majority", "weighted_vote", fixed_select=True,
                                  iid=True),
    "beam": Strategy("search.beam:beam", "argmax", ("beam_width", "beam_rule", *STEP_OPTIONS),
                     width_multiple=True),
    "dvts": Strategy("search.dvts:dvts", "argmax", ("beam_width", *STEP_OPTIONS), width_multiple=True),
    "mcts": Strategy("search.mcts:mcts", "argmax",
                     ("beam_width", *STEP_OPTIONS, "node_budget", "c_puct", "rollouts")),
    "particle_filter": Strategy("search.particle_filter:particle_filter", "argmax", STEP_OPTIONS),
    "adaptive": Strategy("search.adaptive:adaptive", "majority", ("stop", "first_round", "round_size", "confidence")),
    "deepconf": Strategy("search.deepconf:deepconf", "weighted_vote", ("warmup", "keep", "window"),
                         fixed_select=True, streams=True),
}
NAMES = tuple(REGISTRY)


def get(name: str) -> Strategy:
    """The registry entry of a strategy; unknown names list the valid ones."""
    if name not in REGISTRY:
        raise ValueError(f"strategy must be one of {', '.join(NAMES)}, got {name!r}.")
    return REGISTRY[name]


def load(name: str) -> Callable:
    """The strategy's function (its module is imported here, on first use)."""
    module, _, attr = get(name).function.partition(":")
    return getattr(importlib.import_module(module), attr)


def uses(name: str, option: str) -> bool:
    """Whether strategy `name` (possibly one a record names that is not registered) reads `option`."""
    return name in REGISTRY and option in REGISTRY[name].options


def option_strategies() -> dict[str, tuple[str, ...]]:
    """Option -> the strategies it applies to, for every option that applies to some only."""
    out: dict[str, list[str]] = {}
    for name, s in REGISTRY.items():
        for opt in s.options:
            out.setdefault(opt, []).append(name)
    return {opt: tuple(names) for opt, names in out.items()}
