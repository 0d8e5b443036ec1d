"""Search trees of the step-level strategies (beam, DVTS, MCTS, particle filtering).

    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    outs = run.extend(items, run.seed("extend", depth))     # one policy call
    kids = add_children(run.trees[p], parent, outs[i])       # nodes, duplicates marked
    run.score(pairs)                                         # one scorer call
    run.keep(p, node); run.close(p)                          # candidates, then the result
    run.roll_out(pairs, run.seed("rollout", depth))          # the step limit
    return run.close_open()

`TreeSearch` is the state they all share: one `Tree`, one list of finished candidates
and one ledger per problem, and the batched calls on them. What is particular to a
strategy (its live beams, subtrees, particles or visit counts) stays in its own file.

A node holds the path's summed token log-probability and generated tokens; a rollout
node (status "rollout") holds the rest of a solution, sampled to the end in one piece.
"""

from __future__ import annotations

from search import common
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
    problem. Every method that calls the policy or the scorer makes one call for all
    the (problem index, node) pairs it is given."""

    def __init__(self, problems, policy, scorer, config, *, on_done=None, equal=None) -> None:
        super().__init__(problems, policy, scorer, config, on_done=on_done, equal=equal)
        self.trees = [Tree() for _ in self.probs]
        self.finished: list[list[Candidate]] = [[] for _ in self.probs]

    def extend(self, items, seed: int):
        """One `policy.extend` call for [(problem index, steps, k)] (see `common.extend`)."""
        return common.extend(self.policy, self.probs, items, seed, self.ledgers)

    def evaluate(self, entries) -> None:
        """One scorer call for [(problem index, node, steps)]: sets each node's scores and
        its value, `agg` of them (the policy's confidence with no scorer)."""
        scores = common.score(self.scorer, self.probs, [(p, steps) for p, _, steps in entries], self.ledgers)
        for (_p, node, _steps), s in zip(entries, scores, strict=True):
            node.scores = s
            node.value = common.value_of(s, self.config.agg, node.logprob, node.tokens)

    def score(self, pairs) -> None:
        """Score [(problem index, node)] on their paths (one scorer call)."""
        self.evaluate([(p, n, self.trees[p].path(n)) for p, n in pairs])

    def rollouts(self, pairs, seed: int) -> list[tuple[int, Node, Node, list[str]]]:
        """Sample [(problem index, node)] out to the end in one policy call, unscored.

        Returns (problem index, node, its rollout node, the full solution's steps)."""
        paths = [(p, self.trees[p].path(n)) for p, n in pairs]
        comps = common.rollout(self.policy, self.probs, paths, seed, self.ledgers)
        out = []
        for (p, node), (_p, path), c in zip(pairs, paths, comps, strict=True):
            r = add_rollout(self.trees[p], node, c)
            out.append((p, node, r, path + common.split_steps(c.text, self.delim)))
        return out

    def roll_out(self, pairs, seed: int) -> None:
        """Roll [(problem index, node)] out to the end and score the rollouts (one policy
        call, one scorer call); each rollout is kept as a finished candidate."""
        if not pairs:
            return
        rolled = self.rollouts(pairs, seed)
        self.evaluate([(p, r, steps) for p, _, r, steps in rolled])
        for p, _node, r, steps in rolled:
            self.keep(p, r, steps)

    def keep(self, p: int, node: Node, steps: list[str] | None = None) -> None:
        """Keep a finished node (or a rollout with its full steps) as a candidate of p."""
        self.finished[p].append(node_candidate(self.trees[p], node, steps))

    def close(self, p: int, candidates: list[Candidate] | None = None) -> None:
        """Select p's answer among its kept candidates (or `candidates`); the record holds
        the whole tree."""
        cands = self.finished[p] if candidates is None else candidates
        super().close(p, cands, tree=self.trees[p].as_list())

    def close_open(self) -> list:
        """Close every problem still open; the results of all problems, in order."""
        for p in self.open():
            self.close(p)
        return self.results
