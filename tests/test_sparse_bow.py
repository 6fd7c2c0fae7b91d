"""The sparse bag-of-words equivalence: EmbeddingBag(sum) over CSR rows == Linear on dense rows."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from embedlab.data.batching import SparseBagBatches, csr_to_bags, identity_collate
from embedlab.models import BagOfEmbeddings

V, D, C = 50, 8, 3


@pytest.fixture
def bow():
    rng = np.random.default_rng(0)
    counts = sp.random(
        20, V, density=0.15, format="csr", random_state=1, data_rvs=lambda n: rng.integers(1, 4, n)
    )
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0
    tfidf = sp.csr_matrix(counts.multiply(idf[None, :]))
    return counts.astype(np.float32), tfidf.astype(np.float32)


def linear_and_bag():
    torch.manual_seed(0)
    linear = nn.Linear(V, D, bias=False)
    bag = nn.EmbeddingBag(V, D, mode="sum")
    with torch.no_grad():
        bag.weight.copy_(linear.weight.T)  # (V, D) table = the linear weight transposed
    return linear, bag


def test_binary_bag_sum_equals_linear_on_the_dense_indicator_row(bow):
    counts, _ = bow
    linear, bag = linear_and_bag()
    ids, offsets, _ = csr_to_bags(counts)
    indicator = torch.from_numpy((counts > 0).astype(np.float32).toarray())
    assert torch.allclose(bag(ids, offsets), linear(indicator), atol=1e-5)


@pytest.mark.parametrize("which", [0, 1], ids=["counts", "tfidf"])
def test_weighted_bag_equals_the_weighted_product(bow, which):
    matrix = bow[which]
    linear, bag = linear_and_bag()
    ids, offsets, weights = csr_to_bags(matrix)
    dense = torch.from_numpy(matrix.toarray())
    out = bag(ids, offsets, per_sample_weights=weights)
    assert torch.allclose(out, linear(dense), atol=1e-5)
    assert torch.allclose(out, torch.from_numpy(matrix @ bag.weight.detach().numpy()), atol=1e-5)


def test_empty_rows_give_zero_vectors(bow):
    counts, _ = bow
    m = counts.tolil()
    m[3, :] = 0
    m = m.tocsr()
    m.eliminate_zeros()
    _, bag = linear_and_bag()
    ids, offsets, w = csr_to_bags(m)
    assert torch.equal(bag(ids, offsets, per_sample_weights=w)[3], torch.zeros(D))


def test_boe_model_takes_a_csr_batch_and_trains_from_sparse_batches(bow):
    _, tfidf = bow
    linear, bag = linear_and_bag()
    model = BagOfEmbeddings(bag, C)
    expected = model.head(linear(torch.from_numpy(tfidf.toarray())))
    assert torch.allclose(model(*csr_to_bags(tfidf)), expected, atol=1e-5)

    labels = np.arange(tfidf.shape[0]) % C
    data = SparseBagBatches(tfidf, labels)
    loader = torch.utils.data.DataLoader(
        data, batch_size=8, shuffle=True, collate_fn=identity_collate
    )
    batch = next(iter(loader))
    assert set(batch) == {"ids", "offsets", "per_sample_weights", "labels"}
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    y = torch.as_tensor(labels)

    def full_loss():
        with torch.no_grad():
            return nn.functional.cross_entropy(model(*csr_to_bags(tfidf)), y).item()

    start = full_loss()
    for _ in range(15):
        for batch in loader:
            loss = nn.functional.cross_entropy(
                model(batch["ids"], batch["offsets"], batch["per_sample_weights"]), batch["labels"]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert full_loss() < 0.5 * start


def test_csr_to_bags_rejects_dense_input():
    with pytest.raises(TypeError, match="scipy sparse"):
        csr_to_bags(np.zeros((2, 2)))
