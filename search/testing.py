"""Scripted fake policy and scorer for tests of search strategies: deterministic,
instant, and they count every call and token (tests/test_search.py uses them). The fake
policy also takes requests one at a time (`submit` / `poll`) and returns them in an order
the test chooses, within a KV budget it checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies import Completion, SamplingConfig


@dataclass
class Call:
    kind: str
    problems: list
    steps: list
    k: int
    seed: int | None


class _FakeEngine:
    """The non-blocking interface (`submit` / `poll`, as policies.base.Policy) that the fakes
    share. `poll` returns `per_poll` of the requests in flight (all when None) in submission
    order, or, with `arrival` (a seed or a `random.Random`), in a shuffled order: tests choose
    how requests overtake each other. `budget` (a `KVBudget`) is what `kv_budget` reports; the
    live sequences and KV tokens (`KVBudget.request_tokens`) are tracked, their maxima kept in
    `max_live_seqs` / `max_live_tokens`. A subclass says what a request holds (`_accept`), what
    it returns (`_finish`) and its prompt length (`_prompt_tokens`). With `sample_wise`, a
    poll ends one sample of each request it picks (as the engine ends a seeded request's
    single-sample requests one by one): `pending` drops at once, the request returns with
    its last sample."""

    num_parameters = 1000
    incremental = True  # as VLLMPolicy: run_search pipelines the step-level strategies on it

    def _init_engine(self, *, arrival, per_poll: int | None, budget, sample_wise: bool = False) -> None:
        import random

        self.sample_wise = sample_wise
        self._left: dict[int, int] = {}  # ticket -> samples still running (sample_wise)

        self.arrival = random.Random(arrival) if isinstance(arrival, int) else arrival
        self.per_poll = per_poll
        self.budget = budget
        self.requests: list = []  # every GenRequest submitted, in order
        self.polls = 0
        self._live: dict[int, tuple] = {}  # ticket -> (request, what _accept returned, KV tokens)
        self.live_seqs = self.live_tokens = self.max_live_seqs = self.max_live_tokens = 0

    def _accept(self, request):
        return None

    def _finish(self, request, accepted) -> list[Completion]:
        raise NotImplementedError

    def _prompt_tokens(self, request) -> int:
        return 10

    def submit(self, request) -> int:
        from policies.base import new_ticket

        accepted = self._accept(request)
        ticket = new_ticket()
        self.requests.append(request)
        tokens = self.request_tokens(request, self.budget) if self.budget is not None else 0
        self._live[ticket] = (request, accepted, tokens)
        self._left[ticket] = request.n
        self.live_seqs += request.n
        self.live_tokens += tokens
        self.max_live_seqs = max(self.max_live_seqs, self.live_seqs)
        self.max_live_tokens = max(self.max_live_tokens, self.live_tokens)
        return ticket

    def poll(self):
        self.polls += 1
        order = list(self._live)
        if self.arrival is not None:
            self.arrival.shuffle(order)
        out = []
        for ticket in order[: self.per_poll]:
            ended = 1 if self.sample_wise else self._left[ticket]
            self._left[ticket] -= ended
            self.live_seqs -= ended
            if self._left[ticket]:
                continue
            r, accepted, tokens = self._live.pop(ticket)
            del self._left[ticket]
            self.live_tokens -= tokens
            out.append((ticket, self._finish(r, accepted)))
        return out

    def pending(self) -> int:
        return self.live_seqs

    def abort(self) -> None:
        self._live.clear()
        self._left.clear()
        self.live_seqs = self.live_tokens = 0

    def kv_budget(self):
        return self.budget

    def request_tokens(self, request, budget) -> int:
        cap = request.max_tokens or (self.sampling.max_step_tokens if request.kind == "extend"
                                     else self.sampling.max_tokens)
        return budget.request_tokens(self._prompt_tokens(request), request.n, cap)


class FakePolicy(_FakeEngine):
    """`extend` returns, for prompt (problem, steps) and sample j, the step
    `script(problem, steps, j, seed)` -> (text, finish) with finish in
    {"step", "eos", "length"}; `sample` builds full solutions step by step
    from the same script until "eos" or `max_steps`.

    The non-blocking interface (`submit` / `poll`, as policies.base.Policy) gives a
    request the completions the blocking call would. `poll` returns `per_poll` of the
    requests in flight (all when None) in submission order, or, with `arrival` (a seed or
    a `random.Random`), in a shuffled order: tests choose how requests overtake each
    other. `budget` (a `KVBudget`) is what `kv_budget` reports; the live sequences and KV
    tokens (`KVBudget.request_tokens`, prompt = 10 + 5 per step) are tracked, their
    maxima kept in `max_live_seqs` / `max_live_tokens`; `sample_wise` ends samples one by
    one (`_FakeEngine`). `token_conf(problem, text)`, when given, is each full sample's
    per-token confidences (`Completion.token_confidence`)."""

    def __init__(self, script=None, *, max_steps: int = 6, tokens_per_step: int = 5, budget=None,
                 arrival=None, per_poll: int | None = None, token_conf=None, sample_wise: bool = False):
        self._init_engine(arrival=arrival, per_poll=per_poll, budget=budget, sample_wise=sample_wise)
        self.token_conf = token_conf
        self.sampling = SamplingConfig(seed=0)
        self.script = script or default_script
        self.max_steps = max_steps
        self.tps = tokens_per_step
        self.calls: list[Call] = []

    def _comp(self, text, finish, first, prompt_len, tokens=None):
        stop = {"step": "\n\n", "eos": 2, "length": None}[finish]
        reason = "length" if finish == "length" else "stop"
        return Completion(
            text=text, generated_tokens=tokens if tokens is not None else self.tps,
            prompt_tokens=prompt_len if first else 0, cached_tokens=(prompt_len // 2) if first else 0,
            finish_reason=reason, cumulative_logprob=-1.0 * (tokens or self.tps), stop_reason=stop,
        )

    def _extend_row(self, problem, steps, k, seed):
        plen = 10 + 5 * len(steps)
        return [self._comp(*self.script(problem, list(steps), j, seed), j == 0, plen) for j in range(k)]

    def _sample_row(self, problem, prefix, n, seed):
        row = []
        for j in range(n):
            steps, new = list(prefix), []
            for _ in range(self.max_steps):
                text, fin = self.script(problem, steps, j, seed)
                if text:
                    steps.append(text)
                    new.append(text)
                if fin != "step":
                    break
            row.append(self._comp("\n\n".join(new), "eos", j == 0, 10 + 5 * len(prefix), self.tps * max(len(new), 1)))
        if self.token_conf is not None:
            from dataclasses import replace

            row = [replace(c, token_confidence=tuple(self.token_conf(problem, c.text))) for c in row]
        return row

    def extend(self, problems, steps, k=1, *, max_tokens=None, seed=None):
        self.calls.append(Call("extend", list(problems), [list(s) for s in steps], k, seed))
        ks = [k] * len(problems) if isinstance(k, int) else list(k)
        return [self._extend_row(p, s, kk, seed) for p, s, kk in zip(problems, steps, ks, strict=True)]

    def sample(self, problems, n, *, max_tokens=None, seed=None, prefixes=None):
        prefixes = prefixes if prefixes is not None else [[]] * len(problems)
        self.calls.append(Call("sample", list(problems), [list(s) for s in prefixes], n, seed))
        return [self._sample_row(p, pre, n, seed) for p, pre in zip(problems, prefixes, strict=True)]

    # ---- the non-blocking interface (_FakeEngine) ----------------------------------
    def _finish(self, r, accepted) -> list[Completion]:
        return (self._extend_row(r.problem, r.steps, r.n, r.seed) if r.kind == "extend"
                else self._sample_row(r.problem, r.steps, r.n, r.seed))

    def _prompt_tokens(self, request) -> int:
        return 10 + 5 * len(request.steps)

    def count(self, kind):
        return sum(c.kind == kind for c in self.calls)


def default_script(problem, steps, j, seed):
    """Step j of depth d is "d.j"; at depth 3 the solution ends with an answer."""
    d = len(steps)
    if d >= 3:
        return f"The answer is {j % 2}.", "eos"
    return f"s{d}.{j}", "step"


@dataclass
class Stats:
    calls: int = 0
    candidates: int = 0
    tokens_scored: int = 0
    cache_hits: int = 0


@dataclass
class FakeScorer:
    """Per-step scores from `fn(problem, steps) -> list[float]`; counts calls."""

    fn: object = None
    num_parameters: int = 100
    needs_golds: bool = False
    stats: Stats = field(default_factory=Stats)
    log: list = field(default_factory=list)

    def score(self, problems, solutions, *, golds=None):
        self.stats.calls += 1
        self.stats.candidates += len(solutions)
        self.stats.tokens_scored += sum(len(" ".join(s).split()) + 3 for s in solutions)
        self.log.append((list(problems), [list(s) for s in solutions], golds))
        fn = self.fn or (lambda p, s: [0.5] * len(s))
        return [fn(p, s) for p, s in zip(problems, solutions, strict=True)]


def digit_scores(problem, steps):
    """A PRM that likes steps with a higher last digit: "s1.3" scores 0.3+."""
    out = []
    for s in steps:
        digits = [c for c in s if c.isdigit()]
        out.append(0.1 + 0.2 * int(digits[-1]) if digits else 0.5)
    return [min(x, 1.0) for x in out]


class FakeTracePolicy(_FakeEngine):
    """Full samples with scripted per-token confidences, stopped early as the engine would
    (`GenRequest.watch`): the deepconf strategy's fake (tests/test_deepconf.py).

    `script(problem, i) -> (answer, confidences)` gives the i-th sample submitted for that
    problem (counted over its requests, in submission order): one generated token per
    confidence, the last one's text "\\boxed{answer}" (a sample stopped before its end has
    no answer). A watched sample is fed its confidences in order and cut after the token its
    watcher stops at ("early_stop"). Polling, arrival order and the KV budget as
    `_FakeEngine` (prompt = 10 tokens)."""

    early_stop = True

    def __init__(self, script, *, arrival=None, per_poll: int | None = None, budget=None, logprobs: int = 5):
        self._init_engine(arrival=arrival, per_poll=per_poll, budget=budget)
        self.sampling = SamplingConfig(seed=0, logprobs=logprobs)
        self.script = script
        self.returned: list = []  # (request, completions) in the order poll returned them
        self._count: dict[str, int] = {}  # problem -> samples submitted

    def _accept(self, request) -> int:
        """The request's first sample index for its problem."""
        from policies.base import check_watch

        check_watch(self, request)
        first = self._count.get(request.problem, 0)
        self._count[request.problem] = first + request.n
        return first

    def _completion(self, request, i: int, j: int) -> Completion:
        answer, conf = self.script(request.problem, i)
        texts = ["w "] * (len(conf) - 1) + [f"\\boxed{{{answer}}}"]
        m, finish = len(conf), "stop"
        if request.watch is not None:
            watcher = request.watch()
            stop = next((t for t, c in enumerate(conf) if watcher(c)), None)
            if stop is not None and stop + 1 < len(conf):
                m, finish = stop + 1, "early_stop"
        return Completion(
            text="".join(texts[:m]), generated_tokens=m, prompt_tokens=10 if j == 0 else 0,
            cached_tokens=5 if j == 0 else 0, finish_reason=finish, cumulative_logprob=-1.0 * m,
            stop_reason=2 if finish == "stop" else None, token_confidence=tuple(float(c) for c in conf[:m]),
        )

    def _finish(self, r, first: int) -> list[Completion]:
        row = [self._completion(r, first + j, j) for j in range(r.n)]
        self.returned.append((r, row))
        return row
