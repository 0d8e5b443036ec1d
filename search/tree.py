"""Search trees of the step-level strategies (beam, DVTS, MCTS, particle filtering).

    def program(run, p):                                      # one problem (search/drive.py)
        tree = run.trees[p]
        outs = yield Extend([(tree.path(n), k)], run.seed("extend", depth), depth)
        kids = add_children(tree, parent, outs[0])             # nodes, duplicates marked
        yield run.score(p, kids, depth)                        # scores and values
        run.keep(p, node)                                      # a finished candidate
        yield from run.roll_out(p, nodes, run.seed("rollout", depth), depth)  # the step limit
        run.close(p)                                           # the result

    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    return run.drive(program, pipeline=False)                  # lockstep, or pipelined

`TreeSearch` is the state they all share: one `Tree`, one list of finished candidates
and one ledger per problem, the scorer call the drivers make (`evaluate`), and the two
drivers (`drive`). What is particular to a strategy (its live beams, subtrees, particles
or visit counts) stays in its program, in its own file.

A node holds the path's summed token log-probability and generated tokens; a rollout
node (status "rollout") holds the rest of a solution, sampled to the end in one piece.
"""

from __future__ import annotations

from search import common
from search.drive import Rollout, Score
from search.types import Candidate, Node, Tree


def path_logprob(parent: Node, c) -> float | None:
    """The log-probability of parent's path plus completion c (None when either is unknown)."""
    if c.cumulative_logprob is None or parent.logprob is None:
        return None
    return parent.logprob + c.cumulative_logprob


def rank_key(node: Node):
    """Sort key, best first with reverse=True: valued nodes by value, then the older node."""
    return (node.value is not None, node.value if node.value is not None else 0.0, -node.id)


def step_text(c) -> str:
    """The step an `extend` completion adds ("" for an empty step)."""
    return "" if common.step_outcome(c)[1] == "empty" else c.text


def add_child(tree: Tree, parent: Node, c, *, group: int | None = None) -> Node:
    """A new node under `parent` for one `extend` completion (finished when the
    solution ended: see `common.step_outcome`)."""
    fin, reason = common.step_outcome(c)
    return tree.add(
        parent, step_text(c), finished=fin, finish_reason=reason, logprob=path_logprob(parent, c),
        tokens=parent.tokens + c.generated_tokens, group=group,
    )


def add_children(tree: Tree, parent: Node, comps, *, group: int | None = None) -> list[Node]:
    """New nodes for one parent's continuations; duplicates (same step text under the
    same parent, within the same DVTS subtree) are recorded, not returned."""
    seen = {
        tree.nodes[c].step.strip() for c in parent.children
        if tree.nodes[c].status != "duplicate" and tree.nodes[c].group == group
    }
    fresh = []
    for c in comps:
        node = add_child(tree, parent, c, group=group)
        if node.step.strip() in seen:
            node.status = "duplicate"
            continue
        seen.add(node.step.strip())
        fresh.append(node)
    return fresh


def add_rollout(tree: Tree, node: Node, c) -> Node:
    """The child (status "rollout", finished) holding a full-sample continuation of node."""
    return tree.add(
        node, c.text, finished=True, finish_reason=common.sample_finish(c), logprob=path_logprob(node, c),
        tokens=node.tokens + c.generated_tokens, group=node.group, status="rollout",
    )


def node_candidate(tree: Tree, node: Node, steps: list[str] | None = None) -> Candidate:
    """The candidate a finished node (or a rollout, with its full `steps`) stands for."""
    return Candidate(
        steps=steps if steps is not None else tree.path(node), scores=node.scores,
        finish_reason=node.finish_reason, generated_tokens=node.tokens,
        logprob=node.logprob, node=node.id, group=node.group,
    )


class TreeSearch(common.SearchRun):
    """A `SearchRun` with one search tree and one list of finished candidates per
    problem, run by per-problem programs (search/drive.py)."""

    def __init__(self, problems, policy, scorer, config, *, on_done=None, equal=None) -> None:
        super().__init__(problems, policy, scorer, config, on_done=on_done, equal=equal)
        self.trees = [Tree() for _ in self.probs]
        self.finished: list[list[Candidate]] = [[] for _ in self.probs]
        self.stats = None  # the pipelined driver's `Stats` after a pipelined run

    def drive(self, program, *, pipeline: bool = False, **options) -> list:
        """Run `program(run, p)` for every problem: lockstep (all problems depth by depth,
        one policy and one scorer call per step) or pipelined (each problem as soon as its
        results are in; options: see `search.drive.pipelined`). The results, in order."""
        from search import drive

        if pipeline:
            self.stats = drive.pipelined(self, program, **options)
        else:
            if options:
                raise TypeError(f"{', '.join(sorted(options))} apply to a pipelined run (pipeline=True)")
            drive.lockstep(self, program)
        return self.results

    def evaluate(self, entries) -> None:
        """One scorer call for [(problem index, node, steps)]: sets each node's scores and
        its value, `agg` of them (the policy's confidence with no scorer)."""
        scores = common.score(self.scorer, self.probs, [(p, steps) for p, _, steps in entries], self.ledgers)
        for (_p, node, _steps), s in zip(entries, scores, strict=True):
            node.scores = s
            node.value = common.value_of(s, self.config.agg, node.logprob, node.tokens)

    def score(self, p: int, nodes, clock) -> Score:
        """The request that scores problem p's nodes on their paths."""
        return Score([(n, self.trees[p].path(n)) for n in nodes], clock)

    def rollouts(self, p: int, nodes, seed: int, clock):
        """Sub-program: sample problem p's nodes out to the end, unscored. Returns
        [(node, its rollout node, the full solution's steps)]."""
        tree = self.trees[p]
        paths = [tree.path(n) for n in nodes]
        comps = yield Rollout(paths, seed, clock)
        return [(node, add_rollout(tree, node, c), path + common.split_steps(c.text, self.delim))
                for node, path, c in zip(nodes, paths, comps, strict=True)]

    def roll_out(self, p: int, nodes, seed: int, clock):
        """Sub-program: roll problem p's nodes out to the end and score the rollouts; each
        rollout is kept as a finished candidate. With no nodes it still takes its turn (a
        lockstep run keeps every problem at the same place) but calls nothing."""
        rolled = yield from self.rollouts(p, nodes, seed, clock)
        yield Score([(r, steps) for _node, r, steps in rolled], clock)
        for _node, r, steps in rolled:
            self.keep(p, r, steps)

    def keep(self, p: int, node: Node, steps: list[str] | None = None) -> None:
        """Keep a finished node (or a rollout with its full steps) as a candidate of p."""
        self.finished[p].append(node_candidate(self.trees[p], node, steps))

    def close(self, p: int, candidates: list[Candidate] | None = None) -> None:
        """Select p's answer among its kept candidates (or `candidates`); the record holds
        the whole tree."""
        cands = self.finished[p] if candidates is None else candidates
        super().close(p, cands, tree=self.trees[p].as_list())
