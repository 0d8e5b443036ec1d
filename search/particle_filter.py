"""Particle filtering over steps, batched across problems.

    particle_filter(problems, policy, prm, SearchConfig(strategy="particle_filter", n=8, agg="last"))

Inference-time scaling read as probabilistic inference (Puri et al., 2025): the
scorer's per-step value is the likelihood that a partial solution is on track,
and a population of N particles is moved along the policy's distribution and
re-weighted by it. The rule (N = config.n particles per problem):

- depth 0: all N particles sit on the root;
- every depth, each live particle gets one next step; particles sitting on the
  same node are one request of that many samples (so they draw different
  continuations); a continuation that repeats a sibling's step text joins that
  sibling's node instead of making a new one;
- each new node is scored (the scorer sees the whole path); its weight is its
  value, `agg` of the per-step scores (the policy's confidence with no scorer;
  0 for an unscored node);
- resampling: N particles are drawn from the whole population, live and finished,
  with probability proportional to the weights, by systematic resampling
  (seeded by the run seed, the problem and the depth; uniform when every weight
  is 0). A finished particle that is drawn stays finished and is not extended;
  nodes no particle is drawn onto are "pruned";
- a problem stops when every particle has finished; at depth `max_steps` the
  nodes of live particles are rolled out to the end and scored;
- candidates: the distinct finished nodes in the final population and the
  rollouts; the answer is chosen by `select` with `final_agg` (argmax by
  default; `--select weighted_vote` weighs answers by value).

The rule is written for one problem's particle set (`_particle_filter`, a program
for search/drive.py). In lockstep each depth is one policy call and one scorer call
for all particles of all problems; the rollout is one more of each. Pipelined, each
problem's particles move to the next depth as soon as their own steps are back and
scored (resampling needs the whole set). `Node.visits` counts the particles resampled
onto a node.
"""

from __future__ import annotations

import random
from collections import Counter

from search.config import SearchConfig
from search.drive import Extend
from search.tree import TreeSearch, add_child, node_candidate, step_text
from search.types import Node, SearchResult


def systematic_resample(weights: list[float], n: int, rng: random.Random) -> list[int]:
    """n indices drawn in proportion to `weights` with one uniform offset (systematic
    resampling: index i is drawn floor or ceil of n * w_i / sum(w) times). Uniform
    when the weights sum to 0."""
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(weights), float(len(weights))
    u = rng.random() / n
    out, cum, i = [], weights[0] / total, 0
    for k in range(n):
        pos = u + k / n
        while pos > cum and i < len(weights) - 1:
            i += 1
            cum += weights[i] / total
        out.append(i)
    return out


def _weight(node: Node) -> float:
    return max(0.0, node.value) if node.value is not None else 0.0


def particle_filter(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None,
                    pipeline: bool = False, **drive_options) -> list[SearchResult]:
    """Particle filtering over steps (rule in the module docstring), lockstep or pipelined
    (`TreeSearch.drive`)."""
    run = TreeSearch(problems, policy, scorer, config, on_done=on_done, equal=equal)
    return run.drive(_particle_filter, pipeline=pipeline, **drive_options)


def _close(run: TreeSearch, p: int, particles: list[Node]) -> None:
    """Candidates: the distinct finished nodes of the final population, then the rollouts."""
    final = {n.id: n for n in particles if n.finished}
    for n in final.values():
        n.status = "finished"
    ranked = sorted(final.values(), key=lambda n: n.id)
    run.close(p, [node_candidate(run.trees[p], n) for n in ranked] + run.finished[p])


def _particle_filter(run: TreeSearch, p: int):
    """Particle filtering on problem p: a program for search/drive.py."""
    config = run.config
    N = config.n
    tree = run.trees[p]
    particles: list[Node] = [tree.root] * N  # one entry per particle
    for depth in range(config.max_steps):
        # extend: every live particle gets one step; copies of a node are one request
        copies = Counter(n.id for n in particles if not n.finished)
        owners = [tree.nodes[nid] for nid in sorted(copies)]
        outs = yield Extend([(tree.path(n), copies[n.id]) for n in owners], run.seed("extend", depth), depth)
        moved = [n for n in particles if n.finished]
        new: list[Node] = []
        for parent, comps in zip(owners, outs, strict=True):
            if parent.parent is not None:
                parent.status = "expanded"
            by_text = {tree.nodes[c].step.strip(): tree.nodes[c] for c in parent.children}
            for c in comps:
                node = by_text.get(step_text(c).strip())
                if node is None:
                    node = add_child(tree, parent, c)
                    by_text[node.step.strip()] = node
                    new.append(node)
                moved.append(node)
        yield run.score(p, new, depth)
        # resample N particles from the moved population by weight
        rng = random.Random(run.seed("resample", run.probs[p].id, depth))
        drawn = [moved[i] for i in systematic_resample([_weight(n) for n in moved], N, rng)]
        kept = {n.id for n in drawn}
        for n in moved:
            if n.id not in kept:
                n.status = "pruned"
        for n in drawn:
            n.visits += 1
            if not n.finished:
                n.status = "live"
        particles = drawn
        if all(n.finished for n in drawn):
            _close(run, p, particles)
            return
    # step limit: roll the nodes of live particles out to the end (once per node)
    live = list({n.id: n for n in particles if not n.finished}.values())
    yield from run.roll_out(p, live, run.seed("rollout", config.max_steps), config.max_steps)
    _close(run, p, particles)
