"""The three training tasks: what a record becomes, where the loss sits, how it is read.

Each task renders examples with the *scorer's own* encoding code (``rewards.hf.encode_candidate``
for PRM/ORM, ``TinyRMScorer.encode_pair`` for TinyRM), so a trained checkpoint is read
at exactly the positions it was trained at.

Preprocessing is pure and model-free (``prm_features``, ``orm_features``,
``tinyrm_features``): a list of token ids and a dense label list holding ``IGNORE``
everywhere except at the positions with a loss (step tags; the tag after the last
step; the mask).

Losses (shapes: B sequences, N tokens, H hidden, M labelled positions):
- PRM: h[M, H] at the tags; logit = h @ (w(" +") - w(" -")) with the LM head rows, so
  sigmoid(logit) is the scorer's P(+) among {+, -}; BCE against the label in [0, 1]
  (soft labels stay probabilities; TRL casts them to int).
- ORM: logit = value_head(h_tag); BCE against the outcome.
- TinyRM: MLM logits [M, V] at the mask; cross-entropy against the token "0" (chosen
  shown first) or "1" (chosen second); both orders of every pair are examples.
"""

from __future__ import annotations

import logging
import math

from ..checkpoint import TINYRM_HEAD_FILE, VALUE_HEAD_FILE, backbone_path, encoder_path, seeded_init
from .config import TrainConfig
from .data import check_record, make_pairs, outcome_step_records

log = logging.getLogger(__name__)

__all__ = ["IGNORE", "prm_features", "orm_features", "tinyrm_features", "TASKS", "auc"]

IGNORE = -100.0


# ------------------------------------------------------------------ pure preprocessing
def prm_features(adapter, tokenizer, prompt_text: str, steps: list[str], labels: list[float], *,
                 last_step_only: bool = False) -> dict:
    """Token ids and dense labels (IGNORE except at each step tag's readout token)."""
    from ..hf import encode_candidate

    if len(steps) != len(labels):
        raise ValueError(f"{len(steps)} steps but {len(labels)} labels")
    enc = encode_candidate(adapter, tokenizer, prompt_text, steps)
    dense = [IGNORE] * len(enc.ids)
    pairs = list(zip(enc.tag_positions, labels, strict=True))
    for pos, y in pairs[-1:] if last_step_only else pairs:
        dense[pos] = float(y)
    return {"input_ids": list(enc.ids), "labels": dense}


def orm_features(adapter, tokenizer, prompt_text: str, steps: list[str], correct: bool) -> dict:
    """Token ids and dense labels (IGNORE except at the one tag after the whole solution)."""
    from ..hf import encode_candidate

    enc = encode_candidate(adapter, tokenizer, prompt_text, steps)
    dense = [IGNORE] * len(enc.ids)
    dense[enc.tag_positions[-1]] = 1.0 if correct else 0.0
    return {"input_ids": list(enc.ids), "labels": dense}


def tinyrm_features(judge, question: str, chosen: str, rejected: str, *, chosen_first: bool) -> dict:
    """One ordered pair: ids, token types, dense labels with the target token id at the mask."""
    a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
    e = judge.encode_pair(question, a, b)
    target = judge.choice_ids[0 if chosen_first else 1]
    dense = [IGNORE] * len(e["input_ids"])
    dense[e["mask"]] = float(target)
    return {"input_ids": list(e["input_ids"]), "token_type_ids": e["token_type_ids"], "labels": dense}


def auc(scores: list[float], labels: list[int]) -> float | None:
    """ROC AUC by ranks (ties averaged); None when one class is missing."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    r = sum(ranks[i] for i in range(len(labels)) if labels[i])
    return (r - pos * (pos + 1) / 2) / (pos * neg)


# ------------------------------------------------------------------------ batching
def collate(examples: list[dict], pad_id: int):
    """Right-padded tensors: input_ids [B, N], attention_mask [B, N], labels [B, N] (float)."""
    import torch

    B, N = len(examples), max(len(e["input_ids"]) for e in examples)
    ids = torch.full((B, N), pad_id, dtype=torch.long)
    attn = torch.zeros((B, N), dtype=torch.long)
    labels = torch.full((B, N), IGNORE, dtype=torch.float32)
    tt = torch.zeros((B, N), dtype=torch.long) if examples[0].get("token_type_ids") is not None else None
    for b, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[b, :n] = torch.tensor(e["input_ids"])
        attn[b, :n] = 1
        labels[b, :n] = torch.tensor(e["labels"])
        if tt is not None:
            tt[b, :n] = torch.tensor(e["token_type_ids"])
    out = {"input_ids": ids, "attention_mask": attn, "labels": labels}
    if tt is not None:
        out["token_type_ids"] = tt
    return out


def _bce_metrics(probs: list[float], labels: list[float], loss_sum: float) -> dict:
    hard = [1 if y >= 0.5 else 0 for y in labels]
    acc = sum((p >= 0.5) == bool(h) for p, h in zip(probs, hard, strict=True)) / max(1, len(probs))
    a = auc(probs, hard)
    return {"loss": loss_sum / max(1, len(probs)), "accuracy": acc, "auc": a, "labels": len(probs),
            "positive_rate": sum(hard) / max(1, len(hard)), "mean_score": sum(probs) / max(1, len(probs))}


# ------------------------------------------------------------------------- tasks
class _CausalTask:
    """Shared PRM/ORM parts: the causal backbone, scorer-identical encoding, BCE at tags."""

    kind = ""

    def __init__(self, config: TrainConfig) -> None:
        from ..adapters import load_adapter

        self.config = config
        self.adapter = load_adapter(config.adapter_name)
        expect = "step" if config.kind == "prm" else "outcome"
        if self.adapter.granularity != expect:
            raise ValueError(f"adapter {self.adapter.name!r} has granularity {self.adapter.granularity!r}; "
                             f"a {config.kind} needs a {expect!r} adapter")
        self.heads: dict = {}  # name -> fully trained module (saved beside the adapter)

    def observe(self, train_records: list[dict]) -> dict:
        """Read what the model's set-up needs from the training split, before ``load``; returns
        the card's entries about it (none here)."""
        return {}

    shift = 0.0
    """log(pos_weight) with ``balance="weight"`` (ORM): the trained head's logit minus it is the read-out."""

    def add_value_head(self, model, bias: float | None = None) -> None:
        """A linear value head on the last hidden state, trained fully (``readout value_head``):
        seeded random, or weights 0 and ``bias`` (a start at a fixed score for every input)."""
        import torch

        torch.manual_seed(self.config.seed)
        head = torch.nn.Linear(model.config.hidden_size, 1, dtype=getattr(torch, self.config.dtype))
        if bias is not None:
            with torch.no_grad():
                head.weight.zero_()
                head.bias.fill_(bias)
        self.heads["value_head"] = head

    def head_parameters(self, model) -> dict:
        if "value_head" not in self.heads:
            return {}
        return {f"value_head.{n}": p for n, p in self.heads["value_head"].named_parameters()}

    def head_files(self, model) -> dict[str, dict]:
        """File name -> state dict of the trained heads saved beside the adapter."""
        if "value_head" not in self.heads:
            return {}
        state = dict(self.heads["value_head"].state_dict())
        if self.shift:  # the saved head reads out P(correct): the loaders know no shift
            state["bias"] = state["bias"] - self.shift
        return {VALUE_HEAD_FILE: state}

    def load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..hf import render_prompt

        path = backbone_path(self.config.backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.config.dtype),
                                                     local_files_only=True)
        self._prompts: dict[str, str] = {}
        self._render = lambda p: self._prompts.setdefault(p, render_prompt(self.adapter, self.tokenizer, p))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return model

    def hidden(self, model, batch):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        backbone = getattr(inner, inner.base_model_prefix)
        return backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state

    def logits_at(self, model, batch):
        """(logits [M], labels [M]) at the labelled positions."""
        h = self.hidden(model, batch)
        mask = batch["labels"] != IGNORE
        return self.readout(model, h[mask]), batch["labels"][mask]

    def loss(self, model, batch):
        import torch.nn.functional as F

        z, y = self.logits_at(model, batch)
        return F.binary_cross_entropy_with_logits(z.float(), y, reduction="sum"), len(y)

    def evaluate(self, model, batches) -> dict:
        import torch
        import torch.nn.functional as F

        probs, labels, loss = [], [], 0.0
        with torch.no_grad():
            for batch in batches:
                z, y = self.logits_at(model, batch)
                loss += F.binary_cross_entropy_with_logits(z.float(), y, reduction="sum").item()
                probs += torch.sigmoid(z.float()).tolist()
                labels += y.tolist()
        return _bce_metrics(probs, labels, loss)

    def probe(self, model, recs: list[dict]) -> list[dict]:
        """Scores of a few records by the training-time model (eval mode), stored in the card
        so that a loaded checkpoint can be checked against them."""
        import torch

        out = []
        with torch.no_grad():
            for r in recs:
                e = self.features(r)
                dev = next(model.parameters()).device
                b = {k: v.to(dev) for k, v in collate([e], self.pad_id).items()}
                z, _ = self.logits_at(model, b)
                out.append({"problem": r["problem"], "steps": r["steps"], "scores": torch.sigmoid(z.float()).tolist()})
        return out

    def card(self) -> dict:
        return {"adapter": self.adapter.name if self.config.adapter is None or not str(self.config.adapter).endswith(".json")
                else self.adapter.to_dict()}


class PRMTask(_CausalTask):
    kind = "prm"

    def records(self, records: list[dict]) -> list[dict]:
        kinds = [check_record(r, i) for i, r in enumerate(records)]
        out = [r for r, k in zip(records, kinds, strict=True) if k == "steps"]
        outcome = [r for r, k in zip(records, kinds, strict=True) if k == "outcome"]
        if outcome and not self.config.outcome_targets:  # never dropped unsaid: they would change the data
            raise ValueError(f"PRM training: {len(outcome)} of the {len(records)} records are outcome records "
                             "(a solution's verdict, no step labels); add --outcome-targets true (outcome_targets"
                             "=True) to label each of their steps with it, or leave those files out")
        out += outcome_step_records(outcome, out)
        if not out:
            raise ValueError("PRM training needs 'steps' records (steps + labels); build them with "
                             "`cli.py train data-steps` or import them with `cli.py train data-import`")
        return out

    def load(self):
        model = super().load()
        if self.adapter.readout == "value_head":  # e.g. tts-prm-value: a value head at every step tag
            self.add_value_head(model)
            return model
        if self.adapter.readout != "label_tokens":
            raise ValueError(f"PRM training supports label_tokens and value_head adapters; {self.adapter.name!r} "
                             f"reads {self.adapter.readout!r}")
        ids = []
        for t in (self.adapter.positive_token, self.adapter.negative_token):
            enc = self.tokenizer.encode(t, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"label token {t!r} is {len(enc)} tokens in this tokenizer; it must be one")
            ids.append(enc[0])
        self.label_ids = ids
        return model

    def readout(self, model, h):
        if "value_head" in self.heads:
            return self.heads["value_head"](h)[:, 0]
        emb = model.get_output_embeddings()
        w = emb.weight[self.label_ids]  # [2, H], frozen (tied to the input embeddings)
        z = h @ (w[0] - w[1]).to(h.dtype)
        b = getattr(emb, "bias", None)
        if b is not None:
            z = z + (b[self.label_ids[0]] - b[self.label_ids[1]])
        return z

    def features(self, r: dict) -> dict:
        labels = r["labels"]
        if self.config.label == "hard":
            labels = r.get("hard_labels") or [1.0 if y >= 0.5 else 0.0 for y in labels]
        return prm_features(self.adapter, self.tokenizer, self._render(r["problem"]), r["steps"], labels,
                            last_step_only=self.config.last_step_only)


class ORMTask(_CausalTask):
    kind = "orm"

    def records(self, records: list[dict]) -> list[dict]:
        out = []
        for i, r in enumerate(records):
            k = check_record(r, i)
            if k == "outcome" and r["steps"]:
                out.append(r)
            elif k == "steps" and "correct" in r:  # MC step records carry their outcome too
                out.append({**r, "kind": "outcome"})
        if not out:
            raise ValueError("ORM training needs 'outcome' records (steps + correct); build them with "
                             "`cli.py train data-outcome` or import gsm8k-examples")
        return out

    prior_logit = 0.0
    """The read-out's starting logit: 0, or the training split's log-odds (``balance`` prior/weight)."""

    def observe(self, train_records: list[dict]) -> dict:
        """The training split's share of correct solutions sets the start and the weights (``balance``)."""
        pos = sum(bool(r["correct"]) for r in train_records)
        share = pos / len(train_records) if train_records else 0.0
        out = {"train_positive_share": round(share, 4), "balance": self.config.balance}
        if self.config.balance == "none":
            return out
        if not 0 < pos < len(train_records):
            raise ValueError(f"balance={self.config.balance!r} needs correct and wrong solutions in the training "
                             f"split; it has {pos} correct of {len(train_records)} (use --balance none)")
        self.prior_logit = math.log(share / (1.0 - share))
        if self.config.balance == "weight":
            self.shift = math.log((1.0 - share) / share)  # log(negatives / positives)
            out["pos_weight"] = round(math.exp(self.shift), 4)
        return out

    def load(self):
        model = super().load()
        if self.adapter.readout != "value_head":
            raise ValueError(f"ORM training writes a value head; adapter {self.adapter.name!r} reads "
                             f"{self.adapter.readout!r} (use tts-orm or an adapter with readout value_head)")
        # balance prior/weight: the read-out starts at the base rate for every input
        self.add_value_head(model, None if self.config.balance == "none" else self.prior_logit + self.shift)
        return model

    def readout(self, model, h):
        return self.heads["value_head"](h)[:, 0] - self.shift

    def loss(self, model, batch):
        import torch
        import torch.nn.functional as F

        if not self.shift:
            return super().loss(model, batch)
        z, y = self.logits_at(model, batch)  # balanced BCE on the trained head's own logit
        w = torch.tensor(math.exp(self.shift), dtype=torch.float32, device=z.device)
        return F.binary_cross_entropy_with_logits(z.float() + self.shift, y, pos_weight=w, reduction="sum"), len(y)

    def features(self, r: dict) -> dict:
        return orm_features(self.adapter, self.tokenizer, self._render(r["problem"]), r["steps"], bool(r["correct"]))


_HEAD_PREFIXES = ("cls.", "head.", "lm_head.", "decoder.", "predictions.")


class TinyRMTask:
    """Cloze judge on an MLM encoder; see rewards/tinyrm.py for how it is read."""

    kind = "tinyrm"

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.heads: dict = {}

    def records(self, records: list[dict]) -> list[dict]:
        pairs = make_pairs(records, max_pairs_per_problem=self.config.max_pairs_per_problem, seed=self.config.seed)
        if not pairs:
            raise ValueError("TinyRM training needs pairs: 'pair' records, or 'outcome' records with a correct "
                             "and a wrong solution of the same problem")
        return pairs

    def load(self):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from ..tinyrm import TinyRMScorer

        path = encoder_path(self.config.backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        with seeded_init(self.config.seed):
            model, info = AutoModelForMaskedLM.from_pretrained(
                path, dtype=getattr(torch, self.config.dtype), local_files_only=True, output_loading_info=True)
        self.fresh = sorted(info.get("missing_keys", []))
        if self.fresh:
            log.info("tinyrm: %d head weights are not in the checkpoint and are trained from scratch: %s",
                     len(self.fresh), self.fresh[:6])
        # head parameters trained fully: the fresh ones always, the whole head with train_head
        tied = model.get_input_embeddings().weight
        self.head_names = sorted(
            n for n, p in model.named_parameters()
            if p is not tied and (n in self.fresh or (self.config.train_head and n.startswith(_HEAD_PREFIXES)))
        )
        self.judge = TinyRMScorer(model, self.tokenizer, prefix=self.config.prefix,
                                  max_length=min(self.config.max_length, 10**9))
        model.train()
        self.pad_id = self.tokenizer.pad_token_id or 0
        return model

    def observe(self, train_records: list[dict]) -> dict:
        return {}

    def head_parameters(self, model):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        named = dict(inner.named_parameters())
        return {n: named[n] for n in self.head_names}

    def features_pair(self, r: dict) -> list[dict]:
        from ..steps import join_steps

        a, b = join_steps(r["chosen"]), join_steps(r["rejected"])
        return [tinyrm_features(self.judge, r["problem"], a, b, chosen_first=True),
                tinyrm_features(self.judge, r["problem"], a, b, chosen_first=False)]

    def mask_logits(self, model, batch):
        """(vocab logits [M, V] at the masks, target ids [M])."""
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        mask = batch["labels"] != IGNORE
        kw = {"token_type_ids": batch["token_type_ids"]} if "token_type_ids" in batch else {}
        if hasattr(inner, "cls"):  # BERT family: encoder, then the head only at the masks
            h = getattr(inner, inner.base_model_prefix)(input_ids=batch["input_ids"],
                                                        attention_mask=batch["attention_mask"], **kw)[0]
            logits = inner.cls(h[mask])
        else:  # any other MLM: full forward
            logits = inner(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kw).logits[mask]
        return logits, batch["labels"][mask].long()

    def loss(self, model, batch):
        import torch.nn.functional as F

        logits, target = self.mask_logits(model, batch)
        return F.cross_entropy(logits.float(), target, reduction="sum"), len(target)

    def evaluate(self, model, batches) -> dict:
        """Loss, order accuracy (P(right token) > P(other)), pair accuracy (both orders averaged > 0.5)."""
        import torch
        import torch.nn.functional as F

        c0, c1 = self.judge.choice_ids
        loss, n, right, p_first = 0.0, 0, 0, []
        with torch.no_grad():
            for batch in batches:
                logits, target = self.mask_logits(model, batch)
                loss += F.cross_entropy(logits.float(), target, reduction="sum").item()
                two = torch.softmax(logits[:, [c0, c1]].float(), dim=-1)[:, 0]  # P0 among {0, 1}
                for p, t in zip(two.tolist(), target.tolist(), strict=True):
                    right += (p > 0.5) == (t == c0)
                    p_first.append((p, t == c0))
                n += len(target)
        # examples come in (chosen first, chosen second) order pairs: win = (P0(c,r) + 1 - P0(r,c)) / 2
        wins = [0.5 * (p_first[i][0] + 1.0 - p_first[i + 1][0]) for i in range(0, len(p_first) - 1, 2)
                if p_first[i][1] and not p_first[i + 1][1]]
        return {"loss": loss / max(1, n), "order_accuracy": right / max(1, n),
                "pair_accuracy": sum(w > 0.5 for w in wins) / max(1, len(wins)), "pairs": len(wins)}

    def probe(self, model, recs: list[dict]) -> list[dict]:
        """P("0") among {"0", "1"} of (question, chosen, rejected) by the training-time model."""
        import torch

        from ..steps import join_steps

        c0, c1 = self.judge.choice_ids
        out = []
        with torch.no_grad():
            for r in recs:
                e = self.features_pair(r)[0]
                dev = next(model.parameters()).device
                b = {k: v.to(dev) for k, v in collate([e], self.pad_id).items()}
                logits, _ = self.mask_logits(model, b)
                p0 = torch.softmax(logits[:, [c0, c1]].float(), dim=-1)[0, 0].item()
                out.append({"problem": r["problem"], "a": join_steps(r["chosen"]), "b": join_steps(r["rejected"]),
                            "p0": p0})
        return out

    def head_files(self, model) -> dict[str, dict]:
        # every trained head tensor under every name the checkpoint lacked (tied names such as
        # cls.predictions.bias / cls.predictions.decoder.bias both)
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        keep = set(self.head_names) | set(self.fresh)
        state = {n: t for n, t in inner.state_dict().items() if n in keep}
        return {TINYRM_HEAD_FILE: state} if state else {}

    def card(self) -> dict:
        # max_length: what training truncated pairs to (load_tinyrm does not read it yet; it
        # defaults to the encoder's limit, which only changes pairs longer than this)
        return {"prefix": self.config.prefix, "choice_tokens": ["0", "1"], "max_length": self.config.max_length}


TASKS = {"prm": PRMTask, "orm": ORMTask, "tinyrm": TinyRMTask}
