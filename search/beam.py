"""Step-level beam search over any scorer and aggregator, batched across problems.

    beam(problems, policy, prm, SearchConfig(strategy="beam", n=8, beam_width=2, agg="min"))

The rule (N = config.n live-beam budget, M = config.beam_width):

- depth 0: the root (the prompt) gets N continuations (one step each);
- every depth, each new step is scored (the scorer sees the whole path) and the
  beam's value is `agg(per-step scores)`; continuations that finish (EOS, step
  token limit, empty step) leave the beam and are kept as final candidates;
  duplicate steps (same text under the same parent) are dropped unscored;
- "top_n_over_m" (default, search-and-learn's rule): the N/M best unfinished
  beams survive and each gets M continuations at the next depth, N in total;
  "expand_all": the N best survive and every one gets M (N*M per depth);
- a problem stops when no beam is alive or N candidates have finished;
- at depth `max_steps` the surviving beams are rolled out to the end (one full
  sample each) and scored; they join the finished candidates;
- the answer is chosen among all finished candidates by `select` with
  `final_agg` (search/select.py).

All problems advance together: each depth is one policy call and one scorer
call for all live beams of all live problems; the rollout is one more of each.
With no scorer, beams are ranked by the policy's confidence, exp(mean token
log-probability) of the path.
"""

from __future__ import annotations

from search.config import SearchConfig
from search.tree import TreeSearch, add_children, rank_key
from search.types import Node, SearchResult


def beam(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None) -> list[SearchResult]:
    """Step-level beam search (rule in the module docstring) for all problems at once."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    N, M = config.n, config.beam_width
    keep = N // M if config.beam_rule == "top_n_over_m" else N
    live: list[list[Node]] = [[t.root] for t in run.trees]

    for depth in range(config.max_steps):
        active = run.open()
        if not active:
            break
        items, parents = [], []
        for p in active:
            for node in live[p]:
                items.append((p, run.trees[p].path(node), N if node.parent is None else M))
                parents.append((p, node))
        outs = run.extend(items, run.seed("extend", depth))
        children: dict[int, list[Node]] = {p: [] for p in active}
        for (p, parent), comps in zip(parents, outs, strict=True):
            parent.status = "expanded" if parent.parent is not None else "root"
            children[p].extend(add_children(run.trees[p], parent, comps))
        run.score([(p, n) for p in active for n in children[p]])
        for p in active:
            open_ = []
            for node in children[p]:
                if node.finished:
                    node.status = "finished"
                    run.keep(p, node)
                else:
                    open_.append(node)
            open_.sort(key=rank_key, reverse=True)
            live[p] = open_[:keep]
            for node in live[p]:
                node.status = "live"
            for node in open_[keep:]:
                node.status = "pruned"
            if not live[p] or len(run.finished[p]) >= N:
                run.close(p)
    # step limit: roll the surviving beams out to the end
    run.roll_out([(p, n) for p in run.open() for n in live[p]], run.seed("rollout", config.max_steps))
    return run.close_open()
