"""`s2hand ablations ...` and `s2hand mlflow-ui` (registered in s2hand/cli.py COMMANDS).

    s2hand ablations list   [--profile full|ci|tiny] [--tables table3 table4]   # experiments and their -S
    s2hand ablations run    [--profile ...] [--tables ...] [--prepare] [--rerun]   # one after another (CI)
    s2hand ablations queue  [--profile ...] [--tables ...]                   # then: dvc queue start -j N
    s2hand ablations report [--profile ...] [--out reports/ablations.md] [--require-headline]  # + .json
    s2hand mlflow-ui [--port 5000]                                           # MLflow UI on 127.0.0.1

Run from the repository root (where dvc.yaml, params.yaml, ablations.yaml and mlruns.db are).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from s2hand.cli import Command, CommandError

from .spec import AblationError, exp_run_args, load_spec, plan_experiments


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "run", "queue", "report"))
    p.add_argument("--profile", default="full",
                   help="profile of ablations.yaml (full: every row; ci: the headline's rows; tiny: smoke test)")
    p.add_argument("--tables", nargs="+", help="table ids (default: all)")
    p.add_argument("--spec", default="ablations.yaml")
    p.add_argument("--rerun", action="store_true", help="run experiments that already exist again")
    p.add_argument("--prepare", action="store_true",
                   help="run/queue: first apply the profile to params.yaml and dvc repro it in the workspace, "
                        "so experiments rerun only what their overrides touch (CI, scratch clones)")
    p.add_argument("--out", default="reports/ablations.md", help="report: the markdown file to write")
    p.add_argument("--db", default="mlruns.db", help="report: the MLflow SQLite store the stages log to")
    p.add_argument("--require-headline", action="store_true",
                   help="report: exit 1 (after writing it) when a headline comparison is not measurable (CI)")


def _run(args: argparse.Namespace) -> int:
    from s2hand.io import atomic_file

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    root = Path.cwd()
    try:
        spec = load_spec(args.spec, root / "params.yaml")
        base = yaml.safe_load((root / "params.yaml").read_text())
        exps = plan_experiments(spec, args.profile, args.tables, base=base)
        if args.action == "list":
            for e in exps:
                print(f"{e.name}  [{', '.join(f'{t}.{r}' for t, r in e.members)}]")
                print("    " + " ".join(exp_run_args(e, spec, args.profile, queue=False)))
        elif args.action == "run":
            from .runner import prepare_workspace, run_all

            if args.prepare:
                print(f"prepared the workspace ({args.profile} profile) in {prepare_workspace(exps, spec, args.profile, root):.0f} s")
            times = run_all(exps, spec, args.profile, root, skip_existing=not args.rerun)
            print(f"ran {len(times)} experiment(s) in {sum(times.values()) / 60:.1f} min: "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
        elif args.action == "queue":
            from .runner import prepare_workspace, queue_all

            if args.prepare:
                print(f"prepared the workspace ({args.profile} profile) in {prepare_workspace(exps, spec, args.profile, root):.0f} s")
            names = queue_all(exps, spec, args.profile, root, skip_existing=not args.rerun)
            print(f"queued {len(names)} experiment(s); start them with: dvc queue start -j N "
                  "(follow: dvc queue status; then s2hand ablations report)")
        else:
            from s2hand.io import write_json

            from .report import build_tables, mlflow_runs, render_markdown, table_checks
            from .runner import exp_frames, exp_results

            runs = mlflow_runs(f"sqlite:///{Path(args.db).resolve()}", f"{spec.mlflow_experiment}-{args.profile}")
            results = exp_results(root)
            frames = build_tables(spec, args.profile, results, runs, base=base)
            files = sorted({t.metrics_file for t in spec.tables.values()})
            checks = table_checks(spec, args.profile, frames, exp_frames(results, files, root), base=base,
                                  results=results, commit=_commit(root))
            text = render_markdown(spec, args.profile, frames, checks)
            with atomic_file(args.out) as f:
                f.write(text)
            write_json(Path(args.out).with_suffix(".json"), checks)  # the verdicts as data, beside the markdown
            print(text)
            unmeasured = [h["says"] for h in checks["headline"] if h["verdict"] == "not measurable"]
            if args.require_headline and unmeasured:
                raise CommandError(f"{len(unmeasured)} headline comparison(s) not measurable in the {args.profile} "
                                   f"profile: {'; '.join(unmeasured)}")
    except AblationError as e:
        raise CommandError(str(e)) from None
    return 0


def _commit(root: Path) -> str:
    """The checked-out commit (short hash, "+changes" when the tracked files differ from it): the
    code the report's experiments ran from; "" outside git."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True, capture_output=True)
    if head.returncode != 0:
        return ""
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":!params.yaml", ":!dvc.lock", ":!reports"],
                           cwd=root).returncode != 0
    return head.stdout.strip() + ("+changes" if dirty else "")


def _ui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--db", default="mlruns.db", help="the SQLite store (default: the repository's)")


def _ui_command(db: Path, port: int) -> list[str]:
    """The server's argv: `mlflow ui` on loopback only (127.0.0.1) over the SQLite store `db`."""
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        raise CommandError("the mlflow command is not installed in this environment")
    return [exe, "ui", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)]


def _ui_run(args: argparse.Namespace) -> int:
    """Serve the MLflow UI on loopback only (127.0.0.1) over the pipeline's SQLite store."""
    db = Path(args.db).resolve()
    if not db.is_file():
        raise CommandError(f"{db}: no MLflow store (run a training stage first)")
    cmd = _ui_command(db, args.port)
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C stops it); compare an ablation: open experiment "
          f"s2hand-ablations-<profile>, filter e.g. tags.ablation_table4 LIKE '%', select the runs, Compare")
    return _serve(cmd)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when the group is empty."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _serve(cmd: list[str], grace_s: float = 10.0) -> int:
    """Run the server `cmd` until it exits; return its exit status (128 + N when signal N ended it).

    `mlflow ui` runs gunicorn/uvicorn workers below it, so the server gets its own session (process
    group), and SIGTERM, SIGINT (Ctrl-C) and SIGHUP to this process go to that whole group. Whatever
    of the group is left `grace_s` seconds after the signal, or after the server itself exited, is
    SIGKILLed: nothing keeps listening once `s2hand mlflow-ui` is gone.
    """
    proc = subprocess.Popen(cmd, start_new_session=True)
    kill_at: list[float] = []  # set by the first signal: when the group gets SIGKILL

    def forward(signum: int, _frame: object) -> None:
        if not kill_at:
            kill_at.append(time.monotonic() + grace_s)
        _signal_group(proc.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if kill_at and time.monotonic() > kill_at[0]:
                    _signal_group(proc.pid, signal.SIGKILL)
        # the server is gone; its workers may not be (a process group outlives its leader)
        if not kill_at and _signal_group(proc.pid, signal.SIGTERM):
            kill_at.append(time.monotonic() + grace_s)
        while kill_at and _signal_group(proc.pid, 0):
            if time.monotonic() > kill_at[0]:
                _signal_group(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:  # failed while waiting: leave nothing behind
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - proc.returncode if proc.returncode < 0 else proc.returncode


ABLATIONS = Command(help="the paper's ablations as DVC experiments: list, run, queue, report",
                    add_arguments=_arguments, run=_run)
MLFLOW_UI = Command(help="open the MLflow UI on 127.0.0.1 over mlruns.db", add_arguments=_ui_arguments, run=_ui_run)


# ---- s2hand curves -----------------------------------------------------------------------------


def _curves_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("export", help="a finished DVC experiment's learning curve as a reference for the "
                                      "evaluate stage's figure (reports/learning_curves/)")
    e.add_argument("--exp", required=True, help="DVC experiment name (dvc exp list)")
    e.add_argument("--label", required=True, help='legend label, e.g. "exact 2D (WSL)"')
    e.add_argument("--out-dir", default="reports/learning_curves")


def _curves_run(args: argparse.Namespace) -> int:
    from s2hand.curves import export_reference

    try:
        print(export_reference(args.exp, args.label, args.out_dir))
    except ValueError as e:
        raise CommandError(str(e)) from None
    return 0


CURVES = Command(help="learning-curve references from DVC experiments", add_arguments=_curves_arguments,
                 run=_curves_run)
