"""reports/ablations.md and reports/ablations.json: one table per paper table, ours beside the
paper's, and one verdict per claim of the paper.

    frames = build_tables(spec, "tiny", exp_results(), mlflow_runs(uri, "s2hand-ablations-tiny"))
    checks = table_checks(spec, "tiny", exp_frames(exp_results(), spec), base=base)   # the JSON
    text = render_markdown(spec, "tiny", frames, checks)

Our numbers come from each row's DVC experiment (`dvc exp show --json`: the table's metrics file,
e.g. reports/train/finetune.json's "val" block); where an experiment lacks them, from the MLflow
run of that row (the last "val/<metric>" it logged). The MLflow store also gives each row's runs
(tagged ablation_<table> = <row>) and their training time.

Each claim of the paper (row `better` beats row `worse` in a metric) is checked on the per-frame
values the training stage wrote beside its metrics (reports/train/<stage>_frames.csv,
s2hand.model.scores.frame_values), paired frame by frame on (seq, frame): the difference
better - worse with its 95 % interval from a bootstrap over sequences
(s2hand.metrics.compare.paired_comparison) and one verdict (s2hand.metrics.compare.verdict):
"held" (the interval lies wholly on the paper's side), "reversed" (wholly on the other side) or
"not measurable" (the interval holds 0, too few sequences, or no per-frame values for the
metric: texture/shape S.D. and the quaternion loss are per sequence or window, not per frame).
The upper bound (ground-truth 3D supervision) should beat every self-supervised row; where it
does not, in the table's first column, the table says its profile is undertrained.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from s2hand.metrics.compare import VERDICTS, paired_comparison, verdict

from .spec import MEAN_POSE, Claim, Column, Experiment, Headline, Row, Spec, Table, plan_experiments

LEVEL = 0.95  # the intervals' confidence level
KEYS = ["seq", "frame"]  # what pairs two rows' per-frame values (and "seed" under several seeds)
SEED_STRIDE = 1_000_000  # sequence ids of seed s become s * SEED_STRIDE + seq in the bootstrap


def frames_file(metrics_file: str) -> str:
    """The per-frame values written beside a training stage's metrics file:
    reports/train/finetune.json -> reports/train/finetune_frames.csv (pipeline/training.py)."""
    p = Path(metrics_file)
    return (p.parent / f"{p.stem}_frames.csv").as_posix()


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


def shown_rows(spec: Spec, profile: str, table: str) -> list[Row]:
    """The rows of `table` (and the upper bound) that `profile` runs: all of them, or under
    `headline_only` those the headline comparisons read. Tables with none are not reported."""
    return [r for r in spec.rows(table) if spec.runs_row(profile, table, r.id)]


def row_experiments(spec: Spec, profile: str, base: dict | None = None) -> dict[tuple[str, str], list[Experiment]]:
    """{(table id, row id): the experiments that run it, one per seed of the profile} for the rows
    the profile runs."""
    out: dict[tuple[str, str], list[Experiment]] = {}
    for e in plan_experiments(spec, profile, base=base):
        for m in e.members:
            out.setdefault(m, []).append(e)
    return out


def build_tables(spec: Spec, profile: str, results: dict[str, dict], runs: pd.DataFrame,
                 base: dict | None = None) -> dict[str, pd.DataFrame]:
    """{table id: DataFrame} with one row per ablation row the profile runs (shown_rows): label,
    experiment, ours and the paper's number per column ("<label>" and "<label> paper"), source,
    MLflow runs, train minutes."""
    exps = row_experiments(spec, profile, base)
    frames = {}
    for t_id, table in spec.tables.items():
        shown = shown_rows(spec, profile, t_id)
        if not shown:
            continue
        records = []
        for row in shown:
            seeds = exps[(t_id, row.id)]
            blocks = [dig(((results.get(e.name) or {}).get("metrics") or {}).get(table.metrics_file),
                          table.metrics_prefix) for e in seeds]
            blocks = [b for b in blocks if isinstance(b, dict)]
            rr = _row_runs(runs, t_id, row.id, table.stages)
            rec: dict[str, object] = {"row": row.id, "label": row.label, "experiment": seeds[0].name}
            source = "dvc" if blocks else "missing"
            for c in table.columns:
                values = [v for v in (_num(dig(b, c.key)) for b in blocks) if not math.isnan(v)]
                ours = float(sum(values) / len(values)) if values else math.nan  # the mean over seeds
                col = f"metrics.val/{c.key}"
                if math.isnan(ours) and not rr.empty and col in rr and rr[col].notna().any():
                    ours, source = float(rr.sort_values("start_time")[col].dropna().iloc[-1]), "mlflow"
                rec[c.label] = ours
                rec[f"{c.label} paper"] = row.paper.get(c.key, math.nan)
            rec["source"] = source
            if len(seeds) > 1:
                rec["seeds"] = len(blocks)
            rec["mlflow runs"] = len(rr)
            if not rr.empty and {"start_time", "end_time"} <= set(rr):
                rec["train min"] = round(float((rr["end_time"] - rr["start_time"]).dt.total_seconds().sum()) / 60, 2)
            else:
                rec["train min"] = math.nan
            records.append(rec)
        frames[t_id] = pd.DataFrame.from_records(records).set_index("row")
    return frames


def row_frames(spec: Spec, profile: str, per_frame: dict[str, dict[str, pd.DataFrame]],
               base: dict | None = None) -> dict[tuple[str, str], pd.DataFrame | None]:
    """{(table id, row id): the per-frame values of the row's experiments for the table's metrics
    file, or None}; per_frame: {experiment name: {metrics file: DataFrame}} (runner.exp_frames).
    Under several seeds, each seed's frames with a "seed" column, stacked: a seed renders its own
    data, so frames pair within a seed and sequences are told apart across seeds."""
    out: dict[tuple[str, str], pd.DataFrame | None] = {}
    for (t_id, r_id), exps in row_experiments(spec, profile, base).items():
        parts = [((per_frame.get(e.name) or {}).get(spec.tables[t_id].metrics_file), e.seed) for e in exps]
        parts = [(f, s) for f, s in parts if f is not None]
        if not parts:
            out[(t_id, r_id)] = None
        elif len(exps) == 1:
            out[(t_id, r_id)] = parts[0][0]
        else:
            out[(t_id, r_id)] = pd.concat([f.assign(seed=s) for f, s in parts], ignore_index=True)
    return out


def _unmeasured(reason: str = "") -> dict:
    """A comparison without a difference yet (compare_rows' keys)."""
    return {"diff": None, "lo": None, "hi": None, "groups": 0, "frames": 0, "verdict": "not measurable",
            "reason": reason}


def compare_rows(a: pd.DataFrame | None, b: pd.DataFrame | None, col: Column, paper_a_better: bool = True,
                 level: float = LEVEL) -> dict:
    """Row a minus row b in `col`, frame by frame on the frames both have (joined on seq, frame;
    frames without a value dropped), with the sequence-bootstrap interval, and the verdict on
    "a is better than b" (paper_a_better) -> {"diff", "lo", "hi", "groups", "frames", "verdict",
    "reason"} ("reason": why there is no interval, else "")."""
    if a is None or b is None:
        return _unmeasured("no per-frame values")
    if col.key not in a or col.key not in b:
        return _unmeasured(f"no per-frame {col.key}")
    keys = KEYS + (["seed"] if "seed" in a and "seed" in b else [])  # several seeds: pair within a seed
    both = a[keys + [col.key]].merge(b[keys + [col.key]], on=keys, suffixes=("_a", "_b")).dropna()
    if both.empty:
        return _unmeasured("no frames in common")
    seq = both["seq"].to_numpy().astype(np.int64)
    if "seed" in keys:  # a sequence of one seed's data is not that of another's
        seq = np.where(seq < 0, -1, both["seed"].to_numpy().astype(np.int64) * SEED_STRIDE + seq)
    c = paired_comparison(both[f"{col.key}_a"].to_numpy(), both[f"{col.key}_b"].to_numpy(), seq, level)
    paper_lower = col.lower_is_better == paper_a_better  # the paper says a - b < 0
    out = _unmeasured()
    out.update({k: c[k] for k in ("diff", "lo", "hi", "groups", "frames")})
    out["verdict"] = verdict(c, paper_lower)
    if c["lo"] is None:
        out["reason"] = f"{c['groups']} sequences: too few for an interval"
    return out


def claim_check(table: Table, claim: Claim, rows: dict[str, pd.DataFrame | None], level: float = LEVEL) -> dict:
    """One claim of the paper checked on the per-frame values (module docstring)."""
    col = next(c for c in table.columns if c.key == claim.metric)
    return {"says": claim.says, "better": claim.better, "worse": claim.worse, "metric": claim.metric,
            "lower_is_better": col.lower_is_better,
            **compare_rows(rows.get(claim.better), rows.get(claim.worse), col, True, level)}


def upper_bound_check(spec: Spec, table: Table, frame: pd.DataFrame, rows: dict[str, pd.DataFrame | None],
                      level: float = LEVEL) -> dict | None:
    """The upper bound against the self-supervised rows in the table's first column: its value, the
    best self-supervised one, whether it beats them all ("beats"; None when unmeasured),
    "undertrained" (it does not: the profile trained too little for the table to mean much), and
    the paired comparison with the reference row (verdict on "the upper bound is better"). None
    where the profile does not run the upper bound for this table."""
    c = table.columns[0]
    if spec.upper_bound.id not in frame.index:
        return None
    ub = float(frame.loc[spec.upper_bound.id, c.label])
    own = [float(frame.loc[r.id, c.label]) for r in table.rows if r.id in frame.index]
    own = [v for v in own if not math.isnan(v)]
    best = (min(own) if c.lower_is_better else max(own)) if own else math.nan
    measured = not (math.isnan(ub) or math.isnan(best))
    beats = (ub < best if c.lower_is_better else ub > best) if measured else None
    return {"metric": c.key, "value": None if math.isnan(ub) else ub, "best_self_supervised": None if math.isnan(best) else best,
            "beats": beats, "undertrained": beats is False,
            "vs_reference": {"reference": table.reference,
                             **compare_rows(rows.get(spec.upper_bound.id), rows.get(table.reference), c, True, level)}}


def mean_pose_check(metrics: dict | None) -> dict:
    """A row against the mean pose: the training stage's own paired comparison on its validation
    frames (the metrics file's "vs_baseline": PA-MPJPE minus the mean pose's, cm) -> compare_rows'
    keys, verdict on "the row is better"."""
    vs = (metrics or {}).get("vs_baseline")
    if not isinstance(vs, dict) or vs.get("diff_cm") is None:
        return _unmeasured("no comparison with the mean pose in the metrics file")
    out = _unmeasured()
    out.update(diff=vs["diff_cm"], lo=vs.get("lo_cm"), hi=vs.get("hi_cm"), groups=int(vs.get("groups") or 0),
               frames=int(vs.get("frames") or 0))
    out["verdict"] = verdict(out, paper_lower=True)
    if out["lo"] is None:
        out["reason"] = f"{out['groups']} sequences: too few for an interval"
    return out


def mean_pose_over_seeds(per_seed: list[dict | None]) -> dict:
    """mean_pose_check of each seed's metrics; several seeds: the mean difference, the widest
    bounds ("lo" the lowest, "hi" the highest), and a verdict only where every seed agrees."""
    checks = [mean_pose_check(m) for m in per_seed] or [mean_pose_check(None)]
    if len(checks) == 1:
        return checks[0]
    if any(c["lo"] is None for c in checks):
        return {**checks[0], "diff": None, "lo": None, "hi": None, "verdict": "not measurable",
                "reason": "a seed without an interval against the mean pose"}
    verdicts = {c["verdict"] for c in checks}
    agreed = len(verdicts) == 1
    return {"diff": sum(c["diff"] for c in checks) / len(checks), "lo": min(c["lo"] for c in checks),
            "hi": max(c["hi"] for c in checks), "groups": sum(c["groups"] for c in checks),
            "frames": sum(c["frames"] for c in checks),
            "verdict": next(iter(verdicts)) if agreed else "not measurable",
            "reason": "" if agreed else "the seeds disagree",
            "seeds": [{k: c[k] for k in ("diff", "lo", "hi", "verdict")} for c in checks]}


def headline_check(spec: Spec, h: Headline, rows: dict[tuple[str, str], pd.DataFrame | None],
                   metrics: dict[tuple[str, str], list[dict | None]], level: float = LEVEL) -> dict:
    """One headline comparison (spec.Headline): {"says", "table", "better", "worse", "metric",
    compare_rows' keys}; verdict on "better is better", the paper's direction. metrics: each
    row's metrics file (the block above metrics_prefix), one per seed."""
    table = spec.tables[h.table]
    col = next(c for c in table.columns if c.key == h.metric)
    if h.worse == MEAN_POSE:
        c = mean_pose_over_seeds(metrics.get((h.table, h.better)) or [])
    else:
        c = compare_rows(rows.get((h.table, h.better)), rows.get((h.table, h.worse)), col, True, level)
    return {"says": h.says, "table": h.table, "better": h.better, "worse": h.worse, "metric": h.metric,
            "lower_is_better": col.lower_is_better, **c}


def table_checks(spec: Spec, profile: str, frames: dict[str, pd.DataFrame],
                 per_frame: dict[str, dict[str, pd.DataFrame]], base: dict | None = None,
                 level: float = LEVEL, results: dict[str, dict] | None = None, commit: str = "") -> dict:
    """reports/ablations.json: {"profile", "commit", "level", "headline": [headline_check], "tables":
    {table id: {"claims": [claim_check], "counts": {verdict: n}, "upper_bound": upper_bound_check}}}.
    frames: build_tables' output; results: exp_results' (the metrics files, for the mean pose)."""
    by_row = row_frames(spec, profile, per_frame, base)
    exps = row_experiments(spec, profile, base)
    metrics = {m: [dig(((results or {}).get(e.name) or {}).get("metrics", {}).get(spec.tables[m[0]].metrics_file),
                       spec.tables[m[0]].metrics_prefix.rpartition(".")[0]) for e in es]
               for m, es in exps.items()}
    tables = {}
    for t_id, table in spec.tables.items():
        if t_id not in frames:
            continue
        shown = {r.id for r in shown_rows(spec, profile, t_id)}
        rows = {r: by_row.get((t_id, r)) for r in shown}
        claims = [claim_check(table, cl, rows, level) for cl in table.claims if {cl.better, cl.worse} <= shown]
        tables[t_id] = {"title": table.title, "claims": claims,
                        "counts": {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS},
                        "upper_bound": upper_bound_check(spec, table, frames[t_id], rows, level)}
    headline = [headline_check(spec, h, by_row, metrics, level) for h in spec.headline]
    return {"profile": profile, "commit": commit, "level": level, "headline": headline, "tables": tables}


def _interval(c: dict, digits: int = 3) -> str:
    if c["diff"] is None:
        return c["reason"]
    head = f"{c['diff']:+.{digits}g}"
    if c["lo"] is None:
        return f"{head} ({c['reason']})"
    return f"{head} (95 % interval {c['lo']:+.{digits}g} to {c['hi']:+.{digits}g}, {c['groups']} sequences)"


def claim_lines(check: dict) -> list[str]:
    """One markdown bullet per claim: the paper's statement, the verdict, the paired difference."""
    return [f"- {c['says']}: **{c['verdict']}**; {c['better']} minus {c['worse']}, {c['metric']} frame by frame: "
            f"{_interval(c)}." for c in check["claims"]]


def headline_lines(checks: dict) -> list[str]:
    """The headline section: one bullet per comparison, and how many are measured."""
    h = checks.get("headline") or []
    if not h:
        return []
    n = sum(c["verdict"] != "not measurable" for c in h)
    out = ["## Headline comparisons", "",
           f"{n} of {len(h)} measured (held or reversed); each is the first row minus the second, frame by frame "
           "on the validation frames (the mean pose: the training stage's own comparison on them).", ""]
    out += [f"- {c['says']}: **{c['verdict']}**; {c['better']} minus {c['worse']} ({c['table']}), {c['metric']}: "
            f"{_interval(c)}." for c in h]
    return out + [""]


def upper_bound_lines(spec: Spec, table: Table, check: dict) -> list[str]:
    u = check["upper_bound"]
    label = table.columns[0].label
    if u is None:
        return []
    if u["beats"] is None:
        return ["The upper bound was not measured."]
    v = u["vs_reference"]
    line = (f"With ground-truth 3D supervision the same network reaches {label} {u['value']:.4g}; the best "
            f"self-supervised row {u['best_self_supervised']:.4g}. Upper bound minus {table.reference}: "
            f"{_interval(v)} ({v['verdict']} that supervision does better).")
    if u["undertrained"]:
        line += (" The upper bound does not beat the self-supervised rows: this profile is undertrained, and "
                 "this table shows what so little training does, not the paper's comparisons.")
    return [line]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def render_markdown(spec: Spec, profile: str, frames: dict[str, pd.DataFrame], checks: dict) -> str:
    """The report; checks: table_checks' output (the verdicts are read from it, not recomputed)."""
    commit = f" at commit `{checks['commit']}`" if checks.get("commit") else ""
    out = [f"# Ablations ({profile} profile{commit})", "",
           "Generated by `s2hand ablations report` from the DVC experiments (`dvc exp show`) and the MLflow "
           f"store (experiment `{spec.mlflow_experiment}-{profile}`); definitions in `ablations.yaml`, "
           "details in `docs/ablations.md`; the verdicts as data in `ablations.json`. Ours: the validation "
           "split of the embedded data; the paper's: its own data set. Compare directions, not values"
           + (" (the tiny profile trains a few steps: its numbers are a smoke test)." if profile == "tiny" else "."),
           "",
           f"Each claim: the difference frame by frame with its {checks['level']:.0%} interval from a bootstrap "
           "over sequences, and one verdict: held (measurably in the paper's direction), reversed (measurably "
           "against it) or not measurable.", "", *headline_lines(checks)]
    for t_id, table in spec.tables.items():
        if t_id not in frames:
            continue
        f = frames[t_id]
        check = checks["tables"][t_id]
        shown = f.drop(columns=["experiment"]).copy()
        shown = shown.map(_fmt) if hasattr(shown, "map") else shown.applymap(_fmt)
        out += [f"## {table.title}", "", f"Paper: {table.paper_data}. Ours: `{table.metrics_file}`"
                f"{' (' + table.metrics_prefix + ')' if table.metrics_prefix else ''}.", "",
                shown.reset_index(drop=True).to_markdown(index=False), ""]
        if check["claims"]:
            n = check["counts"]
            out += [f"The paper's claims here: {n['held']} held, {n['reversed']} reversed, "
                    f"{n['not measurable']} not measurable.", "", *claim_lines(check), ""]
        out += [*upper_bound_lines(spec, table, check), ""]
        notes = [f"{r.id}: {r.note}" for r in shown_rows(spec, profile, t_id) if r.note]
        if notes:
            out += ["Notes: " + "; ".join(notes) + ".", ""]
    return "\n".join(out).rstrip() + "\n"
