"""PRM / ORM scoring with transformers (CPU default, any torch device).

One forward pass per candidate reads all its steps: the candidate is rendered by its
adapter (``rewards.adapters``) into one sequence with a tag after each step, and the
score of step i is read at the last token of tag i. Only the hidden states at the
tags go through the head (for ``label_tokens`` that is two rows of the LM head, not
the whole vocabulary at every position).

Two caches, both keyed by a hash chain over (problem, step_1, ..., step_i), so that
an entry depends only on a prefix of the solution:

- step-score cache: score of step i of a prefix already scored. A candidate whose
  steps are all cached costs no forward pass (``stats.cache_hits`` counts steps).
- KV prefix cache (causal models, step granularity): the key/value states of a
  scored candidate. When a beam is extended by a step, only the new tokens
  (separator + step + tag) run through the model on top of the cached prefix
  (``stats.kv_reused_tokens``). Bounded by ``kv_cache_tokens`` (LRU).

Batches are formed by a token budget (batch size x longest sequence, after sorting
by length), right-padded; causal attention makes the padding invisible to the real
tokens, so batched and unbatched scores agree up to float rounding.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from verifiers.lru import LRUCache

from .adapters import AdapterConfig
from .base import Scorer

log = logging.getLogger(__name__)

__all__ = [
    "Encoded", "TransformersScorer", "encode_candidate", "prefix_batch", "prefix_keys", "render_candidate",
    "render_prompt", "row_past", "token_budget_batches",
]


def token_budget_batches(items, width, token_budget: int, max_batch_size: int | None = None):
    """Greedy batches of ``items``, in the order given, under a padded-token budget:
    a batch grows while (its widest item) x (its size) stays within ``token_budget``
    and, if given, its size within ``max_batch_size``. Sort the items by width first
    (either way) so that padding stays small."""
    batch: list = []
    widest = 0
    for it in items:
        w = max(widest, width(it))
        if batch and (w * (len(batch) + 1) > token_budget or (max_batch_size and len(batch) >= max_batch_size)):
            yield batch
            batch, w = [], width(it)
        batch.append(it)
        widest = w
    if batch:
        yield batch


def prefix_batch(new, starts, pasts, *, pad_id: int, n_layers: int, config, device):
    """Inputs for one forward of B sequences' new tokens over their cached prefixes.

    new[b]: the token ids still to run; starts[b]: how many tokens before them the cache
    serves (0: none); pasts[b]: per layer (keys, values) of shape [heads, >= starts[b],
    dim] (None where starts[b] is 0). The new tokens are right-padded and the pasts
    right-aligned (padded on the left), so that every row's new tokens start at the same
    cache position P = max(starts): row b's keys/values are at [P - starts[b], P + len(new[b])).
    Returns (input_ids, attention_mask [B, P + N], position_ids, cache, P); the cache is
    a transformers DynamicCache holding the pasts' first n_layers layers (empty when P is 0),
    which the forward then extends.
    """
    import torch
    from transformers import DynamicCache

    B = len(new)
    N = max(len(x) for x in new)
    P = max(starts)
    ids = torch.full((B, N), pad_id, dtype=torch.long)
    attn = torch.zeros((B, P + N), dtype=torch.long)
    position = torch.zeros((B, N), dtype=torch.long)
    for b, (x, s) in enumerate(zip(new, starts, strict=True)):
        ids[b, : len(x)] = torch.tensor(x, dtype=torch.long)
        attn[b, P - s : P + len(x)] = 1
        position[b] = s + torch.arange(N)
    cache = DynamicCache(config=config)
    if P:
        ref = next(p for p, s in zip(pasts, starts, strict=True) if s)
        for layer in range(n_layers):
            k0, v0 = ref[layer]
            K = k0.new_zeros((B, k0.shape[0], P, k0.shape[-1]))
            V = v0.new_zeros((B, v0.shape[0], P, v0.shape[-1]))
            for b, (past, s) in enumerate(zip(pasts, starts, strict=True)):
                if s:
                    k, v = past[layer]
                    K[b, :, P - s :] = k[:, :s]
                    V[b, :, P - s :] = v[:, :s]
            cache.update(K.to(device), V.to(device), layer)
    return ids, attn, position.to(device), cache, P


def row_past(layers, b: int, lo: int, hi: int) -> list:
    """Row b's keys/values at cache positions [lo, hi) of each layer's (keys, values), as
    copies (a view would keep the whole batch's tensors alive in a cache)."""
    return [(k[b, :, lo:hi].clone(), v[b, :, lo:hi].clone()) for k, v in layers]


@dataclass(frozen=True)
class Encoded:
    """One candidate as tokens: ids and the index of the readout token of each tag."""

    ids: tuple[int, ...]
    tag_positions: tuple[int, ...]


def render_candidate(adapter: AdapterConfig, prompt_text: str, steps: list[str]) -> tuple[str, list[int]]:
    """Text of a candidate and the character offset where each tag ends (pure)."""
    parts = [prompt_text]
    ends: list[int] = []
    n = len(prompt_text)
    if adapter.granularity == "step":
        for i, s in enumerate(steps):
            if i:
                parts.append(adapter.step_separator)
                n += len(adapter.step_separator)
            parts += [s, adapter.step_tag]
            n += len(s) + len(adapter.step_tag)
            ends.append(n)
    else:
        body = adapter.step_separator.join(steps) + adapter.step_tag
        parts.append(body)
        n += len(body)
        ends.append(n)
    return "".join(parts), ends


def render_prompt(adapter: AdapterConfig, tokenizer, problem: str) -> str:
    text = adapter.prompt.replace("{problem}", problem)
    if not adapter.chat_template:
        return text
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"adapter {adapter.name!r} uses the chat template, but the tokenizer has none; "
            "use a checkpoint with a chat template or an adapter with chat_template: false"
        )
    msgs = ([{"role": "system", "content": adapter.system}] if adapter.system else []) + [
        {"role": "user", "content": text}
    ]
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def encode_candidate(adapter: AdapterConfig, tokenizer, prompt_text: str, steps: list[str]) -> Encoded:
    """Tokenise a rendered candidate; locate each tag's last token through the offsets.

    The readout token must end exactly where the tag ends: a token that also covers
    text after the tag would let the score see the future, so that is an error.
    """
    text, ends = render_candidate(adapter, prompt_text, steps)
    enc = tokenizer(text, add_special_tokens=adapter.add_special_tokens, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    positions = []
    t = 0
    for end in ends:
        # first token (from t on) whose span contains the tag's last character
        while t < len(offsets) and not (offsets[t][0] < end <= offsets[t][1] and offsets[t][1] > offsets[t][0]):
            t += 1
        if t == len(offsets):
            raise ValueError(f"adapter {adapter.name!r}: could not locate step tag {adapter.step_tag!r} in the tokens")
        if offsets[t][1] != end:
            raise ValueError(
                f"adapter {adapter.name!r}: the tag {adapter.step_tag!r} merges with the text after it "
                f"into one token ({text[offsets[t][0]:offsets[t][1]]!r}); choose a tag or separator that "
                "tokenises on its own"
            )
        positions.append(t)
        t += 1
    return Encoded(tuple(ids), tuple(positions))


def prefix_keys(problem: str, steps: list[str], salt: str = "") -> list[bytes]:
    """Hash chain: key i identifies (problem, steps[: i + 1]); independent of later steps."""
    h = hashlib.blake2b(f"{salt}\x00{problem}".encode(), digest_size=16).digest()
    keys = []
    for s in steps:
        h = hashlib.blake2b(h + b"\x01" + s.encode(), digest_size=16).digest()
        keys.append(h)
    return keys


def split_cached(scorer, problems, solutions, limit: int, limit_source: str):
    """The step-cache lookup both PRM backends start with.

    Returns (out, todo): `out` holds [] for an empty solution and the cached scores for a
    candidate whose every key is in the score cache (those keys refreshed in the LRU and
    counted in `stats.cache_hits`), None elsewhere; `todo` lists the rest as (i, keys,
    cached, encoded), each checked against `limit` (a ValueError naming candidate, length,
    `limit_source` and the fix)."""
    out: list[list[float] | None] = [None] * len(solutions)
    todo = []
    for i, (problem, steps) in enumerate(zip(problems, solutions, strict=True)):
        if not steps:
            out[i] = []
            continue
        keys = prefix_keys(problem, steps, scorer.adapter.name)
        if scorer.granularity == "outcome":
            keys = keys[-1:]
        cached = [scorer._scores.peek(k) for k in keys]
        if all(c is not None for c in cached):
            for k in keys:
                scorer._scores.get(k)  # marks the step scores as just used
            scorer.stats.cache_hits += len(keys)
            out[i] = list(cached)
            continue
        enc = scorer.encode(problem, steps)
        if len(enc.ids) > limit:
            raise ValueError(f"candidate {i} is {over_limit(len(enc.ids), limit, limit_source)}")
        todo.append((i, keys, cached, enc))
    return out, todo


def over_limit(n: int, limit: int, limit_source: str) -> str:
    """The length message of a candidate of n tokens over `limit`, with the fix."""
    return (f"{n} tokens, over the limit of {limit} ({limit_source}); shorten the solution or raise the "
            "scorer's max_length (load_scorer(..., max_length=N); --max-length in `cli.py eval`), "
            "up to the model's positions")


@dataclass
class _Item:
    index: int  # candidate index in the score() call
    enc: Encoded
    keys: list[bytes]
    cached: list[float | None]
    start: int = 0  # number of prefix tokens served by the KV cache
    past: list | None = None  # per layer (k, v), each [kv_heads, start, head_dim]
    first_new_tag: int = 0  # tags before this index come from the score cache
    scores: list[float] = field(default_factory=list)


class TransformersScorer(Scorer):
    """A PRM (granularity "step") or ORM ("outcome") on a transformers model."""

    def __init__(
        self,
        model,
        tokenizer,
        adapter: AdapterConfig,
        *,
        value_head=None,
        token_budget: int = 8192,
        max_batch_size: int = 64,
        cache_size: int = 200_000,
        kv_cache_tokens: int = 8192,
        trained: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__()
        import torch

        if token_budget < 1 or max_batch_size < 1:
            raise ValueError(f"token_budget and max_batch_size must be >= 1, got {token_budget}, {max_batch_size}")
        self.kind = "prm" if adapter.granularity == "step" else "orm"
        self.granularity = adapter.granularity
        self.adapter = adapter
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.token_budget = int(token_budget)
        self.max_batch_size = int(max_batch_size)
        self.cache_size = int(cache_size)
        self.kv_cache_tokens = int(kv_cache_tokens) if adapter.granularity == "step" else 0
        self.trained = trained
        self.name = name or adapter.name
        self.device = next(model.parameters()).device
        self.backbone = getattr(model, model.base_model_prefix)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.max_positions = getattr(model.config, "max_position_embeddings", None) or 1 << 30
        self._scores = LRUCache(self.cache_size)  # prefix key -> step score
        # prefix key -> (token ids, per-layer KV), bounded by the tokens held
        self._kv = LRUCache(self.kv_cache_tokens, weigh=lambda entry: len(entry[0]))
        self._prompts: dict[str, str] = {}
        self.value_head = value_head
        if adapter.readout == "label_tokens":
            pos, neg = (self._single_token(adapter.positive_token, "positive_token"),
                        self._single_token(adapter.negative_token, "negative_token"))
            emb = model.get_output_embeddings()
            with torch.no_grad():
                self._label_w = emb.weight[[pos, neg]].detach().clone()  # [2, H]
                b = getattr(emb, "bias", None)
                self._label_b = b[[pos, neg]].detach().clone() if b is not None else None
            self.label_token_ids = (pos, neg)
        elif adapter.readout == "class_index":
            head = getattr(model, "score", None) or getattr(model, "classifier", None)
            if head is None:
                raise ValueError(f"adapter {adapter.name!r}: the model has no 'score' or 'classifier' head")
            self._head = head
        elif value_head is None:
            raise ValueError(f"adapter {adapter.name!r}: readout 'value_head' needs a value head")

    # ------------------------------------------------------------------ helpers
    def _single_token(self, text: str, what: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"adapter {self.adapter.name!r}: {what} {text!r} is {len(ids)} tokens ({ids}) in this "
                "tokenizer; it must be exactly one token"
            )
        return ids[0]

    @property
    def num_parameters(self) -> int:
        n = sum(p.numel() for p in self.model.parameters())
        if self.value_head is not None:
            n += sum(p.numel() for p in self.value_head.parameters())
        return n

    @property
    def forward_params(self) -> int:
        from .cost import forward_params

        # the backbone runs over every token; the value head / two LM-head rows only at the tags
        return forward_params(self.backbone)

    def encode(self, problem: str, steps: list[str]) -> Encoded:
        """The candidate's token ids and tag positions (what the model sees)."""
        if problem not in self._prompts:
            if len(self._prompts) > 10_000:
                self._prompts.clear()
            self._prompts[problem] = render_prompt(self.adapter, self.tokenizer, problem)
        return encode_candidate(self.adapter, self.tokenizer, self._prompts[problem], steps)

    def clear_cache(self) -> None:
        self._scores.clear()
        self._kv.clear()

    def _read(self, h):
        """Hidden states at tags [M, H] -> P(correct) [M]."""
        import torch

        a = self.adapter
        if a.readout == "label_tokens":
            logits = h @ self._label_w.T.to(h.dtype)
            if self._label_b is not None:
                logits = logits + self._label_b
            return torch.softmax(logits.float(), dim=-1)[:, 0]
        if a.readout == "class_index":
            logits = self._head(h)
            return torch.softmax(logits.float(), dim=-1)[:, a.positive_class]
        return torch.sigmoid(self.value_head(h).float()[:, 0])

    # ------------------------------------------------------------------ scoring
    _LIMIT_SOURCE = "adapter max_length / model"

    def _limit(self) -> int:
        """The longest candidate scored, in tokens."""
        return min(self.adapter.max_length, self.max_positions)

    # the two methods below serve the vLLM backend too (it has its own _limit)
    def describe(self) -> dict:
        return {**Scorer.describe(self), "adapter": self.adapter.name, "max_length": self._limit()}

    def length_error(self, problem: str, steps: list[str]) -> str | None:
        if not steps:
            return None
        n, limit = len(self.encode(problem, steps).ids), self._limit()
        return over_limit(n, limit, self._LIMIT_SOURCE) if n > limit else None

    def _score(self, problems, solutions, *, golds, references):
        out, todo = split_cached(self, problems, solutions, self._limit(), self._LIMIT_SOURCE)
        items: list[_Item] = []
        for i, keys, cached, enc in todo:
            item = _Item(i, enc, keys, cached)
            if self.kv_cache_tokens:
                self._attach_prefix(item)
            items.append(item)

        full = [it for it in items if it.past is None]
        cont = [it for it in items if it.past is not None]
        for batch in self._batches(full, lambda it: len(it.enc.ids)):
            self._run(batch, continuation=False)
        for batch in self._batches(cont, lambda it: len(it.enc.ids)):
            self._run(batch, continuation=True)

        for it in items:
            scores = []
            for j, (k, c) in enumerate(zip(it.keys, it.cached, strict=True)):
                if j < it.first_new_tag or c is not None:
                    # served from the score cache (identical to the first computation)
                    scores.append(c if c is not None else self._scores.peek(k))
                    self.stats.cache_hits += 1
                else:
                    v = it.scores[j - it.first_new_tag]
                    scores.append(v)
                    self._scores.put(k, v)
                    self.stats.cache_misses += 1
            out[it.index] = scores
        return out

    def _attach_prefix(self, item: _Item) -> None:
        """Use the longest cached KV prefix whose step scores are all cached too."""
        for j in range(len(item.keys) - 1, 0, -1):  # j = number of steps in the prefix
            entry = self._kv.peek(item.keys[j - 1])
            if entry is None:
                continue
            ids, past = entry
            n = len(ids)
            if item.enc.ids[:n] != ids or n >= len(item.enc.ids):
                continue  # tokenisation at the boundary differs: no reuse
            if any(item.cached[t] is None and item.keys[t] not in self._scores for t in range(j)):
                continue
            for t in range(j):
                if item.cached[t] is None:
                    item.cached[t] = self._scores.peek(item.keys[t])
            self._kv.get(item.keys[j - 1])  # marks the prefix as just used
            item.start, item.past, item.first_new_tag = n, past, j
            return

    def _put_kv(self, key: bytes, ids: tuple[int, ...], past: list) -> None:
        if key not in self._kv:  # a prefix longer than kv_cache_tokens is not kept
            self._kv.put(key, (ids, past))

    def _batches(self, items: list[_Item], length):
        """Greedy batches under the token budget (padded size), longest first."""
        order = sorted(items, key=lambda it: -(length(it) + it.start))
        return token_budget_batches(order, length, self.token_budget, self.max_batch_size)

    def _run(self, batch: list[_Item], *, continuation: bool) -> None:
        import torch

        dev = self.device
        B = len(batch)
        new = [it.enc.ids[it.start:] for it in batch]
        N = max(len(x) for x in new)
        starts = [it.start if continuation else 0 for it in batch]
        ids, attn, pos, cache, P = prefix_batch(
            new, starts, [it.past for it in batch], pad_id=self.pad_id,
            n_layers=len(batch[0].past) if continuation else 0, config=self.model.config, device=dev)
        kwargs = {}
        if P:
            kwargs = {"past_key_values": cache, "position_ids": pos}
            self.stats.kv_reused_tokens += sum(starts)
        want_kv = self.kv_cache_tokens > 0
        with torch.inference_mode():
            res = self.backbone(input_ids=ids.to(dev), attention_mask=attn.to(dev), use_cache=want_kv, **kwargs)
            h = res.last_hidden_state  # [B, N, H]
            rows, cols = [], []
            for b, it in enumerate(batch):
                tags = it.enc.tag_positions[it.first_new_tag:]
                rows += [b] * len(tags)
                cols += [t - it.start for t in tags]
            probs = self._read(h[rows, cols]).tolist()  # [M]
            if want_kv:
                pkv = res.past_key_values
                layers = [(lay.keys, lay.values) for lay in pkv.layers]
                for b, it in enumerate(batch):
                    self._put_kv(it.keys[-1], it.enc.ids, row_past(layers, b, P - starts[b], P + len(new[b])))
        k = 0
        for it in batch:
            m = len(it.enc.tag_positions) - it.first_new_tag
            it.scores = [min(1.0, max(0.0, p)) for p in probs[k: k + m]]
            k += m
        self.stats.batches += 1
        self.stats.forward_passes += B
        self.stats.tokens_scored += sum(len(x) for x in new)
        self.stats.tokens_padded += B * N
