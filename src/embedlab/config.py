"""The typed config schema (dataclasses registered in Hydra's ConfigStore) and its validation.

Each config group file under ``configs/`` starts from one of these schemas, so Hydra rejects
a misspelled key or a badly typed value at composition time. :func:`validate` then checks
what types alone cannot (registry names, ranges, per-choice argument schemas) and collects
*every* problem into one :class:`~embedlab.errors.ConfigError` before any data is touched.

Adding a choice to a group whose options differ (a data source, a model) means: a schema
dataclass here (stored under ``schema/<group>/<name>``), a registered builder, and a YAML
file in ``configs/<group>/`` whose defaults list starts with ``/schema/<group>/<name>@_here_``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from embedlab.errors import ConfigError

# --------------------------------------------------------------------------- enums


class BagMode(str, Enum):
    sum = "sum"
    mean = "mean"
    max = "max"


class Normalization(str, Enum):
    none = "none"
    nfc = "nfc"
    nfd = "nfd"
    nfkc = "nfkc"
    nfkd = "nfkd"


class TokenizerKind(str, Enum):
    word = "word"  # word-level vocabulary (one id per word type)
    bpe = "bpe"  # byte-pair encoding sub-words


class Positional(str, Enum):
    sinusoidal = "sinusoidal"  # fixed sin/cos (Vaswani et al.)
    learned = "learned"  # one trained vector per position (GPT-2)
    none = "none"  # no positions (a bag of tokens with attention)


class Pooling(str, Enum):
    cls = "cls"  # a learned vector prepended at position 0; its output is pooled
    mean = "mean"  # mean over real tokens
    max = "max"  # max over real tokens


class Activation(str, Enum):
    relu = "relu"
    gelu = "gelu"
    silu = "silu"
    tanh = "tanh"


class Chunking(str, Enum):
    stream = "stream"  # concatenate all texts (+eos) and cut contiguous block_size windows
    sentence = "sentence"  # one text per example: bos + tokens + eos, padded per batch


class OnBadRows(str, Enum):
    error = "error"
    skip = "skip"


# --------------------------------------------------------------------------- data sources


@dataclass
class DataCommon:
    source: str = MISSING  # registry name of the data source (see embedlab.data.sources)
    batch_size: int | None = None  # examples per training batch (None: boe 256, transformers 64)
    eval_batch_size: int = 512  # examples per val/test batch
    num_workers: int = 0  # DataLoader workers; the in-memory batches need none
    val_fraction: float = 0.1  # carved from train (stratified, seeded) when there is no val split
    max_len: int | None = None  # truncate every text to this many tokens (None: keep all)
    cache: bool = True  # cache tokenized splits under paths.cache_dir, keyed by content
    # padded layouts: sort by length within chunks of this many batches (0: off)
    length_buckets: int = 50
    on_bad_rows: OnBadRows = OnBadRows.error  # error: stop at file:line | skip: drop, count, report


@dataclass
class SyntheticDataConfig(DataCommon):
    """The embedded default: class words among shared and noise words, generated at run time."""

    source: str = "synthetic"
    num_classes: int = 6  # number of labels
    num_train: int = 12000  # training examples
    num_val: int = 2000  # validation examples
    num_test: int = 2000  # test examples
    class_words: int = 40  # signal words owned by each class
    shared_words: int = 400  # topic-neutral words all classes use (Zipf distributed)
    noise_words: int = 2000  # rare words drawn uniformly (many never repeat)
    min_len: int = 8  # shortest text, in words
    max_words: int = 24  # longest text, in words
    signal: float = 0.15  # probability that a word is a class word
    confusion: float = 0.2  # probability that a class word comes from a random other class
    label_noise: float = 0.0  # fraction of labels flipped uniformly at random
    data_seed: int = 1234  # generator seed, independent of the training seed


@dataclass
class LMDataCommon(DataCommon):
    """Unlabelled text for language modelling (task=lm)."""

    batch_size: int = 32  # windows (or sentences) per training batch
    eval_batch_size: int = 64
    block_size: int = 64  # tokens per window (stream) / longest sentence incl. bos+eos (sentence)
    chunking: Chunking = Chunking.stream  # stream | sentence


@dataclass
class SyntheticLMConfig(LMDataCommon):
    """The embedded LM corpus: sentences from a seeded probabilistic grammar over pseudo-words."""

    source: str = "synthetic_lm"
    num_train: int = 4000  # training sentences
    num_val: int = 400  # validation sentences
    num_test: int = 400  # test sentences
    nouns: int = 120  # noun types (each used in singular and plural form)
    verbs: int = 60  # verb types (singular and plural form)
    adjectives: int = 40
    adverbs: int = 20
    data_seed: int = 1234  # generator seed, independent of the training seed


@dataclass
class TextFilesLMConfig(LMDataCommon):
    """Plain-text corpora: one file per split, one text (sentence, line) per line."""

    source: str = "text"
    root: str = "${paths.data_dir}"  # folder the file names below are relative to
    train: str = "train.txt"  # training file (relative to root, or absolute)
    val: str | None = "valid.txt"  # validation file (None: carve data.val_fraction from train)
    test: str | None = "test.txt"  # test file (None: no test split; test runs on val)
    encoding: str = "utf-8"
    skip_empty: bool = True  # drop blank lines


@dataclass
class FilesDataConfig(DataCommon):
    """Labelled examples from local files: CSV, TSV, JSONL, fastText ``__label__x text`` lines.

    Relative paths resolve against ``root`` (when set). Columns are names (header row, JSON
    keys) or 0-based positions. Label ids follow ``label_names`` when given (a file label is a
    name or an integer id), else the sorted distinct train labels (numerically if all integers).
    """

    source: str = "files"
    root: str | None = None  # folder the relative paths below are resolved against
    train: str = MISSING  # training file
    val: str | None = None  # validation file (None: carve data.val_fraction from train)
    test: str | None = None  # test file (None: test on val)
    format: str | None = None  # csv | tsv | jsonl | fasttext | text (None: from the extension)
    text_column: Any = "text"  # column name or 0-based position of the text
    label_column: Any = "label"  # column name or position of the label (null: unlabelled)
    header: bool = True  # csv/tsv: the first line names the columns
    delimiter: str | None = None  # csv/tsv field separator (None: "," for csv, TAB for tsv)
    quoting: bool | None = None  # csv quoting rules (None: on for csv, off for tsv)
    encoding: str = "utf-8"  # bytes that do not decode are bad rows
    label_names: list[str] | None = None  # id order of the labels (None: sorted train labels)
    name: str | None = None  # dataset name for logs and tables (None: the train file's stem)


@dataclass
class HubDataConfig(DataCommon):
    """A dataset through ``datasets.load_dataset`` (Hugging Face hub, or a local builder)."""

    source: str = "hub"
    # hub id ("fancyzhx/ag_news") or a builder ("csv", "json", "text", "parquet")
    name: str = MISSING
    subset: str | None = None  # the dataset's config name ("wikitext-2-raw-v1")
    revision: str | None = None  # git revision on the hub (None: main)
    data_files: dict[str, Any] = field(
        default_factory=dict
    )  # builder inputs: {split: path or [paths]}
    splits: dict[str, Any] = field(
        default_factory=lambda: {"train": "train", "val": "validation", "test": "test"}
    )  # our split -> the dataset's split; a missing val is carved, null drops a split
    text_column: str = "text"  # the text field
    label_column: str | None = "label"  # the label field (null: unlabelled, e.g. LM corpora)
    label_names: list[str] | None = None  # id order (None: the ClassLabel names, else sorted)
    streaming: bool = False  # read lazily without materialising the whole dataset on disk
    # keep the first N examples per split (with streaming: fetch only N)
    max_examples: int | None = None
    cache_dir: str | None = None  # datasets' own cache (None: HF_DATASETS_CACHE)


# --------------------------------------------------------------------------- tokenizer


@dataclass
class TokenizerConfig:
    kind: TokenizerKind = TokenizerKind.word
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


# --------------------------------------------------------------------------- models


@dataclass
class ModelCommon:
    name: str = MISSING  # registry name of the model (see embedlab.models)


@dataclass
class BagOfEmbeddingsConfig(ModelCommon):
    """fastText-style classifier: reduce the bag of token embeddings, then an MLP head."""

    name: str = "boe"
    hidden_dims: list[int] = field(default_factory=list)  # MLP widths; [] = linear classifier
    activation: str = "relu"  # torch.nn activation for the hidden layers
    dropout: float = 0.5  # dropout on the pooled embedding and hidden layers


@dataclass
class TransformerCommon(ModelCommon):
    # width of the residual stream (a Linear projects the embedding if it differs)
    d_model: int = 64
    nhead: int = 4  # attention heads (must divide d_model)
    num_layers: int = 2  # transformer blocks
    dim_feedforward: int = 256  # hidden width of each block's MLP
    dropout: float = 0.1  # attention, residual and embedding dropout
    activation: Activation = Activation.gelu  # MLP activation
    norm_first: bool = True  # pre-norm (GPT-2) blocks; false: post-norm (original Transformer)
    positional: Positional = Positional.sinusoidal  # sinusoidal | learned | none
    max_positions: int = 512  # longest sequence (learned table size; the CLS slot counts)
    # multiply token vectors by sqrt(d_model) (Vaswani; helps sinusoidal)
    scale_embedding: bool = False


@dataclass
class TransformerConfig(TransformerCommon):
    """Bidirectional encoder classifier over padded, masked batches."""

    name: str = "transformer"
    pooling: Pooling = Pooling.mean  # cls | mean | max


@dataclass
class TransformerLMConfig(TransformerCommon):
    """Causal (GPT-style) language model; use with task=lm."""

    name: str = "transformer_lm"
    # share the input embedding with the output layer (needs dim == d_model)
    tie_weights: bool = True


# --------------------------------------------------------------------------- task


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
class TaskConfig:
    name: str = "classification"  # registry name of the LightningModule task
    monitor: str = "val/acc"  # metric that picks the best checkpoint
    monitor_mode: str = "max"  # max | min
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    generate: GenerateConfig = field(default_factory=GenerateConfig)  # task=lm samples


# --------------------------------------------------------------------------- optimisation


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # adam | adamw | sgd | adagrad | adadelta | rmsprop
    lr: float = 1e-3  # learning rate
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    kwargs: dict[str, Any] = field(default_factory=dict)  # other torch.optim arguments


@dataclass
class SchedulerConfig:
    name: str = "none"  # none | cosine | linear | step | plateau | onecycle
    warmup_steps: int = 0  # linear warmup before the schedule (step-based)
    interval: str = "step"  # step | epoch: when the scheduler steps
    kwargs: dict[str, Any] = field(default_factory=dict)  # the schedule's own arguments


@dataclass
class TrainerConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto | mps
    devices: Any = 1  # int, list of ids or "auto"
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
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
    detect_anomaly: bool = False
    sync_batchnorm: bool = False


@dataclass
class LoggerConfig:
    tensorboard: bool = True  # TensorBoard event files in the run folder
    csv: bool = False  # metrics.csv beside them
    log_hparams: bool = True  # hparams (flattened config) + final metrics for the HPARAMS tab
    log_config_text: bool = True  # the resolved config as text


@dataclass
class CheckpointConfig:
    enabled: bool = True
    save_last: bool = False  # also keep last.ckpt (for resuming)
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
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    embedding_histograms: EmbeddingHistogramsConfig = field(
        default_factory=EmbeddingHistogramsConfig
    )
    lr_monitor: bool = True  # learning rate per step to TensorBoard
    rich_progress: bool = True  # Rich progress bar (else Lightning's tqdm bar)
    throughput: bool = True  # examples/second and wall time into metrics.json


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
    optimized_metric: str = "val/acc_best"  # what train() returns for sweepers
    tags: list[str] = field(default_factory=list)  # free-form labels for the run
    print_config: bool = True  # print the resolved config tree at start
    data: Any = MISSING
    tokenizer: TokenizerConfig = MISSING
    embedding: EmbeddingConfig = MISSING
    pretrained: PretrainedConfig = MISSING
    model: Any = MISSING
    task: TaskConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    callbacks: CallbacksConfig = MISSING
    paths: PathsConfig = MISSING


# Per-choice schemas of the groups whose options differ, keyed by their discriminator.
DATA_SCHEMAS: dict[str, type] = {
    "synthetic": SyntheticDataConfig,
    "synthetic_lm": SyntheticLMConfig,
    "text": TextFilesLMConfig,
    "files": FilesDataConfig,
    "hub": HubDataConfig,
}
MODEL_SCHEMAS: dict[str, type] = {
    "boe": BagOfEmbeddingsConfig,
    "transformer": TransformerConfig,
    "transformer_lm": TransformerLMConfig,
}

_SIMPLE_GROUPS = {
    "tokenizer": TokenizerConfig,
    "embedding": EmbeddingConfig,
    "pretrained": PretrainedConfig,
    "task": TaskConfig,
    "optimizer": OptimizerConfig,
    "scheduler": SchedulerConfig,
    "trainer": TrainerConfig,
    "logger": LoggerConfig,
    "callbacks": CallbacksConfig,
    "paths": PathsConfig,
}


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, node in _SIMPLE_GROUPS.items():
        cs.store(group=f"schema/{group}", name="base", node=node)
    for name, node in DATA_SCHEMAS.items():
        cs.store(group="schema/data", name=name, node=node)
    for name, node in MODEL_SCHEMAS.items():
        cs.store(group="schema/model", name=name, node=node)


register_configs()


# --------------------------------------------------------------------------- validation


def _check_schema(problems: list[str], key: str, node: Any, schema: type) -> None:
    """Merge ``node`` into ``schema`` (struct mode) and record unknown keys / bad types."""
    if not isinstance(node, DictConfig):
        problems.append(f"{key}: expected a mapping, got {node!r}")
        return
    for name in node:
        names = {f.name for f in dataclasses.fields(schema)}
        if name not in names:
            problems.append(f"{key}.{name}: unknown key; valid keys: {sorted(names)}")
    try:
        OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        if "not in" not in str(exc):  # unknown keys were reported above
            msg = str(exc).splitlines()[0]
            problems.append(f"{key}.{getattr(exc, 'key', '')}: {msg}")


def _choice(problems: list[str], key: str, value: Any, choices: list[str]) -> None:
    if value not in choices:
        problems.append(f"{key}: {value!r} is not a valid choice; choose one of {choices}")


def _model_problems(cfg: DictConfig) -> list[str]:
    """Cross-key checks for the transformer models and the task/model/data pairing."""
    from embedlab.models import MODELS

    problems: list[str] = []
    m = cfg.model
    if "nhead" in m and "d_model" in m:
        if m.nhead < 1 or m.d_model < 1 or m.d_model % m.nhead:
            problems.append(
                f"model.d_model: {m.d_model} must be a positive multiple of model.nhead={m.nhead}"
            )
        if m.max_positions < 1:
            problems.append(f"model.max_positions: must be >= 1, got {m.max_positions}")
    if m.get("tie_weights") and cfg.pretrained.source == "none" and cfg.embedding.dim != m.d_model:
        problems.append(
            f"model.tie_weights: needs embedding.dim ({cfg.embedding.dim}) == model.d_model ({m.d_model}); "
            "set them equal or model.tie_weights=false"
        )
    layout = MODELS.get(m.name).layout
    task = cfg.task.name
    lm_data = "block_size" in cfg.data
    if task == "lm" and layout != "causal":
        problems.append(
            f"model.name: task=lm needs a causal language model (model=transformer_lm), got {m.name!r}"
        )
    if task != "lm" and layout == "causal":
        problems.append(f"task.name: model {m.name!r} is a language model; use task=lm")
    if task == "lm" and not lm_data:
        problems.append(
            f"data.source: {cfg.data.source!r} is labelled data; task=lm needs an LM source (synthetic_lm, text)"
        )
    if task == "lm" and lm_data:
        if cfg.data.block_size < 2:
            problems.append(f"data.block_size: must be >= 2, got {cfg.data.block_size}")
        elif "max_positions" in m and cfg.data.block_size > m.max_positions:
            problems.append(
                f"data.block_size: {cfg.data.block_size} exceeds model.max_positions={m.max_positions}"
            )
        chunking = getattr(cfg.data.chunking, "value", cfg.data.chunking)
        if chunking == "sentence" and not (cfg.tokenizer.bos_token and cfg.tokenizer.eos_token):
            problems.append(
                "data.chunking: sentence needs tokenizer.bos_token and tokenizer.eos_token (e.g. <bos>, <eos>)"
            )
    if task != "lm" and lm_data:
        problems.append(f"data.source: {cfg.data.source!r} is unlabelled LM text; use task=lm")
    return problems


def apply_model_defaults(cfg: DictConfig) -> DictConfig:
    """Fill the keys left null (``~``) with the model's defaults (``ModelSpec.defaults``).

    ``tokenizer.ngrams``, ``embedding.sparse`` and ``data.batch_size`` depend on the model:
    bigrams, sparse updates and large batches make a bag of embeddings fast and strong, but
    not a transformer. A value the user set is kept. A defaulted sparse table stays dense
    when the chosen optimizer has no sparse counterpart (e.g. ``optimizer=adadelta``), and
    defaulted n-grams stay off unless the tokens are words whose ids stay put (our own
    word-level tokenizer, ``pretrained.restrict_to_vocab`` true). Returns ``cfg`` (changed
    in place).
    """
    from embedlab.models import MODELS
    from embedlab.training.optim import SPARSE_OPTIMIZERS

    name = cfg.model.get("name")
    if name not in MODELS:
        return cfg  # validate() reports the unknown model
    defaults = dict(MODELS.get(name).defaults)
    if cfg.optimizer.get("name") not in SPARSE_OPTIMIZERS:
        defaults["embedding.sparse"] = False
    kind = cfg.tokenizer.get("kind")
    if (
        str(getattr(kind, "value", kind)) != "word"
        or cfg.pretrained.get("source") == "hf"  # the model's own (subword) tokenizer
        or not cfg.pretrained.get("restrict_to_vocab", True)
    ):
        defaults["tokenizer.ngrams"] = 1
    for key, value in defaults.items():
        if OmegaConf.select(cfg, key, default=0) is None:
            with open_dict(cfg):
                OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def validate(cfg: DictConfig) -> DictConfig:
    """Check the whole composed config; raise one ConfigError listing every problem.

    Runs before any data is read. First fills the model-dependent keys left null
    (:func:`apply_model_defaults`); returns ``cfg`` so it can be chained.
    """
    # Imported here: the registries import torch and friends, the schema does not.
    from embedlab.data.sources import DATA_SOURCES
    from embedlab.embeddings.init import INITIALIZERS
    from embedlab.embeddings.pretrained import PRETRAINED_SOURCES, pretrained_problems
    from embedlab.models import MODELS
    from embedlab.tasks import TASKS
    from embedlab.training.optim import (
        OPTIMIZERS,
        SCHEDULERS,
        optimizer_problems,
        scheduler_problems,
        sparse_optimizer_problems,
    )

    problems: list[str] = []
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in cfg:
        if name not in top:
            problems.append(f"{name}: unknown top-level key; valid keys: {sorted(top)}")
    for name in top:
        if name not in cfg:
            problems.append(f"{name}: missing (is the defaults list of train.yaml complete?)")
    if problems:
        raise ConfigError(problems)
    apply_model_defaults(cfg)

    for group, schema in _SIMPLE_GROUPS.items():
        _check_schema(problems, group, cfg[group], schema)

    source = cfg.data.get("source")
    if source not in DATA_SCHEMAS or source not in DATA_SOURCES:
        problems.append(
            f"data.source: unknown data source {source!r}; choose one of {DATA_SOURCES.names()}"
        )
    else:
        _check_schema(problems, "data", cfg.data, DATA_SCHEMAS[source])
        if cfg.data.batch_size is not None and cfg.data.batch_size < 1:
            problems.append(f"data.batch_size: must be >= 1, got {cfg.data.batch_size}")
        if not 0.0 < cfg.data.val_fraction < 1.0:
            problems.append(f"data.val_fraction: must be in (0, 1), got {cfg.data.val_fraction}")
        if source in ("files", "hub"):
            from embedlab.data.sources import source_problems

            problems.extend(source_problems(cfg.data))

    model = cfg.model.get("name")
    if model not in MODEL_SCHEMAS or model not in MODELS:
        problems.append(f"model.name: unknown model {model!r}; choose one of {MODELS.names()}")
    else:
        _check_schema(problems, "model", cfg.model, MODEL_SCHEMAS[model])
        problems.extend(_model_problems(cfg))

    emb = cfg.embedding
    _choice(problems, "embedding.init", emb.init, INITIALIZERS.names())
    if emb.init in INITIALIZERS:
        problems.extend(INITIALIZERS.check_args(emb.init, emb.init_args))
    if emb.dim is None and cfg.pretrained.source == "none":
        problems.append(
            "embedding.dim: null takes the pretrained vectors' dim; without pretrained vectors set a dim"
        )
    if emb.dim is not None and emb.dim < 1:
        problems.append(f"embedding.dim: must be >= 1, got {emb.dim}")
    if emb.max_norm is not None and emb.max_norm <= 0:
        problems.append(f"embedding.max_norm: must be > 0, got {emb.max_norm}")
    if emb.per_sample_weights and emb.mode != BagMode.sum:
        problems.append("embedding.per_sample_weights: needs embedding.mode=sum (PyTorch's rule)")
    if emb.lr is not None and emb.lr <= 0:
        problems.append(f"embedding.lr: must be > 0, got {emb.lr}")
    if emb.unfreeze_at_epoch is not None:
        if emb.freeze:
            problems.append(
                "embedding.unfreeze_at_epoch: contradicts embedding.freeze=true (frozen for good); set one"
            )
        if emb.unfreeze_at_epoch < 1:
            problems.append(
                f"embedding.unfreeze_at_epoch: must be >= 1 (0 = never frozen), got {emb.unfreeze_at_epoch}"
            )
    if emb.sparse and cfg.trainer.gradient_clip_val:
        problems.append(
            "trainer.gradient_clip_val: gradient clipping does not support the sparse gradients of embedding.sparse=true"
        )

    _choice(problems, "pretrained.source", cfg.pretrained.source, PRETRAINED_SOURCES.names())
    problems.extend(pretrained_problems(cfg.pretrained))
    _choice(problems, "task.name", cfg.task.name, TASKS.names())
    _choice(problems, "task.monitor_mode", cfg.task.monitor_mode, ["max", "min"])
    cb = cfg.callbacks
    if cb.projector.top_n < 1:
        problems.append(f"callbacks.projector.top_n: must be >= 1, got {cb.projector.top_n}")
    if cb.drift.top_k < 0:
        problems.append(f"callbacks.drift.top_k: must be >= 0, got {cb.drift.top_k}")
    if cb.embedding_histograms.every_n_steps < 1:
        problems.append(
            f"callbacks.embedding_histograms.every_n_steps: must be >= 1, got {cb.embedding_histograms.every_n_steps}"
        )

    tok = cfg.tokenizer
    if tok.min_freq < 1:
        problems.append(f"tokenizer.min_freq: must be >= 1, got {tok.min_freq}")
    if tok.max_size is not None and tok.max_size < 3:
        problems.append(
            f"tokenizer.max_size: must be >= 3 (room for the specials), got {tok.max_size}"
        )
    ngrams = tok.ngrams if tok.ngrams is not None else 1  # None: unknown model, reported above
    if not 1 <= ngrams <= 3:
        problems.append(f"tokenizer.ngrams: must be 1, 2 or 3, got {tok.ngrams}")
    if tok.ngram_min_freq < 1:
        problems.append(f"tokenizer.ngram_min_freq: must be >= 1, got {tok.ngram_min_freq}")
    if ngrams > 1 and not cfg.pretrained.restrict_to_vocab:
        problems.append(
            "tokenizer.ngrams: word n-grams need pretrained.restrict_to_vocab=true "
            "(adding pretrained words to the vocabulary would renumber the n-gram ids)"
        )
    if cfg.task.name == "lm" and not cfg.pretrained.restrict_to_vocab:
        problems.append(
            "pretrained.restrict_to_vocab: extending the vocabulary with pretrained words is "
            "supported for task=classification only; keep it true for task=lm"
        )

    _choice(problems, "optimizer.name", cfg.optimizer.name, OPTIMIZERS.names())
    if cfg.optimizer.name in OPTIMIZERS:
        problems.extend(optimizer_problems(cfg.optimizer))
        problems.extend(sparse_optimizer_problems(cfg))
    if cfg.optimizer.lr <= 0:
        problems.append(f"optimizer.lr: must be > 0, got {cfg.optimizer.lr}")
    _choice(problems, "scheduler.name", cfg.scheduler.name, SCHEDULERS.names())
    _choice(problems, "scheduler.interval", cfg.scheduler.interval, ["step", "epoch"])
    if cfg.scheduler.name in SCHEDULERS:
        problems.extend(scheduler_problems(cfg.scheduler))

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
