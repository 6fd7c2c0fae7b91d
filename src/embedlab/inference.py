"""Use a trained checkpoint from Python: ``embedlab.load(path)`` -> :class:`LoadedModel`.

A checkpoint is self-contained (weights, resolved config, tokenizer, label names, n-grams),
so loading needs neither Hydra nor Lightning: the model is rebuilt from its registry entry
and the embedding factory, the weights are loaded, and texts are encoded exactly as the
datamodule encoded them in training (same tokenizer, ``max_len``, n-grams).

    model = embedlab.load("outputs/train/runs/.../checkpoints/epoch009-val_acc0.8123.ckpt")
    model.predict(["a gripping film", "dull"])  # [{"label": "pos", "probs": {...}}, ...]
    model.embed(["good", "bad"])  # (2, dim) rows of the trained table
    lm.generate("the cat", max_new_tokens=20)  # task=lm checkpoints
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from embedlab.errors import EmbedlabError


class CheckpointError(EmbedlabError, ValueError):
    """A checkpoint that cannot be read or was not written by embedlab (names the file)."""


def fetch_checkpoint(
    path: str | Path, allow_remote: bool = False, cache_dir: str | Path = "."
) -> Path:
    """A local file for ``path``: a URL is refused unless ``allow_remote`` (then downloaded to
    ``cache_dir/checkpoints/``; it is still only ever loaded with ``weights_only=True``)."""
    text = str(path)
    if "://" not in text:
        return Path(text).expanduser()
    if not allow_remote:
        raise CheckpointError(
            f"{text}: only local checkpoint files can be loaded "
            "(allow_remote_checkpoints=true downloads it; it is still loaded with weights_only)"
        )
    import hashlib

    name = hashlib.blake2b(text.encode(), digest_size=8).hexdigest() + "-" + text.rsplit("/", 1)[-1]
    local = Path(cache_dir) / "checkpoints" / name
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(text, str(local), progress=False)
        except Exception as exc:  # HTTP error, no network, ...
            raise CheckpointError(f"{text}: download failed ({exc})") from None
    return local


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` on the CPU.

    Only local files (see :func:`fetch_checkpoint` for URLs). A missing, truncated or foreign
    file, or one whose pickle wants to run code, is a :class:`CheckpointError` naming it.
    Zip checkpoints (``torch.save``'s format) are memory-mapped, as ``LocalCheckpointIO``
    loads them: a tensor is read when used. Reading the 348 MB checkpoint of the 1M-text
    benchmark held 333 MB and took 0.65 s, mapped 1 MB and 0.0 s; a resumed run keeps this
    dict through its fit.
    """
    p = fetch_checkpoint(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except Exception as exc:  # truncated zip, pickle that needs code, not a torch file, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p}: not a readable checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or "embedlab" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{p}: not an embedlab checkpoint (no 'embedlab' entry)")
    return ckpt


@dataclass
class LoadedModel:
    """A trained model with everything needed to encode its inputs."""

    config: DictConfig  # the run's resolved config
    tokenizer: Any  # tokenizers.Tokenizer
    vocab: list[str]
    labels: list[str] | None  # class names (classification)
    ngrams: Any  # NgramVocab or None
    model: nn.Module  # the plain nn.Module, in eval mode
    layout: str  # "bag", "padded" or "causal"
    embedding: nn.Module  # the embedding table inside the model

    @property
    def task(self) -> str:
        return str(self.config.task.name)

    # ------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str]) -> Any:
        """Texts -> the CSR ids the model was trained on (tokenizer, ``max_len``, n-grams)."""
        from embedlab.data.tokenizer import encode

        split = encode(self.tokenizer, list(texts), None, self.config.data.get("max_len"))
        return self.ngrams.transform(split) if self.ngrams is not None else split

    def _batches(self, texts: Sequence[str], batch_size: int) -> Any:
        from embedlab.data.batching import BagBatches, PaddedBatches

        split = self.encode(texts)
        pad = self.vocab.index(self.config.tokenizer.pad_token)
        data = BagBatches(split) if self.layout == "bag" else PaddedBatches(split, pad)
        for start in range(0, len(split), batch_size):
            yield data.__getitems__(range(start, min(start + batch_size, len(split))))

    # ------------------------------------------------------------------ classification
    @torch.inference_mode()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 4096) -> torch.Tensor:
        """Class probabilities (N, C) for raw ``texts``."""
        if self.labels is None:
            raise ValueError(
                f"predict needs a classification checkpoint, this one is task={self.task}"
            )
        parts = [self.model(**batch).softmax(-1) for batch in self._batches(texts, batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, len(self.labels))

    def predict(
        self, texts: Sequence[str], top_k: int | None = None, batch_size: int = 4096
    ) -> list[dict[str, Any]]:
        """For each text its label name and the class probabilities (the ``top_k`` likeliest)."""
        probs = self.predict_proba(texts, batch_size)
        assert self.labels is not None  # predict_proba refused otherwise
        k = len(self.labels) if top_k is None else max(1, min(top_k, len(self.labels)))
        values, index = probs.topk(k, dim=-1)
        out = []
        for vals, idx in zip(values.tolist(), index.tolist(), strict=True):
            out.append(
                {
                    "label": self.labels[idx[0]],
                    "probs": {self.labels[i]: round(v, 6) for v, i in zip(vals, idx, strict=True)},
                }
            )
        return out

    # ------------------------------------------------------------------ the table
    def embed(self, words: Sequence[str]) -> torch.Tensor:
        """Rows of the trained table for ``words`` (a word not in the vocabulary: the <unk> row)."""
        index = {w: i for i, w in enumerate(self.vocab)}
        unk = index.get(self.config.tokenizer.unk_token, 0)
        ids = torch.tensor([index.get(w, unk) for w in words], dtype=torch.int64)
        return self.embedding.weight.detach()[ids].clone()

    # ------------------------------------------------------------------ language models
    @torch.inference_mode()
    def generate(
        self,
        prompt: str = "",
        max_new_tokens: int = 40,
        temperature: float = 0.8,
        top_k: int | None = 20,
        seed: int = 0,
    ) -> str:
        """Continue ``prompt`` (empty: the start of a sentence), seeded; task=lm checkpoints."""
        if self.layout != "causal":
            raise ValueError(f"generate needs a task=lm checkpoint, this one is task={self.task}")
        tok = self.config.tokenizer
        ids = {w: i for i, w in enumerate(self.vocab)}
        bos, eos = ids.get(tok.bos_token or ""), ids.get(tok.eos_token or "")
        start = [bos] if bos is not None else ([eos] if eos is not None and not prompt else [])
        prompt_ids = start + self.tokenizer.encode(prompt, add_special_tokens=False).ids
        if not prompt_ids:
            raise ValueError("generate needs a prompt (this tokenizer has no bos/eos token)")
        out = self.model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            generator=torch.Generator().manual_seed(seed),
            stop_id=eos,
            banned_ids=[ids[tok.pad_token]] + ([bos] if bos is not None else []),
        )[0].tolist()
        new = out[len(prompt_ids) :]
        if eos is not None and eos in new:
            new = new[: new.index(eos)]
        words = [self.vocab[i] for i in out[len(start) : len(prompt_ids)] + new]
        return " ".join(words)


def load(path: str | Path) -> LoadedModel:
    """Rebuild the model of an embedlab checkpoint for inference (CPU, eval mode)."""
    return from_checkpoint(read_checkpoint(path), str(path))


def from_checkpoint(ckpt: dict[str, Any], name: str = "checkpoint") -> LoadedModel:
    """:func:`load` for a checkpoint already read by :func:`read_checkpoint`."""
    from tokenizers import Tokenizer

    from embedlab.data.tokenizer import NgramVocab, vocabulary
    from embedlab.embeddings import build_embedding
    from embedlab.models import MODELS

    extra = ckpt["embedlab"]
    cfg = OmegaConf.create(extra["config"])
    spec = MODELS.get(cfg.model.name)
    tokenizer = Tokenizer.from_str(extra["tokenizer"])
    ngrams = NgramVocab.from_dict(extra["ngrams"]) if extra.get("ngrams") else None
    words = vocabulary(tokenizer)
    vocab = words + (ngrams.tokens(words) if ngrams is not None else [])
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    weights = ckpt["state_dict"]  # the task's handle on the table: one, or the trained channel
    table = weights.get("embedding.weight", weights.get("embedding.nonstatic.weight"))
    if table is None:
        raise CheckpointError(f"{name}: no embedding table in the checkpoint's state_dict")
    with open_dict(cfg):  # the table's shape comes from the weights, not from pretrained vectors
        cfg.embedding.dim = int(table.shape[1])
    if table.shape[0] != len(vocab):
        raise CheckpointError(
            f"{name}: the embedding table has {table.shape[0]} rows, the tokenizer and n-grams {len(vocab)}"
        )
    pad = vocab.index(cfg.tokenizer.pad_token)
    embedding = build_embedding(cfg.embedding, len(vocab), pad, spec.bag_embedding)
    labels = extra.get("labels")
    outputs = len(labels) if labels is not None else len(vocab)
    model = spec.build(cfg.model, embedding, outputs)
    model.load_state_dict(state)
    model.eval()
    return LoadedModel(cfg, tokenizer, vocab, labels, ngrams, model, spec.layout, embedding)
