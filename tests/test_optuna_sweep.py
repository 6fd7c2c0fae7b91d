"""``sweep=optuna`` at scale, through the real ``embedlab-train -m`` CLI on tiny data: a study in
sqlite that resumes after the sweep is killed, trials pruned from their validation curves (in
this process and in joblib workers), a sweep whose trials all fail, and bad sweeper settings.

What the tests read is the study's storage (trial states, user attributes, intermediate values)
and the sweep folder, never timings."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import embedlab
from embedlab.sweep import OPTUNA_INTERRUPTED_ATTR, OPTUNA_PRUNED_ATTR, OPTUNA_RETRY_ATTR
from tests.conftest import QUIET

SRC = Path(embedlab.__file__).resolve().parents[1]
STUDY = "optuna"  # task_name of configs/sweep/optuna.yaml
TINY = ["data.num_train=600", "data.num_val=100", "data.num_test=100", "callbacks=none"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _cmd(sweep: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "embedlab.train",
        "-m",
        "sweep=optuna",
        *TINY,
        *args,
        *QUIET,
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={sweep.parent}",
    ]


def _env(full_error: bool = True) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "EMBEDLAB_NUM_THREADS": "1"}
    env.pop("EMBEDLAB_SWEPT_KEYS", None)
    env.pop("HYDRA_FULL_ERROR", None)
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return env


def run(sweep: Path, *args: str, full_error: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cmd(sweep, *args),
        env=_env(full_error),
        cwd=sweep.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


def storage_url(sweep: Path) -> str:
    return f"sqlite:///{sweep / 'optuna.db'}"


def trials(sweep: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=storage_url(sweep)).trials


def _states_read_only(db: Path) -> list[tuple[int, str]]:
    """``[(trial number, state), ...]`` straight from the sqlite file, read-only (Optuna would
    create the tables while the sweep is creating them)."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return list(con.execute("SELECT number, state FROM trials ORDER BY number"))
    except sqlite3.Error:  # not created yet, or locked for a moment
        return []


def job_folders(sweep: Path, number: int) -> list[Path]:
    if not sweep.is_dir():
        return []
    return [p for p in sweep.iterdir() if p.is_dir() and p.name.split("_", 1)[0] == str(number)]


def test_killed_study_resumes_with_the_remaining_trials(tmp_path: Path):
    """Kill the sweep while a trial runs; the same command then keeps the finished trials,
    fails the interrupted one, retries its parameters and runs only what n_trials still needs;
    a third run has nothing left to do."""
    sweep = tmp_path / "study"
    args = ["hydra.sweeper.n_trials=4", "trainer.max_epochs=1"]
    proc = subprocess.Popen(
        _cmd(sweep, *args),
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # wait for a finished trial and a running one, then kill the sweep (no cleanup runs)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            states = dict(_states_read_only(sweep / "optuna.db"))
            started = [  # a running trial whose job has begun (its parameters are stored)
                n
                for n, state in states.items()
                if state == "RUNNING"
                and any((f / ".hydra" / "overrides.yaml").is_file() for f in job_folders(sweep, n))
            ]
            if "COMPLETE" in states.values() and started:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read()}"
        proc.kill()
    finally:
        proc.kill()
        proc.wait(timeout=60)

    before = trials(sweep)
    complete = {t.number: t for t in before if t.state == TrialState.COMPLETE}
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert complete and running
    metrics_before = {
        n: (job_folders(sweep, n)[0] / "metrics.json").stat().st_mtime_ns for n in complete
    }

    resumed = run(sweep, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = trials(sweep)
    by_number = {t.number: t for t in after}
    for n, t in complete.items():  # finished trials kept as they were, not run again
        assert by_number[n].state == TrialState.COMPLETE
        assert by_number[n].params == t.params and by_number[n].value == t.value
        (folder,) = job_folders(sweep, n)
        assert (folder / "metrics.json").stat().st_mtime_ns == metrics_before[n]
    assert any(t.params for t in running)  # the job of one had started (waited for above)
    for t in running:  # interrupted: FAIL, marked, and its parameters tried again
        assert by_number[t.number].state == TrialState.FAIL
        assert by_number[t.number].user_attrs[OPTUNA_INTERRUPTED_ATTR] is True
        (retry,) = [r for r in after if r.user_attrs.get(OPTUNA_RETRY_ATTR) == t.number]
        assert retry.state == TrialState.COMPLETE
        if t.params:  # (a trial killed inside ask() has none: its retry samples afresh)
            assert retry.params == t.params
        assert not [f for f in job_folders(sweep, t.number) if (f / "metrics.json").exists()]
    counted = [t for t in after if not t.user_attrs.get(OPTUNA_INTERRUPTED_ATTR)]
    assert len(counted) == 4 and all(t.state == TrialState.COMPLETE for t in counted)
    for t in counted:  # one job folder per trial, named by the trial number
        (folder,) = job_folders(sweep, t.number)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["val/acc_best"] == pytest.approx(t.value)
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(t.value for t in counted))
    assert results["trials"] == {"complete": 4, "pruned": 0, "fail": len(running)}
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["succeeded"]) == 4 and not summary["failed"]
    assert len(summary["unfinished"]) == sum(bool(job_folders(sweep, t.number)) for t in running)

    again = run(sweep, *args)  # the study is complete: nothing runs
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 of 4 trials finished; 0 to run" in again.stdout
    assert len(trials(sweep)) == len(after)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_trials_worse_than_the_median_are_pruned(tmp_path: Path, launcher: str):
    """A completed trial whose curve no real trial can reach (2.0 at every epoch, for an
    accuracy) is in the study first; the median pruner stops every new trial after its first
    epoch, and the sweeper records them PRUNED. Under joblib the trials report from worker
    processes, two at a time."""
    sweep = tmp_path / "study"
    sweep.mkdir()
    study = optuna.create_study(study_name=STUDY, storage=storage_url(sweep), direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(value=2.0, intermediate_values={0: 2.0, 1: 2.0, 2: 2.0})
    )
    extra = ["launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = run(
        sweep,
        *extra,
        "hydra.sweeper.n_trials=3",  # the seeded trial counts: 2 more run
        "hydra.sweeper.pruner.n_startup_trials=1",
        "hydra.sweeper.pruner.n_warmup_steps=0",
        "trainer.max_epochs=3",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = [t.state for t in trials(sweep)]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    for t in trials(sweep)[1:]:
        assert list(t.intermediate_values) == [0]  # reported once, then stopped
        assert t.user_attrs[OPTUNA_PRUNED_ATTR] == 0
        (folder,) = job_folders(sweep, t.number)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["pruned_at_epoch"] == 0 and metrics["epochs"] == 1  # of 3
        assert t.value == pytest.approx(metrics["val/acc_best"])  # the last reported value
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(summary["pruned"]) == 2 and not summary["failed"]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["trials"] == {"complete": 1, "pruned": 2, "fail": 0}
    assert results["best_trial"] == 0

    from embedlab.report import build_report

    labels = [r.label for r in build_report(sweep, plots=False).runs]
    assert len(labels) == 2 and all(label.startswith("embedding=") for label in labels)
    assert not [label for label in labels if "optuna_pruning" in label]  # plumbing, not a param


def test_sweep_whose_trials_all_fail_ends_with_one_line(tmp_path: Path):
    sweep = tmp_path / "study"
    proc = run(sweep, "hydra.sweeper.n_trials=2", "trainer.max_epochs=0", full_error=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("embedlab-train: all 2 jobs failed")
    assert "trainer.max_epochs" in last and f"{sweep}/*/failed.json" in last
    assert "Traceback" not in proc.stderr + proc.stdout
    assert [t.state for t in trials(sweep)] == [TrialState.FAIL, TrialState.FAIL]
    assert len(list(sweep.glob("*/failed.json"))) == 2
    assert not (sweep / "optimization_results.yaml").exists()  # no best parameters to write


def test_bad_sweeper_setting_is_one_line_and_exit_2(tmp_path: Path):
    sweep = tmp_path / "study"
    proc = run(sweep, "hydra.sweeper.n_trials=0", full_error=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "embedlab-train: hydra.sweeper.n_trials: must be >= 1, got 0"
    assert not sweep.exists()  # checked before the study is opened


def _sweeper(*overrides: str):
    """The sweeper ``sweep=optuna`` configures, built in this process (no trial is run)."""
    from omegaconf import OmegaConf

    from hydra_plugins.embedlab_optuna_sweeper._impl import OptunaSweeperImpl
    from tests.test_sweep_configs import compose_with_hydra

    node = compose_with_hydra("sweep=optuna", *overrides).hydra.sweeper
    settings = OmegaConf.to_container(node, resolve=True)
    settings = {k: v for k, v in settings.items() if not k.startswith("_")}
    settings["sampler"] = OmegaConf.create(settings["sampler"])
    settings["pruner"] = OmegaConf.create(settings["pruner"])
    settings["params"] = OmegaConf.create(settings["params"])
    return OptunaSweeperImpl(**settings)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials: must be >= 1, got 0"),
        (
            ["hydra.sweeper.pruner.n_warmup_steps=-1"],
            "hydra.sweeper.pruner.n_warmup_steps: must be >= 0, got -1",
        ),
        (
            ["hydra/sweeper/pruner=hyperband", "hydra.sweeper.pruner.reduction_factor=1"],
            "hydra.sweeper.pruner.reduction_factor: must be >= 2, got 1",
        ),
        (["hydra.sweeper.direction=sideways"], "hydra.sweeper.direction: one of"),
        (["hydra.sweeper.max_failure_rate=2"], "hydra.sweeper.max_failure_rate: must be in"),
        (
            ["hydra.sweeper.pruner._target_=os.remove"],
            "hydra.sweeper.pruner._target_: must name a class in optuna.pruners",
        ),
    ],
)
def test_sweeper_setting_problems_name_the_key(overrides: list[str], message: str):
    (problem,) = _sweeper("hydra.sweep.dir=/unused", *overrides)._problems()
    assert problem.startswith(message)


def test_search_space_from_the_override_grammar():
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from hydra_plugins.embedlab_optuna_sweeper._impl import SweeperConfigError, search_space

    params = {
        "optimizer.lr": "tag(log, interval(1e-4, 3e-2))",
        "embedding.dim": "choice(32, 64)",
        "seed": "range(1, 4)",
        "model": "boe",
    }
    space, fixed = search_space(params, ["data.num_train=600", "optimizer.weight_decay=0,0.1"])
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 3e-2, log=True),
        "embedding.dim": CategoricalDistribution([32, 64]),
        "seed": IntDistribution(1, 4, step=1),
        "optimizer.weight_decay": CategoricalDistribution([0, 0.1]),
    }
    assert fixed == ["model=boe", "data.num_train=600"]
    space, _ = search_space(params, ["seed=7"])  # a plain value on the command line wins
    assert "seed" not in space
    with pytest.raises(SweeperConfigError, match=r"^hydra.sweeper.params.seed: cannot parse"):
        search_space({"seed": "choice(1,"}, [])
    with pytest.raises(SweeperConfigError, match=r"^hydra.sweeper.params.lr: `low <= high`"):
        search_space({"lr": "interval(5, 1)"}, [])


def test_storage_and_direction_problems(tmp_path: Path):
    from hydra_plugins.embedlab_optuna_sweeper._impl import SweeperConfigError

    with pytest.raises(SweeperConfigError, match=r"^hydra.sweeper.storage: cannot open study"):
        _sweeper("hydra.sweeper.storage=nosuchdb://x")._open_study()
    url = storage_url(tmp_path)
    optuna.create_study(study_name=STUDY, storage=url, direction="maximize")
    with pytest.raises(
        SweeperConfigError,
        match=r"was created to maximize, not minimize \(optimized_metric changed",
    ):  # val/loss would be minimized
        _sweeper(f"hydra.sweeper.storage={url}", "optimized_metric=val/loss")._open_study()


def test_pruning_callback_only_for_an_optuna_trial(make_cfg, tmp_path: Path):
    from embedlab.callbacks import CALLBACKS, OptunaPruning
    from embedlab.config import validate
    from embedlab.errors import ConfigError

    cfg = make_cfg()
    validate(cfg)
    assert "optuna_pruning" not in CALLBACKS.build(cfg, tmp_path)  # outside a sweep: off
    keys = [
        f"++callbacks.optuna_pruning.storage='{storage_url(tmp_path)}'",
        "++callbacks.optuna_pruning.study_name=s",
        "++callbacks.optuna_pruning.trial=3",
    ]
    cfg = make_cfg("callbacks=none", *keys)  # what the sweeper adds, whatever the callbacks
    validate(cfg)
    callback = CALLBACKS.build(cfg, tmp_path)["optuna_pruning"]
    assert isinstance(callback, OptunaPruning)
    assert (callback.study_name, callback.trial_number) == ("s", 3)
    assert callback.monitor == "val/acc_best"  # optimized_metric: the study's objective
    with pytest.raises(ConfigError, match=r"callbacks\.optuna_pruning\.study_name: set together"):
        validate(make_cfg(keys[0]))
