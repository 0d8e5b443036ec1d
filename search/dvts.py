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

import time

from search import common
from search.beam import _rank_key, add_children, finish_rollouts, node_candidate, score_nodes
from search.config import SearchConfig
from search.types import Candidate, Node, SearchResult, Tree, as_problems


def dvts(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None) -> list[SearchResult]:
    """Diverse verifier tree search (rule in the module docstring)."""
    t0 = time.perf_counter()
    probs = as_problems(problems)
    P, N, M = len(probs), config.n, config.beam_width
    G = N // M
    delim = common.delimiter(policy)
    ledgers = common.new_ledgers(policy, scorer, P)
    trees = [Tree() for _ in probs]
    # current node of each subtree (None once it has finished)
    current: list[list[Node | None]] = [[t.root] * G for t in trees]
    finished: list[list[Candidate]] = [[] for _ in probs]
    results: list[SearchResult | None] = [None] * P

    def close(p: int) -> None:
        results[p] = common.finalize(
            probs[p], finished[p], config, ledgers[p], delim=delim,
            tree=trees[p].as_list(), equal=equal, t0=t0, on_done=on_done,
        )

    for depth in range(config.max_steps):
        active = [p for p in range(P) if results[p] is None]
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
                        items.append((p, trees[p].path(node), M))
                        owners.append((p, [g]))
        outs = common.extend(policy, probs, items, common.call_seed(config, "extend", depth), ledgers)
        kids: dict[tuple[int, int], list[Node]] = {}
        for (p, gs), comps in zip(owners, outs, strict=True):
            for j, g in enumerate(gs):
                parent = current[p][g]
                if parent.parent is not None:
                    parent.status = "expanded"
                kids[p, g] = add_children(trees[p], parent, comps[j * M : (j + 1) * M], group=g)
        pairs = [(p, n) for (p, _g), ns in kids.items() for n in ns]
        score_nodes(scorer, probs, trees, pairs, ledgers, config.agg)
        for p in active:
            taken: set[tuple[str, ...]] = set()
            for g in range(G):
                if (p, g) not in kids:
                    continue
                ranked = sorted(kids[p, g], key=_rank_key, reverse=True)
                if not ranked:  # every continuation was a duplicate: the subtree ends
                    current[p][g] = None
                    continue
                paths = [tuple(trees[p].path(n)) for n in ranked]
                pick = next((i for i, pa in enumerate(paths) if pa not in taken), 0)
                best = ranked[pick]
                taken.add(paths[pick])
                for n in ranked:
                    if n is best:
                        continue
                    n.status = "finished" if n.finished else "pruned"
                    if n.finished:
                        finished[p].append(node_candidate(trees[p], n))
                if best.finished:
                    best.status = "finished"
                    finished[p].append(node_candidate(trees[p], best))
                    current[p][g] = None
                else:
                    best.status = "live"
                    current[p][g] = best
            if all(n is None for n in current[p]):
                close(p)
    pairs = [(p, n) for p in range(P) if results[p] is None for n in current[p] if n is not None]
    if pairs:
        seed = common.call_seed(config, "rollout", config.max_steps)
        for p, r, steps in finish_rollouts(policy, scorer, probs, trees, pairs, ledgers, config, seed, delim):
            finished[p].append(node_candidate(trees[p], r, steps))
    for p in range(P):
        if results[p] is None:
            close(p)
    return results
