"""Tasks: LightningModules that own loss, metrics and optimizers, plus the one way to set them up.

``TASKS`` maps ``task.name`` to a :class:`TaskSpec`, registered with the dataclass of its
``task`` node (``schema/task/<name>``) and the checks of the task/model/data pairing.
:func:`setup_task` (``TaskSpec.setup``) is the one setup path: the task's datamodule (set up),
pretrained vectors aligned to its vocabulary, the embedding layer, the model, the module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from embedlab.registry import Registry
from embedlab.tasks.base import EmbeddingTask
from embedlab.tasks.classification import ClassificationTask
from embedlab.tasks.language_modeling import LanguageModelingTask
from embedlab.tasks.word2vec import Word2VecTask

log = logging.getLogger(__name__)


class MonitorMode(StrEnum):
    max = "max"
    min = "min"


@dataclass
class ClassificationTaskConfig:
    name: str = "classification"  # registry name of the task (TASKS)
    monitor: str = "val/acc"  # metric that picks the best checkpoint
    monitor_mode: MonitorMode = MonitorMode.max
    label_smoothing: float = 0.0  # cross-entropy label smoothing


@dataclass
class GenerateConfig:
    """Sample generations logged to TensorBoard (TEXT tab) each validation epoch (task=lm)."""

    num_samples: int = 3  # samples per validation epoch (0: none)
    max_new_tokens: int = 40  # tokens sampled after the prompt
    temperature: float = 0.8  # 0: greedy
    top_k: int | None = 20  # keep the k likeliest tokens (None: all)
    seed: int = 0  # sampling seed: the same model gives the same samples
    prompt: str | None = None  # text to continue (None: start of a sentence: bos, else eos)


@dataclass
class LMTaskConfig:
    name: str = "lm"
    monitor: str = "val/ppl"
    monitor_mode: MonitorMode = MonitorMode.min
    generate: GenerateConfig = field(default_factory=GenerateConfig)


@dataclass(frozen=True)
class TaskSpec:
    datamodule: Callable[[Any, str], L.LightningDataModule]  # (cfg, model layout) -> datamodule
    num_outputs: Callable[[Any], int]  # (datamodule) -> the model's output size
    module: Callable[..., EmbeddingTask]  # (cfg, datamodule, model, **plumbing) -> the task

    def setup(
        self, cfg: Any, checkpoint: dict[str, Any] | None = None
    ) -> tuple[L.LightningDataModule, EmbeddingTask]:
        return setup_task(cfg, self, checkpoint)


TASKS: Registry[TaskSpec] = Registry("task", "task.name", node="task", group="task")


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


def setup_task(
    cfg: Any, spec: TaskSpec, checkpoint: dict[str, Any] | None = None
) -> tuple[L.LightningDataModule, EmbeddingTask]:
    """Datamodule (set up) and LightningModule for a validated config: the one setup path.

    With ``checkpoint`` (read by :func:`embedlab.inference.read_checkpoint`) the data is
    encoded with the checkpoint's tokenizer, n-grams and label order, and the model is the
    checkpoint's (weights loaded; no pretrained vectors are read).
    """
    from embedlab.models import MODELS

    model_spec = MODELS.get(cfg.model.name)
    apply_tokenizer_override(cfg)
    dm = spec.datamodule(cfg, model_spec.layout)
    if checkpoint is not None:
        dm.restore(checkpoint["embedlab"])
    dm.setup("fit")
    if checkpoint is None:
        embedding, report = prepare_embedding(cfg, dm, model_spec.bag_embedding)
        model = model_spec.build(cfg.model, embedding, spec.num_outputs(dm))
    else:
        from embedlab.inference import from_checkpoint

        loaded = from_checkpoint(checkpoint, str(cfg.get("ckpt_path")))
        model, embedding, report = loaded.model, loaded.embedding, {}
    extra = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        **dm.artifacts(),  # tokenizer, labels, n-grams
    }
    module = spec.module(
        cfg,
        dm,
        model,
        embedding=embedding,
        embedding_lr=cfg.embedding.lr,
        unfreeze_later=cfg.embedding.unfreeze_at_epoch is not None,
        checkpoint_extra=extra,
        batches_per_step=cfg.data.get("batches_per_step") or 1,
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
    )
    module.embedding_report = report
    return dm, module


# --------------------------------------------------------------------------- classification


def _classification_problems(cfg: Any) -> list[str]:
    from embedlab.data.sources import is_lm_source
    from embedlab.models import MODELS

    problems = []
    if cfg.model.name in MODELS and MODELS.get(cfg.model.name).layout == "causal":
        problems.append(f"task.name: model {cfg.model.name!r} is a language model; use task=lm")
    if is_lm_source(cfg.data.source):
        problems.append(f"data.source: {cfg.data.source!r} is unlabelled LM text; use task=lm")
    return problems


def _classification_datamodule(cfg: Any, layout: str) -> L.LightningDataModule:
    from embedlab.data.datamodule import ClassificationDataModule

    return ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout=layout)


def _classification_module(cfg: Any, dm: Any, model: Any, **plumbing: Any) -> EmbeddingTask:
    return ClassificationTask(
        model,
        dm.num_classes,
        cfg.optimizer,
        cfg.scheduler,
        label_smoothing=cfg.task.label_smoothing,
        **plumbing,
    )


TASKS.register("classification", ClassificationTaskConfig, check=_classification_problems)(
    TaskSpec(_classification_datamodule, lambda dm: dm.num_classes, _classification_module)
)


# --------------------------------------------------------------------------- language modelling


def _lm_problems(cfg: Any) -> list[str]:
    from embedlab.data.sources import is_lm_source
    from embedlab.models import MODELS

    problems = []
    name = cfg.model.name
    if name in MODELS and MODELS.get(name).layout != "causal":
        problems.append(
            f"model.name: task=lm needs a causal language model (model=transformer_lm or lstm_lm), got {name!r}"
        )
    if not is_lm_source(cfg.data.source):
        problems.append(
            f"data.source: {cfg.data.source!r} is labelled data; task=lm needs an LM source (synthetic_lm, text)"
        )
    elif "max_positions" in cfg.model and cfg.data.block_size > cfg.model.max_positions:
        problems.append(
            f"data.block_size: {cfg.data.block_size} exceeds model.max_positions={cfg.model.max_positions}"
        )
    if not cfg.pretrained.restrict_to_vocab:
        problems.append(
            "pretrained.restrict_to_vocab: extending the vocabulary with pretrained words is "
            "supported for task=classification only; keep it true for task=lm"
        )
    return problems


def _lm_datamodule(cfg: Any, layout: str) -> L.LightningDataModule:
    from embedlab.data.lm import LanguageModelDataModule

    return LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)


def _lm_module(cfg: Any, dm: Any, model: Any, **plumbing: Any) -> EmbeddingTask:
    gen = cfg.task.generate
    if gen.prompt:
        prompt = dm.tokenizer.encode(gen.prompt, add_special_tokens=False).ids
        prompt = ([dm.bos_id] if dm.bos_id is not None else []) + prompt
    else:  # the start of a sentence
        start = dm.bos_id if dm.bos_id is not None else dm.eos_id
        prompt = [start] if start is not None else [int(dm.encoded["train"].ids[0])]
    return LanguageModelingTask(
        model,
        cfg.optimizer,
        cfg.scheduler,
        generate_cfg=gen,
        decode=dm.decode,
        prompt_ids=prompt,
        banned_ids=[dm.pad_id] + ([dm.bos_id] if dm.bos_id is not None else []),
        stop_id=dm.eos_id,
        carry_state=cfg.data.chunking == "rows",
        **plumbing,
    )


# the output layer predicts the next token: one output per vocabulary entry
TASKS.register("lm", LMTaskConfig, check=_lm_problems)(
    TaskSpec(_lm_datamodule, lambda dm: len(dm.vocab), _lm_module)
)

# --------------------------------------------------------------------------- word2vec


@dataclass
class Word2VecTaskConfig:
    """Word vectors by skip-gram / CBOW with negative sampling: word2vec's recipe and defaults."""

    name: str = "word2vec"
    monitor: str = "val/loss"  # negative-sampling loss per example on the val split
    monitor_mode: MonitorMode = MonitorMode.min
    min_count: int = 5  # words seen fewer times in train are removed from the text
    sample: float = 1e-4  # frequent-word subsampling threshold t (0: off)
    window: int = 5  # largest window; each word draws its own in 1..window
    negative: int = 5  # negatives per example
    ns_exponent: float = 0.75  # negatives from the unigram distribution ** ns_exponent
    # words of text per training step (whole sentences; gensim's batch_words): one kernel
    # call, the lr constant within it; 1000 spent 60% of a PTB epoch in Lightning's step
    batch_words: int = 10000
    export: bool = True  # write vectors.vec, vectors.npy and vocab.txt into the run folder


def _word2vec_problems(cfg: Any) -> list[str]:
    from embedlab.models import MODELS

    t, problems = cfg.task, []
    if cfg.model.name in MODELS and MODELS.get(cfg.model.name).layout != "word2vec":
        problems.append(
            f"model.name: task=word2vec needs model=skipgram or cbow, got {cfg.model.name!r}"
        )
    for key, low in (("min_count", 1), ("window", 1), ("negative", 1), ("batch_words", 1)):
        if t[key] < low:
            problems.append(f"task.{key}: must be >= {low}, got {t[key]}")
    if t.sample < 0:
        problems.append(f"task.sample: must be >= 0, got {t.sample}")
    if not cfg.pretrained.restrict_to_vocab:
        problems.append("pretrained.restrict_to_vocab: keep it true for task=word2vec")
    return problems + _word2vec_kernel_problems(cfg)


def _word2vec_kernel_problems(cfg: Any) -> list[str]:
    """What the compiled kernel (plain SGD on float32 CPU tables, one process) cannot do."""
    kernel = "task=word2vec trains with word2vec's SGD kernel"
    problems = []
    opt, emb, trainer = cfg.optimizer, cfg.embedding, cfg.trainer
    if opt.name != "sgd":
        problems.append(f"optimizer.name: {kernel}; use optimizer=sgd, got {opt.name!r}")
    if opt.weight_decay or any(opt.kwargs.values()):
        problems.append(f"optimizer: {kernel}: no weight_decay, momentum or other kwargs")
    if emb.scale_grad_by_freq or emb.per_sample_weights:
        problems.append(
            f"embedding: {kernel}: scale_grad_by_freq and per_sample_weights do not apply"
        )
    if cfg.model.name == "cbow" and str(emb.mode) not in ("mean", "sum"):
        problems.append(f"embedding.mode: CBOW's bag is mean or sum, got {emb.mode}")
    if trainer.accelerator != "cpu":
        problems.append(f"trainer.accelerator: {kernel} on the CPU; use cpu")
    if str(trainer.precision) not in ("32", "32-true"):
        problems.append(f"trainer.precision: {kernel} on float32 tables; use 32-true")
    if trainer.devices not in (1, "1") or trainer.num_nodes != 1:
        problems.append(
            f"trainer.devices: {kernel} in one process (threads: EMBEDLAB_NUM_THREADS); use 1"
        )
    if trainer.gradient_clip_val or trainer.accumulate_grad_batches != 1:
        problems.append(f"trainer: {kernel}: no gradient_clip_val or accumulate_grad_batches")
    return problems


def _word2vec_datamodule(cfg: Any, layout: str) -> L.LightningDataModule:
    from embedlab.data.word2vec import Word2VecDataModule

    return Word2VecDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, cfg.task)


def _word2vec_module(cfg: Any, dm: Any, model: Any, **plumbing: Any) -> EmbeddingTask:
    return Word2VecTask(
        model,
        cfg.optimizer,
        cfg.scheduler,
        vocab=list(dm.vocab),
        counts=dm.counts,
        sampling=dm.sampling,
        export=cfg.task.export,
        **plumbing,
    )


TASKS.register("word2vec", Word2VecTaskConfig, check=_word2vec_problems)(
    TaskSpec(_word2vec_datamodule, lambda dm: len(dm.vocab), _word2vec_module)
)

__all__ = [
    "TASKS",
    "ClassificationTask",
    "EmbeddingTask",
    "LanguageModelingTask",
    "TaskSpec",
    "Word2VecTask",
    "setup_task",
]
