"""A LightningDataModule over sparse bag-of-words matrices (scipy CSR: rows = texts, columns = ids).

The data path of the sparse bag-of-words equivalence: each row's column indices become a bag
and its stored values (counts, TF-IDF) the per-sample weights, so a bag-of-embeddings model
with ``embedding.mode=sum`` computes ``csr @ table`` (= a bias-free ``nn.Linear`` with
``weight = table.T`` on the dense rows). Works with :class:`~embedlab.tasks.ClassificationTask`.

    dm = SparseBowDataModule({"train": X_train, "val": X_val}, {"train": y_train, "val": y_val})
    dm = SparseBowDataModule.from_npz("folder")  # train.npz + train_labels.npy, val.npz + ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from embedlab.data.batching import SparseBagBatches, identity_collate
from embedlab.errors import DataError


class SparseBowDataModule(L.LightningDataModule):
    """Batches ``{"ids", "offsets", "per_sample_weights", "labels"}`` from CSR matrices per split."""

    def __init__(
        self,
        matrices: dict[str, Any],
        labels: dict[str, Any],
        batch_size: int = 64,
        eval_batch_size: int = 512,
        weighted: bool = True,
    ) -> None:
        super().__init__()
        import scipy.sparse as sp

        if "train" not in matrices:
            raise DataError("a sparse bag-of-words dataset needs a 'train' matrix")
        widths = {name: m.shape[1] for name, m in matrices.items()}
        if len(set(widths.values())) != 1:
            raise DataError(f"the splits' matrices differ in width (vocabulary size): {widths}")
        self.matrices = {k: sp.csr_matrix(v) for k, v in matrices.items()}
        self.labels = {k: np.asarray(labels[k], dtype=np.int64) for k in matrices}
        for name, m in self.matrices.items():
            if m.shape[0] != len(self.labels[name]):
                raise DataError(
                    f"split {name!r}: {m.shape[0]} rows but {len(self.labels[name])} labels"
                )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.weighted = weighted

    @classmethod
    def from_npz(cls, folder: str | Path, **kwargs: Any) -> SparseBowDataModule:
        """Read ``{split}.npz`` (``scipy.sparse.save_npz``) and ``{split}_labels.npy`` per split."""
        import scipy.sparse as sp

        folder = Path(folder)
        matrices, labels = {}, {}
        for split in ("train", "val", "test"):
            if (folder / f"{split}.npz").is_file():
                matrices[split] = sp.load_npz(folder / f"{split}.npz")
                labels[split] = np.load(folder / f"{split}_labels.npy", allow_pickle=False)
        return cls(matrices, labels, **kwargs)

    @property
    def vocab_size(self) -> int:
        return int(self.matrices["train"].shape[1])

    @property
    def num_classes(self) -> int:
        return int(max(int(v.max()) for v in self.labels.values() if len(v))) + 1

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = SparseBagBatches(self.matrices[split], self.labels[split], weighted=self.weighted)
        size = self.batch_size if train else self.eval_batch_size
        return DataLoader(data, batch_size=size, shuffle=train, collate_fn=identity_collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val" if "val" in self.matrices else "train", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test" if "test" in self.matrices else "val", False)
