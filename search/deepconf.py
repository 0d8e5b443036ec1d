"""DeepConf online (Fu et al. 2025): warm-up traces set a confidence threshold, later traces
are stopped inside the engine as soon as their windowed confidence falls below it.

    deepconf(problems, policy, None, SearchConfig(strategy="deepconf", n=16, warmup=4, keep=90, window=32))
    python cli.py search --strategy deepconf --n 16 --warmup 4 --keep 90 --window 32 --dataset gsm8k

Per problem, with token confidences c_t (minus the mean top-5 log-prob, `policies` computes
them from the log-probs the engine returns with every token):

1. `warmup` traces run in full (one request of `warmup` samples, call seed "warmup").
2. The threshold s is the (100 - keep)-th percentile of their lowest `window`-token group
   confidences (`search.confidence.online_threshold`).
3. The other n - warmup traces (one request, call seed "rest") are watched token by token
   (`search.confidence.WindowStop` as the request's `watch`): a trace is aborted in the
   engine at the first token whose `window`-token mean confidence is below s. It keeps the
   tokens made up to and including that one and does not vote.
4. The warm-up traces at or above s and the later traces that were not stopped vote,
   weighted by their lowest-group confidence (`search.confidence.online_votes`, then
   `weighted_vote`). This is the rule `eval.budget` replays on a stored pool, through the
   same two functions, so a replay of the returned tokens picks the same answer.

A later trace shorter than the window is judged once, at its end, by its mean (as
`stop_position`): it cannot be stopped early, and votes only if its mean reaches s.

Driving the engine: the strategy uses the policy's non-blocking interface (`submit` /
`poll`, policies/base.py) within the engine's budget (`search.drive.Admission`). The
warm-up requests of every problem are queued in problem order; as soon as a problem's
warm-up is back, its threshold is known and its watched request goes in, ahead of warm-ups
not yet admitted (so started problems finish and free their room first). Many problems are
in flight at once and the engine stays full. Only a policy that stops samples inside its
engine (`policy.early_stop`: the in-process vLLM engine) can run it.

Seeds: both requests carry call seeds derived from the run seed, and the policy derives one
seed per sample from (call seed, prompt, sample index), so a seeded run gives the same
traces, thresholds and answers whatever order requests arrive in.

Ledger: every generated token, stopped traces included (up to their stop token); one
policy call per request (2 per problem, 1 when warmup = n). What a stopped trace would
have cost in full is unknown, so no "tokens saved" is claimed: the record's `details` say
how many later traces were stopped (by the rule; `stopped_in_engine` of them were cut
before their own end) and at which token (`stop_at`).
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from dataclasses import dataclass, replace

from search import common
from search.confidence import WindowStop, online_threshold, online_votes, trace_group
from search.config import SearchConfig
from search.drive import Admission


@dataclass(slots=True)
class _Item:
    """One policy request of a problem, waiting for room or in the engine."""

    p: int
    phase: str  # "warmup" or "rest"
    request: object  # policies.GenRequest
    tokens: int  # KV tokens it may hold (0: the budget counts sequences only)


def check_policy(policy, scorer) -> None:
    """What the strategy needs, checked before any request: a policy that stops samples in
    its engine and returns token confidences, and no scorer."""
    if scorer is not None:
        raise ValueError("deepconf votes by the policy's own token confidence and takes no scorer; "
                         "use --reward none (or pass scorer=None)")
    if not getattr(policy, "early_stop", False):
        raise ValueError(f"deepconf stops traces inside the engine, which {type(policy).__name__} cannot do; "
                         "run it on the in-process engine (VLLMPolicy, --backend inprocess)")
    if not getattr(policy.sampling, "logprobs", 0):
        raise ValueError("deepconf needs token confidences and the policy samples without log-probs; build it "
                         "with SamplingConfig(logprobs=5) (cli.py search does for --strategy deepconf)")


class Online:
    """The strategy's state for one call: problems, requests in flight, warm-up results."""

    def __init__(self, run) -> None:
        from policies import GenRequest

        self.run, self.policy, self.config = run, run.policy, run.config
        self.admission = Admission(self.policy.kv_budget(), seats=self.policy.pending)
        self.ready: deque[_Item] = deque()  # started problems' watched requests
        self.fresh: deque[_Item] = deque(  # warm-ups, in problem order
            self._item(p, "warmup", GenRequest(prob.text, n=self.config.warmup, kind="sample",
                                               seed=run.seed("warmup")))
            for p, prob in enumerate(run.probs)
        )
        self.tickets: dict[int, _Item] = {}
        self.warm: dict[int, list] = {}  # problem -> its warm-up completions
        self.threshold: dict[int, float] = {}
        self.left = len(run.probs)

    def _item(self, p: int, phase: str, request) -> _Item:
        budget = self.admission.budget
        tokens = self.policy.request_tokens(request, budget) if self.admission.kv_tokens else 0
        return _Item(p, phase, request, tokens)

    def drive(self) -> None:
        try:
            while self.left:
                self._admit()
                if not self.policy.pending():
                    raise RuntimeError("deepconf stalled: problems are open but nothing is in the engine")
                for ticket, comps in self.policy.poll():
                    self._returned(ticket, comps)
        except BaseException:
            self.policy.abort()
            raise

    def _admit(self) -> None:
        """Watched requests first, then warm-ups, each queue in order while they fit."""
        for queue in (self.ready, self.fresh):
            while queue and self.admission.fits(queue[0].request.n, queue[0].tokens):
                item = queue.popleft()
                if item.phase == "warmup":
                    self.run.starts[item.p] = time.perf_counter()
                self.run.ledgers[item.p].policy_calls += 1
                self.tickets[self.policy.submit(item.request)] = item
                self.admission.reserve(item.tokens)
            if queue:
                return

    def _returned(self, ticket: int, comps: list) -> None:
        item = self.tickets.pop(ticket)
        self.admission.free(item.tokens)
        p = item.p
        self.run.ledgers[p].add_completions(comps)
        if item.phase == "rest":
            self._close(p, self.warm.pop(p), comps)
            return
        cfg = self.config
        s = online_threshold([c.token_confidence for c in comps], cfg.window, cfg.keep)
        self.threshold[p] = s
        if cfg.n == cfg.warmup:
            self._close(p, comps, [])
            return
        self.warm[p] = comps
        watch = functools.partial(WindowStop, cfg.window, s) if s > -math.inf else None
        rest = replace(item.request, n=cfg.n - cfg.warmup, seed=self.run.seed("rest"), watch=watch)
        self.ready.append(self._item(p, "rest", rest))

    def _close(self, p: int, warm: list, rest: list) -> None:
        cfg, run = self.config, self.run
        s = self.threshold.pop(p)
        voters, stops = online_votes([c.token_confidence for c in warm], [c.token_confidence for c in rest],
                                     cfg.window, s)
        comps = warm + rest
        details = {
            "threshold": s if s > -math.inf else None,
            "warmup": len(warm),
            "voters": len(voters),
            "stopped": sum(t is not None for t in stops),
            "stopped_in_engine": sum(c.finish_reason == "early_stop" for c in rest),
            "stop_at": stops,
        }
        run.close(p, [common.sampled_candidate(c, run.delim) for c in comps],
                  values=[trace_group(c.token_confidence, cfg.window) for c in comps], among=voters,
                  details=details)
        self.left -= 1


def deepconf(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """DeepConf online on every problem (see the module docstring); one result per problem."""
    if config.strategy != "deepconf":
        config = replace(config, strategy="deepconf", select="weighted_vote")
    check_policy(policy, scorer)
    run = common.SearchRun(problems, policy, scorer, config, on_done=on_done, equal=equal)
    if run.probs:
        Online(run).drive()
    return run.results
