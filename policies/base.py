"""The policy interface: `sample` and `extend` over one generation hook.

    class MyPolicy(Policy):
        def _generate(self, prompts, n, max_tokens, *, stop, seed, tag):
            ...  # one list of n Completions per prompt

`Policy` turns problems and partial solutions into chat-formatted prompts, checks the
arguments, and leaves the generation itself to `_generate`, its one abstract method:
the in-process engine (policies/vllm_policy.py) and the OpenAI-compatible servers
(policies/openai_backend.py) implement it, so both build the same prompts and, with a
seed, derive the same per-request seeds (`derive_seed`).

The tokenizer (for the chat template) and the parameter count are read from the model's
files (`model_path`); a backend that already holds the model overrides
`_load_tokenizer` and `_hf_config` to ask it instead.

Besides the blocking `sample` / `extend`, a policy takes requests one at a time and
hands back whichever have finished (what a pipelined search runs on, search/drive.py):

    t = policy.submit(GenRequest(problem, steps, n=4, kind="extend", seed=s))
    for ticket, completions in policy.poll(): ...   # the requests finished by now
    policy.pending(); policy.kv_budget(); policy.abort()

Seeds are derived per sample exactly as `extend` / `sample` derive them, so a request
returns the same completions whichever way it is sent. The base class runs the queued
requests through `_generate` at each `poll` (a blocking stand-in that any backend has);
the in-process engine (`VLLMPolicy`) overrides it with vLLM's `add_request` / `step`.
"""

from __future__ import annotations

import abc
import hashlib
import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

from policies.config import SamplingConfig
from policies.types import Completion, GenRequest, KVBudget, TokenUsage

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


def load_prompt_template(style: str | Path) -> str:
    """A prompt template by dataset style ("gsm8k", "math", "plain") or file path.

    The template holds `{problem}` once; it becomes the user turn of the chat.
    """
    p = Path(style)
    if not p.suffix:
        p = PROMPTS_DIR / f"{style}.txt"
    if not p.is_file():
        styles = sorted(x.stem for x in PROMPTS_DIR.glob("*.txt"))
        raise ValueError(f"prompt template {style!r} not found; use one of {styles} or a .txt path")
    text = p.read_text()
    if text.count("{problem}") != 1:
        raise ValueError(f"prompt template {p} must contain {{problem}} exactly once")
    return text


_TICKETS = itertools.count()


def new_ticket() -> int:
    """The ticket of a newly submitted request: unique in the process (several policies
    may share one engine)."""
    return next(_TICKETS)


def derive_seed(seed: int, *parts: object) -> int:
    """A stable 31-bit seed for one request, from the run seed and the request's identity."""
    h = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


def per_prompt_counts(n, count: int, name: str) -> list[int]:
    """`n` (one int for all prompts, or one per prompt) as a list of `count` ints >= 1."""
    ns = [n] * count if isinstance(n, int) else list(n)
    if len(ns) != count:
        raise ValueError(f"{name} has {len(ns)} counts for {count} prompts; give one int or one per prompt.")
    bad = [m for m in ns if not isinstance(m, int) or isinstance(m, bool) or m < 1]
    if bad:
        raise ValueError(f"{name} must be >= 1 for every prompt, got {bad[0]!r}.")
    return ns


def check_watch(policy, request: GenRequest) -> None:
    """A request that asks for early stop (`GenRequest.watch`) needs a policy that stops
    samples in the engine and token confidences to watch."""
    if request.watch is None:
        return
    if not getattr(policy, "early_stop", False):
        raise ValueError(f"{type(policy).__name__} cannot stop a sample inside the engine (GenRequest.watch); "
                         "early stop needs the in-process engine (VLLMPolicy, --backend inprocess)")
    if not policy.sampling.logprobs:
        raise ValueError("early stop (GenRequest.watch) watches token confidences, and the policy samples "
                         "without log-probs; build it with SamplingConfig(logprobs=5)")


def count_parameters(hf_config) -> int:
    """Parameters of a model, built from its Hugging Face config on the meta device (no
    weights touched); 0, with a warning, when the config cannot be built."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            m = AutoModelForCausalLM.from_config(hf_config)
        return sum(p.numel() for p in m.parameters())
    except Exception:
        log.warning("could not count parameters of %s; FLOPs estimates will be 0", hf_config)
        return 0



def render_prompt(tokenizer, template: str, problem: str, system_prompt: str | None = None) -> str:
    """The chat-formatted prompt that precedes a solution's first step: the dataset
    template around the problem as the user turn (after an optional system turn), through
    the tokenizer's chat template; plain text for a base model without one. The policy and
    every reader of its states (rewards.probe) render through this one function."""
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": template.replace("{problem}", problem)})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"

class Policy(abc.ABC):
    """Generates complete solutions (`sample`) and next steps (`extend`).

    Args:
        model: the model, as `--model` takes it (None: the embedded default); its files
            give the tokenizer and the parameter count unless the backend overrides them.
        sampling: sampling settings shared by `sample` and `extend`.
        prompt_style: "gsm8k", "math", "plain" or a path to a template file.
        system_prompt: replaces the chat template's default system turn when given.
        tokenizer: an already loaded tokenizer (tests share one).
    """

    incremental = False
    """True when `poll` hands back requests as the engine finishes them (VLLMPolicy); False
    for the blocking stand-in here, which a pipelined search gains little from (`run_search`
    then runs lockstep unless asked otherwise)."""
    early_stop = False
    """True when `submit` honours `GenRequest.watch`: a sample is stopped inside the engine
    at the token its watcher names (VLLMPolicy). The blocking stand-in here cannot: it
    sees a sample only once it is whole."""

    def __init__(
        self,
        model: str | None = None,
        *,
        sampling: SamplingConfig | None = None,
        prompt_style: str | Path = "gsm8k",
        system_prompt: str | None = None,
        tokenizer=None,
    ) -> None:
        self.model = model
        self.sampling = sampling or SamplingConfig()
        self.template = load_prompt_template(prompt_style)
        self.prompt_style = str(prompt_style)
        self.system_prompt = system_prompt
        self.usage = TokenUsage()
        self._tokenizer = tokenizer
        self._prompts: dict[str, str] = {}  # problem -> formatted prompt
        self._queued: dict[int, GenRequest] = {}  # the blocking stand-in's submitted requests

    # ---- the model's files -------------------------------------------------------
    @property
    def model_path(self) -> str:
        """The local checkpoint of `model` (prepared once; see policies/models.py)."""
        if not hasattr(self, "_model_path"):
            from policies.models import resolve_model

            self._model_path = resolve_model(self.model)
        return self._model_path

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        return self._tokenizer

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    def _hf_config(self):
        """The model's Hugging Face config (read for the parameter count)."""
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.model_path)

    @property
    def num_parameters(self) -> int:
        """Parameter count of the policy model (for the FLOPs estimate 2 * params * tokens)."""
        if not hasattr(self, "_num_params"):
            self._num_params = count_parameters(self._hf_config())
        return self._num_params

    # ---- prompts ----------------------------------------------------------------
    def format_prompt(self, problem: str) -> str:
        """The chat-formatted prompt that precedes the solution's first step."""
        if problem not in self._prompts:
            self._prompts[problem] = render_prompt(self.tokenizer, self.template, problem, self.system_prompt)
        return self._prompts[problem]

    def prefix(self, problem: str, steps: Sequence[str]) -> str:
        """Prompt plus the steps so far, each followed by the delimiter."""
        d = self.sampling.step_delimiter
        return self.format_prompt(problem) + "".join(s + d for s in steps)

    def problem_prompt(self, prompt: str) -> str:
        """The formatted problem prompt that `prompt` (a `prefix`) starts with; `prompt`
        itself when no formatted prompt is its start."""
        for formatted in self._prompts.values():
            if prompt.startswith(formatted):
                return formatted
        return prompt

    # ---- generation -------------------------------------------------------------
    def sample(
        self,
        problems: Sequence[str],
        n: int,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
        prefixes: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Completion]]:
        """n complete solutions for each problem (one generation call for all of them).

        `prefixes` (optional, one list of steps per problem) continues partial
        solutions to the end instead of starting fresh: the final rollout of a
        step-level search.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}.")
        steps = prefixes if prefixes is not None else [()] * len(problems)
        if len(steps) != len(problems):
            raise ValueError(f"prefixes has {len(steps)} entries for {len(problems)} problems.")
        prompts = [self.prefix(p, s) for p, s in zip(problems, steps, strict=True)]
        max_tokens, stop = self.request_shape("sample", max_tokens)
        return self._generate(prompts, n, max_tokens, stop=stop, seed=self.call_seed(seed), tag="sample")

    def extend(
        self,
        problems: Sequence[str],
        steps: Sequence[Sequence[str]],
        k: int | Sequence[int] = 1,
        *,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> list[list[Completion]]:
        """k candidate next steps for each partial solution (problems[i] + steps[i]);
        `k` may also be a list, one count per partial solution.

        Generation stops at the step delimiter (not included in the text) or at
        EOS (`Completion.hit_eos`: the solution is finished).
        """
        k = per_prompt_counts(k, len(problems), "k")
        if len(steps) != len(problems):
            raise ValueError(f"steps has {len(steps)} entries for {len(problems)} problems.")
        prompts = [self.prefix(p, s) for p, s in zip(problems, steps, strict=True)]
        max_tokens, stop = self.request_shape("extend", max_tokens)
        return self._generate(prompts, k, max_tokens, stop=stop, seed=self.call_seed(seed), tag="extend")

    def request_shape(self, kind: str, max_tokens: int | None = None) -> tuple[int, list[str] | None]:
        """(token cap, stop strings) of a request: "extend" stops at the step delimiter,
        `max_step_tokens` by default; "sample" runs to the end, `max_tokens` by default."""
        if kind == "extend":
            return max_tokens or self.sampling.max_step_tokens, [self.sampling.step_delimiter]
        return max_tokens or self.sampling.max_tokens, None

    def call_seed(self, seed: int | None) -> int | None:
        """The seed a call runs with: its own, else the sampling config's."""
        return self.sampling.seed if seed is None else seed

    # ---- the non-blocking interface --------------------------------------------
    def submit(self, request: GenRequest) -> int:
        """Queue one request; returns its ticket. Its completions come back from `poll`
        (the same completions `extend` / `sample` would give it)."""
        check_watch(self, request)
        ticket = new_ticket()
        self._queued[ticket] = request
        return ticket

    def poll(self) -> list[tuple[int, list[Completion]]]:
        """The requests finished since the last poll, as (ticket, completions).

        This stand-in generates everything queued, one `_generate` call per (kind,
        seed, token cap); an engine that can step (VLLMPolicy) returns what one engine
        step finished instead."""
        queued, self._queued = self._queued, {}
        groups: dict[tuple, list[int]] = {}
        for ticket, r in queued.items():
            groups.setdefault((r.kind, self.call_seed(r.seed), r.max_tokens), []).append(ticket)
        done = []
        for (kind, seed, max_tokens), tickets in groups.items():
            reqs = [queued[t] for t in tickets]
            cap, stop = self.request_shape(kind, max_tokens)
            prompts = [self.prefix(r.problem, r.steps) for r in reqs]
            outs = self._generate(prompts, [r.n for r in reqs], cap, stop=stop, seed=seed, tag=kind)
            done += list(zip(tickets, outs, strict=True))
        return done

    def pending(self) -> int:
        """Sequences submitted and not yet returned by `poll`."""
        return sum(r.n for r in self._queued.values())

    def abort(self) -> None:
        """Drop every submitted request not yet returned (a search that stops early)."""
        self._queued.clear()

    def kv_budget(self) -> KVBudget | None:
        """What the engine holds at once (None: unknown here, e.g. a remote server)."""
        return None

    def request_tokens(self, request: GenRequest, budget: KVBudget) -> int:
        """KV tokens `request` may hold at its peak under `budget` (`KVBudget.request_tokens`
        with its prompt tokenized here)."""
        prompt = self.prefix(request.problem, request.steps)
        cap, _ = self.request_shape(request.kind, request.max_tokens)
        return budget.request_tokens(len(self.tokenizer.encode(prompt)), request.n, cap)

    @abc.abstractmethod
    def _generate(self, prompts: list[str], n: int | list[int], max_tokens: int, *, stop: list[str] | None,
                  seed: int | None, tag: str) -> list[list[Completion]]:
        """Completions of every prompt, in prompt order: n is one count for all prompts or
        one per prompt (checked with `per_prompt_counts`). With a seed, sample j of prompt p
        is drawn with `derive_seed(seed, tag, p, j)`, so a seeded run is reproducible
        whatever shares the batch. Adds the completions to `self.usage`."""
