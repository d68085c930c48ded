"""The evaluation's written outputs: metrics.json, the curve files of `dvc plots`, reports/README.md.

    m = metrics_json(results, detector, ground_truth, frames)     # nested dict, numbers only
    write_curves(folder, results, detector, px_thresholds)        # pck_joints.csv, pck_verts.csv, within_2d.csv
    held = paper_directions(m, setup)                             # which of the paper's directions held here
    text = readme(m, setup)                                       # markdown: tables of the paper's kind

`results` maps a model name ("s2hand", "s2hand_v", "mean_pose") to its s2hand.evaluate.run.EvalResult.
The README puts the paper's numbers (PAPER_* below, copied from the TPAMI paper's tables) beside
ours, and for Tables 1/2, 4, 5 and 9 one sentence saying which of the paper's directions held
here (`paper_directions`, computed from the numbers passed in).
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from s2hand.io import atomic_file

from .run import EvalResult

MODEL_LABELS = {"s2hand": "S2HAND", "s2hand_v": "S2HAND(V)", "mean_pose": "mean-pose baseline"}
ACCURACY_KEYS = ("auc_j", "pa_mpjpe_cm", "auc_v", "pa_mpvpe_cm", "f5", "f15")
HIGHER_IS_BETTER = {"auc_j": True, "pa_mpjpe_cm": False, "auc_v": True, "pa_mpvpe_cm": False, "f5": True,
                    "f15": True}
ACCURACY_HEADER = "| AUC_J ↑ | MPJPE (cm) ↓ | AUC_V ↑ | MPVPE (cm) ↓ | F5 ↑ | F15 ↑ |"

# The paper's numbers (TPAMI 2023) as printed there (strings keep its precision), rows as
# (label, AUC_J, MPJPE, AUC_V, MPVPE, F5, F15).
PAPER_TABLE_1_2 = (
    ("FreiHAND test, S2HAND (Table 1)", "0.77", "1.18", "0.77", "1.19", "0.48", "0.92"),
    ("HO-3D test, S2HAND (Table 2)", "0.773", "1.14", "0.777", "1.12", "0.45", "0.93"),
    ("HO-3D test, S2HAND(V) (Table 2)", "0.780", "1.10", "0.781", "1.09", "0.46", "0.94"),
)
PAPER_TABLE_4 = {  # HO-3D test; key: (video.temporal_loss, video.ts); None = S2HAND
    None: ("S2HAND", "0.773", "1.14", "0.777", "1.12", "0.45", "0.93"),
    ("temporal", False): ("S2HAND(V) w/ temporal loss", "0.771", "1.15", "0.773", "1.14", "0.44", "0.93"),
    ("smooth", False): ("S2HAND(V) w/ smooth loss", "0.774", "1.13", "0.776", "1.12", "0.45", "0.93"),
    ("quaternion", False): ("S2HAND(V) w/ quaternion loss", "0.779", "1.10", "0.781", "1.09", "0.46", "0.94"),
    ("quaternion", True): ("S2HAND(V) w/ quaternion loss, T&S loss", "0.780", "1.10", "0.781", "1.09", "0.46", "0.94"),
}
# HO-3D; (label, train ACC-ERR, train ACC, train quaternion loss, test ACC, test quaternion loss). The
# paper prints no unit; the magnitudes fit mm/frame^2 (s2hand.metrics.video).
PAPER_TABLE_5 = {
    None: ("S2HAND", "2.85", "2.29", "0.014", "3.68", "0.020"),
    "temporal": ("S2HAND(V) w/ temporal loss", "2.57", "1.96", "0.011", "2.87", "0.015"),
    "smooth": ("S2HAND(V) w/ smooth loss", "2.89", "2.29", "0.014", "2.89", "0.015"),
    "quaternion": ("S2HAND(V) w/ quaternion loss", "2.23", "1.59", "0.008", "2.81", "0.014"),
}
PAPER_TABLE_9 = {  # HO-3D test; (label, texture S.D., shape S.D.); key: video.ts (quaternion loss)
    None: ("S2HAND", "0.033", "0.013"),
    False: ("S2HAND(V) w/ quaternion loss", "0.042", "0.016"),
    True: ("S2HAND(V) w/ quaternion loss, T&S loss", "0.016", "0.012"),
}


# ---- metrics.json and curves ---------------------------------------------------------------------

def _clean(v: object) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def numbers_only(c: Mapping[str, object]) -> dict:
    """A comparison's numbers and flags, without its verdict word (metrics.json holds numbers only;
    the verdicts go to verdicts.json)."""
    return {k: (v if isinstance(v, (bool, int)) else _clean(v)) for k, v in sorted(c.items()) if not isinstance(v, str)}


def metrics_json(results: Mapping[str, EvalResult], detector: EvalResult | None,
                 ground_truth: Mapping[str, float], frames: int,
                 keypoint_fit: Mapping[str, Mapping[str, float | None]] | None = None,
                 vs_mean_pose: Mapping[str, Mapping[str, float | int | bool | None]] | None = None) -> dict:
    """{"frames": N, <model>: {metric: value}, "detector": {...}, "ground_truth": {...},
    "keypoint_fit": {"ground_truth_2d": {...}, "detections": {...}}, "vs_mean_pose": {<model>:
    s2hand.model.baseline.baseline_comparison's dict}}: numbers (or null for an undefined one) and
    the comparisons' better / worse flags only, so `dvc metrics show` lists every key."""
    out: dict = {"frames": int(frames)}
    for name, r in results.items():
        out[name] = {k: _clean(v) for k, v in sorted(r.metrics.items())}
    if detector is not None:
        out["detector"] = {k: _clean(v) for k, v in sorted(detector.metrics.items())}
    out["ground_truth"] = {k: _clean(v) for k, v in sorted(ground_truth.items())}
    if keypoint_fit:
        out["keypoint_fit"] = {name: {k: _clean(v) for k, v in sorted(r.items())} for name, r in keypoint_fit.items()}
    if vs_mean_pose:
        out["vs_mean_pose"] = {name: numbers_only(c) for name, c in vs_mean_pose.items()}
    return out


def _write_csv(path: Path, header: Sequence[str], columns: Sequence[Sequence[float | None]]) -> None:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"{path.name}: columns of unequal length {sorted(lengths)}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in zip(*columns):
        w.writerow(["" if v is None else f"{v:.6g}" for v in row])
    with atomic_file(path) as f:
        f.write(buf.getvalue())


def write_curves(folder: str | Path, results: Mapping[str, EvalResult], detector: EvalResult | None,
                 px_thresholds: Sequence[float]) -> list[Path]:
    """The DVC plot files (x column first, one y column per model): pck_joints.csv and
    pck_verts.csv (aligned PCK / PCV over threshold_cm) and within_2d.csv (fraction of frames whose
    largest 2D joint error is <= threshold_px; <model>_projected, <model>_branch2d, detector)."""
    folder = Path(folder)
    first = next(iter(results.values()))
    paths = []
    for fname, key in (("pck_joints.csv", "pck_j"), ("pck_verts.csv", "pck_v")):
        names = [n for n, r in results.items() if r.curves.get(key) is not None]
        _write_csv(folder / fname, ["threshold_cm", *names],
                   [first.curves["thresholds_cm"], *(results[n].curves[key] for n in names)])
        paths.append(folder / fname)
    header, cols = ["threshold_px"], [list(px_thresholds)]
    for name, r in results.items():
        for key, suffix in (("within_px", "projected"), ("within_px_branch2d", "branch2d")):
            if key in r.curves:
                header.append(f"{name}_{suffix}")
                cols.append(r.curves[key])
    if detector is not None:
        header.append("detector")
        cols.append(detector.curves["within_px"])
    _write_csv(folder / "within_2d.csv", header, cols)
    paths.append(folder / "within_2d.csv")
    return paths


# ---- README --------------------------------------------------------------------------------------

def _fmt(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}"


def relative_change(before: float | None, after: float | None) -> float | None:
    """(after - before) / |before| in percent; None when undefined."""
    if before is None or after is None or before == 0:
        return None
    return 100.0 * (after - before) / abs(before)


def _sign(x: float, tol: float = 1e-12) -> int:
    return 0 if abs(x) <= tol else (1 if x > 0 else -1)


def same_direction(paper_before: float, paper_after: float, before: float | None, after: float | None) -> bool | None:
    """Did the value move the way the paper's did (up, down, or not at all)? None if undefined."""
    if before is None or after is None:
        return None
    return _sign(paper_after - paper_before) == _sign(after - before, 1e-12 * max(1.0, abs(before)))


def _verdict(flags: Sequence[bool | None]) -> str:
    known = [f for f in flags if f is not None]
    if not known:
        return "could not be checked (numbers missing)"
    if all(known):
        return "held"
    if not any(known):
        return "did not hold"
    return f"held on {sum(known)} of {len(known)} measures"


def _moved(name: str, before: float | None, after: float | None, digits: int = 3) -> str:
    if before is None or after is None:
        return f"{name} n/a"
    if after == before:
        return f"{name} unchanged ({_fmt(after, digits)})"
    word = "fell" if after < before else "rose"
    return f"{name} {word} from {_fmt(before, digits)} to {_fmt(after, digits)}"


def _accuracy_row(label: str, m: Mapping[str, float | None]) -> str:
    return f"| {label} | " + " | ".join(_fmt(m.get(k), 3 if k.startswith(("auc", "f")) else 2) for k in ACCURACY_KEYS) + " |"


def _paper_row(row: Sequence) -> str:
    return f"| *paper: {row[0]}* | " + " | ".join(f"*{v}*" for v in row[1:]) + " |"


def _better(a: Mapping[str, float | None], b: Mapping[str, float | None]) -> list[str]:
    """ACCURACY_KEYS on which `a` is strictly better than `b`."""
    out = []
    for k in ACCURACY_KEYS:
        x, y = a.get(k), b.get(k)
        if x is not None and y is not None and ((x > y) if HIGHER_IS_BETTER[k] else (x < y)):
            out.append(k)
    return out


def _paper_row_4(setup: Mapping) -> tuple | None:
    """Table 4's S2HAND(V) row for this setup's motion loss (and T&S loss); None if the paper has none."""
    loss, ts = setup.get("temporal_loss", "quaternion"), bool(setup.get("ts", True))
    return PAPER_TABLE_4.get((loss, ts and loss == "quaternion")) or PAPER_TABLE_4.get((loss, False))


def _moved_as_paper(base: Sequence, paper: Sequence, columns: Mapping[str, int], s: Mapping, v: Mapping) -> dict:
    """{measure: did it move from S2HAND `s` to S2HAND(V) `v` as the paper's column moved from its row
    `base` to its row `paper`; None where a number is missing}; `columns`: measure -> paper column."""
    return {k: same_direction(float(base[i]), float(paper[i]), s.get(k), v.get(k)) for k, i in columns.items()}


def paper_directions(m: Mapping, setup: Mapping) -> dict[str, dict | None]:
    """Which of the paper's directions, S2HAND to S2HAND(V), held here: per table ("table_1_2",
    "table_4", "table_5", "table_9") {"flags": {measure: held? (None: a number is missing)},
    "verdict": held | did not hold | held on k of n measures | could not be checked (numbers missing)};
    None where the paper has no row for this setup's video.temporal_loss. The README states these."""
    s, v = m.get("s2hand", {}), m.get("s2hand_v", {})
    better = _better(v, s)  # Table 2: S2HAND(V) is better on all six
    paper_5 = PAPER_TABLE_5.get(setup.get("temporal_loss", "quaternion"))
    paper_4 = _paper_row_4(setup)
    flags = {
        "table_1_2": {k: k in better for k in ACCURACY_KEYS} if s and v else {},
        "table_4": None if paper_4 is None else _moved_as_paper(PAPER_TABLE_4[None], paper_4,
                                                                {"pa_mpjpe_cm": 2, "pa_mpvpe_cm": 4}, s, v),
        "table_5": None if paper_5 is None else _moved_as_paper(
            PAPER_TABLE_5[None], paper_5, {"acc_mm_frame2": 4, "acc_err_mm_frame2": 1, "quat_loss": 5}, s, v),
        "table_9": _moved_as_paper(PAPER_TABLE_9[None], PAPER_TABLE_9[bool(setup.get("ts", True))],
                                   {"texture_sd": 1, "shape_sd": 2}, s, v),
    }
    return {t: None if f is None else {"flags": f, "verdict": _verdict(list(f.values()))} for t, f in flags.items()}


def table_1_2(m: Mapping, held: Mapping) -> list[str]:
    """The accuracy table, and `held` (paper_directions' table_1_2) as a sentence."""
    lines = ["## 3D accuracy (the kind of Tables 1 and 2)", "",
             "Procrustes-aligned, as the paper reports them (FreiHAND's online evaluation).", "",
             "| method " + ACCURACY_HEADER, "|---" * 7 + "|"]
    for name in ("s2hand", "s2hand_v", "mean_pose"):
        if name in m:
            lines.append(_accuracy_row(MODEL_LABELS[name], m[name]))
    lines += [_paper_row(r) for r in PAPER_TABLE_1_2]
    better_v = [k for k, f in held["flags"].items() if f]
    base = m.get("mean_pose", {})
    vs_base = "; against the mean-pose baseline" + "".join(
        f"{',' if i else ''} {MODEL_LABELS[n]} is better on {len(_better(m[n], base))} of 6"
        for i, n in enumerate(x for x in ("s2hand", "s2hand_v") if x in m)) if base else ""
    lines += ["", f"Paper (HO-3D, Table 2): S2HAND(V) is better than S2HAND on all six measures; here it is "
              f"better on {len(better_v)} of 6 ({', '.join(better_v) or 'none'}), so by the point values alone this "
              f"direction {held['verdict']}{vs_base}. What the frame-by-frame intervals allow is in the verdicts "
              "below (held: measurably in the paper's direction; reversed: measurably against it).", ""]
    lines += vs_mean_pose_lines(m)
    lines += video_vs_image_lines(m)
    lines += ["Without alignment (camera-space error, cm):", "", "| method | MPJPE | MPVPE | F5 | F15 |",
              "|---|---|---|---|---|"]
    for name in ("s2hand", "s2hand_v", "mean_pose"):
        if name in m:
            r = m[name]
            lines.append(f"| {MODEL_LABELS[name]} | {_fmt(r.get('mpjpe_cm_unaligned'), 2)} | "
                         f"{_fmt(r.get('mpvpe_cm_unaligned'), 2)} | {_fmt(r.get('f5_unaligned'))} | "
                         f"{_fmt(r.get('f15_unaligned'))} |")
    lines.append("")
    return lines


def _paper_verdict(c: Mapping) -> str:
    """The comparison's verdict (stage.judged), as the sentence after it; "" where none was stored."""
    return f" Verdict: {c['verdict']}." if c.get("verdict") else ""


def video_vs_image_lines(m: Mapping) -> list[str]:
    """S2HAND(V) minus S2HAND (stage.video_vs_image): PA-MPJPE and ACC, each with its interval."""
    c = m.get("s2hand_v_vs_s2hand")
    if not c:
        return []
    out = []
    for key, what, unit, scale in (("pa_mpjpe", "PA-MPJPE frame by frame", "cm", 1.0),
                                   ("acc_mm_frame2", "ACC (mean wrist-relative joint acceleration) per frame", "mm/frame^2", 1.0)):
        d = c[key]
        diff = d.get("diff_cm", d.get("diff"))
        lo, hi = d.get("lo_cm", d.get("lo")), d.get("hi_cm", d.get("hi"))
        if diff is None:
            continue
        if lo is None:
            out.append(f"- S2HAND(V) minus S2HAND, {what}: {scale * diff:+.3f} {unit} (too few sequences for an interval)."
                       + _paper_verdict(d))
            continue
        verdict = "measurably lower" if d.get("better") else "measurably higher" if d.get("worse") else "no measurable difference"
        out.append(f"- S2HAND(V) minus S2HAND, {what}: {scale * diff:+.3f} {unit} (95 % interval {scale * lo:+.3f} to "
                   f"{scale * hi:+.3f}, resampling the {_fmt(d.get('groups'), 0)} sequences): {verdict}."
                   + _paper_verdict(d))
    return [*out, ""] if out else []


def vs_mean_pose_lines(m: Mapping) -> list[str]:
    """One sentence per model: its per-frame PA-MPJPE minus the mean pose's, with the interval of a
    bootstrap over whole sequences (s2hand.metrics.compare), and what it lets one conclude."""
    out = []
    for name, c in (m.get("vs_mean_pose") or {}).items():
        if c.get("diff_cm") is None:
            continue
        head = (f"{MODEL_LABELS.get(name, name)} minus the mean-pose baseline, PA-MPJPE frame by frame: "
                f"{c['diff_cm']:+.3f} cm")
        if c.get("lo_cm") is None:
            out.append(head + f" ({_fmt(c.get('groups'), 0)} sequences, too few for an interval: no conclusion)."
                       + _paper_verdict(c))
            continue
        verdict = ("measurably better" if c.get("better") else "measurably worse" if c.get("worse")
                   else "no measurable difference")
        share = _fmt(100 * c.get("frames_better", 0.0), 0)
        out.append(f"{head} (95 % interval {c['lo_cm']:+.3f} to {c['hi_cm']:+.3f} cm, resampling the "
                   f"{_fmt(c.get('groups'), 0)} sequences; lower on {share} % of the frames): {verdict}."
                   + _paper_verdict(c))
    return [*(f"- {line}" for line in out), ""] if out else []


def _video_label(setup: Mapping) -> str:
    loss = setup.get("temporal_loss", "quaternion")
    parts = [f"w/ {loss} loss" if loss != "none" else "no motion loss"]
    if setup.get("ts", True):
        parts.append("T&S loss")
    if setup.get("camera") == "orthographic":
        parts.append("orthographic camera")
    return "S2HAND(V) (" + ", ".join(parts) + ")"


def table_4(m: Mapping, setup: Mapping, held: Mapping | None) -> list[str]:
    """The accuracy table with the motion constraint, and `held` (paper_directions' table_4) as a sentence."""
    s, v = m.get("s2hand", {}), m.get("s2hand_v", {})
    loss = setup.get("temporal_loss", "quaternion")
    lines = ["## Accuracy with the motion constraint (the kind of Table 4)", "",
             "| method " + ACCURACY_HEADER, "|---" * 7 + "|"]
    if s:
        lines.append(_accuracy_row("S2HAND", s))
    if v:
        lines.append(_accuracy_row(_video_label(setup), v))
    lines += [_paper_row(r) for r in PAPER_TABLE_4.values()]
    paper, base = _paper_row_4(setup), PAPER_TABLE_4[None]
    if paper is None:
        sentence = (f"The paper has no S2HAND(V) row with video.temporal_loss = {loss}; here MPJPE changed by "
                    f"{_pct(relative_change(s.get('pa_mpjpe_cm'), v.get('pa_mpjpe_cm')))} % and MPVPE by "
                    f"{_pct(relative_change(s.get('pa_mpvpe_cm'), v.get('pa_mpvpe_cm')))} % against S2HAND.")
    else:
        sentence = (f"Paper: {paper[0]} changed MPJPE by {relative_change(float(base[2]), float(paper[2])):+.1f} % and MPVPE by "
                    f"{relative_change(float(base[4]), float(paper[4])):+.1f} % against S2HAND; here by "
                    f"{_pct(relative_change(s.get('pa_mpjpe_cm'), v.get('pa_mpjpe_cm')))} % and "
                    f"{_pct(relative_change(s.get('pa_mpvpe_cm'), v.get('pa_mpvpe_cm')))} %, so the direction "
                    f"{held['verdict']}.")
    return lines + ["", sentence, ""]


def table_5(m: Mapping, setup: Mapping, held: Mapping | None) -> list[str]:
    """The smoothness table, and `held` (paper_directions' table_5) as a sentence."""
    s, v = m.get("s2hand", {}), m.get("s2hand_v", {})
    loss = setup.get("temporal_loss", "quaternion")
    lines = ["## Smoothness (the kind of Table 5)", "",
             f"On this split's sequences ({_fmt(setup.get('fps'), 0)} frames/s); ACC-ERR needs 3D ground truth, "
             "which this split has. The paper's numbers fit mm/frame^2. ACC and ACC-ERR are of the joints "
             "relative to the wrist, as VIBE's evaluation subtracts the root; the last column keeps the "
             "camera-space joints, whose placement the temporal losses do not touch.", "",
             "| method | ACC-ERR (mm/s²) ↓ | ACC (mm/s²) ↓ | ACC-ERR (mm/frame²) ↓ | ACC (mm/frame²) ↓ | quaternion loss ↓ "
             "| camera-space ACC (mm/frame²) |",
             "|---|---|---|---|---|---|---|"]
    for name, label in (("s2hand", "S2HAND"), ("s2hand_v", _video_label(setup)), ("mean_pose", MODEL_LABELS["mean_pose"]),
                        ("ground_truth", "ground truth")):
        if name in m:
            r = m[name]
            lines.append(f"| {label} | {_fmt(r.get('acc_err_mm_s2'), 0)} | {_fmt(r.get('acc_mm_s2'), 0)} | "
                         f"{_fmt(r.get('acc_err_mm_frame2'), 2)} | {_fmt(r.get('acc_mm_frame2'), 2)} | "
                         f"{_fmt(r.get('quat_loss'), 4)} | {_fmt(r.get('acc_cam_mm_frame2'), 2)} |")
    lines += ["", "| paper (HO-3D) | train ACC-ERR | train ACC | train quat. loss | test ACC | test quat. loss |",
              "|---|---|---|---|---|---|"]
    lines += [f"| *{r[0]}* | " + " | ".join(f"*{x}*" for x in r[1:]) + " |" for r in PAPER_TABLE_5.values()]
    paper, base = PAPER_TABLE_5.get(loss), PAPER_TABLE_5[None]
    if paper is None:
        sentence = (f"The paper has no row for video.temporal_loss = {loss}; here "
                    + ", ".join([_moved("ACC (mm/frame²)", s.get("acc_mm_frame2"), v.get("acc_mm_frame2"), 2),
                                 _moved("ACC-ERR (mm/frame²)", s.get("acc_err_mm_frame2"), v.get("acc_err_mm_frame2"), 2),
                                 _moved("the quaternion loss", s.get("quat_loss"), v.get("quat_loss"), 4)]) + ".")
    else:
        sentence = (f"Paper, from S2HAND to {paper[0]}: "
                    + ", ".join([_moved("test ACC", float(base[4]), float(paper[4]), 2),
                                 _moved("train ACC-ERR", float(base[1]), float(paper[1]), 2),
                                 _moved("the test quaternion loss", float(base[5]), float(paper[5]), 3)])
                    + "; here, from S2HAND to S2HAND(V), "
                    + ", ".join([_moved("ACC", s.get("acc_mm_frame2"), v.get("acc_mm_frame2"), 2),
                                 _moved("ACC-ERR", s.get("acc_err_mm_frame2"), v.get("acc_err_mm_frame2"), 2),
                                 _moved("the quaternion loss", s.get("quat_loss"), v.get("quat_loss"), 4)])
                    + f" (mm/frame²), so the direction {held['verdict']}.")
    return lines + ["", sentence, ""]


def table_9(m: Mapping, setup: Mapping, held: Mapping) -> list[str]:
    """The appearance-consistency table, and `held` (paper_directions' table_9) as a sentence."""
    s, v = m.get("s2hand", {}), m.get("s2hand_v", {})
    ts = bool(setup.get("ts", True))
    lines = ["## Appearance consistency (the kind of Table 9)", "",
             "Per-dimension S.D. over a sequence's frames, averaged over dimensions and sequences; texture "
             "lit with the canonical face normals (eq. 22).", "",
             "| method | texture S.D. ↓ | shape S.D. ↓ |", "|---|---|---|"]
    if s:
        lines.append(f"| S2HAND | {_fmt(s.get('texture_sd'), 4)} | {_fmt(s.get('shape_sd'), 4)} |")
    if v:
        lines.append(f"| {_video_label(setup)} | {_fmt(v.get('texture_sd'), 4)} | {_fmt(v.get('shape_sd'), 4)} |")
    lines += [f"| *paper: {r[0]}* | *{r[1]}* | *{r[2]}* |" for r in PAPER_TABLE_9.values()]
    paper = PAPER_TABLE_9[ts]
    word = "lowered" if ts else "raised"
    sentence = (f"Paper: {paper[0]} {word} both S.D.s against S2HAND; here "
                + ", ".join([_moved("texture S.D.", s.get("texture_sd"), v.get("texture_sd"), 4),
                             _moved("shape S.D.", s.get("shape_sd"), v.get("shape_sd"), 4)])
                + f", so the direction {held['verdict']}.")
    return lines + ["", sentence, ""]


def table_2d(m: Mapping) -> list[str]:
    lines = ["## 2D keypoints (the kind of Fig. 7)", "",
             "Mean distance to the ground-truth 2D keypoints in pixels of the dataset's images (all 21 "
             "joints; the detector's only where it found the keypoint).", "",
             "| keypoints | 2D MPJPE (px) ↓ |", "|---|---|"]
    rows: list[tuple[str, float | None]] = []
    if "detector" in m:
        d = m["detector"]
        found = d.get("detected_fraction")
        rows.append((f"detector, on the {_fmt(None if found is None else 100 * found, 0)} % of keypoints it found",
                     d.get("mpjpe_px")))
    for name in ("s2hand", "s2hand_v"):
        if name in m:
            rows.append((f"{MODEL_LABELS[name]}, projected 3D joints", m[name].get("proj_mpjpe_px")))
            if m[name].get("proj_mpjpe_px_on_detected") is not None:
                rows.append((f"{MODEL_LABELS[name]}, projected 3D joints, on the keypoints the detector found",
                             m[name]["proj_mpjpe_px_on_detected"]))
            if m[name].get("hg_mpjpe_px") is not None:
                rows.append((f"{MODEL_LABELS[name]}, 2D branch", m[name].get("hg_mpjpe_px")))
    lines += [f"| {label} | {_fmt(v, 2)} |" for label, v in rows]
    known = [(label, v) for label, v in rows if v is not None]
    if known:
        best = min(known, key=lambda r: r[1])
        lines += ["", f"Closest to the ground truth here: {best[0]} ({_fmt(best[1], 2)} px)."]
    return lines + [""]


def table_keypoint_fit(m: Mapping) -> list[str]:
    """What the 2D supervision can carry: per-frame fits to 2D keypoints beside the models; the fits
    to the detections split into the frames training keeps and those its filters drop."""
    fits = m.get("keypoint_fit") or {}
    if not fits:
        return []
    lines = ["## How much 3D the 2D keypoints carry", "",
             "Each frame's hand fitted on its own to 2D keypoints with the training energy's keypoint and "
             "regulariser terms (E_loc, E_ori, E_regu; no network: s2hand.evaluate.keypoint_fit). The "
             "detector rows use only the frames where it found a hand (all of them, then those that training's "
             "filters keep and those they drop), with the mean-pose baseline on those same frames beside them.", "",
             "| hand | frames | MPJPE (cm) ↓ | MPVPE (cm) ↓ | mean pose, same frames: MPJPE (cm) | against the mean pose | "
             "projected 2D error (px) | label 2D error (px) |", "|---|---|---|---|---|---|---|---|"]
    base = m.get("mean_pose", {})
    for name, label in (("ground_truth_2d", "fitted to ground-truth 2D keypoints"),
                        ("detections", "fitted to the detected keypoints"),
                        ("detections_kept", "... on the frames training keeps"),
                        ("detections_dropped", "... on the frames its filters drop")):
        if name in fits:
            r = fits[name]
            same = r.get("mean_pose_pa_mpjpe_cm", base.get("pa_mpjpe_cm"))
            lines.append(f"| {label} | {_fmt(r.get('frames'), 0)} | {_fmt(r.get('pa_mpjpe_cm'))} | "
                         f"{_fmt(r.get('pa_mpvpe_cm'))} | {_fmt(same)} | {_relative(r.get('pa_mpjpe_cm'), same)} | "
                         f"{_fmt(r.get('proj_mpjpe_px'), 2)} | {_fmt(r.get('detector_mpjpe_px'), 2)} |")
    for name in ("s2hand", "s2hand_v"):
        if name in m:
            lines.append(f"| {MODEL_LABELS[name]} (network) | {m.get('frames', '')} | {_fmt(m[name].get('pa_mpjpe_cm'))} | "
                         f"{_fmt(m[name].get('pa_mpvpe_cm'))} | {_fmt(base.get('pa_mpjpe_cm'))} | "
                         f"{_relative(m[name].get('pa_mpjpe_cm'), base.get('pa_mpjpe_cm'))} | "
                         f"{_fmt(m[name].get('proj_mpjpe_px'), 2)} | |")
    return lines + [""]


def _relative(value: float | None, reference: float | None) -> str:
    """'-12.3 %': value against reference (lower is better); '' when either is missing."""
    if value is None or reference is None or not reference:
        return ""
    return f"{100 * (value / reference - 1):+.1f} %"


def table_articulation(m: Mapping) -> list[str]:
    """Does the articulation follow the hands? (s2hand.metrics.articulation; metrics "articulation")."""
    a = m.get("articulation")
    if not a:
        return []
    lines = ["## Articulation: closed hands predicted closed?", "",
             "Finger straightness, 1 for straight fingers and about 0.4 in a fist (mean over index to pinky of "
             "tip-to-knuckle distance over finger length). Closed and open frames: the quarters of frames with the "
             "lowest and highest ground-truth straightness. Gap ratio: the predicted closed-to-open gap over the "
             "ground truth's (1: opens and closes as much as the hands, 0: a constant hand). 95 % intervals over "
             "sequences.", "",
             "| model | r with the ground truth | gap ratio | closed frames: predicted (true) | open frames: predicted (true) |",
             "|---|---|---|---|---|"]
    for name, r in a.items():
        lines.append(f"| {MODEL_LABELS.get(name, name)} | {_fmt(r['r'], 2)} [{_fmt(r['r_lo'], 2)}, {_fmt(r['r_hi'], 2)}] | "
                     f"{_fmt(r['gap_ratio'], 2)} [{_fmt(r['gap_lo'], 2)}, {_fmt(r['gap_hi'], 2)}] | "
                     f"{_fmt(r['closed']['pred'], 2)} ({_fmt(r['closed']['gt'], 2)}) | "
                     f"{_fmt(r['open']['pred'], 2)} ({_fmt(r['open']['gt'], 2)}) |")
    return lines + [""]


def readme(m: Mapping, setup: Mapping) -> str:
    """reports/README.md from metrics_json's dict and facts about the run (`setup`: dataset, split,
    frames, sequences, image_size, fps, checkpoints {model: (path, step)}, temporal_loss, ts, camera)."""
    ck = setup.get("checkpoints", {})
    lines = ["# Evaluation report", "",
             "Written by the `evaluate` stage (`python -m pipeline.evaluate`; docs/evaluation.md defines every "
             "number). Do not edit: it is rewritten on every run.", "",
             f"- data: `{setup.get('dataset', '?')}`, split `{setup.get('split', '?')}`: {setup.get('frames', '?')} "
             f"frames in {setup.get('sequences', '?')} sequences, {setup.get('image_size', '?')} px, "
             f"{_fmt(setup.get('fps'), 0)} frames/s",
             *(f"- {MODEL_LABELS.get(k, k)}: `{p}` (step {st})" for k, (p, st) in ck.items()),
             "- mean-pose baseline: the mean training ground-truth pose and shape placed at each frame's ground-truth "
             "middle-finger MCP (uses ground truth the models never see; docs/training.md)",
             "- paper numbers (*italic*) are the paper's own, on FreiHAND / HO-3D with real MANO; they are for "
             "reference, not a like-for-like comparison with other data", ""]
    held = paper_directions(m, setup)
    lines += (table_1_2(m, held["table_1_2"]) + table_4(m, setup, held["table_4"]) + table_5(m, setup, held["table_5"])
              + table_9(m, setup, held["table_9"]) + table_2d(m) + table_keypoint_fit(m) + table_articulation(m))
    lines += ["## Figures", "", "PCK of joints and vertices (aligned) and the fraction of frames within a 2D "
              "distance: `evaluate/pck.png` (data: `evaluate/*.csv`, `dvc plots show`).", "",
              "![PCK curves](evaluate/pck.png)", "",
              "Test frames from the most closed hand to the most open one (by ground-truth finger "
              "straightness), one row per model: input | projected 3D keypoints | mesh overlay | the textured hand "
              "(predicted texture and light) seen from the camera and turned 180° about the vertical axis "
              "(the paper's Fig. 5 and 9): `evaluate/qualitative.png`.",
              "", "![qualitative results](evaluate/qualitative.png)", ""]
    return "\n".join(lines)
