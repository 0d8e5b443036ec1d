"""Diverse verifier tree search (DVTS): N/M independent greedy subtrees per problem.

    dvts(problems, policy, prm, SearchConfig(strategy="dvts", n=16, beam_width=4))

The rule (N = config.n, M = config.beam_width, G = N/M subtrees):

- depth 0: the root gets N continuations, dealt out M to each subtree;
- every depth, each live subtree's M continuations are scored (whole path) and
  the subtree moves greedily to its best child by `agg`; if that child finished
  (EOS, step token limit, empty step) the subtree ends with it;
- finished siblings met on the way are kept as extra candidates (they are
  complete, already-scored solutions); duplicates within a subtree are dropped;
- subtrees never look at each other's scores. The only coupling: a subtree does
  not move onto a path another subtree of the same problem already holds at
  that depth when it has a distinct child (the second-best); otherwise the two
  would sample identical continuations (seeds derive from the prompt);
- at depth `max_steps` live subtrees are rolled out to the end and scored;
- the answer is chosen among all candidates by `select` with `final_agg`.

The rule is written for one problem (`_dvts`, a program for search/drive.py). In
lockstep each depth is one policy call and one scorer call for all subtrees of all
problems; the rollout is one more of each. Pipelined, each problem moves to its next
depth as soon as its own subtrees' steps are back and scored. The subtrees of one
problem move together: the one coupling above compares their paths at the same depth.
"""

from __future__ import annotations

from search.config import SearchConfig
from search.drive import Extend
from search.tree import TreeSearch, add_children, rank_key
from search.types import Node, SearchResult


def dvts(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None, pipeline: bool = False,
         **drive_options) -> list[SearchResult]:
    """Diverse verifier tree search (rule in the module docstring), lockstep or pipelined
    (`TreeSearch.drive`)."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    return run.drive(_dvts, pipeline=pipeline, **drive_options)


def _dvts(run: TreeSearch, p: int):
    """DVTS on problem p: a program for search/drive.py."""
    config = run.config
    N, M = config.n, config.beam_width
    G = N // M
    tree = run.trees[p]
    current: list[Node | None] = [tree.root] * G  # each subtree's node (None once it has finished)
    for depth in range(config.max_steps):
        if depth == 0:  # the root's N continuations, dealt M per subtree
            items, owners = [([], N)], [list(range(G))]
        else:
            items, owners = [], []  # owners: the subtrees sharing each request
            for g, node in enumerate(current):
                if node is not None:
                    items.append((tree.path(node), M))
                    owners.append([g])
        outs = yield Extend(items, run.seed("extend", depth), depth)
        kids: dict[int, list[Node]] = {}
        for gs, comps in zip(owners, outs, strict=True):
            for j, g in enumerate(gs):
                parent = current[g]
                if parent.parent is not None:
                    parent.status = "expanded"
                kids[g] = add_children(tree, parent, comps[j * M : (j + 1) * M], group=g)
        yield run.score(p, [n for ns in kids.values() for n in ns], depth)
        taken: set[tuple[str, ...]] = set()
        for g in range(G):
            if g not in kids:
                continue
            ranked = sorted(kids[g], key=rank_key, reverse=True)
            if not ranked:  # every continuation was a duplicate: the subtree ends
                current[g] = None
                continue
            paths = [tuple(tree.path(n)) for n in ranked]
            pick = next((i for i, pa in enumerate(paths) if pa not in taken), 0)
            best = ranked[pick]
            taken.add(paths[pick])
            for n in ranked:
                if n is best:
                    continue
                n.status = "finished" if n.finished else "pruned"
                if n.finished:
                    run.keep(p, n)
            if best.finished:
                best.status = "finished"
                run.keep(p, best)
                current[g] = None
            else:
                best.status = "live"
                current[g] = best
        if all(n is None for n in current):
            run.close(p)
            return
    live = [n for n in current if n is not None]
    yield from run.roll_out(p, live, run.seed("rollout", config.max_steps), config.max_steps)
    run.close(p)
