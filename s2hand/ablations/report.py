"""reports/ablations.md: one table per paper table, ours beside the paper's, and a verdict.

    frames = build_tables(spec, "tiny", exp_results(), mlflow_runs(uri, "s2hand-ablations-tiny"))
    text = render_markdown(spec, "tiny", frames)

Our numbers come from each row's DVC experiment (`dvc exp show --json`: the table's metrics file,
e.g. reports/train/finetune.json's "val" block); where an experiment lacks them, from the MLflow
run of that row (the last "val/<metric>" it logged). The MLflow store also gives each row's runs
(tagged ablation_<table> = <row>) and their training time. `verdict` compares the rows each of
the paper's claims compares, in the claim's metric; a tie or a missing number is not "held".
"""
from __future__ import annotations

import math

import pandas as pd

from .spec import Experiment, Spec, Table, plan_experiments


def dig(tree: object, dotted: str) -> object:
    """tree["a"]["b"] for "a.b" ("" is the tree itself); None where missing."""
    node = tree
    for p in [p for p in dotted.split(".") if p]:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def _num(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def mlflow_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """Every run of the ablations' MLflow experiment (mlflow.search_runs; empty if none)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_names=[experiment], max_results=5000)


def _row_runs(runs: pd.DataFrame, table_id: str, row_id: str, stages: list[str]) -> pd.DataFrame:
    tag = f"tags.ablation_{table_id}"
    if runs.empty or tag not in runs:
        return runs.iloc[0:0]
    sel = runs[runs[tag] == row_id]
    return sel[sel["tags.stage"].isin(stages)] if "tags.stage" in sel else sel


def build_tables(spec: Spec, profile: str, results: dict[str, dict], runs: pd.DataFrame,
                 base: dict | None = None) -> dict[str, pd.DataFrame]:
    """{table id: DataFrame} with one row per ablation row: label, experiment, ours and the
    paper's number per column ("<label>" and "<label> paper"), source, MLflow runs, train minutes."""
    exps: dict[tuple[str, str], Experiment] = {}
    for e in plan_experiments(spec, profile, base=base):
        for m in e.members:
            exps[m] = e
    frames = {}
    for t_id, table in spec.tables.items():
        records = []
        for row in spec.rows(t_id):
            exp = exps[(t_id, row.id)]
            res = results.get(exp.name)
            block = dig((res or {}).get("metrics", {}).get(table.metrics_file), table.metrics_prefix)
            rr = _row_runs(runs, t_id, row.id, table.stages)
            rec: dict[str, object] = {"row": row.id, "label": row.label, "experiment": exp.name}
            source = "dvc" if isinstance(block, dict) else "missing"
            for c in table.columns:
                ours = _num(dig(block, c.key)) if isinstance(block, dict) else math.nan
                col = f"metrics.val/{c.key}"
                if math.isnan(ours) and not rr.empty and col in rr and rr[col].notna().any():
                    ours, source = float(rr.sort_values("start_time")[col].dropna().iloc[-1]), "mlflow"
                rec[c.label] = ours
                rec[f"{c.label} paper"] = row.paper.get(c.key, math.nan)
            rec["source"] = source
            rec["mlflow runs"] = len(rr)
            if not rr.empty and {"start_time", "end_time"} <= set(rr):
                rec["train min"] = round(float((rr["end_time"] - rr["start_time"]).dt.total_seconds().sum()) / 60, 2)
            else:
                rec["train min"] = math.nan
            records.append(rec)
        frames[t_id] = pd.DataFrame.from_records(records).set_index("row")
    return frames


def verdict(table: Table, frame: pd.DataFrame) -> tuple[int, int, list[str]]:
    """(claims held, claims measured, one line per claim) from `frame` (build_tables' frame)."""
    labels = {c.key: c for c in table.columns}
    held, measured, lines = 0, 0, []
    for cl in table.claims:
        col = labels[cl.metric]
        a, b = float(frame.loc[cl.better, col.label]), float(frame.loc[cl.worse, col.label])
        if math.isnan(a) or math.isnan(b):
            lines.append(f"{cl.says}: not measured")
            continue
        measured += 1
        ok = a < b if col.lower_is_better else a > b
        held += ok
        lines.append(f"{cl.says}: {'held' if ok else 'did not hold'} ({col.label} {a:.4g} for "
                     f"{cl.better} vs {b:.4g} for {cl.worse})")
    return held, measured, lines


def upper_bound_gap(spec: Spec, table: Table, frame: pd.DataFrame) -> str:
    """One sentence: the reference row against the upper bound in the table's first column."""
    c = table.columns[0]
    ref, ub = float(frame.loc[table.reference, c.label]), float(frame.loc[spec.upper_bound.id, c.label])
    if math.isnan(ref) or math.isnan(ub):
        return "The upper bound was not measured."
    gap = (ref - ub) / abs(ub) * 100 if ub else math.nan
    if not c.lower_is_better:
        gap = -gap
    return (f"With ground-truth 3D supervision the same network reaches {c.label} {ub:.4g}; "
            f"the self-supervised {table.reference} reaches {ref:.4g} "
            f"({abs(gap):.1f} % {'worse' if gap > 0 else 'better'}).")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def render_markdown(spec: Spec, profile: str, frames: dict[str, pd.DataFrame]) -> str:
    out = [f"# Ablations ({profile} profile)", "",
           "Generated by `s2hand ablations report` from the DVC experiments (`dvc exp show`) and the MLflow "
           f"store (experiment `{spec.mlflow_experiment}-{profile}`); definitions in `ablations.yaml`, "
           "details in `docs/ablations.md`. Ours: the validation split of the embedded data; the paper's: "
           "its own data set. Compare directions, not values"
           + (" (the tiny profile trains a few steps: its numbers are a smoke test)." if profile == "tiny" else "."),
           ""]
    for t_id, table in spec.tables.items():
        f = frames[t_id]
        shown = f.drop(columns=["experiment"]).copy()
        shown = shown.map(_fmt) if hasattr(shown, "map") else shown.applymap(_fmt)
        held, measured, lines = verdict(table, f)
        out += [f"## {table.title}", "", f"Paper: {table.paper_data}. Ours: `{table.metrics_file}`"
                f"{' (' + table.metrics_prefix + ')' if table.metrics_prefix else ''}.", "",
                shown.reset_index(drop=True).to_markdown(index=False), ""]
        if table.claims:
            out.append(f"The paper's direction held here in {held} of {measured} measured comparisons"
                       f"{'' if measured == len(table.claims) else f' ({len(table.claims) - measured} not measured)'}: "
                       + "; ".join(lines) + ".")
        out += ["", upper_bound_gap(spec, table, f), ""]
        notes = [f"{r.id}: {r.note}" for r in spec.rows(t_id) if r.note]
        if notes:
            out += ["Notes: " + "; ".join(notes) + ".", ""]
    return "\n".join(out).rstrip() + "\n"
