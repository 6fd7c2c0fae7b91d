"""Structured configs of the sweeper (``hydra/sweeper=embedlab_optuna``), its samplers
(``hydra/sweeper/sampler=tpe|random``) and pruners (``hydra/sweeper/pruner=median|hyperband|none``).

Only Hydra and OmegaConf are imported here: Hydra imports this module on every start. No
``from __future__ import annotations``: Hydra's plugin scan runs this module before it is in
``sys.modules``, where dataclasses look string annotations up.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "embedlab_optuna_sweeper"


@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: int | None = None  # a resumed study adds its trial count (no repeated suggestions)


@dataclass
class TPESamplerConfig(SamplerConfig):
    """optuna.samplers.TPESampler."""

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10  # random trials before the model is used
    n_ei_candidates: int = 24
    multivariate: bool = False
    # parallel trials (n_jobs > 1): score the running ones as bad so a batch spreads out
    constant_liar: bool = False


@dataclass
class RandomSamplerConfig(SamplerConfig):
    """optuna.samplers.RandomSampler."""

    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """optuna.pruners.MedianPruner: stop a trial whose best value so far is worse than the
    median of the finished trials' values at the same epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # no pruning until this many trials have completed
    n_warmup_steps: int = 1  # nor before this epoch of a trial (0-based; steps are epochs)
    interval_steps: int = 1  # check every this many epochs
    n_min_trials: int = 1  # completed trials that reported at this epoch, at least


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    """optuna.pruners.HyperbandPruner (successive halving over brackets; steps are epochs)."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # int epochs, or "auto" (the first finished trial's epochs)
    reduction_factor: int = 3


@dataclass
class NopPrunerConfig(PrunerConfig):
    """No pruning: the trials get no pruning callback at all."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class EmbedlabOptunaSweeperConf:
    _target_: str = "hydra_plugins.embedlab_optuna_sweeper.optuna_sweeper.EmbedlabOptunaSweeper"
    # the sweeper instantiates sampler and pruner itself (the pruner's config also goes into
    # the study, for the trial processes)
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    sampler: SamplerConfig = MISSING
    pruner: PrunerConfig = MISSING
    direction: str = "minimize"  # minimize | maximize (what the task function returns)
    study_name: str = "study"  # one storage may hold many studies
    # persistent study: a rerun with the same storage and study name resumes it; null: in memory
    # (no resume, no pruning). sqlite paths are made absolute for the trial processes.
    storage: str | None = "sqlite:///${hydra.sweep.dir}/optuna.db"
    n_trials: int = 20  # finished trials the study should hold (a resumed study runs the rest)
    n_jobs: int = 1  # trials asked and launched together (in parallel with launcher=joblib)
    # stop launching when this fraction of the trials run by this sweep failed (1.0: never)
    max_failure_rate: float = 1.0
    # search space in Hydra's override grammar: interval(a, b), tag(log, interval(a, b)),
    # choice(a, b), range(a, b, step); a plain value is passed to every trial
    params: dict[str, str] | None = None


_STORE = ConfigStore.instance()
_STORE.store(
    group="hydra/sweeper", name="embedlab_optuna", node=EmbedlabOptunaSweeperConf, provider=PROVIDER
)
for _name, _node in (("tpe", TPESamplerConfig), ("random", RandomSamplerConfig)):
    _STORE.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider=PROVIDER)
for _name, _node in (
    ("median", MedianPrunerConfig),
    ("hyperband", HyperbandPrunerConfig),
    ("none", NopPrunerConfig),
):
    _STORE.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider=PROVIDER)
