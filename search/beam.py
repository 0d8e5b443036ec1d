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

The rule is written for one problem (`_beam`, a program for search/drive.py). In
lockstep (the default of this function) all problems advance together: each depth is
one policy call and one scorer call for all live beams of all live problems; the
rollout is one more of each. Pipelined (`pipeline=True`, what `run_search` uses), each
problem moves to its next depth as soon as its own steps are back and scored; the
result is the same. With no scorer, beams are ranked by the policy's confidence,
exp(mean token log-probability) of the path.
"""

from __future__ import annotations

from search.config import SearchConfig
from search.drive import Extend
from search.tree import TreeSearch, add_children, rank_key
from search.types import SearchResult


def beam(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None, pipeline: bool = False,
         **drive_options) -> list[SearchResult]:
    """Step-level beam search (rule in the module docstring) for all problems, lockstep or
    pipelined (`TreeSearch.drive`)."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    return run.drive(_beam, pipeline=pipeline, **drive_options)


def _beam(run: TreeSearch, p: int):
    """Beam search on problem p: a program for search/drive.py."""
    config = run.config
    N, M = config.n, config.beam_width
    keep = N // M if config.beam_rule == "top_n_over_m" else N
    tree = run.trees[p]
    live = [tree.root]
    for depth in range(config.max_steps):
        items = [(tree.path(node), N if node.parent is None else M) for node in live]
        outs = yield Extend(items, run.seed("extend", depth), depth)
        children = []
        for parent, comps in zip(live, outs, strict=True):
            parent.status = "expanded" if parent.parent is not None else "root"
            children.extend(add_children(tree, parent, comps))
        yield run.score(p, children, depth)
        open_ = []
        for node in children:
            if node.finished:
                node.status = "finished"
                run.keep(p, node)
            else:
                open_.append(node)
        open_.sort(key=rank_key, reverse=True)
        live = open_[:keep]
        for node in live:
            node.status = "live"
        for node in open_[keep:]:
            node.status = "pruned"
        if not live or len(run.finished[p]) >= N:
            run.close(p)
            return
    # step limit: roll the surviving beams out to the end
    yield from run.roll_out(p, live, run.seed("rollout", config.max_steps), config.max_steps)
    run.close(p)
