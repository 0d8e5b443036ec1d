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

import time

from search import common
from search.config import SearchConfig
from search.types import Candidate, Node, SearchResult, Tree, as_problems


def _rank_key(node: Node):
    return (node.value is not None, node.value if node.value is not None else 0.0, -node.id)


def node_candidate(tree: Tree, node: Node, steps: list[str] | None = None) -> Candidate:
    return Candidate(
        steps=steps if steps is not None else tree.path(node), scores=node.scores,
        finish_reason=node.finish_reason, generated_tokens=node.tokens,
        logprob=node.logprob, node=node.id, group=node.group,
    )


def add_children(tree: Tree, parent: Node, comps, *, group=None) -> list[Node]:
    """New nodes for one parent's continuations; duplicates (same step text under the
    same parent, within the same DVTS subtree) are recorded, not returned."""
    seen = {
        tree.nodes[c].step.strip() for c in parent.children
        if tree.nodes[c].status != "duplicate" and tree.nodes[c].group == group
    }
    fresh = []
    for c in comps:
        fin, reason = common.step_outcome(c)
        text = "" if reason == "empty" else c.text
        lp = None if c.cumulative_logprob is None or parent.logprob is None else parent.logprob + c.cumulative_logprob
        node = tree.add(
            parent, text, finished=fin, finish_reason=reason, logprob=lp,
            tokens=parent.tokens + c.generated_tokens, group=group,
        )
        if text.strip() in seen:
            node.status = "duplicate"
            continue
        seen.add(text.strip())
        fresh.append(node)
    return fresh


def score_nodes(scorer, probs, trees, pairs, ledgers, agg: str) -> None:
    """One scorer call for [(problem index, node)]; sets node.scores and node.value."""
    items = [(p, trees[p].path(n)) for p, n in pairs]
    for (_p, node), s in zip(pairs, common.score(scorer, probs, items, ledgers), strict=True):
        node.scores = s
        node.value = common.value_of(s, agg, node.logprob, node.tokens)


def finish_rollouts(policy, scorer, probs, trees, pairs, ledgers, config, seed, delim) -> list[tuple[int, Node, list[str]]]:
    """Roll [(problem index, node)] out to the end: one policy call, one scorer call.

    Each rollout becomes one child node (status "rollout") holding the rest of
    the solution; returns (problem index, rollout node, full steps)."""
    comps = common.rollout(policy, probs, [(p, trees[p].path(n)) for p, n in pairs], seed, ledgers)
    out = []
    for (p, node), c in zip(pairs, comps, strict=True):
        tree = trees[p]
        steps = tree.path(node) + common.split_steps(c.text, delim)
        lp = None if c.cumulative_logprob is None or node.logprob is None else node.logprob + c.cumulative_logprob
        reason = "eos" if c.finish_reason == "stop" else (c.finish_reason or "unknown")
        r = tree.add(node, c.text, finished=True, finish_reason=reason, logprob=lp,
                     tokens=node.tokens + c.generated_tokens, group=node.group, status="rollout")
        out.append((p, r, steps))
    scores = common.score(scorer, probs, [(p, steps) for p, _, steps in out], ledgers)
    for (_p, r, _steps), s in zip(out, scores, strict=True):
        r.scores = s
        r.value = common.value_of(s, config.agg, r.logprob, r.tokens)
    return out


def beam(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None) -> list[SearchResult]:
    """Step-level beam search (rule in the module docstring) for all problems at once."""
    t0 = time.perf_counter()
    probs = as_problems(problems)
    P, N, M = len(probs), config.n, config.beam_width
    keep = N // M if config.beam_rule == "top_n_over_m" else N
    delim = common.delimiter(policy)
    ledgers = common.new_ledgers(policy, scorer, P)
    trees = [Tree() for _ in probs]
    live: list[list[Node]] = [[t.root] for t in trees]
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
        items, parents = [], []
        for p in active:
            for node in live[p]:
                items.append((p, trees[p].path(node), N if node.parent is None else M))
                parents.append((p, node))
        outs = common.extend(policy, probs, items, common.call_seed(config, "extend", depth), ledgers)
        children: dict[int, list[Node]] = {p: [] for p in active}
        for (p, parent), comps in zip(parents, outs, strict=True):
            parent.status = "expanded" if parent.parent is not None else "root"
            children[p].extend(add_children(trees[p], parent, comps))
        pairs = [(p, n) for p in active for n in children[p]]
        score_nodes(scorer, probs, trees, pairs, ledgers, config.agg)
        for p in active:
            open_ = []
            for node in children[p]:
                if node.finished:
                    node.status = "finished"
                    finished[p].append(node_candidate(trees[p], node))
                else:
                    open_.append(node)
            open_.sort(key=_rank_key, reverse=True)
            live[p] = open_[:keep]
            for node in live[p]:
                node.status = "live"
            for node in open_[keep:]:
                node.status = "pruned"
            if not live[p] or len(finished[p]) >= N:
                close(p)
    # step limit: roll the surviving beams out to the end
    pairs = [(p, n) for p in range(P) if results[p] is None for n in live[p]]
    if pairs:
        seed = common.call_seed(config, "rollout", config.max_steps)
        for p, r, steps in finish_rollouts(policy, scorer, probs, trees, pairs, ledgers, config, seed, delim):
            finished[p].append(node_candidate(trees[p], r, steps))
    for p in range(P):
        if results[p] is None:
            close(p)
    return results
