"""TinyRM: a bidirectional encoder judge read as a cloze (arXiv 2507.09973).

A pair (A, B) is written as the text pair::

    PREFIX Question: {q} Choice 0: {A}   |   Choice 1: {B} Answer: [MASK]

and the MLM head's logits of the tokens "0" and "1" at the mask give
P0(A, B) = softmax(l0, l1)[0], "choice 0 is better". Both orders are run and averaged:

    win(A, B) = (P0(A, B) + 1 - P0(B, A)) / 2,   so win(A, B) + win(B, A) = 1 exactly.

Long pairs are truncated inside the choices (keeping their ends, where the final
answer is) and the question, never in " Answer: [MASK]" (the paper code's bug): the
longest text is cut first; when two long solutions exceed the limit together, each keeps
an equal share (``fair_shares``).

Scoring n candidates of one problem (candidates with the same problem string are a group):

- with ``references``: score = win(candidate, reference); 2 forward passes each;
- ``tournament="round_robin"``: score = mean over the others j of win(i, j);
  n(n-1)/2 pairs, n(n-1) forward passes;
- ``tournament="swiss"``: ``rounds`` rounds (default ceil(log2 n)); each round pairs
  neighbours in the current standing that have not met; score = mean win over the
  games played; about rounds * n / 2 pairs.
- ``"auto"`` (default): round robin up to 8 candidates, Swiss above.

A candidate alone in its group with no reference cannot be compared: it gets 0.5.
The cost is in ``stats.comparisons`` / ``stats.forward_passes`` and ``last_cost``.
Scores are outcome-level: one per candidate.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

from verifiers.lru import LRUCache

from .base import Scorer
from .checkpoint import (
    DEFAULT_ENCODER,
    DEFAULTS_DIR,
    TINYRM_HEAD_FILE,
    encoder_path,
    has_peft,
    is_trained,
    load_card,
    read_head,
    seeded_init,
    warn_untrained,
)
from .steps import join_steps

log = logging.getLogger(__name__)

__all__ = ["TinyRMScorer", "load_tinyrm", "DEFAULT_PREFIX", "pair_text", "fair_shares"]

DEFAULT_PREFIX = "Which response is more correct? "
_TOURNAMENTS = ("auto", "round_robin", "swiss")


def pair_text(prefix: str, question: str, a: str, b: str, mask: str) -> tuple[str, str]:
    """The two segments of a judged pair (pure)."""
    return f"{prefix}Question: {question} Choice 0: {a}", f" Choice 1: {b} Answer: {mask}"


def fair_shares(lengths: dict[str, int], budget: int) -> dict[str, int]:
    """Token caps summing to at most ``budget``: the shortest texts keep all they have, the
    rest share what is left equally (pure)."""
    caps, left = {}, budget
    order = sorted(lengths, key=lambda k: lengths[k])
    for i, k in enumerate(order):
        caps[k] = min(lengths[k], left // (len(order) - i))
        left -= caps[k]
    return caps


class TinyRMScorer(Scorer):
    kind = "tinyrm"
    granularity = "outcome"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        prefix: str = DEFAULT_PREFIX,
        tournament: str = "auto",
        rounds: int | None = None,
        token_budget: int = 16384,
        max_batch_size: int = 64,
        max_length: int | None = None,
        choice_tokens: tuple[str, str] = ("0", "1"),
        trained: bool = True,
        name: str = "tinyrm",
    ) -> None:
        super().__init__()
        if tournament not in _TOURNAMENTS:
            raise ValueError(f"tournament must be one of {_TOURNAMENTS}, got {tournament!r}")
        if rounds is not None and rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        if tokenizer.mask_token_id is None:
            raise ValueError("TinyRM needs a tokenizer with a mask token (an MLM encoder)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.tournament = tournament
        self.rounds = rounds
        self.token_budget = int(token_budget)
        self.max_batch_size = int(max_batch_size)
        limit = min(getattr(model.config, "max_position_embeddings", 512), tokenizer.model_max_length or 1 << 30)
        self.max_length = int(max_length or limit)
        self.trained = trained
        self.name = name
        self.device = next(model.parameters()).device
        ids = []
        for t in choice_tokens:
            enc = tokenizer.encode(t, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"choice token {t!r} is {len(enc)} tokens in this tokenizer; it must be one")
            ids.append(enc[0])
        self.choice_ids = tuple(ids)
        self._pairs = LRUCache(200_000)  # (question, A, B) -> P0
        self.last_cost: dict = {}

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def forward_params(self) -> int:
        from .cost import forward_params

        if hasattr(self.model, "cls"):  # BERT family: the encoder per token, the MLM head at the mask only
            return forward_params(getattr(self.model, self.model.base_model_prefix))
        # other MLMs run their head (tied to the embeddings, so not counted above) at every position
        return forward_params(self.model) + self.model.get_output_embeddings().weight.numel()

    def _mask_logits(self, ids, attn, kwargs, masks: list[int]):
        """Vocabulary logits [B, V] at each row's mask: for the BERT family the MLM head runs at
        the masks only (the encoder's states elsewhere are not read)."""
        import torch

        rows = torch.arange(len(masks))
        cols = torch.tensor(masks)
        if hasattr(self.model, "cls"):
            h = getattr(self.model, self.model.base_model_prefix)(input_ids=ids, attention_mask=attn, **kwargs)[0]
            return self.model.cls(h[rows, cols])
        return self.model(input_ids=ids, attention_mask=attn, **kwargs).logits[rows, cols]

    # ------------------------------------------------------------- encoding
    def encode_pair(self, question: str, a: str, b: str) -> dict:
        """Token ids, token type ids and the mask index of one ordered pair."""
        tok = self.tokenizer
        q, a, b = question, a, b
        for _ in range(8):
            first, second = pair_text(self.prefix, q, a, b, tok.mask_token)
            enc = tok(first, second, add_special_tokens=True, return_token_type_ids=True)
            n = len(enc["input_ids"])
            if n <= self.max_length:
                mask_pos = [i for i, t in enumerate(enc["input_ids"]) if t == tok.mask_token_id]
                if len(mask_pos) != 1:
                    raise ValueError(f"expected one mask token in the pair, found {len(mask_pos)}; "
                                     "a solution may contain the literal mask token")
                return {"input_ids": enc["input_ids"], "token_type_ids": enc.get("token_type_ids"),
                        "mask": mask_pos[0]}
            # cut the excess (plus a margin for boundary effects) from the longest text; when the
            # longest alone is shorter than the excess, share what fits out evenly (water-filling)
            over = n - self.max_length + 2
            texts = {"a": a, "b": b, "q": q}
            lens = {k: len(tok.encode(v, add_special_tokens=False)) for k, v in texts.items()}
            key = max(("a", "b", "q"), key=lambda k: lens[k])
            caps = {key: lens[key] - over} if lens[key] > over else fair_shares(lens, sum(lens.values()) - over)
            if any(c < 1 for c in caps.values()):
                raise ValueError(f"pair too long to fit max_length={self.max_length} even after truncation "
                                 f"(the prefix and the template alone take {n - sum(lens.values())} tokens)")
            for k, c in caps.items():
                if c < lens[k]:
                    texts[k] = self._keep(texts[k], c, keep_end=k != "q")
            a, b, q = texts["a"], texts["b"], texts["q"]
        raise ValueError(f"could not truncate the pair to max_length={self.max_length}")

    def _keep(self, text: str, n_tokens: int, *, keep_end: bool) -> str:
        offs = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if keep_end:
            return text[offs[len(offs) - n_tokens][0]:]
        return text[: offs[n_tokens - 1][1]]

    # --------------------------------------------------------------- model
    def p0(self, triples: list[tuple[str, str, str]]) -> list[float]:
        """P("0") / (P("0") + P("1")) at the mask for each ordered (question, A, B); cached."""
        import torch

        out: dict[int, float] = {}
        todo = []
        for i, t in enumerate(triples):
            hit = self._pairs.get(t)
            if hit is not None:
                out[i] = hit
                self.stats.cache_hits += 1
            else:
                todo.append((i, self.encode_pair(*t)))
        todo.sort(key=lambda x: -len(x[1]["input_ids"]))
        k = 0
        while k < len(todo):
            width = len(todo[k][1]["input_ids"])
            bs = max(1, min(self.max_batch_size, self.token_budget // width))
            batch = todo[k: k + bs]
            k += bs
            B = len(batch)
            ids = torch.full((B, width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
            tt = torch.zeros((B, width), dtype=torch.long)
            attn = torch.zeros((B, width), dtype=torch.long)
            for b, (_, e) in enumerate(batch):
                n = len(e["input_ids"])
                ids[b, :n] = torch.tensor(e["input_ids"])
                if e["token_type_ids"] is not None:
                    tt[b, :n] = torch.tensor(e["token_type_ids"])
                attn[b, :n] = 1
            kwargs = {"token_type_ids": tt.to(self.device)} if batch[0][1]["token_type_ids"] is not None else {}
            with torch.inference_mode():
                logits = self._mask_logits(ids.to(self.device), attn.to(self.device), kwargs,
                                           [e["mask"] for _, e in batch])
                two = logits[:, list(self.choice_ids)].float()  # [B, 2]
                probs = torch.softmax(two, dim=-1)[:, 0].tolist()
            for (i, _), p in zip(batch, probs, strict=True):
                out[i] = p
                self._pairs.put(triples[i], p)
                self.stats.cache_misses += 1
            self.stats.batches += 1
            self.stats.forward_passes += B
            self.stats.tokens_scored += sum(len(e["input_ids"]) for _, e in batch)
            self.stats.tokens_padded += B * width
        return [out[i] for i in range(len(triples))]

    def win(self, question: str, pairs: list[tuple[str, str]]) -> list[float]:
        """win(A, B) for each (A, B), both orders averaged: win(A,B) + win(B,A) = 1."""
        triples = []
        for a, b in pairs:
            triples += [(question, a, b), (question, b, a)]
        p = self.p0(triples)
        self.stats.comparisons += len(pairs)
        return [0.5 * (p[2 * i] + 1.0 - p[2 * i + 1]) for i in range(len(pairs))]

    # -------------------------------------------------------------- scoring
    def _score(self, problems, solutions, *, golds, references):
        texts = [join_steps(s) for s in solutions]
        out: list[list[float]] = [[] for _ in solutions]
        before = self.stats.comparisons, self.stats.forward_passes
        if references is not None:
            by_q: dict[str, list[int]] = defaultdict(list)
            for i, s in enumerate(solutions):
                if s:
                    by_q[problems[i]].append(i)
            for q, idx in by_q.items():
                w = self.win(q, [(texts[i], references[i]) for i in idx])
                for i, v in zip(idx, w, strict=True):
                    out[i] = [v]
        else:
            groups: dict[str, list[int]] = defaultdict(list)
            for i, s in enumerate(solutions):
                if s:
                    groups[problems[i]].append(i)
            for q, idx in groups.items():
                scores = self._tournament(q, [texts[i] for i in idx])
                for i, v in zip(idx, scores, strict=True):
                    out[i] = [v]
        self.last_cost = {
            "comparisons": self.stats.comparisons - before[0],
            "forward_passes": self.stats.forward_passes - before[1],
            "mode": "reference" if references is not None else self.tournament,
        }
        return out

    def _tournament(self, q: str, texts: list[str]) -> list[float]:
        n = len(texts)
        if n == 1:
            log.debug("tinyrm: one candidate and no reference; it gets 0.5")
            return [0.5]
        mode = self.tournament
        if mode == "auto":
            mode = "round_robin" if n <= 8 else "swiss"
        if mode == "round_robin":
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            w = self.win(q, [(texts[i], texts[j]) for i, j in pairs])
            total = [0.0] * n
            for (i, j), v in zip(pairs, w, strict=True):
                total[i] += v
                total[j] += 1.0 - v
            return [t / (n - 1) for t in total]
        # Swiss: pair neighbours in the standing, avoid rematches; byes for odd n
        rounds = self.rounds or max(1, math.ceil(math.log2(n)))
        points = [0.0] * n
        games = [0] * n
        met: set[tuple[int, int]] = set()
        for _ in range(rounds):
            order = sorted(range(n), key=lambda i: (-(points[i] / games[i] if games[i] else 0.5), i))
            free = list(order)
            pairs = []
            while len(free) >= 2:
                i = free.pop(0)
                j = next((x for x in free if (min(i, x), max(i, x)) not in met), None)
                if j is None:
                    continue
                free.remove(j)
                pairs.append((i, j))
                met.add((min(i, j), max(i, j)))
            if not pairs:
                break
            w = self.win(q, [(texts[i], texts[j]) for i, j in pairs])
            for (i, j), v in zip(pairs, w, strict=True):
                points[i] += v
                points[j] += 1.0 - v
                games[i] += 1
                games[j] += 1
        return [points[i] / games[i] if games[i] else 0.5 for i in range(n)]


def load_tinyrm(
    model: str | None = None,
    *,
    peft: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    **options,
) -> TinyRMScorer:
    """A TinyRM on an HF encoder (default: the embedded all-MiniLM-L6-v2 + rewards/defaults/tinyrm)."""
    from pathlib import Path

    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    directory = DEFAULTS_DIR / "tinyrm" if model is None else (Path(model) if Path(str(model)).is_dir() else None)
    card = load_card(directory)
    backbone = model
    if card is not None:
        backbone = card.get("base_model", DEFAULT_ENCODER) if model is None or card.get("base_model") else model
        for k in ("prefix", "choice_tokens"):
            if k in card and k not in options:
                options[k] = tuple(card[k]) if k == "choice_tokens" else card[k]
        if peft is None and has_peft(directory):
            peft = str(directory)
    path = encoder_path(backbone)
    backbone = backbone or DEFAULT_ENCODER
    torch_dtype = getattr(torch, dtype)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    with seeded_init():
        m, info = AutoModelForMaskedLM.from_pretrained(
            path, dtype=torch_dtype, local_files_only=True, output_loading_info=True
        )
    fresh = list(info.get("missing_keys", []))
    state = read_head(directory, TINYRM_HEAD_FILE)
    if state is not None:
        m.load_state_dict(state, strict=False)
        fresh = [k for k in fresh if k not in state]
    if peft:
        from peft import PeftModel

        m = PeftModel.from_pretrained(m, peft, local_files_only=True).merge_and_unload()
    trained = is_trained(fresh, peft=bool(peft), card=card, bare_is_trained=model is not None)
    if not trained:
        warn_untrained("tinyrm", "tinyrm", backbone, fresh)
    return TinyRMScorer(m.to(device), tok, trained=trained, name=f"tinyrm:{backbone}", **options)
