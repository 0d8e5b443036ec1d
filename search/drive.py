"""The two ways the step-level strategies run: lockstep (depth by depth) or pipelined.

A step-level strategy (beam.py, dvts.py, mcts.py, particle_filter.py) writes its rule
for ONE problem as a program: a generator that yields requests and is sent their results.

    def program(run, p):                                     # run: a TreeSearch
        outs = yield Extend([(steps, k), ...], seed, clock)  # k next steps of each path
        yield Score([(node, steps), ...], clock)             # the nodes get scores and values
        comps = yield Rollout([steps, ...], seed, clock)     # each path sampled to the end
        run.close(p)                                         # the problem's result

Both drivers run the same programs, so the algorithm lives once, in the strategy's file:

- `lockstep(run, program)`: every problem at the same place. Each round serves the
  requests with the smallest (clock, phase), one policy or scorer call for all problems
  (what every strategy did before programs existed: one `extend` call per depth, one
  scorer call, one rollout call; the reference). A request with nothing in it still
  waits for its round, so problems finish in the same order as before.
- `pipelined(run, program)`: each problem advances as soon as its own results are in.
  Generation requests go to the policy's non-blocking interface (`submit` / `poll`),
  within the engine's budget (`Admission`); scoring requests wait at most
  `score_wait_s` for others so that the scorer runs batches of up to `score_batch`
  solutions. The requests of started problems go in first, in the order they became
  ready; new problems start, in order, with whatever room is left.

Seeds come from the request (the strategy derives them from the run seed and the
request's place, as before), and the policy derives one per sample from the prompt, so
a seeded result does not depend on the driver, on the batch or on the order in which
requests finish. The compute ledger counts the same in both drivers: one policy call
per problem and generation request, one scorer call per problem and scoring batch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from search import common

log = logging.getLogger(__name__)

DEFAULT_MAX_SEQS = 256  # live sequences when the policy reports no budget (a remote server)
SCORE_BATCH = 64  # solutions per scorer call the pipelined driver waits for ...
SCORE_WAIT_S = 0.05  # ... at most this long after the first of them is ready


@dataclass(slots=True)
class Extend:
    """k next steps for each path in `items` [(steps, k)]; sent back: one list of k
    completions per item. Items with the same path are one policy request of sum(k)."""

    items: list
    seed: int
    clock: float
    phase: ClassVar[int] = 0


@dataclass(slots=True)
class Rollout:
    """Each path in `paths` [steps] sampled to the end; sent back: one completion per path."""

    paths: list
    seed: int
    clock: float
    phase: ClassVar[int] = 1


@dataclass(slots=True)
class Score:
    """Score [(node, steps)] on their steps: each node gets `scores` and `value`
    (`TreeSearch.evaluate`); sent back: None."""

    entries: list
    clock: float
    phase: ClassVar[int] = 2


def _key(req) -> tuple:
    return (req.clock, req.phase)


def _size(req) -> int:
    return len(req.entries if isinstance(req, Score) else req.items if isinstance(req, Extend) else req.paths)


# ---- lockstep ---------------------------------------------------------------------------
def lockstep(run, program) -> None:
    """Run `program` for every problem of `run`, all problems at the same place: each
    round, one policy or scorer call serves the requests with the smallest (clock, phase)."""
    gens = {p: program(run, p) for p in range(len(run.probs))}
    pending = {}
    for p, gen in gens.items():
        _step(gen, p, pending, None, first=True)
    while pending:
        key = min(_key(r) for r in pending.values())
        group = [p for p in sorted(pending) if _key(pending[p]) == key]
        results = _serve(run, [(p, pending[p]) for p in group])
        for p, res in zip(group, results, strict=True):
            _step(gens[p], p, pending, res)
    _check_closed(run)


def _step(gen, p: int, pending: dict, value, *, first: bool = False) -> None:
    """Advance problem p's program by one request (None once it returned)."""
    try:
        pending[p] = next(gen) if first else gen.send(value)
    except StopIteration:
        pending.pop(p, None)


def _serve(run, group: list) -> list:
    """One call for the requests of one round, all of one kind; their results in order.
    Requests with different seeds (none of today's strategies makes them) get one call each."""
    out: list = [None] * len(group)
    kind = type(group[0][1])
    if kind is Score:
        run.evaluate([(p, node, steps) for p, req in group for node, steps in req.entries])
        return out
    by_seed: dict[int, list[int]] = {}
    for i, (_p, req) in enumerate(group):
        by_seed.setdefault(req.seed, []).append(i)
    for seed, idx in by_seed.items():
        if kind is Extend:
            items = [(group[i][0], steps, k) for i in idx for steps, k in group[i][1].items]
            flat = iter(common.extend(run.policy, run.probs, items, seed, run.ledgers))
        else:
            items = [(group[i][0], steps) for i in idx for steps in group[i][1].paths]
            flat = iter(common.rollout(run.policy, run.probs, items, seed, run.ledgers))
        for i in idx:
            out[i] = [next(flat) for _ in range(_size(group[i][1]))]
    return out


def _check_closed(run) -> None:
    left = run.open()
    if left:
        raise RuntimeError(f"the strategy's program ended without closing problems {left}")


# ---- pipelined --------------------------------------------------------------------------
class Admission:
    """The sequences and KV tokens of the requests in the engine, held within a budget:
    at most `max_seqs` sequences and `kv_tokens` tokens (`KVBudget.request_tokens` per
    request). An idle engine takes any one request, so a request larger than the whole
    budget still runs (alone).

    Seats are read, not counted: `seats()` is the policy's `pending()`, the sequences it
    still runs, so a request's finished samples free theirs before its slowest sample
    returns. KV tokens are reserved per request until it returns (a safe upper bound)."""

    def __init__(self, budget, max_seqs: int | None = None, *, seats) -> None:
        limits = [x for x in (budget.max_seqs if budget is not None else None, max_seqs) if x]
        self.max_seqs = min(limits) if limits else DEFAULT_MAX_SEQS
        self.kv_tokens = budget.kv_tokens if budget is not None else None
        self.budget = budget
        self.seats = seats
        self.tokens = 0

    @property
    def seqs(self) -> int:
        return self.seats()

    def fits(self, seqs: int, tokens: int) -> bool:
        used = self.seqs
        if used == 0:
            return True
        if used + seqs > self.max_seqs:
            return False
        return self.kv_tokens is None or self.tokens + tokens <= self.kv_tokens

    def reserve(self, tokens: int) -> None:
        self.tokens += tokens

    def free(self, tokens: int) -> None:
        self.tokens -= tokens

    def has_room(self) -> bool:
        return self.seqs < self.max_seqs and (self.kv_tokens is None or self.tokens < self.kv_tokens)


@dataclass(slots=True)
class _Waiting:
    """A problem's generation request in flight: its policy requests and their results."""

    req: object
    groups: list  # per policy request: the indices of the items / paths it serves
    results: list  # per policy request: its completions (None: not back yet)
    left: int


@dataclass(slots=True)
class _Ready:
    """One policy request waiting for room in the engine."""

    p: int
    slot: int
    request: object  # policies.GenRequest
    tokens: int


@dataclass
class Stats:
    """What the pipelined driver did (tests and benches read it)."""

    submitted: int = 0
    polls: int = 0
    score_calls: int = 0
    scored: int = 0
    max_seqs: int = 0
    max_tokens: int = 0
    started: list = field(default_factory=list)  # problem indices in the order they started


class Pipeline:
    """The pipelined driver's state (see the module docstring); `drive()` runs it to the end."""

    def __init__(self, run, program, *, score_batch: int = SCORE_BATCH, score_wait_s: float = SCORE_WAIT_S,
                 max_seqs: int | None = None) -> None:
        if score_batch < 1:
            raise ValueError(f"score_batch must be >= 1, got {score_batch}.")
        if score_wait_s < 0:
            raise ValueError(f"score_wait_s must be >= 0, got {score_wait_s}.")
        policy = run.policy
        missing = [m for m in ("submit", "poll", "pending", "abort", "kv_budget") if not hasattr(policy, m)]
        if missing:
            raise TypeError(f"a pipelined search needs a policy with the non-blocking interface "
                            f"(policies.base.Policy); {type(policy).__name__} has no {', '.join(missing)}; "
                            "run it with pipeline=False (--no-pipeline)")
        self.run, self.program, self.policy = run, program, policy
        self.score_batch, self.score_wait_s = score_batch, score_wait_s
        self.admission = Admission(policy.kv_budget(), max_seqs, seats=policy.pending)
        self.todo = deque(range(len(run.probs)))  # problems not started, in order
        self.gens: dict = {}
        self.ready: deque[_Ready] = deque()  # started problems' requests waiting for room
        self.fresh: deque[_Ready] = deque()  # new problems' first requests: only what room is left
        self.begun: set[int] = set()  # problems that have sent a generation request
        self.tickets: dict[int, _Ready] = {}
        self.waiting: dict[int, _Waiting] = {}
        self.scoring: list = []  # (p, Score request)
        self.score_since: float | None = None
        self.stats = Stats()

    # ---- the loop ------------------------------------------------------------------
    def drive(self) -> Stats:
        try:
            while self.todo or self.gens:
                self._admit()
                if self._score_due():
                    self._score()
                elif self.policy.pending():
                    self.stats.polls += 1
                    for ticket, comps in self.policy.poll():
                        self._returned(ticket, comps)
                elif self.scoring:
                    self._score()
                elif self.gens or self.todo:
                    raise RuntimeError("the pipelined search stalled: problems are open but nothing is in "
                                       "flight, ready or waiting to be scored")
        except BaseException:
            self.policy.abort()
            raise
        _check_closed(self.run)
        return self.stats

    def _admit(self) -> None:
        """Send started problems' requests while they fit, then new problems' first ones;
        start new problems while there is room. Each queue goes in order (a request that
        does not fit waits for room rather than be overtaken, so none starves).

        Seats are the sequences the policy still runs (`pending`): a request's finished
        samples free theirs before its slowest sample returns, so the engine stays full
        while a problem waits for its last continuation. KV tokens stay reserved for the
        whole request (a safe upper bound)."""
        while True:
            for queue in (self.ready, self.fresh):
                while queue and self.admission.fits(queue[0].request.n, queue[0].tokens):
                    self._submit(queue.popleft())
                if queue:
                    return
            if not self.todo or not self.admission.has_room():
                return
            p = self.todo.popleft()
            self.stats.started.append(p)
            self.run.starts[p] = time.perf_counter()
            self.gens[p] = self.program(self.run, p)
            self._advance(p, None, first=True)

    def _submit(self, item: _Ready) -> None:
        ticket = self.policy.submit(item.request)
        self.tickets[ticket] = item
        self.admission.reserve(item.tokens)
        self.stats.submitted += 1
        self.stats.max_seqs = max(self.stats.max_seqs, self.admission.seqs)
        self.stats.max_tokens = max(self.stats.max_tokens, self.admission.tokens)

    def _score_due(self) -> bool:
        if not self.scoring:
            return False
        if self.run.scorer is None or not self.policy.pending():
            return True  # nothing to batch for (no scorer), or nothing more can arrive
        size = sum(len(req.entries) for _p, req in self.scoring)
        return size >= self.score_batch or time.monotonic() - self.score_since >= self.score_wait_s

    def _score(self) -> None:
        batch, self.scoring, self.score_since = self.scoring, [], None
        entries = [(p, node, steps) for p, req in batch for node, steps in req.entries]
        self.run.evaluate(entries)
        if entries and self.run.scorer is not None:
            self.stats.score_calls += 1
            self.stats.scored += len(entries)
        for p, _req in batch:
            self._advance(p, None)

    # ---- one problem ---------------------------------------------------------------
    def _advance(self, p: int, value, *, first: bool = False) -> None:
        """Send problem p's program its result; dispatch its next request."""
        gen = self.gens[p]
        while True:
            try:
                req = next(gen) if first else gen.send(value)
            except StopIteration:
                del self.gens[p]
                return
            first = False
            if _size(req) == 0:  # nothing to generate or score: answered at once
                value = None if isinstance(req, Score) else []
                continue
            if isinstance(req, Score):
                if not self.scoring:
                    self.score_since = time.monotonic()
                self.scoring.append((p, req))
            else:
                self._dispatch(p, req)
            return

    def _dispatch(self, p: int, req) -> None:
        """Turn a problem's Extend / Rollout into policy requests (one per distinct path of
        an Extend, as `common.extend` merges them; one per path of a Rollout)."""
        from policies import GenRequest

        text = self.run.probs[p].text
        if isinstance(req, Extend):
            groups = list(common.merge_items(tuple(steps) for steps, _k in req.items).values())
            requests = [GenRequest(text, tuple(req.items[g[0]][0]), n=sum(req.items[i][1] for i in g),
                                   kind="extend", seed=req.seed) for g in groups]
        else:
            groups = [[i] for i in range(len(req.paths))]
            requests = [GenRequest(text, tuple(steps), n=1, kind="sample", seed=req.seed) for steps in req.paths]
        self.run.ledgers[p].policy_calls += 1
        self.waiting[p] = _Waiting(req, groups, [None] * len(requests), len(requests))
        budget = self.admission.budget
        queue = self.ready if p in self.begun else self.fresh
        self.begun.add(p)
        for slot, r in enumerate(requests):
            tokens = self.policy.request_tokens(r, budget) if self.admission.kv_tokens else 0
            queue.append(_Ready(p, slot, r, tokens))

    def _returned(self, ticket: int, comps: list) -> None:
        item = self.tickets.pop(ticket)
        self.admission.free(item.tokens)
        w = self.waiting[item.p]
        w.results[item.slot] = comps
        w.left -= 1
        if w.left:
            return
        del self.waiting[item.p]
        self._advance(item.p, self._results(item.p, w))

    def _results(self, p: int, w: _Waiting) -> list:
        """The policy requests' completions as the program's result (ledger counted)."""
        led = self.run.ledgers[p]
        size = _size(w.req)
        out: list = [None] * size
        for idx, comps in zip(w.groups, w.results, strict=True):
            led.add_completions(comps)
            if isinstance(w.req, Rollout):
                out[idx[0]] = comps[0]
                continue
            pos = 0
            for i in idx:
                k = w.req.items[i][1]
                out[i] = comps[pos : pos + k]
                pos += k
        return out


def pipelined(run, program, **options) -> Stats:
    """Run `program` for every problem of `run`, each problem advancing on its own (see
    the module docstring); options: score_batch, score_wait_s, max_seqs (a cap below the
    policy's budget). Returns what the driver did (`Stats`)."""
    return Pipeline(run, program, **options).drive()
