"""Monte Carlo tree search over steps (PUCT), batched across problems.

    mcts(problems, policy, prm, SearchConfig(strategy="mcts", beam_width=3, node_budget=24))

A node is a partial solution (one step per edge). Each iteration, for every
live problem at once:

1. select: from the root, descend to the child maximising
   Q + c_puct * prior * sqrt(N_parent) / (1 + N_child), with Q = mean value of
   the node's evaluations and a uniform prior 1/(number of children), until a
   node that has not been expanded; finished nodes, nodes at depth `max_steps`
   and nodes whose subtree is used up are never selected;
2. expand: that leaf gets M = `beam_width` continuations (fewer when the node
   budget is nearly spent); duplicate steps are dropped;
3. evaluate: each new child's value is `agg` of the scorer's per-step scores of
   its path (the scorer gives the value of a node) or, with `rollouts=True`,
   `agg` of the scores of a rollout from it to the end (the rollout is kept as
   a finished candidate);
4. backup: every new child counts as one visit with its value, added to all
   its ancestors.

The rule is written for one problem (`_mcts`, a program for search/drive.py). In
lockstep, one policy call and one scorer call per iteration for all problems (rollouts
add one policy call); pipelined, each problem runs its next iteration as soon as its
own expansion is back and scored. A problem stops when it has created `node_budget`
nodes (rollouts not counted) or its tree is used up. The principal variation
(descend by visit count) is then rolled out to the end if it is unfinished;
the answer is chosen among all finished nodes, rollouts and that rollout by
`select` with `final_agg`. With no scorer, values are the policy's confidence.
"""

from __future__ import annotations

import math

from search.config import SearchConfig
from search.drive import Extend, Score
from search.tree import TreeSearch, add_children
from search.types import Node, SearchResult, Tree

_SKIP = ("duplicate", "rollout")


def _kids(tree: Tree, node: Node) -> list[Node]:
    return [tree.nodes[c] for c in node.children if tree.nodes[c].status not in _SKIP]


def _q(node: Node) -> float:
    return node.value_sum / node.visits if node.visits else 0.0


def _select_leaf(tree: Tree, used_up: set[int], c_puct: float) -> Node | None:
    node = tree.root
    while True:
        if node.id in used_up:
            return None
        if node.status != "expanded" and node.parent is not None or not node.children:
            return node
        kids = [k for k in _kids(tree, node) if k.id not in used_up]
        if not kids:  # defensive: a used-up subtree should have been marked
            used_up.add(node.id)
            return None
        prior = 1.0 / len(kids)
        sq = math.sqrt(max(node.visits, 1))
        node = max(kids, key=lambda k: (_q(k) + c_puct * prior * sq / (1 + k.visits), -k.id))


def _mark_used_up(tree: Tree, node: Node, used_up: set[int]) -> None:
    """A node is used up when it cannot grow: finished, at the depth limit, or
    every child used up. Propagates to ancestors."""
    while node is not None:
        kids = _kids(tree, node)
        if node.status == "expanded" or node.parent is None and node.children:
            if any(k.id not in used_up for k in kids):
                return
        used_up.add(node.id)
        node = tree.nodes[node.parent] if node.parent is not None else None


def _backup(tree: Tree, node: Node, v: float) -> None:
    while node is not None:
        node.visits += 1
        node.value_sum += v
        node = tree.nodes[node.parent] if node.parent is not None else None


def mcts(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None, pipeline: bool = False,
         **drive_options) -> list[SearchResult]:
    """MCTS with PUCT and a per-problem node budget (rule in the module docstring),
    lockstep or pipelined (`TreeSearch.drive`)."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    return run.drive(_mcts, pipeline=pipeline, **drive_options)


def _mcts(run: TreeSearch, p: int):
    """MCTS on problem p: a program for search/drive.py."""
    config = run.config
    M = config.beam_width
    tree = run.trees[p]
    used_up: set[int] = set()
    created = 0
    it = 0
    while True:
        leaf = _select_leaf(tree, used_up, config.c_puct)
        if leaf is None or created >= config.node_budget:
            break
        k = min(M, config.node_budget - created)
        outs = yield Extend([(tree.path(leaf), k)], run.seed("extend", it), it)
        comps = outs[0]
        if leaf.parent is not None:
            leaf.status = "expanded"
        kids = add_children(tree, leaf, comps)
        created += len(comps)
        for kid in kids:
            if kid.finished:
                kid.status = "finished"
            elif kid.depth >= config.max_steps:
                kid.status = "step_limit"
            else:
                kid.status = "open"
        if config.rollouts:
            # an unfinished child takes the value of a rollout from it (kept as a candidate);
            # rollouts and finished children are scored in one call
            rolled = yield from run.rollouts(p, [n for n in kids if not n.finished], run.seed("rollout", it), it)
            yield Score([(r, steps) for _n, r, steps in rolled] + [(n, tree.path(n)) for n in kids if n.finished], it)
            for n, r, steps in rolled:
                n.value = r.value
                run.keep(p, r, steps)
        else:
            yield run.score(p, kids, it)
        for n in kids:
            if n.finished:
                run.keep(p, n)
            v = n.value if n.value is not None else 0.0
            _backup(tree, n, v)
            if n.finished or n.depth >= config.max_steps:
                used_up.add(n.id)
        _mark_used_up(tree, leaf, used_up)
        if created >= config.node_budget or 0 in used_up:
            break
        it += 1
    # principal variation: descend by visits; roll it out when unfinished (after every
    # problem's iterations in lockstep: the clock of the final rollout is infinite)
    node = tree.root
    while True:
        kids = _kids(tree, node)
        if not kids:
            break
        node = max(kids, key=lambda k: (k.visits, _q(k), -k.id))
    rolled = any(tree.nodes[c].status == "rollout" for c in node.children)
    pv = node.parent is None or (not node.finished and not rolled)  # the root: nothing was expanded
    yield from run.roll_out(p, [node] if pv else [], run.seed("rollout", "final"), math.inf)
    run.close(p)
