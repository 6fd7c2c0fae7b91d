"""Tasks: LightningModules that own loss, metrics and optimizers, plus how to set them up.

``TASKS`` maps ``task.name`` to a :class:`TaskSpec` whose ``setup(cfg)`` returns the
datamodule (already set up) and the LightningModule for a validated config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from embedlab.registry import Registry
from embedlab.tasks.classification import ClassificationTask
from embedlab.tasks.language_modeling import LanguageModelingTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskSpec:
    setup: Callable[[Any], tuple[L.LightningDataModule, L.LightningModule]]
    monitor: str  # default metric for the best checkpoint


TASKS: Registry[TaskSpec] = Registry("task", "task.name")


def prepare_embedding(cfg: Any, dm: Any, bag: bool) -> tuple[Any, dict[str, Any]]:
    """Pretrained vectors aligned to ``dm``'s vocabulary -> the built embedding layer + a report.

    Extends the datamodule's vocabulary when the source adds words; the report holds the
    coverage (% vocabulary types found, % training tokens covered) for console and TensorBoard.
    Shared by every task whose datamodule has ``vocab``, ``specials``, ``pad_id`` and ``encoded``.
    """
    from embedlab.data.tokenizer import token_counts
    from embedlab.embeddings import build_embedding, load_pretrained
    from embedlab.embeddings.vectors import coverage

    vectors = load_pretrained(cfg.pretrained, dm.vocab, cfg.paths.cache_dir)
    report: dict[str, Any] = {}
    if vectors is not None:
        if vectors.vocab != dm.vocab:
            dm.extend_vocabulary(vectors.vocab[len(dm.vocab) :])
        specials = [dm.vocab.index(t) for t in dm.specials if t in dm.vocab]
        unk = cfg.tokenizer.unk_token
        counts = token_counts(dm.encoded["train"], len(dm.vocab))
        # coverage of words: n-gram tokens (appended after the words) are never in a vector file
        ngrams = getattr(dm, "ngrams", None)
        words = len(dm.vocab) - (len(ngrams) if ngrams is not None else 0)
        report = {
            "source": cfg.pretrained.source,
            **{
                k: v
                for k, v in vectors.stats.items()
                if k
                in (
                    "file",
                    "dim",
                    "file_words",
                    "found_lower",
                    "added_words",
                    "duplicates",
                    "bad_rows",
                    "cached",
                )
            },
            **coverage(
                vectors.found[:words],
                counts[:words],
                specials,
                dm.vocab.index(unk) if unk in dm.vocab else None,
            ),
        }
        log.info(
            "pretrained coverage: %.2f%% of %d vocabulary types, %.2f%% of %d training tokens",
            report["coverage_types"],
            report["types"],
            report["coverage_tokens"],
            report["tokens"],
        )
    embedding = build_embedding(cfg.embedding, len(dm.vocab), dm.pad_id, bag, vectors)
    return embedding, report


def apply_tokenizer_override(cfg: Any) -> None:
    """Let the pretrained source impose its tokenizer (``pretrained=hf``) before data is read."""
    from omegaconf import open_dict

    from embedlab.embeddings.pretrained import tokenizer_override

    override = tokenizer_override(cfg.pretrained)
    if override:
        with open_dict(cfg.tokenizer):
            for key, value in override.items():
                cfg.tokenizer[key] = value
        log.info("tokenizer taken from the pretrained model: %s", override)


def setup_classification(cfg: Any) -> tuple[L.LightningDataModule, L.LightningModule]:
    from embedlab.data.datamodule import ClassificationDataModule
    from embedlab.models import MODELS

    spec = MODELS.get(cfg.model.name)
    apply_tokenizer_override(cfg)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout=spec.layout)
    dm.setup("fit")
    embedding, report = prepare_embedding(cfg, dm, spec.bag_embedding)
    model = spec.build(cfg.model, embedding, dm.num_classes)
    extra = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "tokenizer": dm.tokenizer.to_str(),
        "labels": dm.label_names,
    }
    module = ClassificationTask(
        model,
        dm.num_classes,
        cfg.optimizer,
        cfg.scheduler,
        embedding=embedding,
        embedding_lr=cfg.embedding.lr,
        label_smoothing=cfg.task.label_smoothing,
        checkpoint_extra=extra,
        unfreeze_later=cfg.embedding.unfreeze_at_epoch is not None,
    )
    module.embedding_report = report
    return dm, module


TASKS.register("classification")(TaskSpec(setup_classification, monitor="val/acc"))


def setup_language_modeling(cfg: Any) -> tuple[L.LightningDataModule, L.LightningModule]:
    from embedlab.data.lm import LanguageModelDataModule
    from embedlab.models import MODELS

    spec = MODELS.get(cfg.model.name)
    apply_tokenizer_override(cfg)
    dm = LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    dm.setup("fit")
    embedding, report = prepare_embedding(cfg, dm, spec.bag_embedding)
    model = spec.build(cfg.model, embedding, len(dm.vocab))
    gen = cfg.task.generate
    if gen.prompt:
        prompt = dm.tokenizer.encode(gen.prompt, add_special_tokens=False).ids
        prompt = ([dm.bos_id] if dm.bos_id is not None else []) + prompt
    else:  # the start of a sentence
        start = dm.bos_id if dm.bos_id is not None else dm.eos_id
        prompt = [start] if start is not None else [int(dm.encoded["train"].ids[0])]
    extra = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "tokenizer": dm.tokenizer.to_str(),
    }
    module = LanguageModelingTask(
        model,
        cfg.optimizer,
        cfg.scheduler,
        embedding=embedding,
        embedding_lr=cfg.embedding.lr,
        generate_cfg=gen,
        decode=dm.decode,
        prompt_ids=prompt,
        banned_ids=[dm.pad_id] + ([dm.bos_id] if dm.bos_id is not None else []),
        stop_id=dm.eos_id,
        checkpoint_extra=extra,
        unfreeze_later=cfg.embedding.unfreeze_at_epoch is not None,
    )
    module.embedding_report = report
    return dm, module


TASKS.register("lm")(TaskSpec(setup_language_modeling, monitor="val/ppl"))

__all__ = ["TASKS", "ClassificationTask", "LanguageModelingTask", "TaskSpec"]
