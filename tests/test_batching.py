"""Bag and padded batches gathered from CSR arrays match a plain per-example reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from embedlab.data.batching import (
    BagBatches,
    PaddedBatches,
    gather_bags,
    identity_collate,
    index_tensor,
)
from embedlab.data.types import EncodedSplit
from embedlab.training import native

TEXTS = [[5, 6, 7], [], [8], [9, 10, 11, 12], [13, 14]]


def make_split() -> EncodedSplit:
    offsets = torch.tensor([0] + torch.cumsum(torch.tensor([len(t) for t in TEXTS]), 0).tolist())
    ids = torch.tensor([i for t in TEXTS for i in t])
    return EncodedSplit(ids=ids, offsets=offsets, labels=torch.arange(len(TEXTS)))


@pytest.mark.parametrize("compiled", [False, True])
def test_gather_bags_matches_python_reference(compiled):
    split = make_split()
    index = torch.tensor([3, 1, 0, 4, 3])
    ids, offsets, lengths = gather_bags(split, index, compiled=compiled)
    assert ids.tolist() == TEXTS[3] + TEXTS[1] + TEXTS[0] + TEXTS[4] + TEXTS[3]
    assert offsets.tolist() == [0, 4, 4, 7, 9]
    assert lengths.tolist() == [4, 0, 3, 2, 4]


def test_the_compiled_gather_equals_torchs_and_refuses_texts_outside_the_ids():
    if native.bag_update() is None:
        pytest.skip("no C compiler: gather_bags takes torch's ops")
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(0, 30, (500,), generator=gen)
    lengths[-1] = 10  # reaches past the ids once 5 are cut off below
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)])
    split = EncodedSplit(torch.randint(0, 10**6, (int(offsets[-1]),), generator=gen), offsets)
    index = torch.randint(0, 500, (300,), generator=gen)
    for got, want in zip(gather_bags(split, index, True), gather_bags(split, index), strict=True):
        assert torch.equal(got, want)
    # a tampered split whose last text reaches past its ids: torch's indexing says so
    short = EncodedSplit(split.ids[:-5], split.offsets)
    with pytest.raises(IndexError):
        gather_bags(short, torch.tensor([499, 0]), compiled=True)


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


def test_index_tensor_reads_a_samplers_list_or_tensor_as_int64():
    indices = torch.randperm(1000).tolist()[:300]
    out = index_tensor(indices)
    assert out.dtype == torch.int64 and out.tolist() == indices
    assert index_tensor([]).dtype == torch.int64 and index_tensor([]).numel() == 0
    assert index_tensor(torch.tensor([3, 1], dtype=torch.int32)).tolist() == [3, 1]
    assert index_tensor(torch.tensor([3, 1], dtype=torch.int32)).dtype == torch.int64
