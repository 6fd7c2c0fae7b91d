"""LightningDataModules: the shared text path (load, tokenize through the cache) and classification.

:class:`TextDataModule` is what every task's datamodule shares: the data source, the
tokenizer trained on the train split and every split encoded, both through the tokenized
cache (:func:`embedlab.data.cache.tokenize_splits`), the special ids, the artifacts a run
folder and a checkpoint keep, and the loaders. :class:`ClassificationDataModule` adds labels,
word n-grams and the bag or padded layout; the LM's datamodule is in :mod:`embedlab.data.lm`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from embedlab.data.batching import BagBatches, PaddedBatches, make_loader
from embedlab.data.cache import (
    load_source,
    ngram_splits,
    remember_source,
    source_key,
    tokenize_splits,
)
from embedlab.data.sources import load_dataset
from embedlab.data.tokenizer import (
    NgramVocab,
    encode,
    special_tokens,
    tensor_to_list,
    vocabulary,
)
from embedlab.data.types import EncodedSplit, TextDataset
from embedlab.errors import DataError

log = logging.getLogger(__name__)


class TextDataModule(L.LightningDataModule):
    """Texts -> tokenizer (train split) -> CSR ids per split, cached by content.

    Subclasses turn ``self.encoded`` into datasets in :meth:`setup` and implement
    :meth:`_dataset` (and, for padded layouts, :meth:`_lengths`).
    """

    def __init__(self, data_cfg: Any, tokenizer_cfg: Any, paths_cfg: Any, seed: int) -> None:
        super().__init__()
        self.data_cfg = data_cfg
        self.tokenizer_cfg = tokenizer_cfg
        self.paths_cfg = paths_cfg
        self.seed = seed
        self.dataset: TextDataset | None = None
        self.tokenizer = None
        self.vocab: list[str] = []
        self.encoded: dict[str, EncodedSplit] = {}
        self.cache_status = "off"
        self.cache_entry: Path | None = None  # the tokenized cache entry (None: not cached)
        self.ngrams: NgramVocab | None = None
        self.restored: dict[str, Any] | None = None  # a checkpoint's artifacts (see restore)
        self.reader = None  # the streamed training split's reader (data.streaming)

    @property
    def streaming(self) -> bool:
        """Whether the training split is streamed (``data.streaming``, :mod:`embedlab.data.streaming`)."""
        return bool(self.data_cfg.get("streaming", False))

    def restore(self, artifacts: dict[str, Any]) -> None:
        """Encode with a trained run's tokenizer and n-grams (from :meth:`artifacts`) instead
        of training new ones: the ids then mean what they meant to the checkpoint's model."""
        self.restored = artifacts

    def _load_and_tokenize(self) -> dict[str, EncodedSplit]:
        """Read the data source; train the tokenizer and encode every split (or hit the cache).

        A streamed source gives its vocabulary sample as the train split here (the tokenizer,
        labels and n-grams come from it) and its val/test splits whole.
        """
        source = None  # the files' key, where the splits may come from the cache whole
        cache_dir = getattr(self.paths_cfg, "cache_dir", None)
        if self.streaming:
            from embedlab.data.streaming import open_stream

            self.reader, self.dataset = open_stream(self.data_cfg, self.paths_cfg)
        else:
            # the raw texts serve only the tokenizer when n-grams are on (no vocabulary
            # extension, config.validate): then the files need not be read on a cache hit
            ngrams = (getattr(self.tokenizer_cfg, "ngrams", None) or 1) > 1
            if self.restored is None and self.data_cfg.cache and cache_dir and ngrams:
                source = source_key(self.data_cfg, self.tokenizer_cfg, self.seed)
            served = load_source(cache_dir, source) if source else None
            if served is not None:
                self.dataset, self.tokenizer, encoded, self.cache_entry = served
                self.cache_status = "hit (the files' bytes)"
                self.vocab = vocabulary(self.tokenizer)
                return encoded
            self.dataset = load_dataset(self.data_cfg, self.paths_cfg, self.seed)
        if self.restored is not None:
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_str(self.restored["tokenizer"])
            max_len = self.data_cfg.max_len
            encoded = {
                name: encode(self.tokenizer, s.texts, s.labels, max_len)
                for name, s in self.dataset.splits.items()
            }
            self.cache_status = "off (the checkpoint's tokenizer)"
        else:
            self.tokenizer, encoded, self.cache_status, self.cache_entry = tokenize_splits(
                self.dataset,
                self.tokenizer_cfg,
                self.data_cfg.max_len,
                cache_dir,
                enabled=self.data_cfg.cache,
            )
            if source and self.cache_entry is not None:
                remember_source(cache_dir, source, self.dataset, encoded, self.cache_entry)
        self.vocab = vocabulary(self.tokenizer)
        return encoded

    # ------------------------------------------------------------------ ids
    def _id(self, token: str | None) -> int | None:
        return self.vocab.index(token) if token else None

    @property
    def pad_id(self) -> int:
        return self.vocab.index(self.tokenizer_cfg.pad_token)

    @property
    def bos_id(self) -> int | None:
        return self._id(self.tokenizer_cfg.bos_token)

    @property
    def eos_id(self) -> int | None:
        return self._id(self.tokenizer_cfg.eos_token)

    @property
    def specials(self) -> list[str]:
        return special_tokens(self.tokenizer_cfg)

    # ------------------------------------------------------------------ artifacts
    def artifacts(self) -> dict[str, Any]:
        """What reading the data back needs: the tokenizer (JSON), labels, n-grams (if any)."""
        out: dict[str, Any] = {"tokenizer": self.tokenizer.to_str()}
        labels = getattr(self, "label_names", None)
        if labels is not None:
            out["labels"] = labels
        if self.ngrams is not None:  # rebuild with NgramVocab.from_dict
            out["ngrams"] = self.ngrams.to_dict()
        return out

    def save(self, folder: str | Path) -> None:
        """Write tokenizer.json (and labels.json, ngrams.json) into ``folder`` (the run folder)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(folder / "tokenizer.json"))
        for name, value in self.artifacts().items():
            if name != "tokenizer":
                indent = 1 if name == "labels" else None  # n-grams: one long line
                text = json.dumps(value, indent=indent, default=tensor_to_list)
                (folder / f"{name}.json").write_text(text + "\n")

    # ------------------------------------------------------------------ loaders
    def _dataset(self, split: str) -> Any:
        raise NotImplementedError

    def _lengths(self, split: str) -> Any:
        """Tokens per example when training batches are padded (length-bucketed), else None."""
        return None

    def _stream_layout(self) -> str:
        """The batch layout of a streamed training split (see :class:`StreamBatches`)."""
        raise NotImplementedError

    def _epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _loader(self, split: str, train: bool) -> DataLoader:
        if train and self.streaming:
            from embedlab.data.streaming import StreamBatches, StreamLoader

            batches = StreamBatches(
                self.reader,
                self.tokenizer,  # as it is now: extended by pretrained words, if any
                self.data_cfg,
                self._stream_layout(),
                self.seed,
                self.pad_id,
                eos_id=self.eos_id,
                label_names=getattr(self.dataset, "label_names", None),
                ngrams=self.ngrams,
            )
            return StreamLoader(batches, self.data_cfg.num_workers, self._epoch)
        return make_loader(
            self._dataset(split), self.data_cfg, train, self.seed, self._lengths(split)
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader("test" if "test" in self.encoded else "val")

    def eval_loader(self, split: str) -> DataLoader:
        """Batches of any encoded split (``train`` too) in order, as for evaluation."""
        return self._loader(split, train=False)


class ClassificationDataModule(TextDataModule):
    """Texts with labels -> tokenizer -> CSR ids -> bag or padded batches.

    ``layout`` is "bag" (flat ids + offsets for nn.EmbeddingBag) or "padded" ((B, T) + mask).
    All work happens once in :meth:`setup`; batches are gathered with tensor ops only.
    """

    def __init__(
        self, data_cfg: Any, tokenizer_cfg: Any, paths_cfg: Any, seed: int, layout: str = "bag"
    ) -> None:
        super().__init__(data_cfg, tokenizer_cfg, paths_cfg, seed)
        if layout not in ("bag", "padded"):
            raise ValueError(f"layout must be 'bag' or 'padded', got {layout!r}")
        self.layout = layout

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        encoded = self._load_and_tokenize()
        word_vocab = len(self.vocab)
        # word tokens per training text, before n-grams: fastText's unit for words/sec
        self.tokens_per_example = float(encoded["train"].lengths.double().mean())
        n = getattr(self.tokenizer_cfg, "ngrams", None) or 1
        if n > 1:  # cheap and vectorised: after the cache, from the cached unigram ids
            # the raw texts only serve to re-encode for a vocabulary extension, which n-grams
            # rule out (config.validate): free them first (1M short texts: 0.4 GB)
            for split in self.dataset.splits.values():
                split.texts = []
            tc = self.tokenizer_cfg
            if self.restored is not None and self.restored.get("ngrams"):
                self.ngrams = NgramVocab.from_dict(self.restored["ngrams"])
                encoded = {k: self.ngrams.transform(v) for k, v in encoded.items()}
            else:  # kept with the tokenized cache entry, when there is one
                self.ngrams, encoded = ngram_splits(
                    encoded, word_vocab, n, tc.ngram_min_freq, tc.ngram_max_size, self.cache_entry
                )
            self.vocab = self.vocab + self.ngrams.tokens(self.vocab)
        self.encoded = encoded
        if self.restored is not None and self.restored.get("labels") is not None:
            self._map_labels_to(list(self.restored["labels"]))
        self._check_labels()
        log.info(
            "data: %s | vocab %d%s | tokenized cache: %s | %s%s",
            self.dataset.info.get("name", self.data_cfg.source),
            word_vocab,
            f" + {len(self.ngrams)} n-grams" if self.ngrams is not None else "",
            self.cache_status,
            ", ".join(f"{k} {len(v)}" for k, v in self.encoded.items()),
            " (train: streamed; its vocabulary sample here; val/test in memory)"
            if self.streaming
            else "",
        )

    def extend_vocabulary(self, words: list[str]) -> None:
        """Append ``words`` to a word-level vocabulary (new ids at the end) and re-encode.

        Used when pretrained vectors extend the vocabulary (``pretrained.restrict_to_vocab``
        false): words of the vector file that training never saw get ids of their own.
        """
        from tokenizers import models

        if self.ngrams is not None:
            raise ValueError(
                "a vocabulary with word n-grams cannot take extra words (their ids would move); "
                "set tokenizer.ngrams=1 or pretrained.restrict_to_vocab=true"
            )
        known = set(self.vocab)
        new = [w for w in words if w not in known]
        if not new:
            return
        if type(self.tokenizer.model).__name__ != "WordLevel":
            raise ValueError(
                "only a word-level tokenizer (tokenizer.kind=word) can take extra words"
            )
        ids = {w: i for i, w in enumerate(self.vocab)}
        ids.update({w: len(self.vocab) + k for k, w in enumerate(new)})
        self.tokenizer.model = models.WordLevel(vocab=ids, unk_token=self.tokenizer_cfg.unk_token)
        self.vocab = vocabulary(self.tokenizer)
        assert self.dataset is not None
        for name, split in self.dataset.splits.items():
            self.encoded[name] = encode(
                self.tokenizer, split.texts, split.labels, self.data_cfg.max_len
            )
        log.info("vocabulary extended by %d pretrained words to %d", len(new), len(self.vocab))

    def _map_labels_to(self, names: list[str]) -> None:
        """Renumber the labels to follow ``names`` (a checkpoint's classes), by name."""
        assert self.dataset is not None
        ours = self.label_names
        if ours == names:
            return
        where = {name: i for i, name in enumerate(names)}
        mapping = torch.tensor([where.get(name, -1) for name in ours], dtype=torch.int64)
        for split_name, split in self.encoded.items():
            if split.labels is None or not len(split.labels):
                continue
            mapped = mapping[split.labels]
            if (mapped < 0).any():
                unseen = sorted({ours[i] for i in split.labels[mapped < 0].tolist()})
                raise DataError(
                    f"data split {split_name!r} has label(s) {unseen} that the checkpoint does not "
                    f"know; its labels are {names}"
                )
            split.labels = mapped
        self.dataset.label_names = list(names)

    def _check_labels(self) -> None:
        n = self.num_classes
        if n < 2 and self.restored is None:
            assert self.dataset is not None
            where = self.dataset.info.get("name", self.data_cfg.source)
            raise DataError(
                f"the training split of {where!r} has a single class ({self.label_names}); "
                "classification needs at least two"
            )
        for name, split in self.encoded.items():
            if split.labels is None:
                raise DataError(
                    f"data split {name!r} has no labels; classification needs them "
                    "(set data.label_column, or use an LM task for unlabelled text)"
                )
            if len(split.labels) and (split.labels.min() < 0 or split.labels.max() >= n):
                raise DataError(f"data split {name!r} has label ids outside [0, {n})")

    # ------------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        assert self.dataset is not None, "call setup() first"
        if self.dataset.label_names:
            return len(self.dataset.label_names)
        return int(np.max(self.dataset.splits["train"].labels)) + 1

    @property
    def label_names(self) -> list[str]:
        assert self.dataset is not None, "call setup() first"
        return self.dataset.label_names or [str(i) for i in range(self.num_classes)]

    # ------------------------------------------------------------------ loaders
    def _stream_layout(self) -> str:
        return self.layout

    def _dataset(self, split: str) -> BagBatches | PaddedBatches:
        if self.layout == "bag":
            return BagBatches(self.encoded[split])
        return PaddedBatches(self.encoded[split], self.pad_id)

    def _lengths(self, split: str) -> Any:
        # padded layouts bucket training batches by length (little padding)
        return self.encoded[split].lengths if self.layout == "padded" else None
