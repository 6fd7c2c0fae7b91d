"""Lightning callbacks of embedlab and ``CALLBACKS``, the registry that builds them from config.

Each entry is one ``callbacks.<name>`` node: its schema (a dataclass, or a plain on/off flag),
its checks and a builder ``(node, cfg, output_dir) -> Callback | None``. Unlike the other
registries every entry may be on at once; :meth:`CallbackRegistry.build` builds them in
registration order. Adding one: a class (or a Lightning one), an entry here, a key in
``configs/callbacks/default.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from embedlab.callbacks.embeddings import EmbeddingDrift, EmbeddingHistograms, EmbeddingProjector
from embedlab.callbacks.intrinsic import IntrinsicEvaluation
from embedlab.callbacks.optuna_pruning import OptunaPruning
from embedlab.callbacks.throughput import Throughput
from embedlab.callbacks.unfreeze import UnfreezeEmbedding
from embedlab.registry import Registry, schema_problems


@dataclass
class CheckpointConfig:
    enabled: bool = True
    save_last: bool = True  # also keep last.ckpt (for resume=RUN_DIR / resume=auto)
    save_top_k: int = 1


@dataclass
class EarlyStoppingConfig:
    enabled: bool = False
    patience: int = 3
    min_delta: float = 0.0


@dataclass
class ProjectorConfig:
    """TensorBoard PROJECTOR: the embedding rows of the most frequent training words."""

    enabled: bool = True
    top_n: int = 500  # this many most frequent words (specials left out)
    at_start: bool = True  # the table as initialised (tensor "embedding_start")
    at_end: bool = True  # the table after training (tensor "embedding_end")


@dataclass
class DriftConfig:
    """How far each word's vector moved in training (cosine distance, final vs initial)."""

    enabled: bool = True
    top_k: int = 25  # the words that moved most, as a TEXT table
    min_count: int = 1  # only words seen at least this often in the training split


@dataclass
class EmbeddingHistogramsConfig:
    """HISTOGRAMS of the embedding table during training."""

    enabled: bool = True
    every_n_steps: int = 100  # log every this many optimizer steps (and at step 0)
    row_norms: bool = True  # L2 norm of every row
    grad_norms: bool = True  # L2 norm of the gradient of every row the batch touched


@dataclass
class IntrinsicConfig:
    """Word similarity / analogy scores and nearest neighbours of the table per validation."""

    enabled: bool | None = None  # None: on for task=word2vec, off for the other tasks
    eval_dir: str | None = None  # None: $EMBEDLAB_EVAL_DIR, else ../shared/data/eval
    # explicit files by benchmark (ws353, simlex, analogy): same formats, must exist
    files: dict[str, Any] = field(default_factory=dict)
    # nearest neighbours of these words as a TEXT table (TensorBoard)
    words: list[str] = field(
        default_factory=lambda: ["good", "bad", "money", "king", "france", "three", "say"]
    )
    k: int = 8  # neighbours per word
    pairs_restrict: int = 300000  # similarity pairs: only the N most frequent words (gensim's)
    analogy_restrict: int = 30000  # analogies: only the N most frequent words
    every_n_epochs: int = 1


@dataclass
class OptunaPruningConfig:
    """Report to an Optuna trial after each validation epoch; stop when its pruner says so.

    The Optuna sweeper (``sweep=optuna``) sets ``storage``, ``study_name`` and ``trial`` for each
    trial it launches; off while they are null (every run outside such a sweep).
    """

    storage: str | None = None  # the study's storage URL (sqlite:////abs/path/optuna.db, ...)
    study_name: str | None = None
    trial: int | None = None  # the trial's number in the study
    monitor: str | None = None  # the metric reported; null: optimized_metric (the objective)


@dataclass(frozen=True)
class CallbackSpec:
    # (the entry's node: typed, defaults filled; or its flag), cfg, run folder -> callback
    build: Callable[[Any, DictConfig, Path], L.Callback | None]
    default_on: bool = True  # a flag entry's value when the callbacks node leaves it out


class CallbackRegistry(Registry[CallbackSpec]):
    """A registry whose entries are all active: ``callbacks.<name>`` configures each."""

    def settings(self, cfg: DictConfig, name: str) -> Any:
        """Entry ``name``'s node with the schema's defaults filled (a flag: its bool)."""
        entry = self.entry(name)
        value = cfg.callbacks.get(name) if cfg.callbacks is not None else None
        if entry.schema is None:
            return entry.obj.default_on if value is None else bool(value)
        return OmegaConf.merge(OmegaConf.structured(entry.schema), value or {})

    def problems(self, cfg: DictConfig) -> list[str]:
        node = cfg.callbacks
        if node is None:
            return []
        if not isinstance(node, DictConfig):
            return [f"callbacks: expected a mapping of callback name -> settings, got {node!r}"]
        problems: list[str] = []
        for name in node:
            if name not in self:
                problems.append(f"callbacks.{name}: unknown callback; choose from {self.names()}")
            elif self.schema(name) is None:
                if not isinstance(node[name], bool):
                    problems.append(f"callbacks.{name}: true or false, got {node[name]!r}")
            else:
                problems += schema_problems(f"callbacks.{name}", node[name], self.schema(name))
        if problems:
            return problems
        with open_dict(node):  # entries left out get their defaults, so checks can read them
            for name, entry in self._entries.items():
                if entry.schema is not None and name not in node:
                    node[name] = OmegaConf.structured(entry.schema)
        for name in self:
            check = self.entry(name).check
            problems += check(cfg) if check is not None else []
        return problems

    def build(self, cfg: DictConfig, output_dir: Path) -> dict[str, L.Callback]:
        """The callbacks this run uses, by entry name, in registration order."""
        built = {}
        for name, entry in self._entries.items():
            callback = entry.obj.build(self.settings(cfg, name), cfg, output_dir)
            if callback is not None:
                built[name] = callback
        return built


CALLBACKS = CallbackRegistry("callback", "callbacks")


def _min(key: str, minimum: int) -> Callable[[DictConfig], list[str]]:
    """A check that ``callbacks.<key>`` is at least ``minimum``."""

    def check(cfg: DictConfig) -> list[str]:
        value = OmegaConf.select(cfg, f"callbacks.{key}")
        return (
            []
            if value is None or value >= minimum
            else [f"callbacks.{key}: must be >= {minimum}, got {value}"]
        )

    return check


def _monitor(cfg: DictConfig) -> tuple[str, str]:
    return cfg.task.monitor, str(cfg.task.monitor_mode)


def _checkpoint(node: Any, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    from embedlab.callbacks.checkpoint import LastEveryValidation

    if not node.enabled:
        return None
    monitor, mode = _monitor(cfg)
    return LastEveryValidation(
        dirpath=str(output_dir / "checkpoints"),
        filename="epoch{epoch:03d}-" + monitor.replace("/", "_") + "{" + monitor + ":.4f}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=mode,
        save_top_k=node.save_top_k,
        save_last=node.save_last,
    )


def _early_stopping(node: Any, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    from lightning.pytorch.callbacks import EarlyStopping

    if not node.enabled:
        return None
    monitor, mode = _monitor(cfg)
    # checked after each validation only: Lightning also checks at the end of a training epoch,
    # which fails on a run that stops mid-epoch before validating (max_steps, max_time)
    return EarlyStopping(
        monitor=monitor,
        mode=mode,
        patience=node.patience,
        min_delta=node.min_delta,
        check_on_train_epoch_end=False,
    )


def _lr_monitor(on: bool, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    from lightning.pytorch.callbacks import LearningRateMonitor

    if not (on and (cfg.logger.tensorboard or cfg.logger.csv)):
        return None
    return LearningRateMonitor(logging_interval="step")


def _rich_progress(on: bool, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    """The progress bar (with ``trainer.enable_progress_bar``): Rich, or Lightning's tqdm bar."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    if not cfg.trainer.enable_progress_bar:
        return None
    return RichProgressBar(leave=True) if on else TQDMProgressBar()


def _unfreeze(on: bool, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    epoch = cfg.embedding.unfreeze_at_epoch  # driven by the embedding config, not a node
    return UnfreezeEmbedding(epoch) if epoch is not None else None


def _tensorboard_only(factory: Callable[[Any], L.Callback]) -> Callable[..., L.Callback | None]:
    """A builder for the TensorBoard views of the table: on when enabled and TensorBoard is."""

    def build(node: Any, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
        return factory(node) if node.enabled and cfg.logger.tensorboard else None

    return build


CALLBACKS.register("checkpoint", CheckpointConfig)(CallbackSpec(_checkpoint))
CALLBACKS.register("early_stopping", EarlyStoppingConfig)(CallbackSpec(_early_stopping))
CALLBACKS.register("lr_monitor")(CallbackSpec(_lr_monitor))
CALLBACKS.register("rich_progress")(CallbackSpec(_rich_progress))
CALLBACKS.register("throughput")(CallbackSpec(lambda on, cfg, out: Throughput() if on else None))
CALLBACKS.register("unfreeze_embedding")(CallbackSpec(_unfreeze))
CALLBACKS.register("projector", ProjectorConfig, check=_min("projector.top_n", 1))(
    CallbackSpec(_tensorboard_only(lambda n: EmbeddingProjector(n.top_n, n.at_start, n.at_end)))
)
CALLBACKS.register("drift", DriftConfig, check=_min("drift.top_k", 0))(
    CallbackSpec(_tensorboard_only(lambda n: EmbeddingDrift(n.top_k, n.min_count)))
)
CALLBACKS.register(
    "embedding_histograms",
    EmbeddingHistogramsConfig,
    check=_min("embedding_histograms.every_n_steps", 1),
)(
    CallbackSpec(
        _tensorboard_only(lambda n: EmbeddingHistograms(n.every_n_steps, n.row_norms, n.grad_norms))
    )
)


def _intrinsic(node: Any, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    on = node.enabled if node.enabled is not None else cfg.task.name == "word2vec"
    if not on:
        return None
    return IntrinsicEvaluation(
        node.eval_dir,
        dict(node.files),
        list(node.words),
        node.k,
        node.pairs_restrict,
        node.analogy_restrict,
        node.every_n_epochs,
    )


def _intrinsic_problems(cfg: DictConfig) -> list[str]:
    from embedlab.embeddings.intrinsic import BENCHMARKS

    node = cfg.callbacks.intrinsic
    problems = _min("intrinsic.every_n_epochs", 1)(cfg) + _min("intrinsic.k", 1)(cfg)
    problems += [
        f"callbacks.intrinsic.files.{name}: unknown benchmark; choose from {list(BENCHMARKS)}"
        for name in node.files
        if name not in BENCHMARKS
    ]
    return problems


CALLBACKS.register("intrinsic", IntrinsicConfig, check=_intrinsic_problems)(
    CallbackSpec(_intrinsic)
)

_TRIAL_KEYS = ("storage", "study_name", "trial")


def _optuna_pruning(node: Any, cfg: DictConfig, output_dir: Path) -> L.Callback | None:
    if node.storage is None:
        return None
    return OptunaPruning(
        node.storage, node.study_name, node.trial, node.monitor or cfg.optimized_metric
    )


def _optuna_pruning_problems(cfg: DictConfig) -> list[str]:
    node = cfg.callbacks.optuna_pruning
    unset = [k for k in _TRIAL_KEYS if node[k] is None]
    if unset and len(unset) < len(_TRIAL_KEYS):
        return [
            f"callbacks.optuna_pruning.{unset[0]}: set together with "
            f"{', '.join(k for k in _TRIAL_KEYS if k not in unset)} (the Optuna sweeper sets all three)"
        ]
    return _min("optuna_pruning.trial", 0)(cfg)


CALLBACKS.register("optuna_pruning", OptunaPruningConfig, check=_optuna_pruning_problems)(
    CallbackSpec(_optuna_pruning)
)

__all__ = [
    "CALLBACKS",
    "CallbackSpec",
    "EmbeddingDrift",
    "EmbeddingHistograms",
    "EmbeddingProjector",
    "IntrinsicEvaluation",
    "OptunaPruning",
    "Throughput",
    "UnfreezeEmbedding",
]
