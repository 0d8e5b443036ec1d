"""Plain search state: problems, candidates, tree nodes and per-problem results.

Identity fields are required, the rest defaulted; everything turns into JSON with
`as_dict` so one output record holds the whole search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from search.ledger import Ledger


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a run. `gold` is only read by the oracle scorer and the grader."""

    id: str
    text: str
    gold: str | None = None


def as_problems(problems: Sequence[Problem | Mapping | str]) -> list[Problem]:
    """Accept Problem records, dataset dicts ({"id", "problem", "answer"}) or bare strings."""
    out = []
    for i, p in enumerate(problems):
        if isinstance(p, Problem):
            out.append(p)
        elif isinstance(p, str):
            out.append(Problem(id=str(i), text=p))
        elif isinstance(p, Mapping):
            text = p.get("problem", p.get("text"))
            if not isinstance(text, str):
                raise ValueError(f"problems[{i}] has no 'problem' text field: keys {sorted(p)}")
            gold = p.get("answer", p.get("gold"))
            out.append(Problem(id=str(p.get("id", i)), text=text, gold=None if gold is None else str(gold)))
        else:
            raise TypeError(f"problems[{i}] must be a Problem, dict or str, got {type(p).__name__}")
    return out


@dataclass(slots=True)
class Candidate:
    """One complete (or truncated) solution proposed by a strategy."""

    steps: list[str]
    scores: list[float] | None = None
    """Raw per-step scores from the scorer (None: no scorer, or not scored)."""
    value: float | None = None
    """`final_agg` of `scores`, or the policy confidence when there is no scorer
    (see search/select.py); None never wins a selection."""
    finish_reason: str | None = None  # "eos", "length", "step_limit", "empty"
    generated_tokens: int = 0
    logprob: float | None = None
    """Sum of the policy's token log-probabilities over the whole solution."""
    node: int | None = None  # id of the leaf in the search tree (step-level strategies)
    group: int | None = None  # DVTS subtree index
    answer: str | None = None  # extracted final answer
    verdict: dict | None = None  # {"correct", "status"} filled by the runner's grader
    conf: float | None = None
    """The trace's token-confidence summary (adaptive with `SearchConfig.confidence`);
    None otherwise, and then left out of `as_dict`."""

    def text(self, delimiter: str = "\n\n") -> str:
        return delimiter.join(self.steps)

    @property
    def confidence(self) -> float | None:
        """exp(mean token log-probability): the policy's own confidence in (0, 1]."""
        import math

        if self.logprob is None or self.generated_tokens <= 0:
            return None
        return math.exp(self.logprob / self.generated_tokens)

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["conf"] is None:
            d.pop("conf")  # records of runs without a confidence summary keep their old shape
        return d


@dataclass(slots=True)
class Node:
    """A node of a step-level search tree: one step appended to its parent's path."""

    id: int
    parent: int | None
    depth: int
    step: str | None = None  # None for the root
    scores: list[float] | None = None  # scorer output for the whole path to this node
    value: float | None = None  # `agg` of scores (or confidence with no scorer)
    finished: bool = False
    finish_reason: str | None = None
    status: str = "open"
    """"root", "live", "expanded", "pruned", "duplicate", "finished", "rollout"."""
    logprob: float = 0.0  # cumulative over the path
    tokens: int = 0  # generated tokens over the path
    group: int | None = None
    visits: int = 0  # MCTS: visits; particle filter: particles resampled onto the node
    value_sum: float = 0.0  # MCTS
    children: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("children")  # recoverable from parent links; keeps records small
        return d


class Tree:
    """The nodes of one problem's search, root first; node ids are list indices."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: list[Node] = [Node(id=0, parent=None, depth=0, status="root")]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def add(self, parent: Node, step: str, **kw) -> Node:
        node = Node(id=len(self.nodes), parent=parent.id, depth=parent.depth + 1, step=step, **kw)
        self.nodes.append(node)
        parent.children.append(node.id)
        return node

    def path(self, node: Node) -> list[str]:
        steps = []
        while node.parent is not None:
            if node.step:  # an empty final step adds nothing to the path
                steps.append(node.step)
            node = self.nodes[node.parent]
        return steps[::-1]

    def as_list(self) -> list[dict]:
        return [n.as_dict() for n in self.nodes]


@dataclass(slots=True)
class SearchResult:
    """What a strategy returns for one problem (the runner adds the gold's verdict)."""

    problem: Problem
    candidates: list[Candidate]
    chosen: int | None
    """Index into candidates of the selected solution (None: no candidate at all)."""
    answer: str | None
    votes: list[dict] = field(default_factory=list)
    """Answer classes: [{"answer", "count", "weight", "members"}], best first."""
    tree: list[dict] | None = None
    ledger: Ledger = field(default_factory=Ledger)
    details: dict | None = None
    """What the strategy adds to the record (deepconf: threshold, stopped traces); None: nothing,
    and the record has no "details" key."""

    def as_dict(self) -> dict:
        extra = {} if self.details is None else {"details": self.details}
        return {
            "id": self.problem.id,
            "problem": self.problem.text,
            "gold": self.problem.gold,
            "answer": self.answer,
            "chosen": self.chosen,
            "votes": self.votes,
            "candidates": [c.as_dict() for c in self.candidates],
            "tree": self.tree,
            "ledger": self.ledger.as_dict(),
            **extra,
        }
