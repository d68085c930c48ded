"""Run or queue the ablation experiments through DVC's command line, and read them back.

    run_all(exps, spec, "tiny", cwd=".")     # one `dvc exp run --temp` after another (CI)
    queue_all(exps, spec, "full", cwd=".")   # `dvc exp run --queue`; then `dvc queue start -j N`
    results = exp_results(cwd=".")           # {experiment name: its params and metrics}
    frames = exp_frames(results, ["reports/train/finetune.json"])   # {name: {file: per-frame values}}

Each experiment runs in a temporary copy of the workspace (`--temp`, or a queue worker), so the
workspace's params.yaml is never left changed and one row's overrides never leak into the next.
The stages' outputs go to the shared DVC cache, and the run cache restores any stage whose
command, dependencies and params a previous experiment already ran: the first experiment of a
fresh clone runs every stage, later ones mostly the training stages their overrides touch.
"""
from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

from .spec import AblationError, Experiment, Spec, exp_run_args

log = logging.getLogger("s2hand.ablations")


def _dvc(args: list[str], cwd: Path, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, text=True, capture_output=capture, check=False)


def exp_results(cwd: str | Path = ".") -> dict[str, dict]:
    """`dvc exp show --json -A`: every named, finished experiment of every commit (the newest of
    equal names) -> {"rev", "timestamp", "params": params.yaml's content, "metrics": {file: content}}."""
    proc = _dvc(["dvc", "exp", "show", "--json", "-A", "--hide-queued", "--hide-failed"], Path(cwd), capture=True)
    if proc.returncode != 0:
        raise AblationError(f"dvc exp show failed: {proc.stderr.strip()[-2000:]}")
    out: dict[str, dict] = {}
    for baseline in json.loads(proc.stdout or "[]"):
        for group in baseline.get("experiments") or []:
            if ((group.get("executor") or {}).get("state") or "success") != "success":
                continue  # still running: its files are the baseline's until it ends
            for rev in group.get("revs") or []:
                data, name = rev.get("data") or {}, rev.get("name")
                if not name or rev.get("error"):
                    continue
                item = {
                    "rev": rev.get("rev"), "timestamp": data.get("timestamp") or "",
                    "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
                    "metrics": {f: v["data"] for f, v in (data.get("metrics") or {}).items() if "data" in v},
                }
                if name not in out or item["timestamp"] > out[name]["timestamp"]:
                    out[name] = item
    return out


def exp_frames(results: dict[str, dict], metrics_files: list[str], cwd: str | Path = ".") -> dict:
    """{experiment name: {metrics file: DataFrame of the per-frame values written beside it}}
    (report.frames_file), each read at the experiment's commit (dvc.api.read: git or DVC cache).
    A file the commit lacks (an experiment made before the stages wrote it) is left out: its
    claims are then "not measurable"."""
    import io

    import dvc.api
    import pandas as pd
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    from .report import frames_file

    out: dict[str, dict] = {}
    for name, item in results.items():
        for f in metrics_files:
            try:
                text = dvc.api.read(frames_file(f), repo=str(cwd), rev=item["rev"])
            except (DvcException, SCMError, FileNotFoundError) as err:
                log.info("%s: no per-frame values for %s (%s)", name, f, type(err).__name__)
                continue
            out.setdefault(name, {})[f] = pd.read_csv(io.StringIO(text))
    return out


def prepare_workspace(exps: list[Experiment], spec: Spec, profile: str, cwd: str | Path = ".") -> float:
    """Put the profile into the workspace and `dvc repro` it there (seconds taken).

    A temporary experiment skips the stages that match the workspace's dvc.lock (and restores
    from DVC's run cache those an earlier experiment ran with the same inputs). After this,
    every experiment starts from the profile's complete pipeline and reruns only the stages its
    own overrides touch. The repro is the profile's default experiment's MLflow run (its tags
    are set for it, then taken out of params.yaml again: no stage reads them). Leaves params.yaml,
    dvc.lock and reports/ at the profile (a CI or scratch clone; `git checkout` resets them)."""
    import yaml

    from .spec import apply_overrides

    cwd = Path(cwd)
    path = cwd / "params.yaml"
    original = path.read_text()
    raw = yaml.safe_load(original)
    default = next((e for e in exps if e.name == f"{profile}-default"), None)
    targets = default.stages if default else sorted({s for e in exps for s in e.stages})
    staged = apply_overrides(raw, spec.profiles[profile].set)
    tagged = apply_overrides(staged, {"mlflow.experiment": f"{spec.mlflow_experiment}-{profile}",
                                      "mlflow.tags": default.tags if default else {}})
    path.write_text(yaml.safe_dump(tagged, sort_keys=False))
    t0 = time.perf_counter()
    try:
        proc = _dvc(["dvc", "repro", *targets], cwd)
    finally:
        path.write_text(yaml.safe_dump(staged, sort_keys=False) if spec.profiles[profile].set else original)
    if proc.returncode != 0:
        raise AblationError(f"dvc repro of the {profile} profile failed (exit {proc.returncode})")
    return round(time.perf_counter() - t0, 1)


def run_all(exps: list[Experiment], spec: Spec, profile: str, cwd: str | Path = ".",
            skip_existing: bool = True) -> dict[str, float]:
    """Run each experiment in turn (`dvc exp run --temp`); {name: seconds}. Keeps going after a
    failure and raises at the end, naming every failed experiment."""
    cwd = Path(cwd)
    done = set(exp_results(cwd)) if skip_existing else set()
    times, failed = {}, []
    for i, exp in enumerate(exps, 1):
        if exp.name in done:
            log.info("[%d/%d] %s: exists, skipped (--rerun runs it again)", i, len(exps), exp.name)
            continue
        log.info("[%d/%d] %s: %s", i, len(exps), exp.name, " ".join(exp_run_args(exp, spec, profile, False)[5:]))
        t0 = time.perf_counter()
        proc = _dvc(exp_run_args(exp, spec, profile, queue=False), cwd)
        times[exp.name] = round(time.perf_counter() - t0, 1)
        log.info("[%d/%d] %s: %s in %.0f s", i, len(exps), exp.name,
                 "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})", times[exp.name])
        if proc.returncode != 0:
            failed.append(exp.name)
    if failed:
        raise AblationError(f"{len(failed)} experiment(s) failed: {', '.join(failed)}")
    return times


def queue_all(exps: list[Experiment], spec: Spec, profile: str, cwd: str | Path = ".",
              skip_existing: bool = True) -> list[str]:
    """Queue each experiment (`dvc exp run --queue`); returns the queued names. Start the workers
    with `dvc queue start -j N`, follow with `dvc queue status` / `dvc queue logs <name>`."""
    cwd = Path(cwd)
    done = set(exp_results(cwd)) if skip_existing else set()
    queued = []
    for exp in exps:
        if exp.name in done:
            log.info("%s: exists, not queued", exp.name)
            continue
        proc = _dvc(exp_run_args(exp, spec, profile, queue=True), cwd)
        if proc.returncode != 0:
            raise AblationError(f"{exp.name}: dvc exp run --queue failed (exit {proc.returncode})")
        queued.append(exp.name)
    return queued
