"""Models: plain ``nn.Module``s that know nothing of Lightning, Hydra or files.

``MODELS`` maps ``model.name`` to a :class:`ModelSpec` (how to build the model from its
config, a built embedding layer and the number of outputs; which batch layout it eats: "bag"
(flat ids + offsets), "padded" ((B, T) ids + mask) or "causal" ((B, T) ids + next-token
targets, for ``task=lm``); what a null in the model-dependent keys means), registered with
the dataclass of its ``model`` node (``schema/model/<name>`` for its YAML file) and its checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING
from torch import nn

from embedlab.models.bag_of_embeddings import BagOfEmbeddings
from embedlab.models.cnn import SentenceCNN
from embedlab.models.lstm import LSTMLM, cutoff_problems
from embedlab.models.transformer import TransformerClassifier, TransformerEncoder, TransformerLM
from embedlab.models.word2vec import CBOW, SkipGram
from embedlab.registry import Registry


class Activation(StrEnum):
    relu = "relu"
    gelu = "gelu"
    silu = "silu"
    tanh = "tanh"


class Positional(StrEnum):
    sinusoidal = "sinusoidal"  # fixed sin/cos (Vaswani et al.)
    learned = "learned"  # one trained vector per position (GPT-2)
    none = "none"  # no positions (a bag of tokens with attention)


class Pooling(StrEnum):
    cls = "cls"  # a learned vector prepended at position 0; its output is pooled
    mean = "mean"  # mean over real tokens
    max = "max"  # max over real tokens


@dataclass
class ModelCommon:
    name: str = MISSING  # registry name of the model (MODELS)


@dataclass
class BagOfEmbeddingsConfig(ModelCommon):
    """fastText-style classifier: reduce the bag of token embeddings, then an MLP head."""

    name: str = "boe"
    hidden_dims: list[int] = field(default_factory=list)  # MLP widths; [] = linear classifier
    activation: Activation = Activation.relu  # activation of the hidden layers
    dropout: float = 0.5  # dropout on the pooled embedding and hidden layers


@dataclass
class TransformerCommon(ModelCommon):
    # width of the residual stream (a Linear projects the embedding if it differs)
    d_model: int = 64
    nhead: int = 4  # attention heads (must divide d_model)
    num_layers: int = 2  # transformer blocks
    dim_feedforward: int = 128  # hidden width of each block's MLP
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
    dim_feedforward: int = 256  # wider blocks than the classifier's (4 x d_model, GPT-2)
    # share the input embedding with the output layer (needs dim == d_model)
    tie_weights: bool = True


class Softmax(StrEnum):
    full = "full"  # nn.Linear over the whole vocabulary (can be tied to the embedding)
    adaptive = "adaptive"  # nn.AdaptiveLogSoftmaxWithLoss: frequent-word head + tail clusters


@dataclass
class LSTMLMConfig(ModelCommon):
    """LSTM language model (Zaremba et al. 2014); use with task=lm, data.chunking=rows."""

    name: str = "lstm_lm"
    hidden_size: int = 200  # units per LSTM layer
    num_layers: int = 2  # stacked LSTM layers
    dropout_embedding: float = 0.2  # on the looked-up token vectors
    dropout_hidden: float = 0.2  # between LSTM layers
    dropout_output: float = 0.2  # on the top layer's outputs, before the softmax
    variational: bool = False  # one dropout mask per sequence shared over time (Gal 2016)
    # share the input embedding with the output layer (needs embedding.dim == hidden_size)
    tie_weights: bool = False
    softmax: Softmax = Softmax.full  # full | adaptive
    # adaptive: increasing token ranks (< vocabulary size) where the head and clusters end
    cutoffs: list[int] = field(default_factory=lambda: [2000, 6000])
    div_value: float = 4.0  # adaptive: each cluster's projection is this much narrower


@dataclass
class CNNConfig(ModelCommon):
    """Kim (2014)'s sentence CNN over padded, masked batches (models/cnn.py)."""

    name: str = "cnn"
    filter_widths: list[int] = field(default_factory=lambda: [3, 4, 5])  # window sizes, in tokens
    num_filters: int = 100  # feature maps per width
    activation: Activation = Activation.relu  # after each convolution, before the max over time
    dropout: float = 0.5  # on the pooled features, before the output layer
    # L2 cap on each output-layer weight row (one per class), restored after every optimizer
    # step (Kim's s = 3); null: no cap. Not embedding.max_norm, which caps looked-up rows.
    max_norm: float | None = 3.0


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[Any, nn.Module, int], nn.Module]  # (model_cfg, embedding, num_outputs)
    layout: str  # "bag" (flat ids + offsets), "padded" ((B, T) ids + mask) or "causal" (LM)
    bag_embedding: bool  # whether the factory builds nn.EmbeddingBag (else nn.Embedding)
    # what a null (``~``) in these keys means for this model, e.g. {"tokenizer.ngrams": 2}
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def sequence(self) -> bool:
        """Whether the model reads (B, T) token sequences (and so takes embedding.channels=2)."""
        return self.layout in ("padded", "causal")


MODELS: Registry[ModelSpec] = Registry("model", "model.name", node="model", group="model")


def _transformer_problems(cfg: Any) -> list[str]:
    m = cfg.model
    problems = []
    if m.nhead < 1 or m.d_model < 1 or m.d_model % m.nhead:
        problems.append(
            f"model.d_model: {m.d_model} must be a positive multiple of model.nhead={m.nhead}"
        )
    if m.max_positions < 1:
        problems.append(f"model.max_positions: must be >= 1, got {m.max_positions}")
    return problems


def _transformer_lm_problems(cfg: Any) -> list[str]:
    m = cfg.model
    problems = _transformer_problems(cfg)
    if m.tie_weights and cfg.embedding.channels == 2:
        problems.append(
            "model.tie_weights: ties the output layer to one table and embedding.channels=2 has "
            "two; set model.tie_weights=false"
        )
    if m.tie_weights and cfg.pretrained.source == "none" and cfg.embedding.dim != m.d_model:
        problems.append(
            f"model.tie_weights: needs embedding.dim ({cfg.embedding.dim}) == model.d_model ({m.d_model}); "
            "set them equal or model.tie_weights=false"
        )
    return problems


def _build_boe(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return BagOfEmbeddings(
        embedding,
        num_outputs,
        hidden_dims=list(cfg.hidden_dims),
        activation=cfg.activation,
        dropout=cfg.dropout,
    )


# fastText's recipe: word bigrams and sparse updates of the rows a batch touches; batches of
# 256 texts keep the per-step overhead small (as accurate as 64 on the shared sets' val splits),
# 64 of them a Lightning step make one step an epoch of every shared set (the same updates; MPQA
# trains 1.75-1.87M word tokens/s against 1.33-1.56M with 32, three alternating pairs);
# stopping 2 epochs after the best val accuracy trains 3-6 of the 8 epochs on 6 of the 7 shared
# sets with the same val accuracy (78.89 vs 78.90 mean over the 7 sets x 3 seeds); the next
# step's batches gathered in a thread during this one (cached 1M texts: training 7.7-8.1 ->
# 7.4-7.5 s, the same run)
MODELS.register("boe", BagOfEmbeddingsConfig)(
    ModelSpec(
        _build_boe,
        layout="bag",
        bag_embedding=True,
        defaults={
            "tokenizer.ngrams": 2,
            "embedding.sparse": True,
            "data.batch_size": 256,
            "data.batches_per_step": 64,
            "data.prefetch": True,
            "callbacks.early_stopping.enabled": True,
            "callbacks.early_stopping.patience": 2,
        },
    )
)
_SEQUENCE_DEFAULTS = {"tokenizer.ngrams": 1, "embedding.sparse": False, "data.batch_size": 64}


def _encoder(cfg: Any, embedding: nn.Module) -> TransformerEncoder:
    return TransformerEncoder(
        embedding,
        d_model=cfg.d_model,
        nhead=cfg.nhead,
        num_layers=cfg.num_layers,
        dim_feedforward=cfg.dim_feedforward,
        dropout=cfg.dropout,
        activation=cfg.activation,
        norm_first=cfg.norm_first,
        positional=cfg.positional,
        max_positions=cfg.max_positions,
        scale_embedding=cfg.scale_embedding,
    )


def _build_transformer(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return TransformerClassifier(
        _encoder(cfg, embedding), num_outputs, pooling=cfg.pooling, dropout=cfg.dropout
    )


def _build_transformer_lm(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    # num_outputs is the vocabulary size; the LM head reads it from the embedding
    return TransformerLM(_encoder(cfg, embedding), tie_weights=cfg.tie_weights)


MODELS.register("transformer", TransformerConfig, check=_transformer_problems)(
    ModelSpec(_build_transformer, "padded", bag_embedding=False, defaults=_SEQUENCE_DEFAULTS)
)
MODELS.register("transformer_lm", TransformerLMConfig, check=_transformer_lm_problems)(
    # 8 batches a Lightning step: Lightning's fixed cost per step was 12% of a training second
    # (experiment=lm_default, scripts/bench_lightning_overhead.py); rows of a recurrent
    # state or streaming keep 1 (config.one_batch_per_step)
    ModelSpec(
        _build_transformer_lm,
        "causal",
        bag_embedding=False,
        defaults={**_SEQUENCE_DEFAULTS, "data.batches_per_step": 8},
    )
)


# --------------------------------------------------------------------------- LSTM LM


def _lstm_lm_problems(cfg: Any) -> list[str]:
    m = cfg.model
    problems = []
    if m.hidden_size < 1 or m.num_layers < 1:
        problems.append(
            f"model.hidden_size: {m.hidden_size} and model.num_layers: {m.num_layers} must be >= 1"
        )
    for key in ("dropout_embedding", "dropout_hidden", "dropout_output"):
        if not 0 <= m[key] < 1:
            problems.append(f"model.{key}: must be in [0, 1), got {m[key]}")
    if m.softmax == Softmax.adaptive:
        problems += cutoff_problems(list(m.cutoffs))
        if m.tie_weights:
            problems.append(
                "model.tie_weights: the adaptive softmax has no full output matrix to tie; "
                "set model.tie_weights=false or model.softmax=full"
            )
    if m.tie_weights and cfg.embedding.channels == 2:
        problems.append(
            "model.tie_weights: ties the output layer to one table and embedding.channels=2 has "
            "two; set model.tie_weights=false"
        )
    if m.tie_weights and cfg.pretrained.source == "none" and cfg.embedding.dim != m.hidden_size:
        problems.append(
            f"model.tie_weights: needs embedding.dim ({cfg.embedding.dim}) == model.hidden_size "
            f"({m.hidden_size}); set them equal or model.tie_weights=false"
        )
    return problems


def _build_lstm_lm(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return LSTMLM(
        embedding,
        num_outputs,  # the vocabulary size
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        dropout_embedding=cfg.dropout_embedding,
        dropout_hidden=cfg.dropout_hidden,
        dropout_output=cfg.dropout_output,
        variational=cfg.variational,
        tie_weights=cfg.tie_weights,
        softmax=cfg.softmax,
        cutoffs=list(cfg.cutoffs),
        div_value=cfg.div_value,
    )


# Zaremba et al.'s batches: 20 contiguous rows of the stream, 35 tokens per step
MODELS.register("lstm_lm", LSTMLMConfig, check=_lstm_lm_problems)(
    ModelSpec(
        _build_lstm_lm,
        "causal",
        bag_embedding=False,
        defaults={**_SEQUENCE_DEFAULTS, "data.batch_size": 20},
    )
)


# --------------------------------------------------------------------------- Kim's CNN


def _cnn_problems(cfg: Any) -> list[str]:
    m = cfg.model
    problems = []
    if not m.filter_widths or min(m.filter_widths) < 1:
        problems.append(
            f"model.filter_widths: a non-empty list of widths >= 1, got {list(m.filter_widths)}"
        )
    if m.num_filters < 1:
        problems.append(f"model.num_filters: must be >= 1, got {m.num_filters}")
    if not 0 <= m.dropout < 1:
        problems.append(f"model.dropout: must be in [0, 1), got {m.dropout}")
    if m.max_norm is not None and m.max_norm <= 0:
        problems.append(f"model.max_norm: must be > 0 (null: no cap), got {m.max_norm}")
    return problems


def _build_cnn(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return SentenceCNN(
        embedding,
        num_outputs,
        filter_widths=list(cfg.filter_widths),
        num_filters=cfg.num_filters,
        activation=cfg.activation,
        dropout=cfg.dropout,
        max_norm=cfg.max_norm,
    )


# Kim's mini-batches of 50 sentences; words only, dense table (Adadelta has no sparse form)
MODELS.register("cnn", CNNConfig, check=_cnn_problems)(
    ModelSpec(
        _build_cnn,
        "padded",
        bag_embedding=False,
        defaults={**_SEQUENCE_DEFAULTS, "data.batch_size": 50},
    )
)


# --------------------------------------------------------------------------- word2vec


@dataclass
class SkipGramConfig(ModelCommon):
    """word2vec skip-gram with negative sampling (task=word2vec); the recipe is in ``task``."""

    name: str = "skipgram"


@dataclass
class CBOWConfig(ModelCommon):
    """word2vec CBOW: the bag of context words (``embedding.mode``, mean) predicts the centre."""

    name: str = "cbow"


def _word2vec_model_problems(cfg: Any) -> list[str]:
    if cfg.task.name != "word2vec":
        return [f"model.name: {cfg.model.name!r} trains word vectors; use task=word2vec"]
    return []


_WORD2VEC_DEFAULTS = {"tokenizer.ngrams": 1, "embedding.sparse": True, "data.batch_size": 256}
for _name, _schema, _cls, _bag in (
    ("skipgram", SkipGramConfig, SkipGram, False),  # one input row per (centre, context) pair
    ("cbow", CBOWConfig, CBOW, True),  # the context words' bag predicts the centre
):
    MODELS.register(_name, _schema, check=_word2vec_model_problems)(
        ModelSpec(
            lambda cfg, emb, n, cls=_cls: cls(emb),
            "word2vec",
            bag_embedding=_bag,
            defaults=_WORD2VEC_DEFAULTS,
        )
    )


__all__ = [
    "CBOW",
    "LSTMLM",
    "MODELS",
    "BagOfEmbeddings",
    "ModelSpec",
    "SentenceCNN",
    "SkipGram",
    "TransformerClassifier",
    "TransformerEncoder",
    "TransformerLM",
]
