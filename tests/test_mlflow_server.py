"""MLflow comparisons end to end: runs logged by pipeline.common.mlflow_run (named by DVC
experiment, tagged with the ablation row) read back from an MLflow server on loopback through its
REST API, as the UI's compare view sees them.

    .venv/bin/python -m pytest -q -m slow tests/test_mlflow_server.py   # ~20 s: the server takes 10-30 s to start
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from s2hand.config import validate_params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(base + path, method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def server(tmp_path):
    """`mlflow server` on 127.0.0.1 (free port) over tmp_path/mlruns.db; yields its base URL."""
    mlflow_exe = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if mlflow_exe is None:
        pytest.skip("no mlflow executable beside the interpreter")
    db, port = tmp_path / "mlruns.db", _free_port()
    # create the store's schema first, so the server starts on a ready database
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.search_experiments()
    proc = subprocess.Popen([mlflow_exe, "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--default-artifact-root", (tmp_path / "mlartifacts").as_uri(),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if proc.poll() is not None:
                    pytest.fail("mlflow server exited at start")
                time.sleep(0.25)
        else:
            pytest.fail("mlflow server did not answer within 30 s")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers: their own process group
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_ablation_runs_are_named_tagged_and_searchable_over_rest(server, tmp_path, monkeypatch):
    from pipeline.common import mlflow_run

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # mlflow_run logs to DVC_ROOT/mlruns.db, as in a queued exp
    rows = {"tiny-table4-none": "none", "tiny-table4-quaternion": "quaternion", "tiny-default": "quaternion_ts"}
    for exp_name, row in rows.items():
        monkeypatch.setenv("DVC_EXP_NAME", exp_name)
        params = validate_params({"mlflow": {"experiment": "s2hand-ablations-tiny",
                                             "tags": {"ablation_table4": row}}})
        with mlflow_run("finetune_video", params):
            import mlflow

            mlflow.log_metric("val/pa_mpvpe_cm", 1.0 + len(row) / 100)
    monkeypatch.setenv("DVC_EXP_NAME", "unrelated")
    with mlflow_run("finetune", validate_params({"mlflow": {"experiment": "s2hand-ablations-tiny"}})):
        pass

    exp = _call(server, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=s2hand-ablations-tiny")
    found = _call(server, "/api/2.0/mlflow/runs/search",
                  {"experiment_ids": [exp["experiment"]["experiment_id"]],
                   "filter": "tags.ablation_table4 LIKE '%'", "max_results": 100})
    runs = found["runs"]
    assert len(runs) == 3  # the untagged run is not part of the comparison
    by_name = {r["info"]["run_name"]: r["data"] for r in runs}
    assert set(by_name) == {f"{e}/finetune_video" for e in rows}
    for exp_name, row in rows.items():
        data = by_name[f"{exp_name}/finetune_video"]
        tags = {t["key"]: t["value"] for t in data["tags"]}
        assert tags["ablation_table4"] == row and tags["stage"] == "finetune_video" and tags["dvc_exp"] == exp_name
        params = {p["key"]: p["value"] for p in data["params"]}
        assert params["weights.quat"] == "0.05"  # all params, flat, for the compare view
        assert any(m["key"] == "val/pa_mpvpe_cm" for m in data["metrics"])
    assert os.path.isfile(tmp_path / "mlruns.db")
