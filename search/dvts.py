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

Each depth is one policy call and one scorer call for all subtrees of all
problems; the rollout is one more of each.
"""

from __future__ import annotations

from search.config import SearchConfig
from search.tree import TreeSearch, add_children, rank_key
from search.types import Node, SearchResult


def dvts(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None) -> list[SearchResult]:
    """Diverse verifier tree search (rule in the module docstring)."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    N, M = config.n, config.beam_width
    G = N // M
    # current node of each subtree (None once it has finished)
    current: list[list[Node | None]] = [[t.root] * G for t in run.trees]

    for depth in range(config.max_steps):
        active = run.open()
        if not active:
            break
        items, owners = [], []  # owners: (p, [subtree indices sharing the request])
        for p in active:
            if depth == 0:
                items.append((p, [], N))
                owners.append((p, list(range(G))))
            else:
                for g, node in enumerate(current[p]):
                    if node is not None:
                        items.append((p, run.trees[p].path(node), M))
                        owners.append((p, [g]))
        outs = run.extend(items, run.seed("extend", depth))
        kids: dict[tuple[int, int], list[Node]] = {}
        for (p, gs), comps in zip(owners, outs, strict=True):
            for j, g in enumerate(gs):
                parent = current[p][g]
                if parent.parent is not None:
                    parent.status = "expanded"
                kids[p, g] = add_children(run.trees[p], parent, comps[j * M : (j + 1) * M], group=g)
        run.score([(p, n) for (p, _g), ns in kids.items() for n in ns])
        for p in active:
            taken: set[tuple[str, ...]] = set()
            for g in range(G):
                if (p, g) not in kids:
                    continue
                ranked = sorted(kids[p, g], key=rank_key, reverse=True)
                if not ranked:  # every continuation was a duplicate: the subtree ends
                    current[p][g] = None
                    continue
                paths = [tuple(run.trees[p].path(n)) for n in ranked]
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
                    current[p][g] = None
                else:
                    best.status = "live"
                    current[p][g] = best
            if all(n is None for n in current[p]):
                run.close(p)
    pairs = [(p, n) for p in run.open() for n in current[p] if n is not None]
    run.roll_out(pairs, run.seed("rollout", config.max_steps))
    return run.close_open()
