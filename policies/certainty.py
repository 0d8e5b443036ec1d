"""Self-certainty: how far the policy's next-token distribution is from uniform, per token.

    from policies.certainty import SelfCertainty
    sc = SelfCertainty("qwen2.5-coder-0.5b", prompt_style="gsm8k")
    sc(["What is 2+3?"], ["2 + 3 = 5.\n\nThe answer is \\boxed{5}."])   # [array([...])]

Self-certainty (Kang et al. 2025, "Scalable Best-of-N Selection for Large Language Models
via Self-Certainty") of position t is the KL divergence of the uniform distribution U over
the vocabulary from the policy's next-token distribution p_t:

    SC_t = KL(U || p_t) = -(1/V) * sum_j log(V * p_t(j)) = logsumexp(z_t) - mean(z_t) - log V

with z_t the logits (temperature 1, no truncation). It is 0 for a uniform distribution and
grows as the distribution peaks; a trace's self-certainty is the mean over its tokens.
DeepConf's token confidence (`Completion.token_confidence`) is the same mean taken over the
top-k candidates only; self-certainty needs the whole vocabulary, which vLLM does not hand
back per token, so it is computed here by one forward pass of the policy's transformer over
the prompt and the stored text. The text is re-tokenized, so a trace's token count can
differ from the sampled one by a token or two at the prompt boundary.

The prompt is rendered exactly as the policy rendered it (`policies.base.render_prompt`).
V counts the tokenizer's tokens (the rows of the output embedding past them are padding).
Logits are computed only at the positions that predict the text's tokens, in chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from policies import settings

__all__ = ["SelfCertainty", "self_certainty"]


def self_certainty(logits, vocab: int | None = None):
    """SC of each row of a [..., V'] logit tensor over its first `vocab` columns (torch)."""
    z = logits[..., :vocab].float() if vocab else logits.float()
    return z.logsumexp(-1) - z.mean(-1) - math.log(z.shape[-1])


class SelfCertainty:
    """Per-token self-certainty of texts written by a policy (see the module docstring).

    model: a `--model` value (an embedded name, a converted directory or a .gguf);
    prompt_style: the dataset prompt the policy used; token_budget: padded tokens per
    forward; chunk: positions per logit block (each block is chunk x V floats)."""

    def __init__(self, model: str, *, prompt_style: str = "gsm8k", system_prompt: str | None = None,
                 dtype: str | None = None, token_budget: int = 8192, chunk: int = 256, max_length: int = 4096,
                 device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from policies.base import load_prompt_template
        from policies.models import resolve_model

        if token_budget < 1 or chunk < 1 or max_length < 2:
            raise ValueError(f"token_budget, chunk >= 1 and max_length >= 2, got {token_budget}, {chunk}, {max_length}")
        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        if not self.tokenizer.is_fast:
            raise ValueError(f"model {model}: self-certainty needs a fast tokenizer (character offsets)")
        self.device = torch.device(device or "cpu")
        torch_dtype = getattr(torch, settings.torch_dtype_name(dtype, device))  # float32 on an AVX2-only CPU
        lm = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True, torch_dtype=torch_dtype)
        lm = lm.eval().to(self.device)
        self.body = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.base_model
        self.head = lm.get_output_embeddings()
        self.vocab = min(len(self.tokenizer), self.head.weight.shape[0])
        self.template = load_prompt_template(prompt_style)
        self.system_prompt = system_prompt
        self.token_budget, self.chunk, self.max_length = token_budget, chunk, max_length
        self.tokens_run = 0  # non-pad tokens through the model
        self._prompts: dict[str, str] = {}

    def prompt(self, problem: str) -> str:
        from policies.base import render_prompt

        if problem not in self._prompts:
            self._prompts[problem] = render_prompt(self.tokenizer, self.template, problem, self.system_prompt)
        return self._prompts[problem]

    def encode(self, problem: str, text: str) -> tuple[list[int], int]:
        """Token ids of prompt + text, and the index of the text's first token (the first
        token that starts at or after the prompt's end). A sequence over `max_length` keeps
        its tail."""
        head = self.prompt(problem)
        enc = self.tokenizer(head + text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        first = next((i for i, (s, e) in enumerate(offs) if s >= len(head) and e > s), len(ids))
        first = max(first, 1)  # position 0 predicts nothing
        if len(ids) > self.max_length:
            cut = len(ids) - self.max_length
            ids, first = ids[cut:], max(1, first - cut)
        return ids, first

    def __call__(self, problems: Sequence[str], texts: Sequence[str]) -> list[np.ndarray]:
        """One float32 array per text: SC at each of its tokens ([] for an empty text)."""
        import torch

        enc = [self.encode(p, t) if t else ([], 0) for p, t in zip(problems, texts, strict=True)]
        out: list[np.ndarray] = [np.zeros(0, np.float32) for _ in texts]
        order = sorted((i for i, t in enumerate(texts) if t and len(enc[i][0]) > enc[i][1]),
                       key=lambda i: len(enc[i][0]))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        from policies.batching import padded_batches

        for batch, ids, mask in padded_batches([e[0] for e in enc], order, self.token_budget, pad):
            with torch.inference_mode():
                hidden = self.body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                   use_cache=False).last_hidden_state
                for r, i in enumerate(batch):
                    n, first = len(enc[i][0]), enc[i][1]
                    h = hidden[r, first - 1 : n - 1]  # the states that predict the text's tokens
                    parts = [self_certainty(self.head(h[c : c + self.chunk]), self.vocab)
                             for c in range(0, h.shape[0], self.chunk)]
                    out[i] = torch.cat(parts).cpu().numpy().astype(np.float32)
            self.tokens_run += int(mask.sum())
        return out
