"""The registries: each choice carries its schema (in Hydra's ConfigStore) and its checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf, open_dict

from embedlab.callbacks import CALLBACKS, CallbackSpec
from embedlab.config import registries, validate
from embedlab.data.sources import DATA_SOURCES
from embedlab.errors import ConfigError
from embedlab.models import MODELS
from embedlab.paths import config_dir
from embedlab.tasks import TASKS

CONFIGS = Path(config_dir())


def test_every_schema_of_a_grouped_registry_is_in_the_config_store():
    repo = ConfigStore.instance().repo["schema"]
    for registry in (DATA_SOURCES, MODELS, TASKS):
        stored = {name.removesuffix(".yaml") for name in repo[registry.group]}
        assert stored == set(registry.names()), registry.kind


@pytest.mark.parametrize(
    "group,registry", [("model", MODELS), ("task", TASKS), ("data", DATA_SOURCES)]
)
def test_plain_choice_yaml_states_the_schema_defaults(group, registry):
    """configs/<group>/<name>.yaml restates the defaults: the YAML and the dataclass cannot drift."""
    for name in registry.names():
        stated = yaml.safe_load((CONFIGS / group / f"{name}.yaml").read_text())
        stated.pop("defaults", None)
        defaults = OmegaConf.to_container(
            OmegaConf.structured(registry.schema(name)), enum_to_str=True
        )
        for key, value in stated.items():
            assert defaults[key] == value, f"configs/{group}/{name}.yaml: {key}"


def test_validate_reports_problems_from_every_registry_at_once(make_cfg):
    cfg = make_cfg(
        "data.val_fraction=1.5",  # data source group check
        "tokenizer.min_freq=0",  # tokenizer registry
        "embedding.dim=0",  # initializer registry's group check
        "optimizer.lr=-1",  # optimizer registry
        "callbacks.drift.top_k=-1",  # callback entry check
    )
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    keys = {p.split(":")[0] for p in info.value.problems}
    assert {
        "data.val_fraction",
        "tokenizer.min_freq",
        "embedding.dim",
        "optimizer.lr",
        "callbacks.drift.top_k",
    } <= keys
    assert len(registries()) == 9


def test_unknown_or_badly_typed_callback_settings_are_config_errors(make_cfg):
    cfg = make_cfg()
    with open_dict(cfg):
        cfg.callbacks.tensorbord = {"enabled": True}
        cfg.callbacks.throughput = "yes"
        cfg.callbacks.projector.top = 3
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    text = str(info.value)
    assert "callbacks.tensorbord: unknown callback" in text
    assert "callbacks.throughput: true or false, got 'yes'" in text
    assert "callbacks.projector.top: unknown key" in text


@dataclass
class _CountArgs:
    enabled: bool = True
    every: int = 1


class _Count(L.Callback):
    def __init__(self, every: int) -> None:
        self.every = every
        self.batches = 0

    def on_train_batch_end(self, *args) -> None:
        self.batches += 1


def test_a_new_callback_is_one_registry_entry(make_cfg, tmp_path):
    """Schema, check and builder in one entry: validate() and train's build find it."""

    def check(cfg):
        every = cfg.callbacks.count.every
        return [] if every >= 1 else [f"callbacks.count.every: must be >= 1, got {every}"]

    CALLBACKS.register("count", _CountArgs, check=check)(
        CallbackSpec(lambda s, cfg, out: _Count(s.every) if s.enabled else None)
    )
    try:
        cfg = make_cfg("+callbacks.count.every=0")
        with pytest.raises(ConfigError, match=r"callbacks\.count\.every: must be >= 1, got 0"):
            validate(cfg)
        cfg = validate(make_cfg("+callbacks.count.every=2"))
        built = CALLBACKS.build(cfg, tmp_path)
        assert built["count"].every == 2
        assert "count" in CALLBACKS.build(validate(make_cfg()), tmp_path)  # schema default: on
        fields = [f.name for f in dataclasses.fields(CALLBACKS.schema("count"))]
        assert fields == ["enabled", "every"]
    finally:
        del CALLBACKS._entries["count"]


def test_lm_data_goes_through_the_tokenized_cache(make_cfg):
    from embedlab.data.lm import LanguageModelDataModule

    cfg = validate(
        make_cfg(
            "experiment=lm_default", "data.num_train=200", "data.num_val=20", "data.num_test=20"
        )
    )
    first = LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    first.setup()
    second = LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    second.setup()
    assert (first.cache_status, second.cache_status) == ("miss", "hit")
    assert second.vocab == first.vocab
    for split in first.datasets:
        assert (first.datasets[split].stream == second.datasets[split].stream).all()
