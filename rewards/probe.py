"""Probe scorers: a logistic head on the frozen policy's own hidden states.

    from rewards.probe import ProbeScorer
    prm = ProbeScorer("rewards/defaults/probe-prm-qwen0.5b")
    prm.score(["What is 2+3?"], [["2 + 3 = 5.", "The answer is \\boxed{5}."]])   # [[p1, p2]]

The policy that wrote a solution already holds much of what a reward model needs: a
linear read-out of its hidden state at the end of each step estimates P(the solution
ends correct | the steps so far). Scoring costs one forward pass of the policy's
transformer over the candidate (no LM head: the 151k-word unembedding is skipped), and
the head trains in seconds on features extracted once from a sample pool
(``rewards.train.probe``).

A candidate is read exactly as the policy wrote it: the policy's chat template around
the dataset prompt (``policies.base.render_prompt`` with
``policies.vllm_policy.load_prompt_template``), then the steps, stripped as
``rewards.steps.split_steps`` leaves the policy's own, joined by a blank line
(``rewards.steps.join_steps``). Steps written by others (ProcessBench rows) are read the
same way. The feature of step i is the output of decoder layer ``layer`` (1-based,
before the final norm; shape ``[d]``) at the last token that overlaps step i's
characters. The forward pass stops after the highest layer asked for, so a probe on
layer 16 of 24 costs two thirds of a full pass.

- ``granularity="step"`` (PRM): one score per step end. Trained on outcome labels
  (every step of a sample gets the sample's verdict), it is an outcome-supervised
  value model: score i = P(correct at the end | prefix up to step i).
- ``granularity="outcome"`` (ORM): one score, at the end of the last step.

A probe directory holds ``probe.json`` (format ``tts-math-probe/1``, the backbone and
its sha256, layer, prompt style, training card, and optionally ``threshold``: the
step-flagging threshold fixed on the training pool, see ``rewards.train.probe``) and
``head.npz`` (``weight`` [d], ``bias`` [], ``mean`` [d], ``scale`` [d]: the head is
``sigmoid(((h - mean) / scale) @ weight + bias)``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from policies import settings
from rewards.base import Scorer
from rewards.flagging import check_start
from rewards.hf import prefix_batch, prefix_keys, row_past, token_budget_batches
from rewards.steps import join_steps
from verifiers.lru import LRUCache

log = logging.getLogger(__name__)

__all__ = ["PROBE_FORMAT", "ProbeHead", "PolicyFeatures", "ProbeScorer", "default_probe", "is_probe_dir"]

PROBE_FORMAT = "tts-math-probe/1"


@dataclass(frozen=True, eq=False)
class ProbeHead:
    """A standardised logistic read-out of one hidden layer."""

    weight: np.ndarray  # [d]
    bias: float
    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d], > 0

    def __post_init__(self) -> None:
        d = self.weight.shape
        if len(d) != 1 or self.mean.shape != d or self.scale.shape != d:
            raise ValueError(f"probe head: weight, mean and scale must be [d] alike, got "
                             f"{self.weight.shape}, {self.mean.shape}, {self.scale.shape}")
        if not np.all(self.scale > 0):
            raise ValueError("probe head: scale must be > 0 everywhere")

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """[n, d] hidden states -> [n] logits (float64)."""
        x = (np.asarray(feats, dtype=np.float64) - self.mean) / self.scale
        return x @ self.weight + self.bias

    def probs(self, feats: np.ndarray) -> np.ndarray:
        z = self.logits(feats)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def save(self, path: Path) -> None:
        np.savez(path, weight=self.weight, bias=np.float64(self.bias), mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, path: Path) -> ProbeHead:
        z = np.load(path)
        return cls(weight=z["weight"].astype(np.float64), bias=float(z["bias"]),
                   mean=z["mean"].astype(np.float64), scale=z["scale"].astype(np.float64))


def is_probe_dir(path: str | Path) -> bool:
    p = Path(path) / "probe.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == PROBE_FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def step_end_tokens(offsets: Sequence[tuple[int, int]], char_ends: Sequence[int]) -> list[int]:
    """Index of the last token starting before each character end (exclusive).

    ``offsets`` are the tokenizer's (start, end) character spans; special tokens carry
    (0, 0) and are skipped. Pure, so the scorer and the trainer agree on positions."""
    starts = [(s, i) for i, (s, e) in enumerate(offsets) if e > s]
    out, j = [], 0
    for end in char_ends:
        while j + 1 < len(starts) and starts[j + 1][0] < end:
            j += 1
        out.append(starts[j][1])
    return out


class PolicyFeatures:
    """Hidden states of a causal LM at the step ends of policy-rendered candidates.

    model: a ``--model`` value (an embedded name such as "qwen2.5-coder-0.5b", a
    converted directory or a .gguf); layers: decoder layers whose outputs to read
    (1 .. num_hidden_layers); prompt_style: the dataset prompt the policy used;
    token_budget: padded tokens per forward.
    """

    def __init__(self, model: str, *, layers: Sequence[int], prompt_style: str = "gsm8k",
                 system_prompt: str | None = None, dtype: str | None = None, token_budget: int = 8192,
                 max_length: int = 4096, device: str | None = None, kv_cache_tokens: int = 0) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from policies.models import resolve_model
        from policies.vllm_policy import load_prompt_template

        if not layers:
            raise ValueError("layers must name at least one hidden_states index")
        if token_budget < 1 or max_length < 2:
            raise ValueError(f"token_budget must be >= 1 and max_length >= 2, got {token_budget}, {max_length}")
        if isinstance(kv_cache_tokens, bool) or not isinstance(kv_cache_tokens, int) or kv_cache_tokens < 0:
            raise ValueError(f"kv_cache_tokens must be an int >= 0 (0: no prefix cache), got {kv_cache_tokens!r}")
        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        if not self.tokenizer.is_fast:
            raise ValueError(f"model {model}: the probe needs a fast tokenizer (character offsets)")
        self.device = torch.device(device or "cpu")
        torch_dtype = getattr(torch, settings.torch_dtype_name(dtype, device))  # float32 on an AVX2-only CPU
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True, torch_dtype=torch_dtype)
        self.model = self.model.eval().to(self.device)
        n = self.model.config.num_hidden_layers
        bad = [x for x in layers if not 1 <= x <= n]
        if bad:
            raise ValueError(f"layers {bad} out of range: {model} has decoder layers 1..{n}")
        self.layers = tuple(int(x) for x in layers)
        self._blocks = _decoder_layers(self.model)
        self.template = load_prompt_template(prompt_style)
        self.system_prompt = system_prompt
        self.token_budget = token_budget
        self.max_length = max_length
        self.tokens_run = 0  # non-pad tokens through the model (for the ledger)
        self.tokens_padded = 0
        self._prompts: dict[str, str] = {}
        # prefix cache (see _cached_call): key -> _Prefix, weighed by its tokens
        self.kv_cache_tokens = kv_cache_tokens
        self._kv = LRUCache(kv_cache_tokens, weigh=lambda e: len(e.ids)) if kv_cache_tokens else None
        self._prompt_ids: dict[str, tuple[int, ...]] = {}
        self._problem_keys: dict[str, dict] = {}  # problem -> keys of its cached candidates
        self._n_problem_keys = 0  # kept near the cache's entries (_index_candidate)
        self.kv_reused_tokens = 0  # prefix tokens not run again thanks to the cache

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def prompt(self, problem: str) -> str:
        from policies.base import render_prompt

        if problem not in self._prompts:
            self._prompts[problem] = render_prompt(self.tokenizer, self.template, problem, self.system_prompt)
        return self._prompts[problem]

    def render(self, problem: str, steps: Sequence[str]) -> tuple[str, list[int]]:
        """The candidate's text and each step's character end in it. Steps are stripped
        first, as the policy's own steps are (a no-op on them)."""
        steps = [s.strip() for s in steps]
        head = self.prompt(problem)
        ends, pos = [], len(head)
        for i, s in enumerate(steps):
            pos += (2 if i else 0) + len(s)  # join_steps puts a blank line between steps
            ends.append(pos)
        text = head + join_steps(steps)
        return text, ends

    def _encode(self, problem: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        text, ends = self.render(problem, steps)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, pos = enc["input_ids"], step_end_tokens(enc["offset_mapping"], ends)
        if len(ids) > self.max_length:  # keep the tail: the steps matter more than the prompt's start
            cut = len(ids) - self.max_length
            ids = ids[cut:]
            pos = [max(0, p - cut) for p in pos]
        return ids, pos

    def __call__(self, problems: Sequence[str], solutions: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One float32 array [len(layers), n_steps, d] per candidate ([L, 0, d] for no steps)."""
        import torch

        enc = [self._encode(p, s) if s else ([], []) for p, s in zip(problems, solutions, strict=True)]
        d = self.hidden_size
        out: list[np.ndarray | None] = [np.zeros((len(self.layers), 0, d), np.float32) if not s else None
                                        for s in solutions]
        if self._kv is not None:
            self._cached_call(problems, solutions, enc, out)
            return out  # type: ignore[return-value]
        order = sorted((i for i, s in enumerate(solutions) if s), key=lambda i: len(enc[i][0]))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        from policies.batching import padded_batches

        for batch, ids, mask in padded_batches([e[0] for e in enc], order, self.token_budget, pad):
            hs = self._forward(ids, mask)
            for r, i in enumerate(batch):
                pos = torch.tensor(enc[i][1])
                out[i] = torch.stack([hs[x][r, pos].float() for x in self.layers]).cpu().numpy()
            self.tokens_run += int(mask.sum())
            self.tokens_padded += ids.numel()
        return out  # type: ignore[return-value]


    # ------------------------------------------------------------------ prefix cache
    def _cached_call(self, problems, solutions, enc, out) -> None:
        """__call__ with the prefix cache: a candidate that extends one already read (a beam
        grown by a step, another sample of the same prompt) runs only its new tokens, on top
        of the cached key/value states of the layers read, and takes the step-end states
        before them from the cache. Keys are a hash chain over (problem, steps), so an
        entry depends only on its own prefix; token ids are compared too, and reuse stops
        where they differ (a step's last token merges with the separator that follows it)."""
        jobs = []
        for i, (p, steps) in enumerate(zip(problems, solutions, strict=True)):
            if not steps:
                continue
            ids, pos = enc[i]
            job = _Job(i, tuple(ids), tuple(pos), prefix_keys(p, [x.strip() for x in steps], "probe"), p)
            job.whole = len(ids) < self.max_length  # a cut head: no prefix to share
            if job.whole:
                self._attach(job)
            jobs.append(job)
        todo = [j for j in jobs if j.start < len(j.ids)]
        # several candidates of one prompt that nothing cached serves (a best-of-n call, a
        # pool's samples): one runs first, the others then start from its prompt (or from it
        # whole, when they are the same candidate)
        leads, waiting, seen = [], [], set()
        for j in todo:
            if j.start == 0 and j.whole:
                if j.problem in seen:
                    waiting.append(j)
                    continue
                seen.add(j.problem)
            leads.append(j)
        self._run_jobs(leads)
        for j in waiting:
            self._attach(j)
        self._run_jobs([j for j in waiting if j.start < len(j.ids)])
        for j in jobs:
            out[j.index] = np.stack([j.feats[q] for q in j.pos], axis=1)  # [L, n_steps, d]

    def _run_jobs(self, jobs: list[_Job]) -> None:
        """Fresh jobs first, then those over a cached prefix, each in token-budget batches."""
        for cont in (False, True):
            group = sorted((j for j in jobs if bool(j.start) == cont), key=lambda j: len(j.ids) - j.start)
            for batch in token_budget_batches(group, lambda j: len(j.ids) - j.start, self.token_budget):
                self._run(batch)

    def _attach(self, job: _Job) -> None:
        """The longest cached prefix of the job: a cached candidate it extends (with all its
        steps or fewer), else the longest one it shares with another cached candidate of its
        problem (siblings that part inside a step: a solution and its edited copies), else its
        prompt alone."""
        for n_steps in range(len(job.keys), 0, -1):
            key = job.keys[n_steps - 1]
            entry = self._kv.peek(key)
            if entry is not None and self._take(job, key, entry, _usable(entry, job)):
                return
        best = (0, None, None)
        siblings = self._problem_keys.get(job.problem, {})
        for key in list(siblings) + [_prompt_key(job.problem)]:
            entry = self._kv.peek(key)
            if entry is None:
                if key in siblings:  # evicted: drop it from the index
                    del siblings[key]
                    self._n_problem_keys -= 1
                continue
            n = _usable(entry, job)
            if n > best[0]:
                best = (n, key, entry)
        if best[1] is not None:
            self._take(job, best[1], best[2], best[0])

    def _take(self, job: _Job, key, entry: _Prefix, n: int) -> bool:
        if n == 0:
            return False
        self._kv.get(key)  # just used
        job.start, job.past = n, entry.past
        job.feats = {q: entry.feats[q] for q in job.pos if q < n}
        self.kv_reused_tokens += n
        return True

    def _run(self, batch: list[_Job]) -> None:
        """One forward of the batch's new tokens (right-padded) over its cached prefixes
        (right-aligned, padded on the left), keeping the layers' keys/values for the cache."""
        import torch

        new = [j.ids[j.start:] for j in batch]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        top = max(self.layers)
        ids, attn, position, cache, P = prefix_batch(
            new, [j.start for j in batch], [j.past for j in batch], pad_id=pad, n_layers=top,
            config=self.model.config, device=self.device)
        hs = self._forward(ids, attn, past_key_values=cache, position_ids=position, use_cache=True)
        kv = [(cache.layers[x].keys, cache.layers[x].values) for x in range(top)]
        for b, (j, x) in enumerate(zip(batch, new, strict=True)):
            for q in j.pos:
                if q >= j.start:
                    j.feats[q] = torch.stack([hs[layer][b, q - j.start] for layer in self.layers]).float().cpu().numpy()
            if not j.whole:
                continue
            past = row_past(kv, b, P - j.start, P + len(x))
            self._kv.put(j.keys[-1], _Prefix(j.ids, past, dict(j.feats)))
            self._index_candidate(j.problem, j.keys[-1])
            head = self._prompt_tokens(j.problem)
            pkey = _prompt_key(j.problem)
            if 0 < len(head) < len(j.ids) and j.ids[: len(head)] == head and pkey not in self._kv:
                n = len(head)  # copies: a view would keep the whole candidate's tensors alive
                self._kv.put(pkey, _Prefix(head, [(k[:, :n].clone(), v[:, :n].clone()) for k, v in past], {}))
        self.tokens_run += sum(len(x) for x in new)
        self.tokens_padded += len(batch) * ids.shape[1]

    def _prompt_tokens(self, problem: str) -> tuple[int, ...]:
        if problem not in self._prompt_ids:
            self._prompt_ids[problem] = tuple(self.tokenizer(self.prompt(problem), add_special_tokens=False)["input_ids"])
        return self._prompt_ids[problem]

    def clear_cache(self) -> None:
        if self._kv is not None:
            self._kv.clear()
        self._problem_keys.clear()
        self._n_problem_keys = 0

    def _index_candidate(self, problem: str, key) -> None:
        """Remember a cached candidate under its problem (for siblings, `_attach`); keys the
        cache has dropped are swept once they outnumber its entries, so the index stays
        bounded in a long-running scorer."""
        keys = self._problem_keys.setdefault(problem, {})
        if key not in keys:
            keys[key] = None
            self._n_problem_keys += 1
        if self._n_problem_keys > 2 * len(self._kv) + 64:
            for p in list(self._problem_keys):
                live = {k: None for k in self._problem_keys[p] if k in self._kv}
                if live:
                    self._problem_keys[p] = live
                else:
                    del self._problem_keys[p]
            self._n_problem_keys = sum(map(len, self._problem_keys.values()))

    def _forward(self, ids, mask, **kwargs) -> dict:
        """Outputs of the wanted decoder layers; the pass stops after the highest one.
        kwargs go to the model (a cache to fill, position ids); default use_cache=False."""
        import torch

        got: dict[int, torch.Tensor] = {}
        top = max(self.layers)

        def keep(layer):
            def hook(_module, _args, output):
                got[layer] = output[0] if isinstance(output, tuple) else output
                if layer == top:
                    raise _Stop

            return hook

        handles = [self._blocks[x - 1].register_forward_hook(keep(x)) for x in self.layers]
        try:
            with torch.inference_mode():
                self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                           **{"use_cache": False, **kwargs})
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        return got


class _Stop(Exception):
    """Raised by the top layer's hook to end a forward pass early."""


@dataclass
class _Prefix:
    """A cached candidate: its token ids, each read layer's keys/values ([heads, T, dim]
    for layers 1 .. max(layers)) and its step-end states by token position."""

    ids: tuple[int, ...]
    past: list
    feats: dict


@dataclass
class _Job:
    index: int
    ids: tuple[int, ...]
    pos: tuple[int, ...]
    keys: list
    problem: str
    whole: bool = True
    start: int = 0  # tokens served by the cache
    past: list | None = None
    feats: dict = field(default_factory=dict)


def _usable(entry: _Prefix, job: _Job) -> int:
    """Tokens of the job a cached entry serves: their common token prefix, cut at the first
    step end of the job inside it whose state the entry lacks."""
    n = 0
    for a, b in zip(entry.ids, job.ids, strict=False):
        if a != b:
            break
        n += 1
    missing = [q for q in job.pos if q < n and q not in entry.feats]
    return missing[0] if missing else n


def _prompt_key(problem: str) -> bytes:
    import hashlib

    return hashlib.blake2b(b"probe-prompt\x00" + problem.encode(), digest_size=16).digest()


def _decoder_layers(model):
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: no decoder layer list (.layers); the probe reads "
                         "decoder-only models (Llama, Qwen2, ...)")
    return layers


DEFAULT_DIR = Path(__file__).resolve().parent / "defaults" / "probe"
# prefix cache of the probe scorer: 2**18 tokens of the layers read (2 GiB for 16 layers of
# the 0.5B in bfloat16): a depth of beam search over 100 problems at N = 8
DEFAULT_KV_CACHE_TOKENS = 1 << 18


def default_probe() -> Path:
    """The shipped probe (rewards/defaults/probe), or a one-line error naming the fix."""
    if not is_probe_dir(DEFAULT_DIR):
        raise FileNotFoundError(f"no shipped probe at {DEFAULT_DIR}; pass --scorer-model DIR (a directory "
                                "written by `cli.py train probe`)")
    return DEFAULT_DIR


class ProbeScorer(Scorer):
    """A probe directory (see module docstring) as a scorer: PRM or ORM by its card."""

    kind = "probe"

    def __init__(self, directory: str | Path, *, model: str | None = None, token_budget: int = 8192,
                 dtype: str | None = None, device: str | None = None, prompt_style: str | None = None,
                 kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS) -> None:
        """prompt_style: the dataset prompt the policy is sampling under (the probe must read
        the states the policy had); None: the card's (the prompt of its training pool).
        kv_cache_tokens: the prefix cache's size in tokens (0: none): a search's beams,
        grown a step at a time, then run only their new step."""
        super().__init__()
        directory = Path(directory)
        if not is_probe_dir(directory):
            raise FileNotFoundError(f"{directory}: not a probe directory (needs probe.json with format "
                                    f"{PROBE_FORMAT!r} and head.npz); train one with `cli.py train probe`")
        self.card = json.loads((directory / "probe.json").read_text())
        self.granularity = self.card["granularity"]
        if self.granularity not in ("step", "outcome"):
            raise ValueError(f"{directory}/probe.json: granularity must be 'step' or 'outcome'")
        self.head = ProbeHead.load(directory / "head.npz")
        self.features = PolicyFeatures(model or self.card["backbone"], layers=[int(self.card["layer"])],
                                       prompt_style=prompt_style or self.card.get("prompt_style", "gsm8k"),
                                       token_budget=token_budget, dtype=dtype, device=device,
                                       kv_cache_tokens=kv_cache_tokens)
        if self.features.hidden_size != self.head.dim:
            raise ValueError(f"{directory}: head width {self.head.dim} != backbone hidden size "
                             f"{self.features.hidden_size}; pass the backbone it was trained on")
        self.name = self.card.get("name", directory.name)
        th = self.card.get("threshold")
        if th is not None:
            if not isinstance(th, dict) or not isinstance(th.get("value"), int | float):
                raise ValueError(f"{directory}/probe.json: 'threshold' must be an object with a numeric 'value'; "
                                 "rewrite it with `cli.py train probe-threshold`")
            self.step_threshold = float(th["value"])
            self.step_ratio = float(th.get("ratio") or 0.0)
            if not 0.0 <= self.step_ratio < 1.0:
                raise ValueError(f"{directory}/probe.json: threshold 'ratio' must be in [0, 1), got {th['ratio']!r}; "
                                 "rewrite it with `cli.py train probe-threshold`")
            try:
                self.step_ratio_start = check_start(th.get("ratio_start", 0))
            except ValueError as e:
                raise ValueError(f"{directory}/probe.json: threshold 'ratio_start': {e}; rewrite it with "
                                 "`cli.py train probe-threshold`") from None
            self.threshold_info = th

    @property
    def num_parameters(self) -> int:
        return self.features.num_parameters + self.head.dim + 1

    @property
    def forward_params(self) -> int:
        from .cost import forward_params

        # the pass stops after the layer read
        return forward_params(self.features.model, layers=self.features._blocks[: int(self.card["layer"])])

    def _score(self, problems, solutions, *, golds, references):
        before, padded, reused = self.features.tokens_run, self.features.tokens_padded, self.features.kv_reused_tokens
        feats = self.features(problems, solutions)
        self.stats.kv_reused_tokens += self.features.kv_reused_tokens - reused
        self.stats.forward_passes += sum(1 for s in solutions if s)
        self.stats.tokens_scored += self.features.tokens_run - before
        self.stats.tokens_padded += self.features.tokens_padded - padded
        out = []
        for f, s in zip(feats, solutions, strict=True):
            if not s:
                out.append([])
                continue
            rows = f[0] if self.granularity == "step" else f[0][-1:]
            out.append([float(min(1.0, max(0.0, p))) for p in self.head.probs(rows)])
        return out

    def clear_cache(self) -> None:
        self.features.clear_cache()

    def describe(self) -> dict:
        return {**super().describe(), "backbone": self.card.get("backbone"), "layer": self.card.get("layer"),
                "threshold": self.step_threshold, **({"drop_ratio": self.step_ratio} if self.step_ratio else {}),
                **({"drop_ratio_start": self.step_ratio_start} if self.step_ratio_start else {})}

