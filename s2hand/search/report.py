"""Markdown tables of the search (supplementary Tables 10-12) and the selected-weights fragment.

Everything is rendered from a SearchResult, which `run_search` rebuilds from the trial log alone
when given no objective (nothing is rerun):

    result = run_search(plan, None, TrialStore("outputs/search/trials.jsonl"), params.weights.model_dump())
    Path("reports/weight_search.md").write_text(render_report(result))
    write_selected_weights("outputs/search/selected_weights.yaml", result)

Apply the selection to the workspace as a DVC experiment (the fragment's header and the report
carry the exact line, every selected weight as one `-S`):
    dvc exp run -S weights.branch3d=1.0 -S weights.branch2d=0.001 -S ...
or copy the `weights:` mapping of selected_weights.yaml over the one in params.yaml.
"""
from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import yaml

from s2hand.config import LossWeights
from s2hand.io import atomic_file
from s2hand.search.plan import SUBLOSSES, WEIGHT_NAMES, effective_weights, weighted_losses
from s2hand.search.runner import SearchResult, StepResult
from s2hand.search.store import TrialRecord


GAP_HEADER = "minus mean pose, cm [95 % interval]"


def fmt(v: float) -> str:
    """A number YAML 1.1 reads back as a float (1 -> 1.0, 1e-05 -> 1.0e-05)."""
    s = f"{float(v):.6g}"
    m, _, e = s.partition("e")
    if m.lstrip("-").isdigit():  # 1 -> 1.0, 1e-05 -> 1.0e-05: floats, not ints or strings
        m += ".0"
    return f"{m}e{e}" if e else m


def _g(v: float | None) -> str:
    """A number in a table."""
    return "-" if v is None else f"{float(v):.6g}"


def _gap(r: TrialRecord) -> str:
    """A trial's gap to the mean pose on its frames (cm) with its interval, and the verdict."""
    c = r.vs_mean_pose
    if c.get("diff_cm") is None:
        return "-"
    interval = "" if c.get("lo_cm") is None else f" [{c['lo_cm']:+.3g}, {c['hi_cm']:+.3g}]"
    return f"{c['diff_cm']:+.3g}{interval} ({'below' if c['verdict'] == 'held' else 'not below'})"


def below_mean_pose(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The trials that ended measurably below the mean pose on their own frames (interval wholly < 0)."""
    return [r for r in records if r.vs_mean_pose.get("verdict") == "held"]


def selection_check(result: SearchResult) -> dict:
    """Whether the selection means anything: {"informative": some trial overfit (ended measurably
    below the mean pose), "trials", "trials_below_mean_pose", "mean_pose_error_cm" (None if not
    measured), "best_gap_cm" (the lowest gap of any trial, None if none measured)}."""
    records = list({r.key: r for s in result.steps for r in s.records}.values())
    gaps = [r.mean_pose_gap_cm for r in records if r.mean_pose_gap_cm is not None]
    base = next((r.vs_mean_pose["mean_pose_cm"] for r in records if "mean_pose_cm" in r.vs_mean_pose), None)
    below = below_mean_pose(records)
    return {"informative": bool(below), "trials": len(records), "trials_below_mean_pose": len(below),
            "mean_pose_error_cm": base, "best_gap_cm": min(gaps) if gaps else None}


def _ratio(f: float) -> str:
    fr = Fraction(f).limit_denominator(100)
    return str(fr) if abs(float(fr) - f) < 1e-9 else f"{f:g}"


def _row(cells: Iterable[str], bold: bool = False) -> str:
    cells = [f"**{c}**" if bold and c else c for c in cells]
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[tuple[list[str], bool]]) -> str:
    out = [_row(header), "|" + "|".join(["---"] * len(header)) + "|"]
    out += [_row(cells, bold) for cells, bold in rows]
    return "\n".join(out)


def _active(records: list[TrialRecord]) -> list[str]:
    """Sub-losses with a nonzero weight in any of the records, in SUBLOSSES order."""
    return [s for s in SUBLOSSES if any(effective_weights(r.weights)[s] != 0 and s in r.losses for r in records)]


def phase1_table(step: StepResult) -> str:
    """One weight's order-of-magnitude selection, as Tables 11/12: one row per x10 value."""
    w = step.tuned[0]
    subs = _active(step.records)
    on = effective_weights(step.best.weights)
    fixed = [s for s in step.fixed if on[s] != 0]  # a loss switched off (quat, ts of S2HAND) adds nothing
    header = [w] + [f"φE {s}" for s in subs] + [f"Σ fixed ({' + '.join(fixed) or '-'}) ↓", "accuracy error ↓",
                                                 GAP_HEADER]
    rows = []
    for r in sorted(step.records, key=lambda r: r.weights[w]):
        wl = weighted_losses(r.weights, r.losses)
        cells = [_g(r.weights[w])] + [f"{wl[s]:.4g}" for s in subs] + [f"{r.step_loss_sum:.4g}", f"{r.accuracy_error:.4g}",
                                                                        _gap(r)]
        rows.append((cells, r.key == step.best.key))
    head = f"**{w}** (start {_g(step.start)}, {step.start_rule}); other weights: " + ", ".join(
        f"{k}={_g(v)}" for k, v in step.best.weights.items() if k != w and v != 0
    )
    return head + "\n\n" + _table(header, rows)


def phase2_table(step: StepResult) -> str:
    """One group's grid: one row per cell, the weights' values and the scores."""
    names = list(step.tuned)
    header = names + ["Σ weighted losses ↓", "accuracy error ↓", GAP_HEADER]
    rows = [([_g(r.weights[n]) for n in names] + [f"{r.step_loss_sum:.4g}", f"{r.accuracy_error:.4g}", _gap(r)],
             r.key == step.best.key) for r in step.records]
    return f"**group {step.step}** ({len(step.records)} runs)\n\n" + _table(header, rows)


def sensitivity_table(result: SearchResult) -> str:
    """Table 10: ratio of each weight to the selected one, and the scores."""
    steps = result.phase_steps("sensitivity")
    if not steps:
        return ""
    names = list(result.plan.sensitivity_weights)
    base = steps[0].best.weights
    header = names + ["Σ weighted losses ↓", "accuracy error ↓"]
    rows = []
    for s in steps:
        r = s.best
        cells = [_ratio(r.weights[n] / base[n]) if base[n] else "1" for n in names]
        rows.append((cells + [f"{r.step_loss_sum:.4g}", f"{r.accuracy_error:.4g}"], False))
    return _table(header, rows)


def summary_table(result: SearchResult) -> str:
    """Each weight through the search (search scale) and as written to the fragment."""
    out = result.output_weights()
    header = ["weight", "phase-1 start", "after phase 1", "selected", "selected_weights.yaml"]
    rows = [([k, _g(result.initial[k]), _g(result.phase1[k]), _g(result.selected[k]), _g(out[k])], False)
            for k in WEIGHT_NAMES if k in out]
    return _table(header, rows)


def apply_command(weights: dict[str, float]) -> str:
    """The one command that applies `weights` to params.yaml and runs the pipeline."""
    return "dvc exp run " + " ".join(f"-S weights.{k}={fmt(v)}" for k, v in weights.items())


def selection_lines(check: dict) -> str:
    """The report's verdict on the search: did any trial overfit?"""
    base = "not measured" if check["mean_pose_error_cm"] is None else f"{check['mean_pose_error_cm']:.4g} cm"
    best = "-" if check["best_gap_cm"] is None else f"{check['best_gap_cm']:+.4g} cm"
    head = (f"Mean pose on the trials' frames: PA-MPJPE {base}. {check['trials_below_mean_pose']} of "
            f"{check['trials']} trials ended measurably below it (95 % interval from a bootstrap over sequences, "
            f"paired frame by frame); the lowest gap is {best}.")
    if check["informative"]:
        return head
    return (head + " **Selection not informative**: no trial overfit its frames, so the ranking below ranks noise. "
            "The stage did not apply it: selected_weights.yaml holds the paper's weights.")


def render_report(result: SearchResult) -> str:
    plan = result.plan
    n = sum(len(s.records) for s in result.steps)
    check = selection_check(result)
    parts = [
        f"# Loss-weight search ({plan.variant})",
        f"{n} trials (phase 1: {sum(len(s.records) for s in result.phase_steps('phase1'))}, "
        f"phase 2: {sum(len(s.records) for s in result.phase_steps('phase2'))}, "
        f"sensitivity: {len(result.phase_steps('sensitivity'))}). Search scale: geo = {_g(plan.anchor)}; "
        f"the fragment is rescaled to geo = {_g(plan.output_geo) if plan.output_geo else 'as searched'}. "
        "Best rows in bold (lowest overfit accuracy error, then loss sum).",
        "## Did the trials overfit?\n\n" + selection_lines(check),
        "Apply:\n\n```\n" + apply_command(chosen_weights(result)) + "\n```",
        "## Selected weights\n\n" + summary_table(result),
    ]
    p1 = [s for s in result.phase_steps("phase1") if s.step != "base"]
    if p1:
        parts.append("## Phase 1: order of magnitude (as Tables 11, 12)\n\nΣ fixed: weighted losses of the "
                     "weights already determined, the tuned one excluded.")
        parts += [phase1_table(s) for s in p1]
    p2 = result.phase_steps("phase2")
    if p2:
        parts.append(f"## Phase 2: divide-and-conquer grid (factors {', '.join(_ratio(f) for f in plan.factors)})")
        parts += [phase2_table(s) for s in p2]
    if result.phase_steps("sensitivity"):
        parts.append("## Sensitivity (as Table 10): ratio to the selected weights\n\n" + sensitivity_table(result))
    return "\n\n".join(parts) + "\n"


def chosen_weights(result: SearchResult) -> dict[str, float]:
    """What the stage writes as selected: the search's weights when the selection is informative
    (selection_check), else the paper's (LossWeights' defaults), with the same keys."""
    out = result.output_weights()
    if selection_check(result)["informative"]:
        return out
    paper = LossWeights().model_dump()
    return {k: float(paper[k]) for k in out}


def write_selected_weights(path: str | Path, result: SearchResult) -> dict[str, float]:
    """Write `weights: {...}` (params.yaml fragment) with the apply command in its header: the
    search's selection, or the paper's weights when the selection is not informative."""
    weights = chosen_weights(result)
    note = ("" if selection_check(result)["informative"] else
            "# NOT INFORMATIVE: no trial ended below the mean pose on its frames; these are the paper's weights.\n")
    head = note + (
        f"# Loss weights selected by the {result.plan.variant} grid search (s2hand/search). Apply with:\n"
        f"#   {apply_command(weights)}\n"
        "# or copy this mapping over `weights:` in params.yaml.\n"
    )
    with atomic_file(path) as f:
        f.write(head + yaml.safe_dump({"weights": weights}, sort_keys=False))
    return weights
