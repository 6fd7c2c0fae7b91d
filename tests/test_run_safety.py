"""Runs that would silently lose or fake results are refused: one line, exit code 2."""

from __future__ import annotations

import http.server
import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from embedlab.config import validate
from embedlab.errors import ConfigError
from embedlab.train import train

QUIET = ["print_config=false", "trainer.enable_progress_bar=false", "callbacks=none"]
TINY = [*QUIET, "data.num_train=300", "data.num_val=60", "data.num_test=60", "trainer.max_epochs=1"]


def _cli(
    tmp: Path, *args: str, run_dir: Path | None = None, base: list[str] = TINY
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "embedlab.train", *base, f"paths.root_dir={tmp}", *args]
    if run_dir is not None:
        cmd.append(f"hydra.run.dir={run_dir}")
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _one_line_exit_2(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_zero_epochs_and_testing_nothing_are_config_errors(make_cfg):
    with pytest.raises(ConfigError, match="trains nothing"):
        validate(make_cfg("trainer.max_epochs=0"))
    with pytest.raises(ConfigError, match="set ckpt_path=PATH"):
        validate(make_cfg("train=false"))


def test_runs_started_together_keep_their_own_folders(tmp_path):
    cmd = [sys.executable, "-m", "embedlab.train", *TINY, f"paths.root_dir={tmp_path}"]
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    runs = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["output_dir"] == str(run)


def test_a_finished_run_folder_is_never_overwritten(tmp_path):
    run = tmp_path / "fixed"
    assert _cli(tmp_path, run_dir=run).returncode == 0
    before = (run / "metrics.json").read_bytes()
    proc = _cli(tmp_path, "seed=7", run_dir=run)
    _one_line_exit_2(proc, "already holds a finished run")
    assert (run / "metrics.json").read_bytes() == before


def test_remote_and_broken_checkpoints_are_refused_before_any_unpickling(tmp_path):
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/x.ckpt"
    try:
        for extra in (["train=false"], []):
            proc = _cli(tmp_path, f"ckpt_path={url}", *extra, run_dir=tmp_path / f"r{len(extra)}")
            _one_line_exit_2(proc, "only local checkpoint files can be loaded")
    finally:
        server.shutdown()
    assert requests == []  # nothing was even downloaded

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    proc = _cli(tmp_path, "train=false", f"ckpt_path={broken}", run_dir=tmp_path / "r2")
    _one_line_exit_2(proc, f"{broken}: not a readable checkpoint")
    assert not (tmp_path / "r2" / "metrics.json").exists()


def test_bad_data_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\ttext\npos\tgood film\nneg\n")
    proc = _cli(tmp_path, "data=files", f"data.train={bad}", run_dir=tmp_path / "run", base=QUIET)
    _one_line_exit_2(proc, f"{bad}:3")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_train_refuses_a_finished_folder_in_process_too(make_cfg):
    cfg = make_cfg("trainer.max_epochs=1")
    train(validate(cfg.copy()))
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(cfg.copy())


class _Payload:
    """Unpickling this would create a marker file: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_allowed_remote_checkpoints_are_downloaded_and_still_loaded_weights_only(tmp_path):
    import torch

    good = tmp_path / "served" / "good.ckpt"
    run = tmp_path / "trained"
    assert _cli(tmp_path, "callbacks.checkpoint.enabled=true", run_dir=run).returncode == 0
    good.parent.mkdir()
    good.write_bytes(next((run / "checkpoints").glob("epoch*.ckpt")).read_bytes())
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "embedlab": _Payload(marker)}, good.parent / "evil.ckpt")

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(good.parent), **k
    )
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        ok = _cli(
            tmp_path,
            "train=false",
            f"ckpt_path={base}/good.ckpt",
            "allow_remote_checkpoints=true",
            "callbacks=default",
            run_dir=tmp_path / "remote_ok",
        )
        assert ok.returncode == 0, ok.stderr[-2000:]
        tested = json.loads((tmp_path / "remote_ok" / "metrics.json").read_text())
        assert tested["test/acc"] == json.loads((run / "metrics.json").read_text())["test/acc"]
        evil = _cli(
            tmp_path,
            "train=false",
            f"ckpt_path={base}/evil.ckpt",
            "allow_remote_checkpoints=true",
            run_dir=tmp_path / "remote_evil",
        )
    finally:
        server.shutdown()
    _one_line_exit_2(evil, "evil.ckpt: not a readable checkpoint")
    assert not marker.exists()  # the payload never ran


def test_a_misspelled_override_exits_2_like_every_input_error(tmp_path):
    proc = _cli(tmp_path, "data.num_trian=5")
    assert proc.returncode == 2
    assert "num_trian" in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoints_are_written_whole_or_not_at_all(tmp_path):
    from embedlab.training.checkpoint_io import LocalCheckpointIO

    io = LocalCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "epoch": 1}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a local lambda: no pickle
        io.save_checkpoint({"epoch": 2, "bad": lambda: 0}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the previous one is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp left


@pytest.mark.parametrize("links", [True, False])
def test_last_ckpt_as_a_link_to_the_best_leaves_each_names_content_whole(
    tmp_path, monkeypatch, links
):
    from types import SimpleNamespace

    from embedlab.callbacks.checkpoint import LastEveryValidation
    from embedlab.training.checkpoint_io import LocalCheckpointIO

    io = LocalCheckpointIO()
    best, last = tmp_path / "epoch001.ckpt", tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 0}, last)
    io.save_checkpoint({"epoch": 1}, best)
    if not links:  # a filesystem without hard links: last.ckpt is a copy

        def no_links(*args):
            raise OSError("hard links not supported")

        monkeypatch.setattr(os, "link", no_links)
    trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(barrier=lambda: None))
    LastEveryValidation._link_checkpoint(trainer, str(best), str(last))
    assert os.path.samefile(best, last) == links
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [best.name, last.name]  # no temp left
    io.save_checkpoint({"epoch": 2}, last)  # the next validation's last.ckpt ...
    assert torch.load(best, weights_only=True)["epoch"] == 1  # ... leaves the best as it was
    LastEveryValidation._link_checkpoint(trainer, str(best), str(last))
    best.unlink()  # a newer best removes it ...
    assert torch.load(last, weights_only=True)["epoch"] == 1  # ... and last.ckpt keeps its state


def _mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """Whether ``tensor`` lies in a memory map of ``path`` (True where /proc is absent)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return True
    spans = [
        [int(x, 16) for x in line.split()[0].split("-")]
        for line in maps.read_text().splitlines()
        if line.endswith(str(path))
    ]
    return any(lo <= tensor.data_ptr() < hi for lo, hi in spans)


def test_read_checkpoint_maps_zip_files_and_still_reads_legacy_ones(tmp_path):
    from embedlab.inference import read_checkpoint

    ckpt = {"embedlab": {}, "state_dict": {"w": torch.arange(4.0)}, "global_step": 3}
    path = tmp_path / "a.ckpt"
    torch.save(ckpt, path)
    w = read_checkpoint(path)["state_dict"]["w"]
    assert torch.equal(w, torch.arange(4.0)) and _mapped_from(w, path)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    assert read_checkpoint(legacy)["global_step"] == 3


def test_local_checkpoints_load_memory_mapped_and_legacy_files_still_load(tmp_path):
    from embedlab.training.checkpoint_io import LocalCheckpointIO

    io = LocalCheckpointIO()
    path = tmp_path / "a.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "epoch": 3}, path)
    loaded = io.load_checkpoint(path, weights_only=True)
    w = loaded["state_dict"]["w"]
    assert loaded["epoch"] == 3 and torch.equal(w, torch.arange(4.0))
    # the tensor lies in a (private) map of the file: writes stay in memory, the file keeps them
    assert _mapped_from(w, path)
    w.add_(1.0)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.arange(4.0))
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"epoch": 4}, legacy, _use_new_zipfile_serialization=False)  # no mmap for these
    assert io.load_checkpoint(legacy, weights_only=True)["epoch"] == 4
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(tmp_path / "missing.ckpt", weights_only=True)
