"""Bag and padded batches gathered from CSR arrays match a plain per-example reference."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from embedlab.data.batching import BagBatches, PaddedBatches, gather_bags, identity_collate
from embedlab.data.types import EncodedSplit

TEXTS = [[5, 6, 7], [], [8], [9, 10, 11, 12], [13, 14]]


def make_split() -> EncodedSplit:
    offsets = torch.tensor([0] + torch.cumsum(torch.tensor([len(t) for t in TEXTS]), 0).tolist())
    ids = torch.tensor([i for t in TEXTS for i in t])
    return EncodedSplit(ids=ids, offsets=offsets, labels=torch.arange(len(TEXTS)))


def test_gather_bags_matches_python_reference():
    split = make_split()
    index = torch.tensor([3, 1, 0, 4])
    ids, offsets, lengths = gather_bags(split, index)
    assert ids.tolist() == TEXTS[3] + TEXTS[1] + TEXTS[0] + TEXTS[4]
    assert offsets.tolist() == [0, 4, 4, 7]
    assert lengths.tolist() == [4, 0, 3, 2]


def test_embedding_bag_on_a_batch_equals_per_text_means():
    split = make_split()
    batch = BagBatches(split).__getitems__([0, 2, 3])
    emb = nn.EmbeddingBag(20, 4, mode="mean")
    pooled = emb(batch["ids"], batch["offsets"])
    for row, i in enumerate([0, 2, 3]):
        expected = emb.weight[TEXTS[i]].mean(0)
        torch.testing.assert_close(pooled[row], expected)
    assert batch["labels"].tolist() == [0, 2, 3]


def test_padded_batches_and_mask():
    batch = PaddedBatches(make_split(), pad_id=0).__getitems__([1, 3, 2])
    assert batch["ids"].tolist() == [[0, 0, 0, 0], [9, 10, 11, 12], [8, 0, 0, 0]]
    assert batch["mask"].tolist() == [[False] * 4, [True] * 4, [True, False, False, False]]


def test_dataloader_hands_whole_index_lists_to_the_dataset():
    loader = DataLoader(
        BagBatches(make_split()), batch_size=2, shuffle=False, collate_fn=identity_collate
    )
    batches = list(loader)
    assert len(batches) == 3
    assert batches[0]["ids"].tolist() == TEXTS[0] + TEXTS[1]
    assert batches[0]["offsets"].tolist() == [0, 3]
    assert batches[2]["labels"].tolist() == [4]
