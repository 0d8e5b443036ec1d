"""Padded forward batches under a token budget, shared by the readers of the policy's states
(rewards.probe.PolicyFeatures, policies.certainty.SelfCertainty)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def padded_batches(seqs: Sequence[Sequence[int]], order: Sequence[int], token_budget: int,
                   pad: int) -> Iterator[tuple[list[int], object, object]]:
    """(indices, ids, mask) per batch of `seqs[i]` for i in `order` (ascending lengths): a batch
    grows while its padded size (width x rows) fits `token_budget`; at least one row each.
    ids and mask are [rows, width] long tensors, right-padded with `pad` / 0."""
    import torch

    b = 0
    while b < len(order):
        e = b + 1
        while e < len(order) and len(seqs[order[e]]) * (e - b + 1) <= token_budget:
            e += 1
        batch = list(order[b:e])
        width = len(seqs[batch[-1]])
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            t = seqs[i]
            ids[r, : len(t)] = torch.tensor(t)
            mask[r, : len(t)] = 1
        yield batch, ids, mask
        b = e
