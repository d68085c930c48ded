"""The `s2hand` console command: one subcommand per task.

    s2hand evaluate --gt data/freihand --pred pred.json --out metrics.json [--curves pck.json]

Adding a subcommand: write, in your own module, a `Command(help=..., add_arguments=fn(parser),
run=fn(args) -> exit code)` and add one line to COMMANDS ("name": "module:attribute"). Only the
chosen command's module is imported, so `s2hand evaluate` never pays for importing torch.
"""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# name -> (one-line help shown by `s2hand -h`, "module:attribute" of its Command)
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("score a pred.json against FreiHAND-layout ground truth", "s2hand.cli:EVALUATE"),
    "predict": ("3D joints and meshes for a folder of images or a video (pred.json, OBJ, overlay)",
                "s2hand.evaluate.predict:PREDICT"),
    "ablations": ("the paper's ablations as DVC experiments: list, run, queue, report",
                  "s2hand.ablations.cli:ABLATIONS"),
    "mlflow-ui": ("open the MLflow UI on 127.0.0.1 over mlruns.db", "s2hand.ablations.cli:MLFLOW_UI"),
    "curves": ("learning-curve references from DVC experiments (reports/learning_curves/)", "s2hand.ablations.cli:CURVES"),
}


class CommandError(Exception):
    """Bad input: reported as one line on stderr, exit status 1."""


def _load(target: str) -> Command:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


# ---- evaluate ----------------------------------------------------------------------------------

def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="folder with evaluation_xyz.json and evaluation_verts.json")
    p.add_argument("--pred", required=True, help="pred.json: [xyz N x 21 x 3, verts N x V x 3], metres")
    p.add_argument("--out", required=True, help="metrics JSON to write (12 keys)")
    p.add_argument("--format", choices=("freihand", "ho3d"), default="freihand",
                   help="layout of --pred: ho3d = HO-3D joint order and OpenGL frame (the gt is always freihand)")
    p.add_argument("--set-name", default="evaluation", help="ground-truth file prefix (default: evaluation)")
    p.add_argument("--curves", help="optional JSON to write the PCK/PCV curves to (thresholds in cm)")


def _evaluate_run(args: argparse.Namespace) -> int:
    from s2hand.io import write_json
    from s2hand.metrics.freihand import ALL_METRIC_KEYS, evaluate_freihand
    from s2hand.metrics.submission import SubmissionError, read_freihand_gt, read_submission

    for flag, path in (("--out", args.out), ("--curves", args.curves)):
        if path is not None and Path(path).is_dir():
            raise CommandError(f"{flag} {path}: is a folder; give the JSON file to write")
    try:
        gt_xyz, gt_verts = read_freihand_gt(args.gt, args.set_name)
        xyz, verts = read_submission(args.pred, expect_n=len(gt_xyz), fmt=args.format)
        result = evaluate_freihand(gt_xyz, gt_verts, xyz, verts, with_curves=True)
    except (SubmissionError, ValueError) as e:
        raise CommandError(str(e)) from None
    try:  # NaN (mesh errors of a non-MANO mesh) is not JSON: write null
        write_json(args.out, {k: (None if math.isnan(result[k]) else result[k]) for k in ALL_METRIC_KEYS})
        if args.curves:
            write_json(args.curves, result["curves"])
    except OSError as e:
        raise CommandError(f"cannot write {e.filename or args.out}: {e.strerror or e}") from None
    print(f"MPJPE {result['pa_mpjpe_cm']:.3f} cm, AUC_J {result['auc_j']:.3f}, "
          f"MPVPE {result['pa_mpvpe_cm']:.3f} cm, AUC_V {result['auc_v']:.3f}, F5 {result['f5']:.3f}, "
          f"F15 {result['f15']:.3f} (Procrustes-aligned) "
          f"-> {args.out}")
    return 0


EVALUATE = Command(help=COMMANDS["evaluate"][0], add_arguments=_evaluate_arguments, run=_evaluate_run)


# ---- entry point -------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="s2hand", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    command = None
    for name, (help_, target) in COMMANDS.items():
        p = sub.add_parser(name, help=help_)
        if name == chosen:
            command = _load(target)
            command.add_arguments(p)
    args = parser.parse_args(argv)
    assert command is not None
    try:
        return command.run(args)
    except CommandError as e:
        print(f"s2hand {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":   # `python -m s2hand.cli`: use the importable module's objects
    from s2hand.cli import main as _main
    sys.exit(_main())
