"""Self-certainty (policies/certainty.py): the formula by hand, the positions it reads, batch
independence, and the real SmolLM2 against a plain full-vocabulary computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.certainty import SelfCertainty, self_certainty

PROBLEM = "Tom has 3 apples and buys 4 more. How many apples?"
TEXT = "Tom starts with 3 apples.\n\nHe buys 4, so 3 + 4 = 7.\n\nThe answer is \\boxed{7}."


def test_formula_by_hand():
    import torch

    # V = 2, p = (1/4, 3/4): KL(U || p) = 1/2 log(1/2 / 1/4) + 1/2 log(1/2 / 3/4) = 1/2 log(4/3)
    z = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    got = self_certainty(z).tolist()
    assert got[0] == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    assert got[1] == pytest.approx(0.0, abs=1e-6)  # uniform: no certainty
    # only the first `vocab` columns count (padding rows of an output embedding)
    assert self_certainty(torch.tensor([[0.0, math.log(3.0), 99.0]]), vocab=2).item() == pytest.approx(got[0], abs=1e-6)
    # against the definition on random logits
    z = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 3
    logp = z.log_softmax(-1)
    kl = (-(math.log(50)) - logp.mean(-1))
    assert torch.allclose(self_certainty(z), kl, atol=1e-5)


@pytest.fixture(scope="module")
def smol():
    return SelfCertainty(None, dtype="float32", chunk=7)  # several logit blocks per text


def test_reads_the_positions_that_predict_the_text(smol):
    ids, first = smol.encode(PROBLEM, TEXT)
    text_ids = smol.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ids[first:] == text_ids  # the chat prompt ends in a newline: the text tokenizes alone
    assert smol.tokenizer.decode(ids[:first]) == smol.prompt(PROBLEM)


def test_equals_a_full_forward_pass_and_does_not_depend_on_the_batch(smol):
    import torch
    from transformers import AutoModelForCausalLM

    from policies.models import resolve_model

    alone = smol([PROBLEM], [TEXT])[0]
    ids, first = smol.encode(PROBLEM, TEXT)
    assert alone.shape == (len(ids) - first,)
    lm = AutoModelForCausalLM.from_pretrained(resolve_model(None), local_files_only=True,
                                              torch_dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = lm(input_ids=torch.tensor([ids])).logits[0, first - 1 : len(ids) - 1, : smol.vocab]
    ref = (-math.log(smol.vocab) - logits.log_softmax(-1).mean(-1)).numpy()
    np.testing.assert_allclose(alone, ref, rtol=1e-4, atol=1e-3)
    assert (alone > 0).all()
    # padded beside a longer text: the same values
    both = smol([PROBLEM, "x", PROBLEM], [TEXT, "", TEXT + "\n\nSo 7 apples in all, since 3 + 4 = 7."])
    np.testing.assert_allclose(both[0], alone, rtol=1e-4, atol=1e-3)
    assert both[1].shape == (0,)
    np.testing.assert_allclose(both[2][: len(alone)], alone, rtol=1e-4, atol=1e-3)
