"""Atomic outputs and the MLflow helper every training stage uses."""
import os

import pytest

from s2hand.config import validate_params
from s2hand.io import atomic_dir, atomic_file


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no temporary folders left behind"


def test_atomic_file_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(ValueError):
        with atomic_file(target) as f:
            f.write("{")
            raise ValueError
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_mlflow_run_uses_root_store_name_and_tags(tmp_path, monkeypatch):
    import mlflow

    from pipeline.common import mlflow_run, tracking_uri

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "quat-0.1")
    monkeypatch.chdir(tmp_path)  # a queued experiment runs in another folder
    params = validate_params({"weights": {"quat": 0.1}})
    with mlflow_run("finetune_video", params) as run:
        mlflow.log_metric("loss", 1.5, step=0)
        run_id = run.info.run_id
    assert (tmp_path / "mlruns.db").is_file()
    client = mlflow.MlflowClient(tracking_uri(tmp_path))
    r = client.get_run(run_id)
    assert r.info.run_name == "quat-0.1/finetune_video"
    assert r.data.tags["stage"] == "finetune_video" and "git_commit" in r.data.tags
    assert r.data.params["weights.quat"] == "0.1"
    assert r.data.params["data.synthetic.image_size"] == "128"
    assert r.data.metrics["loss"] == 1.5
    assert os.path.isdir(tmp_path / "mlartifacts") or r.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


def test_save_npz_is_byte_reproducible_and_loadable(tmp_path):
    import time

    import numpy as np

    from s2hand.io import save_npz

    arrays = {"a": np.arange(6.0).reshape(2, 3), "names": np.array(["x", "yz"])}
    save_npz(tmp_path / "one.npz", **arrays)
    time.sleep(2.1)  # zip timestamps have a 2 s resolution
    save_npz(tmp_path / "two.npz", **arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["a"], arrays["a"])
        assert z["names"].tolist() == ["x", "yz"]


def test_atomic_dir_removes_what_killed_runs_left(tmp_path):
    """A run killed outright leaves .<name>.tmp-<pid>-*: the next run of the same target removes
    those of dead processes (and an older version's, without a pid), never a live one's or others'."""
    import os

    dead = 999_999_999  # above any pid_max
    stale = [tmp_path / f".dataset.tmp-{dead}-abc", tmp_path / ".dataset.tmp-k2j_x9qa", tmp_path / f".dataset.old-{dead}"]
    kept = [tmp_path / f".dataset.tmp-{os.getpid()}-live", tmp_path / f".keypoints.tmp-{dead}-abc"]
    for d in stale + kept:
        d.mkdir()
        (d / "part.npz").write_bytes(b"x")
    with atomic_dir(tmp_path / "dataset") as tmp:
        (tmp / "a").write_text("new")
    assert not any(d.exists() for d in stale) and all(d.exists() for d in kept)
    assert (tmp_path / "dataset" / "a").read_text() == "new"
