"""Adaptive sampling per problem: sample in rounds, stop when the leading answer is safe.

    adaptive(problems, policy, None, SearchConfig(strategy="adaptive", n=16, stop="beta0.95"))

Each round samples more solutions for every problem still open (one policy call for all
of them), groups the answers into verifier-equivalent classes and asks the stop rule
whether the leader is safe; a problem stops at the first round its rule says so, or at
`n` samples. The final answer is `config.select` over everything drawn (majority by
default). The ledger counts every sample of every round.

Schedule (`schedule`): `first_round` samples, then `round_size` more per round, or, with
round_size None, double the total each round (2, 4, 8, 16), capped at `n`.

The stop rule (`config.stop`) is one of `search.stopping`'s rules (betaT, cbetaT, agreeT,
cagreeT, never): Adaptive-Consistency's Beta rule and DeepConf's consensus rule. The
weighted rules (cbetaT, cagreeT) weigh each sample by `sample_weights`: its DeepConf
token-confidence summary when `config.confidence` names one (e.g. group32, as the pool
replay in eval/budget.py does), else its value (the scorer's `final_agg`, or
exp(mean log-prob) without a scorer). With `config.confidence` and no scorer, the summary
is also each sample's value, so `--select weighted_vote` is the replay's
confidence-weighted vote.

`AdaptiveSpec` is one complete setting of the rule (stop, rounds, selection, confidence
summary); `PRESETS` holds the declared ones: the a-priori settings, and those tuned on the
GSM8K training pool by `python -m eval.tune` (docs/selection.md). The strategy and the
pool replay run a spec through the same functions (`schedule`, `should_stop`,
`search.stopping.stop_rule`, `search.confidence.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from search import common
from search.config import SearchConfig
from search.stopping import StopRule, stop_rule
from search.types import Candidate


def schedule(first: int, step: int | None, n_max: int) -> list[int]:
    """Cumulative sample counts after each round: first, first+step, ... (step None:
    doubling), capped at n_max (always ending there)."""
    if first < 1 or n_max < 1 or (step is not None and step < 1):
        raise ValueError(f"schedule needs first >= 1, step >= 1 or None, n_max >= 1; got {first}, {step}, {n_max}.")
    out = [min(first, n_max)]
    while out[-1] < n_max:
        out.append(min(n_max, out[-1] * 2 if step is None else out[-1] + step))
    return out


def should_stop(rule: StopRule, labels: Sequence[int | None], weights: Sequence[float | None], n_max: int) -> bool:
    """Whether a problem with these samples is done: the cap is reached, or the rule says
    its leader is safe."""
    return len(labels) >= n_max or rule(labels, weights)


def sample_weights(cands: Sequence[Candidate], confidence: str | None) -> list[float | None]:
    """What the weighted stop rules weigh each sample by: its token-confidence summary
    (`Candidate.conf`) when a summary is configured, else its value."""
    return [c.conf if confidence else c.value for c in cands]


@dataclass(frozen=True, kw_only=True)
class AdaptiveSpec:
    """One setting of adaptive sampling; `n` (the cap) comes from the run or the pool."""

    stop: str
    """search.stopping rule name, e.g. beta0.95."""
    first_round: int = 2
    round_size: int | None = 1
    """samples added per later round; None doubles the total."""
    select: str = "majority"
    """final selection over everything drawn (search.select rule)."""
    confidence: str | None = None
    """token-confidence summary (search.confidence name) for the weights of the weighted
    stop rules and of a weighted selection; None: plain counts / the candidates' values."""

    def __post_init__(self) -> None:
        stop_rule(self.stop)
        schedule(self.first_round, self.round_size, 1)
        from search.select import check_rule

        check_rule(self.select)
        if self.confidence is not None:
            from search.confidence import check

            check(self.confidence)

    @property
    def label(self) -> str:
        rounds = f"first {self.first_round}, {'+' + str(self.round_size) if self.round_size else 'x2'}"
        conf = f", {self.confidence}" if self.confidence else ""
        return f"{self.stop} ({rounds}, {self.select}{conf})"

    def search_args(self) -> str:
        """The `cli.py search` options that run this setting."""
        args = [f"--strategy adaptive --stop {self.stop} --first-round {self.first_round}",
                f"--round-size {self.round_size or 'double'} --select {self.select}"]
        if self.confidence:
            args.append(f"--confidence {self.confidence}")
        return " ".join(args)


def _apriori() -> tuple[AdaptiveSpec, ...]:
    return (AdaptiveSpec(stop="beta0.95"), AdaptiveSpec(stop="cbeta0.95", select="weighted_vote", confidence="group32"),
            AdaptiveSpec(stop="agree0.75", first_round=4, round_size=None),
            AdaptiveSpec(stop="cagree0.95", first_round=4, round_size=None, select="weighted_vote",
                         confidence="group32"))


def _tuned_gsm8k_train() -> tuple[AdaptiveSpec, ...]:
    # `python -m eval.tune pools/gsm8k-train256-n8.jsonl.gz` (docs/selection.md): per rule family the
    # cheapest setting within 0.01 of maj@8 whose paired interval reaches 0; the confidence summary is
    # the one whose weighted vote@8 was best (group64). The last one is the overall pick.
    return (AdaptiveSpec(stop="beta0.7", first_round=2, round_size=1, confidence="group64"),
            AdaptiveSpec(stop="cbeta0.7", first_round=2, round_size=1, confidence="group64"),
            AdaptiveSpec(stop="agree0.6", first_round=1, round_size=1, confidence="group64"),
            AdaptiveSpec(stop="cagree0.5", first_round=3, round_size=1, confidence="group64"))


PRESETS: dict[str, tuple[AdaptiveSpec, ...]] = {
    # fixed a priori before any pool existed (docs/selection.md, "How every setting was fixed")
    "a-priori": _apriori(),
    # tuned on the GSM8K training pool only, committed before any held-out replay of them
    "tuned-gsm8k-train": _tuned_gsm8k_train(),
}


def preset(name: str) -> tuple[AdaptiveSpec, ...]:
    """The declared settings called `name`; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown adaptive preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def _trace_conf(completion, confidence: str):
    from search.confidence import summary

    tc = completion.token_confidence
    if tc is None:
        raise ValueError(f"confidence={confidence!r} needs the policy's token confidences, and this policy returned "
                         "none; run the in-process engine with logprobs >= 1 (cli.py search --confidence sets it), "
                         "or drop --confidence")
    return summary(confidence)(tc) if len(tc) else None


def adaptive(problems, policy, scorer, config: SearchConfig, *, on_done=None, equal=None):
    """Rounds of samples per problem until `config.stop` says the leader is safe or `n`
    samples are drawn; every round is one policy call for all open problems."""
    from search.select import answer_classes
    from verifiers import extract_answer

    if config.strategy != "adaptive":
        config = replace(config, strategy="adaptive")
    rule = stop_rule(config.stop)
    run = common.SearchRun(problems, policy, scorer, config, on_done=on_done, equal=equal)
    if not run.probs:
        return []
    cands: list[list[Candidate]] = [[] for _ in run.probs]
    have = 0
    for r, total in enumerate(schedule(config.first_round, config.round_size, config.n)):
        open_ = run.open()
        confs = [] if config.confidence else None
        rows = run.sample_candidates(open_, total - have, run.seed("round", r), completions=confs)
        have = total
        for i, (p, row) in enumerate(zip(open_, rows, strict=True)):
            if confs is not None:
                for c, comp in zip(row, confs[i], strict=True):
                    c.conf = _trace_conf(comp, config.confidence)
            cands[p] += row
        for p in open_:
            row = cands[p]
            for c in row:
                c.answer = extract_answer(c.text(run.delim)) if c.steps else None
                c.value = common.candidate_value(c, config)
            labels, _reps, calls = answer_classes([c.answer for c in row], equal)
            run.ledgers[p].verifier_calls += calls
            if should_stop(rule, labels, sample_weights(row, config.confidence), config.n):
                run.close(p, row)
        if not run.open():
            break
    return run.results
