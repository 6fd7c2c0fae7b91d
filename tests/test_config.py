"""Composition of every config choice, and schema errors that name the key and the choices."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf, open_dict

from embedlab.config import ConfigError, to_flat_dict, validate
from embedlab.paths import config_dir
from embedlab.train import train

CONFIGS = config_dir()
# groups whose files are not selectable choices on their own
NOT_CHOICES = {"hydra"}


def all_choices() -> list[tuple[str, str]]:
    """(group, choice) for every YAML below configs/, found recursively."""
    found = []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        rel = path.relative_to(CONFIGS)
        if len(rel.parts) < 2 or rel.parts[0] in NOT_CHOICES:
            continue
        found.append(("/".join(rel.parts[:-1]), rel.stem))
    return found


def test_the_choice_list_is_complete():
    groups = {g for g, _ in all_choices()}
    required = {
        "data",
        "tokenizer",
        "embedding",
        "model",
        "optimizer",
        "scheduler",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "debug",
        "experiment",
    }
    assert required <= groups


def test_every_registered_choice_has_its_yaml():
    """The registries (Python) and the config groups (YAML) list the same choices."""
    from embedlab.config import registries

    choices = set(all_choices())
    checked = []
    for registry in registries():
        group, _, leaf = registry.key.partition(".")
        if not leaf:  # callbacks: settings under callbacks.<name>, not files of a group
            continue
        missing = {name for name in registry.names() if (group, name) not in choices}
        assert not missing, f"{registry.key}: registered but no configs/{group}/<name>.yaml"
        # and every file of the group selects a registered choice
        for path in (CONFIGS / group).glob("*.yaml"):
            value = OmegaConf.load(path).get(leaf)
            assert value is None or value in registry.names(), (path, value)
        checked.append(group)
    assert (
        len(checked) == 8
    )  # data, tokenizer, embedding, pretrained, model, task, optimizer, scheduler


# choices with a required key the user must give on the command line
LM = ["task=lm", "model=transformer_lm"]
REQUIRED = {
    ("data", "files"): ["data.train=train.csv"],
    ("data", "hub"): ["data.name=imdb"],
    ("data", "ptb"): LM,
    ("data", "text"): LM,
    ("data", "synthetic_lm"): LM,
    ("task", "lm"): ["data=synthetic_lm", "model=transformer_lm"],
    ("model", "transformer_lm"): ["data=synthetic_lm", "task=lm"],
    ("model", "lstm_lm"): ["data=synthetic_lm", "task=lm"],
    ("embedding", "pretrained"): ["pretrained=glove"],
    ("pretrained", "file"): ["pretrained.path=vectors.txt"],
    ("task", "word2vec"): ["model=skipgram"],
    ("model", "skipgram"): ["task=word2vec"],
    ("model", "cbow"): ["task=word2vec"],
}


@pytest.mark.parametrize(("group", "choice"), all_choices(), ids=lambda x: str(x))
def test_every_choice_composes_and_validates(make_cfg, group, choice):
    cfg = make_cfg(f"{group}={choice}", *REQUIRED.get((group, choice), []), tiny=False)
    needs = OmegaConf.select(cfg, "data.source")
    assert needs is not None
    validate(cfg)


def test_trainer_choices_set_the_accelerator(make_cfg):
    assert make_cfg("trainer=cpu").trainer.accelerator == "cpu"
    gpu = make_cfg("trainer=gpu").trainer
    assert (gpu.accelerator, gpu.precision) == ("gpu", "bf16-mixed")
    assert make_cfg("trainer=ddp").trainer.strategy == "ddp"


def test_debug_switches(make_cfg):
    assert make_cfg("debug=fdr", tiny=False).trainer.fast_dev_run is True
    assert make_cfg("debug=overfit", tiny=False).trainer.overfit_batches == 3
    limit = make_cfg("debug=limit", tiny=False).trainer
    assert (limit.limit_train_batches, limit.max_epochs) == (5, 3)
    assert isinstance(limit.limit_train_batches, int)  # a batch count, not a fraction


def test_unknown_key_fails_at_composition(make_cfg):
    with pytest.raises(ConfigCompositionException, match=r"data\.nope"):
        make_cfg("data.nope=1")


def test_added_unknown_key_names_the_key_and_the_valid_keys(make_cfg):
    cfg = make_cfg("+data.batchsize=32")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert "data.batchsize: unknown key" in message
    assert "batch_size" in message  # the valid keys are listed


def test_bad_group_choice_lists_the_options(make_cfg):
    with pytest.raises(MissingConfigException) as info:
        make_cfg("embedding=gaussian")
    assert "xavier_uniform" in str(info.value)


def test_bad_enum_value_names_the_choices(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("embedding.mode=avg")
    assert "embedding.mode" in str(info.value.__cause__) or "embedding.mode" in str(info.value)
    assert "mean" in str(info.value.__cause__)


def test_bad_type_names_the_key(make_cfg):
    with pytest.raises(ConfigCompositionException) as info:
        make_cfg("data.batch_size=many")
    assert "data.batch_size" in str(info.value)


def test_registry_choices_and_args_are_validated_together(make_cfg):
    cfg = make_cfg(
        "embedding=normal",
        "optimizer.name=adamx",
        "+embedding.init_args.sigma=2",
        "data.batch_size=0",
    )
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    problems = info.value.problems
    assert any(p.startswith("optimizer.name") and "adamw" in p for p in problems)
    assert any(p.startswith("embedding.init_args.sigma") and "std" in p for p in problems)
    assert any(p.startswith("data.batch_size") for p in problems)


def test_optimizer_kwargs_are_checked_against_torch(make_cfg):
    cfg = make_cfg("optimizer=sgd", "+optimizer.kwargs.momentun=0.9")
    with pytest.raises(ConfigError, match=r"optimizer.kwargs.momentun.*momentum"):
        validate(cfg)


def test_train_fails_before_touching_data(make_cfg, tmp_path: Path):
    cfg = make_cfg("optimizer.name=adamx")
    with pytest.raises(ConfigError):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing was written, no data generated


def test_flat_dict_has_scalar_values(make_cfg):
    cfg = make_cfg()
    with open_dict(cfg):
        cfg.paths.output_dir = "x"
    flat = to_flat_dict(cfg)
    assert flat["embedding.init_args.b"] == 0.1  # the default: embedding=uniform
    assert flat["model.hidden_dims"] == "[]"
    assert flat["embedding.mode"] == "mean"
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())


@pytest.mark.parametrize(
    "recipe", sorted(p.stem for p in (CONFIGS / "experiment").glob("boe_*.yaml"))
)
def test_a_sets_default_run_is_its_tuned_bag_recipe(make_cfg, recipe):
    """``embedlab-train data=<set>`` with no other override trains what ``experiment=boe_<set>``
    trains (issue 9's strong defaults): the composed, validated configs differ only in the run's
    name and tags."""
    data = recipe.removeprefix("boe_")
    default = OmegaConf.to_container(validate(make_cfg(f"data={data}", tiny=False)))
    tuned = OmegaConf.to_container(validate(make_cfg(f"experiment={recipe}", tiny=False)))
    assert tuned.pop("task_name") == recipe and default.pop("task_name") == "train"
    assert data in tuned.pop("tags") and default.pop("tags") == []
    assert default == tuned
