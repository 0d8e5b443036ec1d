"""SearchConfig: every knob of a search strategy, frozen, validated on construction.

`__post_init__` first resolves defaults that depend on the strategy
(`final_agg` -> `agg`, `select` -> the strategy's natural rule) and then validates;
errors name the field, the constraint, the value and the fix. No I/O here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from search import strategies  # plain data

BEAM_RULES = ("top_n_over_m", "expand_all")
ADAPTIVE_FIELDS = ("stop", "first_round", "round_size", "confidence")
DEEPCONF_FIELDS = ("warmup", "keep", "window")
OPTIONAL_FIELDS = (*ADAPTIVE_FIELDS, *DEEPCONF_FIELDS)  # kept in a run's identity only where they apply


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    strategy: str = "best_of_n"
    """One of `search.strategies.NAMES`."""
    n: int = 4
    """Compute width N: samples for best-of-n / voting; live beams for beam search
    (it generates N continuations per step); total leaves over all DVTS subtrees;
    particles for particle filtering."""
    beam_width: int = 2
    """M: continuations per expanded beam (beam, DVTS) and children per expanded
    node (MCTS). Beam search and DVTS need N to be a multiple of M."""
    max_steps: int = 8
    """Step limit of step-level search; beams alive at the limit are rolled out
    to the end with one full-sample call."""
    agg: str = "min"
    """Aggregator (rewards.aggregators name) that turns per-step scores into one
    value during search: pruning, greedy choice, MCTS values."""
    final_agg: str | None = None
    """Aggregator for the final selection; None: same as `agg`."""
    select: str | None = None
    """Final selection: "argmax" (best final_agg value), "weighted_vote" (sum of
    values over verifier-equivalent answers) or "majority". None: the strategy's
    own rule (majority for `majority`, weighted_vote for `weighted_majority`,
    argmax otherwise)."""
    beam_rule: str = "top_n_over_m"
    """"top_n_over_m": the N/M best live beams each get M continuations
    (search-and-learn); "expand_all": every live beam gets M, the best N survive."""
    node_budget: int = 32
    """MCTS: most nodes (steps) created per problem, root excluded."""
    c_puct: float = 1.0
    """MCTS exploration constant of the PUCT rule."""
    rollouts: bool = False
    """MCTS: value a new node by rolling it out to the end and scoring the rollout
    (one more policy and scorer call per iteration) instead of scoring its prefix."""
    stop: str = "beta0.95"
    """adaptive: stop rule (search.adaptive: betaT, cbetaT, agreeT, cagreeT, never); `n` is the cap."""
    first_round: int = 2
    """adaptive: samples per problem in the first round."""
    round_size: int | None = 1
    """adaptive: samples added per later round; None doubles the total each round."""
    warmup: int = 4
    """deepconf: traces per problem generated in full to set the early-stop threshold (<= n)."""
    keep: float = 90.0
    """deepconf: percentage of warm-up-like traces to keep: the threshold is the (100 - keep)-th
    percentile of the warm-up traces' lowest-group confidences (90: DeepConf-high, 10: -low)."""
    window: int = 32
    """deepconf: sliding window in tokens of the lowest-group confidence and of the early stop."""
    confidence: str | None = None
    """adaptive: token-confidence summary (search.confidence name, e.g. group32) that weighs
    the samples in the weighted stop rules (cbetaT, cagreeT) and, without a scorer, is each
    sample's value; needs the policy's token confidences (logprobs >= 1). None: the
    samples' values (scorer aggregate, or exp(mean log-prob))."""
    seed: int = 0
    """Run seed; every policy call gets a seed derived from it and the call's place
    in the search, so a seeded run is reproducible."""

    def __post_init__(self) -> None:
        spec = strategies.get(self.strategy)
        if self.final_agg is None:
            object.__setattr__(self, "final_agg", self.agg)
        forced = spec.select if spec.fixed_select else None
        if self.select is None:
            object.__setattr__(self, "select", spec.select)
        elif forced and self.select != forced:
            raise ValueError(
                f"select={self.select!r} contradicts strategy={self.strategy!r}, which selects by "
                f"{forced!r}; drop --select or use --strategy best_of_n --select {self.select}."
            )
        for name in ("n", "beam_width", "max_steps", "node_budget"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}.")
        from search.select import PATTERNS, RULES, check_rule  # pure Python

        try:
            check_rule(self.select)
        except ValueError:
            raise ValueError(f"select must be one of {', '.join(RULES)} or {' / '.join(PATTERNS)} "
                             f"(0 < P <= 100, e.g. top10_weighted), got {self.select!r}.") from None
        if not isinstance(self.first_round, int) or isinstance(self.first_round, bool) or self.first_round < 1:
            raise ValueError(f"first_round must be an int >= 1, got {self.first_round!r}; e.g. --first-round 2.")
        if self.round_size is not None and (not isinstance(self.round_size, int) or self.round_size < 1):
            raise ValueError(f"round_size must be an int >= 1 or None (doubling), got {self.round_size!r}; "
                             "e.g. --round-size 1 or --round-size double.")
        self._check_deepconf()
        from search.stopping import stop_rule

        try:
            stop_rule(self.stop)
        except ValueError as e:
            raise ValueError(f"stop: {e}") from None
        if self.confidence is not None:
            from search.confidence import summary

            try:
                summary(self.confidence)
            except ValueError as e:
                raise ValueError(f"confidence: {e}") from None
        if self.beam_rule not in BEAM_RULES:
            raise ValueError(f"beam_rule must be one of {', '.join(BEAM_RULES)}, got {self.beam_rule!r}.")
        if spec.width_multiple and self.n % self.beam_width:
            raise ValueError(
                f"n must be a multiple of beam_width for {self.strategy}, got n={self.n}, "
                f"beam_width={self.beam_width}; e.g. --n {self.n - self.n % self.beam_width or self.beam_width}."
            )
        if self.strategy == "mcts" and self.node_budget < self.beam_width:
            raise ValueError(
                f"node_budget must be >= beam_width for mcts (one expansion), got "
                f"node_budget={self.node_budget}, beam_width={self.beam_width}."
            )
        if not self.c_puct >= 0:
            raise ValueError(f"c_puct must be >= 0, got {self.c_puct}.")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}.")
        from rewards.aggregators import get  # pure Python, no I/O

        for name in ("agg", "final_agg"):
            try:
                get(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None

    def _check_deepconf(self) -> None:
        for name, flag in (("warmup", "--warmup 4"), ("window", "--window 32")):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}; e.g. {flag}.")
        if isinstance(self.keep, bool) or not isinstance(self.keep, int | float) or not 0 < self.keep <= 100:
            raise ValueError(f"keep must be a percentage in (0, 100], got {self.keep!r}; e.g. --keep 90 "
                             "(DeepConf-high) or --keep 10 (DeepConf-low).")
        if self.strategy == "deepconf" and self.warmup > self.n:
            raise ValueError(f"warmup must be <= n for deepconf (the warm-up traces are among the n), got "
                             f"warmup={self.warmup}, n={self.n}; e.g. --warmup {min(4, self.n)}.")

    @property
    def step_level(self) -> bool:
        return strategies.get(self.strategy).step_level

    def as_dict(self) -> dict:
        """The fields as a dict; the adaptive-only and deepconf-only fields only for those
        strategies, so the identity of every other run (and the resume check against its
        file) is unchanged."""
        d = asdict(self)
        used = strategies.get(self.strategy).options
        for name in OPTIONAL_FIELDS:
            if name not in used:
                d.pop(name)
        if d.get("confidence", 0) is None:
            d.pop("confidence")  # adaptive runs without a summary keep their earlier identity
        return d
