"""The typed top-level config schema and its validation.

The groups every run has the same shape for (tokenizer, embedding, pretrained, optimizer,
scheduler, trainer, logger, paths) are dataclasses here, stored in Hydra's ConfigStore so a
misspelled key or a badly typed value fails at composition time. The groups whose shape
depends on the choice (``data``, ``model``, ``task``, ``callbacks``) take their schema from
the choice's registry entry (:mod:`embedlab.registry`), where that choice's checks live too.
:func:`validate` composes them: it asks every registry for the problems of the composed
config and raises one :class:`~embedlab.errors.ConfigError` listing all of them before any
data is touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict

from embedlab.errors import ConfigError, OnBadRows
from embedlab.registry import Registry, schema_problems

# --------------------------------------------------------------------------- enums
# StrEnum: a config value is its own string ("mean" == BagMode.mean), no unwrapping needed.


class BagMode(StrEnum):
    sum = "sum"
    mean = "mean"
    max = "max"


class Normalization(StrEnum):
    none = "none"
    nfc = "nfc"
    nfd = "nfd"
    nfkc = "nfkc"
    nfkd = "nfkd"


class MonitorMode(StrEnum):
    max = "max"
    min = "min"


class Interval(StrEnum):
    step = "step"
    epoch = "epoch"


class Over(StrEnum):
    steps = "steps"  # the schedule runs over the run's steps (or epochs)
    # whichever is further along: the steps, or the training time spent of trainer.max_time
    # (the lr reaches its end when the time budget does, however fast the machine is)
    time = "time"


# --------------------------------------------------------------------------- tokenizer


@dataclass
class TokenizerConfig:
    kind: str = "word"  # registry name of the tokenizer model (word | bpe)
    lowercase: bool = True  # lowercase before splitting
    normalization: Normalization = Normalization.nfkc  # unicode normalisation form
    strip_accents: bool = False  # drop combining accents after NFD-style decomposition
    split_punctuation: bool = True  # punctuation becomes separate tokens ("it's" -> it ' s)
    min_freq: int = 1  # word types seen fewer times in train become <unk>
    max_size: int | None = None  # keep at most this many types (specials included)
    pad_token: str = "<pad>"
    unk_token: str = "<unk>"
    bos_token: str | None = None  # e.g. "<bos>" for sentence-wise language modelling
    eos_token: str | None = None  # e.g. "<eos>"
    path: str | None = None  # load a saved tokenizer.json instead of training one
    # add word n-grams up to this order as extra tokens (2: bigrams, fastText-style);
    # None: the model's default (boe 2, transformers 1)
    ngrams: int | None = None
    ngram_min_freq: int = 2  # keep n-grams seen at least this often in train
    ngram_max_size: int | None = None  # keep at most this many n-grams (most frequent first)


# --------------------------------------------------------------------------- embedding


@dataclass
class EmbeddingConfig:
    init: str = "normal"  # registry name of the initializer (see embedlab.embeddings.init)
    init_args: dict[str, Any] = field(default_factory=dict)  # that initializer's arguments
    # embedding dimension (None: the pretrained vectors' dim; must match them if set)
    dim: int | None = 64
    padding_idx: bool = True  # the <pad> row is zero and receives no gradient
    max_norm: float | None = None  # renormalise looked-up rows to at most this norm
    norm_type: float = 2.0  # the p of the p-norm for max_norm
    scale_grad_by_freq: bool = False  # scale gradients by inverse in-batch word frequency
    # sparse gradients, trained by the optimizer's sparse counterpart (SPARSE_OPTIMIZERS);
    # None: the model's default (boe true, transformers false)
    sparse: bool | None = None
    mode: BagMode = BagMode.mean  # how a bag of embeddings is reduced
    per_sample_weights: bool = False  # weight each token in its bag (sum mode only)
    freeze: bool = False  # no gradient; excluded from the optimizer
    lr: float | None = None  # own learning rate for fine-tuning (None: optimizer.lr)
    unfreeze_at_epoch: int | None = None  # start frozen and unfreeze at this epoch
    # 2: Kim's multichannel, a static (frozen) and a fine-tuned copy of the same start, their
    # rows summed; freeze/lr/sparse/unfreeze_at_epoch/max_norm then apply to the fine-tuned one
    # (sequence models only: cnn, transformer, transformer_lm)
    channels: int = 1


# --------------------------------------------------------------------------- pretrained


@dataclass
class PretrainedConfig:
    source: str = "none"  # registry name of the pretrained source (none: no vectors)
    # glove: 6B|42B|840B|twitter.27B; fasttext: cc.en.300, ...; hf: model id/folder
    name: str | None = None
    dim: int | None = None  # vector dimension (glove: part of the file name; else checked if set)
    path: str | None = None  # explicit file or model folder (overrides the cache lookup)
    format: str | None = None  # text | word2vec_bin | fasttext | pt | npy (None: from extension)
    vocab_path: str | None = None  # one word per line, for .pt/.npy matrices
    cache_dir: str = "${paths.vector_cache}"  # where named vectors are looked up / downloaded
    download: bool = True  # fetch a known file when missing (needs the network)
    url: str | None = None  # download from this URL instead of the known ones (mirror, file://)
    # expected sha256 of the downloaded file (None: length + archive CRC only)
    sha256: str | None = None
    restrict_to_vocab: bool = True  # only vocabulary words; else extend the vocabulary
    max_vectors: int | None = None  # with restrict_to_vocab false: add the file's top words
    lowercase_fallback: bool = True  # try the lowercased word when the exact one is missing
    on_bad_rows: OnBadRows = OnBadRows.error  # ragged/NaN rows: error (file:line) or skip + count
    cache: bool = True  # cache the aligned matrix under paths.cache_dir
    use_tokenizer: bool = True  # hf: tokenize the data with the model's own tokenizer.json


# --------------------------------------------------------------------------- optimisation


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # registry name (embedlab.training.optim.OPTIMIZERS)
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    kwargs: dict[str, Any] = field(default_factory=dict)  # other torch.optim arguments
    # a sparse bag table's row-wise Adagrad (optimizer=adagrad, model=boe) updates it inside
    # the backward from the bag gradients, where nothing needs its .grad (not with gradient
    # clipping, accumulation, fp16 or DDP): 1.6-1.8x a MR step; false: the .grad and a step
    fuse_table_update: bool = True
    # and model=boe's whole step (linear head, cross-entropy, Adagrad) in one compiled call,
    # with data.batches_per_step > 1 (a step's updates in one call): 3-5x a step;
    # the same updates to float rounding
    fuse_train_step: bool = True


@dataclass
class SchedulerConfig:
    name: str = "none"  # registry name (embedlab.training.optim.SCHEDULERS)
    warmup_steps: int = 0  # linear warmup before the schedule (step-based)
    interval: Interval = Interval.step  # when the scheduler steps
    over: Over = Over.steps  # steps | time (needs trainer.max_time)
    kwargs: dict[str, Any] = field(default_factory=dict)  # the schedule's own arguments


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto | mps
    devices: Any = 1  # int, list of ids or "auto"
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    # DDP's collective backend: nccl | gloo (None: Lightning's choice, nccl on GPUs, gloo on
    # CPUs); gloo on GPUs keeps sparse embedding gradients, which NCCL cannot all-reduce
    process_group_backend: str | None = None
    num_nodes: int = 1
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed | ...
    min_epochs: int = 1
    max_epochs: int = 10
    max_steps: int = -1
    max_time: str | None = None  # "DD:HH:MM:SS"
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    check_val_every_n_epoch: int = 1
    val_check_interval: Any = None  # int = every N batches, float = fraction of an epoch
    log_every_n_steps: int = 20
    # torch.use_deterministic_algorithms (needed on GPU for bitwise repeats)
    deterministic: bool = False
    benchmark: bool | None = None
    fast_dev_run: Any = False  # bool or int
    # int = number of batches, float = fraction of the split (Lightning's convention)
    overfit_batches: Any = 0.0
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    num_sanity_val_steps: int = 2
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    # Lightning's profiler: simple (time per hook and step), advanced (cProfile per hook) or
    # pytorch (torch.profiler); its report goes to <run>/<stage>-profile.txt
    profiler: str | None = None
    detect_anomaly: bool = False
    sync_batchnorm: bool = False


@dataclass
class LoggerConfig:
    tensorboard: bool = True  # TensorBoard event files in the run folder
    csv: bool = False  # metrics.csv beside them
    log_hparams: bool = True  # hparams (flattened config) + final metrics for the HPARAMS tab
    log_config_text: bool = True  # the resolved config as text


@dataclass
class PathsConfig:
    root_dir: str = "."  # project root; relative paths below resolve against the cwd
    data_dir: str = "data"  # root of the benchmark datasets (EMBEDLAB_DATA_DIR)
    log_dir: str = "outputs"  # where run and multirun folders go
    output_dir: str = MISSING  # this run's folder (Hydra's runtime output dir)
    cache_dir: str = ".cache/embedlab"  # tokenized data and aligned vectors (safe to delete)
    vector_cache: str = ".vector_cache"  # named pretrained vectors (EMBEDLAB_VECTOR_CACHE)


@dataclass
class TrainConfig:
    task_name: str = "train"  # names the output folder
    seed: int = 42  # seeds python, numpy and torch (and dataloader workers)
    train: bool = True  # fit the model
    test: bool = True  # test the best checkpoint after fitting
    ckpt_path: str | None = None  # resume training from this checkpoint
    resume: str | None = None  # RUN_DIR (that run, its config, its last.ckpt) or auto
    allow_remote_checkpoints: bool = False  # ckpt_path may be a URL (still weights_only)
    optimized_metric: str = "val/acc_best"  # what train() returns for sweepers
    tags: list[str] = field(default_factory=list)  # free-form labels for the run
    print_config: bool = True  # print the resolved config tree at start
    data: Any = MISSING
    tokenizer: TokenizerConfig = MISSING
    embedding: EmbeddingConfig = MISSING
    pretrained: PretrainedConfig = MISSING
    model: Any = MISSING
    task: Any = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    callbacks: Any = MISSING  # {name: node}: see embedlab.callbacks.CALLBACKS
    paths: PathsConfig = MISSING


# The groups of one fixed shape, checked against these schemas by validate().
GROUP_SCHEMAS: dict[str, type] = {
    "tokenizer": TokenizerConfig,
    "embedding": EmbeddingConfig,
    "pretrained": PretrainedConfig,
    "optimizer": OptimizerConfig,
    "scheduler": SchedulerConfig,
    "trainer": TrainerConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}


def registries() -> list[Registry]:
    """Every registry of a configurable choice, in the order validate() reports them."""
    from embedlab.callbacks import CALLBACKS
    from embedlab.data.sources import DATA_SOURCES
    from embedlab.data.tokenizer import TOKENIZERS
    from embedlab.embeddings.init import INITIALIZERS
    from embedlab.embeddings.pretrained import PRETRAINED_SOURCES
    from embedlab.models import MODELS
    from embedlab.tasks import TASKS
    from embedlab.training.optim import OPTIMIZERS, SCHEDULERS

    return [
        DATA_SOURCES,
        TOKENIZERS,
        INITIALIZERS,
        PRETRAINED_SOURCES,
        MODELS,
        TASKS,
        OPTIMIZERS,
        SCHEDULERS,
        CALLBACKS,
    ]


def register_configs() -> None:
    """Store the top-level schema and every choice's schema in Hydra's ConfigStore."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for registry in registries():
        for name in registry.names() if registry.group else []:
            schema = registry.schema(name)
            if schema is not None:
                store.store(group=f"schema/{registry.group}", name=name, node=schema)


register_configs()


def compose_config(
    overrides: list[str],
    paths: dict[str, Any] | None = None,
    config_name: str = "train",
    return_hydra_config: bool = False,
) -> DictConfig:
    """``configs/<config_name>.yaml`` composed with ``overrides`` outside a Hydra app, with
    ``paths.<key>`` set from ``paths`` (e.g. ``{"output_dir": run, "cache_dir": cache}``).

    For scripts and tests that call ``train(cfg)`` in-process; clears any Hydra state left by
    a previous composition.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from embedlab.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    with open_dict(cfg):
        for key, value in (paths or {}).items():
            cfg.paths[key] = str(value)
    return cfg


# what a null means for a model whose ModelSpec.defaults does not name the key
RUN_DEFAULTS: dict[str, Any] = {
    "data.batches_per_step": 1,
    "data.prefetch": False,
    "callbacks.early_stopping.enabled": False,
    "callbacks.early_stopping.patience": 3,
}


def one_batch_per_step(cfg: DictConfig) -> str | None:
    """Why this run must train one batch per Lightning step (``data.batches_per_step=1``).

    Several batches per step run their updates inside ``training_step`` (manual optimization,
    gradient clipping included), which Lightning's gradient accumulation and fp16 scaler, DDP's
    gradient reducer (one forward through the wrapped module per backward) and the loaders
    that are not :func:`embedlab.data.batching.make_loader`'s (streamed training splits, LM
    rows that carry a recurrent state, word2vec's chunks) do not allow. None when nothing
    stands in the way.
    """
    t, data = cfg.trainer, cfg.data
    task = cfg.task.get("name")
    if task not in ("classification", "lm"):
        return f"task={task} trains one batch per step"
    if task == "lm" and data.get("chunking") == "rows":
        return "data.chunking=rows carries a recurrent state from batch to batch"
    if data.get("streaming"):
        return "data.streaming=true batches in the loader workers"
    if "ddp" in str(t.get("strategy")) or _device_count(t) > 1 or (t.get("num_nodes") or 1) > 1:
        return "DDP reduces the gradients of one backward per step"
    if (t.get("accumulate_grad_batches") or 1) > 1:
        return "trainer.accumulate_grad_batches accumulates over steps"
    if str(t.get("precision")) in ("16-mixed", "16"):
        return f"trainer.precision={t.get('precision')} scales the loss of one backward per step"
    return None


def _device_count(trainer: Any) -> int:
    """How many devices (processes) ``trainer.devices`` asks for; "auto" and -1 count the GPUs
    of this machine unless the accelerator is the CPU."""
    devices = trainer.get("devices")
    if OmegaConf.is_list(devices):
        return len(devices)
    text = str(devices).strip()
    if text in ("auto", "-1"):
        if str(trainer.get("accelerator")) == "cpu":
            return 1
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 1
    if "," in text:  # "0,1": device ids
        return len([d for d in text.split(",") if d.strip()])
    return int(text) if text.isdigit() else 1


def apply_model_defaults(cfg: DictConfig) -> DictConfig:
    """Fill the keys left null (``~``) with the model's defaults (``ModelSpec.defaults``).

    ``tokenizer.ngrams``, ``embedding.sparse``, ``data.batch_size``, ``data.batches_per_step``
    and early stopping depend on the model: bigrams, sparse updates, large batches, several
    batches per Lightning step and stopping soon after the best val epoch make a bag of
    embeddings fast and strong, but not a transformer (keys a model does not name:
    ``RUN_DEFAULTS``). A value the user set is kept. A defaulted sparse table stays dense when
    the chosen optimizer has no sparse counterpart (e.g. ``optimizer=adadelta``) or under DDP
    on GPUs (NCCL has no sparse all-reduce), defaulted n-grams stay off unless the tokens are
    words whose ids stay put (our own word-level tokenizer, ``pretrained.restrict_to_vocab``
    true), and a defaulted ``batches_per_step`` is 1 where :func:`one_batch_per_step` says so.
    Returns ``cfg`` (changed in place).
    """
    from embedlab.embeddings.init import nccl_ddp
    from embedlab.models import MODELS
    from embedlab.training.optim import SPARSE_OPTIMIZERS

    name = cfg.model.get("name")  # validate() reports an unknown model
    if name not in MODELS:
        return cfg
    defaults = {**RUN_DEFAULTS, **MODELS.get(name).defaults}
    if cfg.optimizer.get("name") not in SPARSE_OPTIMIZERS or nccl_ddp(cfg.trainer):
        defaults["embedding.sparse"] = False
    if (
        cfg.tokenizer.get("kind") != "word"
        or cfg.pretrained.get("source") == "hf"  # the model's own (subword) tokenizer
        or not cfg.pretrained.get("restrict_to_vocab", True)
    ):
        defaults["tokenizer.ngrams"] = 1
    if one_batch_per_step(cfg):
        defaults["data.batches_per_step"] = 1
    for key, value in defaults.items():
        if OmegaConf.select(cfg, key, default=0) is None:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=False)
    return cfg


# trainer.profiler -> Lightning's profiler class (lightning.pytorch.profilers)
PROFILERS = {
    "simple": "SimpleProfiler",
    "advanced": "AdvancedProfiler",
    "pytorch": "PyTorchProfiler",
}


def _run_problems(cfg: DictConfig) -> list[str]:
    """What the run as a whole would do wrong silently (nothing trained, reported as a result)."""
    problems = []
    if cfg.train and cfg.trainer.max_epochs == 0:
        problems.append(
            "trainer.max_epochs: 0 trains nothing and would report an untrained model; set it >= 1 "
            "(or train=false ckpt_path=... to test a checkpoint)"
        )
    profiler = cfg.trainer.get("profiler")
    if profiler is not None and profiler not in PROFILERS:
        problems.append(f"trainer.profiler: {profiler!r} is not one of {list(PROFILERS)} (or null)")
    grouped = cfg.data.get("batches_per_step") or 1
    blocker = one_batch_per_step(cfg) if grouped > 1 else None
    if blocker:
        problems.append(f"data.batches_per_step: {grouped} is not possible here: {blocker}; set 1")
    if not cfg.train and cfg.test and not cfg.ckpt_path and not cfg.get("resume"):
        problems.append(
            "train: false tests the checkpoint in ckpt_path, and none is given; set ckpt_path=PATH"
        )
    return problems


def validate(cfg: DictConfig) -> DictConfig:
    """Check the whole composed config; raise one ConfigError listing every problem.

    Runs before any data is read. First fills the model-dependent keys left null
    (:func:`apply_model_defaults`), then checks the fixed-shape groups against their schemas
    and asks every registry for the problems of its choice (:meth:`Registry.problems`: the
    name, the choice's schema, the group's and the choice's own checks). Returns ``cfg``.
    """
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    problems = [
        f"{k}: unknown top-level key; valid keys: {sorted(top)}" for k in cfg if k not in top
    ]
    problems += [
        f"{k}: missing (is the defaults list of train.yaml complete?)" for k in top if k not in cfg
    ]
    if problems:
        raise ConfigError(problems)
    apply_model_defaults(cfg)
    for group, schema in GROUP_SCHEMAS.items():
        problems += schema_problems(group, cfg[group], schema)
    if not problems:  # the registries' checks read typed values
        problems += _run_problems(cfg)
        for registry in registries():
            problems += registry.problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def to_flat_dict(cfg: DictConfig) -> dict[str, Any]:
    """Flatten the resolved config to ``{"a.b.c": scalar}`` (lists and None become strings)."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            if not node and prefix:
                flat[prefix] = "{}"
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(node, bool | int | float | str):
            flat[prefix] = node
        else:
            flat[prefix] = str(node)

    walk("", container)
    return flat
