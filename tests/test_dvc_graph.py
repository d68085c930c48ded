"""`dvc exp run -S weights.quat=0.1` after a complete repro reruns finetune_video and what depends
on it (and any stage that itself reads the weight), nothing upstream; the ablations' MLflow
params make no stage rerun.

Two checks through DVC itself: the pipeline graph of dvc.yaml (which stages declare the param,
and everything downstream of them), and `dvc status` on a scratch repository holding this
dvc.yaml, dvc.lock and params.yaml, before and after changing the param (DVC's own params
comparison against the lock; the code and data deps are absent there and read the same in both
statuses).

Each stage's code deps are exactly what its entry point can import (the AST import closure), so
an edit to the grid-search code reruns grid_search alone: checked on the closure, and by
`dvc status` on a scratch repository holding the code too, before and after an edit to it.

    .venv/bin/python -m pytest -q tests/test_dvc_graph.py     # a few seconds
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
import yaml

from s2hand.ablations.spec import set_dotted

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = {"hand_model", "download", "detect", "filter_yt3d", "pretrain_2d", "pretrain_3d", "finetune"}


def _declares(stage, key: str) -> bool:
    """Whether `stage` lists params.yaml's `key` (or a section above it) among its params."""
    for dep in stage.deps:
        for p in getattr(dep, "params", None) or []:
            if key == p or key.startswith(p + "."):
                return True
    return False


@pytest.fixture(scope="module")
def index():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        yield repo.index.graph, {s.addressing: s for s in repo.index.stages}


def _reruns(graph, stages, key: str) -> set[str]:
    """Stages that declare `key` and every stage downstream of them (DVC's graph points from a
    stage to the stages it depends on, so downstream = networkx ancestors)."""
    assert stages["pretrain_2d"] in nx.descendants(graph, stages["finetune"])  # the edge direction
    direct = {s for s in stages.values() if _declares(s, key)}
    out = set(direct)
    for s in direct:
        out |= nx.ancestors(graph, s)
    return {s.addressing for s in out}


def test_quat_weight_reruns_finetune_video_and_downstream_only(index):
    graph, stages = index
    reruns = _reruns(graph, stages, "weights.quat")
    assert "finetune_video" in reruns
    assert not reruns & UPSTREAM, reruns & UPSTREAM
    downstream = {s.addressing for s in nx.ancestors(graph, stages["finetune_video"])}
    assert {"finetune_video"} | downstream <= reruns
    # anything else that reruns declares the weight itself (e.g. a stage reading all of `weights`)
    for name in reruns - downstream - {"finetune_video"}:
        assert _declares(stages[name], "weights.quat"), name


@pytest.mark.parametrize("key", ["mlflow.experiment", "mlflow.tags"])
def test_mlflow_params_rerun_nothing(index, key):
    graph, stages = index
    assert _reruns(graph, stages, key) == set()


def _param_changes(status: dict) -> dict[str, dict]:
    """{stage: {param: change}} from `dvc status --json`."""
    out: dict[str, dict] = {}
    for stage, items in status.items():
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                params = (item.get("changed deps") or {}).get("params.yaml")
                if isinstance(params, dict):
                    out[stage] = params
    return out


def _dvc_executable() -> str:
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent))
    if dvc is None:
        pytest.skip("needs the dvc executable")
    return dvc


def _scratch_repo(path: Path, dvc: str, files: list[str]) -> None:
    """A git + DVC repository in `path` holding copies of `files` (paths relative to ROOT)."""
    for f in files:
        (path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, path / f)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=path, check=True)
    subprocess.run([dvc, "config", "--local", "core.analytics", "false"], cwd=path, check=True)


def _status(path: Path, dvc: str) -> dict:
    """`dvc status --json` of the repository in `path`: {stage: [changes]}."""
    out = subprocess.run([dvc, "status", "--json"], cwd=path, capture_output=True, text=True, check=True)
    return yaml.safe_load(out.stdout or "{}")


def test_dvc_status_after_setting_quat_spares_upstream_stages(tmp_path):
    """The real check: DVC compares params.yaml against dvc.lock."""
    dvc = _dvc_executable()
    if not (ROOT / "dvc.lock").is_file():
        pytest.skip("needs a dvc.lock (a complete repro)")
    _scratch_repo(tmp_path, dvc, ["dvc.yaml", "dvc.lock", "params.yaml"])
    before = _param_changes(_status(tmp_path, dvc))
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert raw["weights"]["quat"] != 0.1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(set_dotted(raw, "weights.quat", 0.1)))
    after = _param_changes(_status(tmp_path, dvc))
    changed = {s for s in set(before) | set(after) if before.get(s) != after.get(s)}
    assert not changed & UPSTREAM, changed  # (dvc.lock may predate params.yaml: compare the two states)
    assert after["finetune_video"].get("weights.quat") == "modified"


def _lock_current_code(path: Path) -> None:
    """Write the dvc.lock of `path` as if every stage had just run on the code there: each code
    dep's hash as it is now; the data deps and outs, absent there, get none."""
    from dvc.repo import Repo

    with Repo(str(path)) as repo:
        stages = list(repo.index.stages)
        for stage in stages:
            stage.save(allow_missing=True, run_cache=False)
        stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def test_dvc_status_after_editing_the_search_code_spares_other_stages(tmp_path, index):
    """An edit to s2hand/search changes the DVC status of grid_search and of the stages that read
    its outputs, no other: none of them depends on the search code. On a scratch repository with
    this code, dvc.yaml and params.yaml, and a dvc.lock of this code (so a stale workspace lock
    does not hide the edit)."""
    dvc = _dvc_executable()
    listed = subprocess.run(["git", "ls-files", "s2hand", "pipeline"], cwd=ROOT, capture_output=True, text=True)
    sources = [f for f in listed.stdout.split() if (ROOT / f).is_file()]
    if listed.returncode or not sources:
        pytest.skip("needs a git checkout (its tracked sources)")
    _scratch_repo(tmp_path, dvc, [*sources, "dvc.yaml", "params.yaml"])
    _lock_current_code(tmp_path)
    before = _status(tmp_path, dvc)
    edited = tmp_path / "s2hand" / "search" / "runner.py"
    edited.write_text(edited.read_text() + "\n# an edit to the search code\n")
    after = _status(tmp_path, dvc)
    graph, stages = index
    readers = {s.addressing for s in nx.ancestors(graph, stages["grid_search"])}
    changed = {s for s in set(before) | set(after) if before.get(s) != after.get(s)}
    assert "grid_search" in changed, after.get("grid_search")
    assert changed <= {"grid_search"} | readers, changed - {"grid_search"} - readers


# ----------------------------------------------------------------------------- code deps
def _module_file(name: str) -> Path | None:
    p = ROOT.joinpath(*name.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


_MODULE_NAME = re.compile(r"(s2hand|pipeline)(\.\w+)+")


def _imports(path: Path) -> set[Path]:
    """Project files `path` imports anywhere (module level or inside functions), with the
    packages above each (Python runs every parent package's __init__). A string that is a
    project module's dotted name counts as an import of it: importlib's targets, such as the
    detector backends in s2hand.detect.BACKENDS."""
    import ast

    rel = path.relative_to(ROOT).with_suffix("").parts
    me = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names |= {module} | {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.fullmatch(node.value):
            names.add(node.value)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] in ("s2hand", "pipeline"):
            found |= {f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i])))}
    return found


def _closure(start: Path) -> set[Path]:
    seen: set[Path] = set()
    todo = [start]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += _imports(f) - seen
    return seen


def _stage_code() -> dict[str, tuple[list[str], set[str]]]:
    """{stage: (its string deps in dvc.yaml, the project files its entry point can import)},
    paths relative to ROOT."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        module = stage["cmd"].split("-m ", 1)[1].split()[0]
        files = _closure(_module_file(module))
        assert len(files) > 3, (name, files)
        out[name] = ([d for d in stage.get("deps", []) if isinstance(d, str)],
                     {f.relative_to(ROOT).as_posix() for f in files})
    return out


def test_stage_code_deps_cover_every_module_the_stage_imports():
    """A stage's code deps must include every project module its entry point can import, or an
    edit there would leave the stage's outputs stale (DVC would not rerun it)."""
    missing = {}
    for name, (deps, files) in _stage_code().items():
        gaps = sorted(f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
        if gaps:
            missing[name] = gaps
    assert not missing, missing


def _modules_in(dep: str) -> set[str]:
    """The Python files a dep names: itself, or those under its folder (paths relative to ROOT)."""
    path = ROOT / dep
    if path.is_dir():
        return {f.relative_to(ROOT).as_posix() for f in path.rglob("*.py")}
    return {dep} if path.suffix == ".py" else set()


def test_stage_code_deps_hold_only_modules_the_stage_imports():
    """...and no module it cannot import, or an edit there would rerun the stage for nothing
    (the grid-search code for every stage but grid_search: s2hand/config.py holds its params)."""
    extra = {}
    for name, (deps, files) in _stage_code().items():
        beyond = sorted(set().union(*(_modules_in(d) for d in deps if d.startswith(("s2hand/", "pipeline/")))) - files)
        if beyond:
            extra[name] = beyond
    assert not extra, extra
