"""Learning curves: validation PA-MPJPE against training images seen, across the 3D-training stages.

    curve = chain_curve([reports["pretrain_3d"], reports["finetune"], reports["finetune_video"]])
    learning_curve_figure({"S2HAND (MediaPipe)": curve, **references}, mean_pose, untrained, "out.png")
    s2hand curves export --exp wsl_seed0 --label "exact 2D (WSL)"   # -> reports/learning_curves/<slug>.json

Each training stage's report (reports/train/<stage>.json, pipeline/training.py) carries its
validation curve: (images seen in that stage, val PA-MPJPE) at the start and after every
validation. `chain_curve` lays the stages end to end on one axis of images seen since the 3D
branch started training (pretrain_2d trains the 2D branch only and is left out): finetune starts
from pretrain_3d's model, so its first point repeats pretrain_3d's last one, and so on.

The evaluate stage draws reports/evaluate/learning_curve.png from the pipeline's own run, plus
every reference curve in reports/learning_curves/ (one JSON per variant: {"label", "source",
"seed", "curve"}), which `s2hand curves export` writes from a finished DVC experiment (for example
exact 2D keypoints, `-S detect.backend=ground_truth`, and ground-truth 3D supervision,
`-S train.supervision=full3d`; docs/training.md). The mean pose and the untrained network are
drawn as horizontal lines: a curve that does not go below the first has learnt nothing that
generalises.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

STAGES = ("pretrain_3d", "finetune", "finetune_video")  # the stages that train the 3D branch, in order
REFERENCES = Path("reports/learning_curves")


def chain_curve(reports: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(images (K,), PA-MPJPE cm (K,), stage boundaries in images) over consecutive stage reports,
    each with a "curve" list of {"images", "pa_mpjpe_cm"}. Raises on a report without one."""
    xs: list[float] = []
    ys: list[float] = []
    bounds: list[float] = []
    offset = 0.0
    for r in reports:
        curve = r.get("curve")
        if not curve:
            raise ValueError(f"stage report {r.get('stage', '?')!r} has no validation curve (rerun the stage)")
        start = 1 if xs else 0  # a later stage's first point is the previous stage's last model
        for p in curve[start:]:
            xs.append(offset + float(p["images"]))
            ys.append(float(p["pa_mpjpe_cm"]))
        offset += float(curve[-1]["images"])
        bounds.append(offset)
    return np.asarray(xs), np.asarray(ys), bounds[:-1]


def read_stage_reports(folder: str | Path, stages: Sequence[str] = STAGES) -> list[dict]:
    """The stage reports that exist in folder (reports/train), in stage order."""
    folder = Path(folder)
    return [json.loads((folder / f"{s}.json").read_text()) for s in stages if (folder / f"{s}.json").is_file()]


def read_references(folder: str | Path = REFERENCES) -> dict[str, dict]:
    """label -> reference record of every *.json in folder (none if it does not exist)."""
    folder = Path(folder)
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rec = json.loads(f.read_text())
        if not {"label", "curve"} <= set(rec):
            raise ValueError(f"{f}: a reference curve needs 'label' and 'curve'")
        out[rec["label"]] = rec
    return out


def learning_curve_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], mean_pose: float | None,
                          untrained: float | None, out: str | Path, bounds: Sequence[float] = (),
                          title: str = "validation PA-MPJPE against training images seen") -> Path:
    """PNG of the curves (label -> (images, cm)), the two horizontal reference lines and the stage
    boundaries (vertical, dotted) of the first curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker="o", ms=3, label=label)
    if mean_pose is not None:
        ax.axhline(mean_pose, color="k", ls="--", lw=1, label=f"mean pose ({mean_pose:.3f})")
    if untrained is not None:
        ax.axhline(untrained, color="gray", ls=":", lw=1, label=f"untrained network ({untrained:.3f})")
    for b in bounds:
        ax.axvline(b, color="0.8", ls=":", lw=1)
    ax.set_xlabel("training images seen since the 3D branch started (pretrain_3d | finetune | finetune_video)")
    ax.set_ylabel("val PA-MPJPE (cm)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
    return out


def draw_pipeline_curves(train_reports: str | Path, out: str | Path, label: str,
                         references: str | Path = REFERENCES) -> Path:
    """The evaluate stage's figure: this run's curve (label) and the references. Raises when the
    3D stages' reports are missing or carry no curve (made by older code: rerun them)."""
    reports = read_stage_reports(train_reports)
    if not reports:
        raise FileNotFoundError(f"no 3D-training stage report ({', '.join(STAGES)}) in {train_reports}")
    x, y, bounds = chain_curve(reports)
    curves = {label: (x, y)}
    for name, rec in read_references(references).items():
        rx = np.asarray([p["images"] for p in rec["curve"]], float)
        ry = np.asarray([p["pa_mpjpe_cm"] for p in rec["curve"]], float)
        curves[f"{name} (seed {rec.get('seed', '?')})"] = (rx, ry)
    base = reports[0].get("baseline_mean_pose", {}).get("pa_mpjpe_cm")
    return learning_curve_figure(curves, base, float(y[0]), out, bounds)


# ---- s2hand curves export ------------------------------------------------------------------------


def experiment_ref(name: str, cwd: str | Path = ".") -> str:
    """The git ref of DVC experiment `name` (refs/exps/.../name). Raises if none or several match."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.split()
    found = [r for r in refs if r.rsplit("/", 1)[-1] == name]
    if len(found) != 1:
        raise ValueError(f"DVC experiment {name!r}: {len(found)} refs match (dvc exp list)")
    return found[0]


def export_reference(exp: str, label: str, out_dir: str | Path = REFERENCES, cwd: str | Path = ".") -> Path:
    """Write out_dir/<slug of label>.json from experiment exp's stage reports (one chained curve)."""
    ref = experiment_ref(exp, cwd)
    reports = []
    for s in STAGES:
        r = subprocess.run(["git", "show", f"{ref}:reports/train/{s}.json"], cwd=cwd, capture_output=True, text=True)
        if r.returncode == 0:
            reports.append(json.loads(r.stdout))
    if not reports:
        raise ValueError(f"experiment {exp!r} has no reports/train/<stage>.json of {STAGES}")
    params = subprocess.run(["git", "show", f"{ref}:params.yaml"], cwd=cwd, capture_output=True, text=True).stdout
    seed = re.search(r"^seed:\s*(\d+)", params, re.M)
    x, y, _ = chain_curve(reports)
    rec = {"label": label, "source": f"dvc experiment {exp}", "seed": int(seed.group(1)) if seed else None,
           "curve": [{"images": float(a), "pa_mpjpe_cm": float(b)} for a, b in zip(x, y)]}
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    out = Path(out_dir) / f"{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=1) + "\n")
    return out
