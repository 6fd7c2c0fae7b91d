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
    assert torch.allclose(model(csr=tfidf), expected, atol=1e-5)

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
            return nn.functional.cross_entropy(model(csr=tfidf), y).item()

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


def test_sparse_bow_datamodule_trains_the_classification_task(tmp_path):
    import lightning as L
    from omegaconf import OmegaConf

    from embedlab.config import EmbeddingConfig, OptimizerConfig, SchedulerConfig
    from embedlab.data.sparse_bow import SparseBowDataModule
    from embedlab.embeddings import build_embedding
    from embedlab.tasks import ClassificationTask

    rng = np.random.default_rng(0)
    n, v = 600, 40
    y = rng.integers(0, 2, n)
    dense = rng.poisson(0.3, (n, v)).astype(np.float32)
    dense[:, 0] += 2 * y  # column 0 signals class 1, column 1 class 0
    dense[:, 1] += 2 * (1 - y)
    x = sp.csr_matrix(dense)
    for split, rows in {
        "train": slice(0, 400),
        "val": slice(400, 500),
        "test": slice(500, 600),
    }.items():
        sp.save_npz(tmp_path / f"{split}.npz", x[rows])
        np.save(tmp_path / f"{split}_labels.npy", y[rows])
    dm = SparseBowDataModule.from_npz(tmp_path, batch_size=32)
    assert dm.vocab_size == v and dm.num_classes == 2
    emb = build_embedding(
        OmegaConf.structured(
            EmbeddingConfig(dim=8, mode="sum", per_sample_weights=True, padding_idx=False)
        ),
        v,
        None,
        True,
    )
    L.seed_everything(0, verbose=False)
    task = ClassificationTask(
        BagOfEmbeddings(emb, 2),
        2,
        OmegaConf.structured(OptimizerConfig(lr=0.05)),
        OmegaConf.structured(SchedulerConfig()),
        embedding=emb,
    )
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=dm)
    (result,) = trainer.test(task, datamodule=dm, verbose=False)
    assert result["test/acc"] > 0.9
