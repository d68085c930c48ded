"""The ablation definitions (`ablations.yaml`): schema, validation, and their DVC experiments.

    spec = load_spec("ablations.yaml", params_path="params.yaml")   # validated, overrides checked
    exps = plan_experiments(spec, "tiny", tables=["table3"])        # one entry per distinct run

A table lists rows; a row is a set of params overrides (`-S key=value`), the paper's numbers for
it, and which table/row it is. The headline lists the comparisons a run must measure; a profile
with `headline_only` (CI's) runs just the rows they read. Rows of different tables with the same overrides (e.g. Table 4's
"quaternion + T&S" and Table 7's "interv 3, n 3", both the defaults) are one DVC experiment: DVC
would restore the second from its run cache anyway. The upper-bound row (ground-truth 3D
supervision) is appended to every table. A profile's `set` adds overrides under every row's
(`tiny` makes each stage cheap, a smoke test; `full` and `ci` are params.yaml as is); a row's own
overrides win.

Every override is checked against the params schema (s2hand/config.py) once, applied to
params.yaml: a misspelt key or a bad value stops here with the schema's message.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from s2hand.config import ParamsError, validate_params

Scalar = bool | int | float | str
SLUG = r"^[a-z0-9][a-z0-9_]*$"  # row/table ids: safe in experiment names, MLflow tags and -S values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """A metric shown in a table: key inside the table's metrics file (under `metrics_prefix`)."""

    key: str
    label: str
    lower_is_better: bool


class Row(_Strict):
    id: str = Field(pattern=SLUG)
    label: str
    set: dict[str, Scalar] = {}  # dotted params key -> value, as `dvc exp run -S key=value`
    paper: dict[str, float] = {}  # column key -> the paper's number for this row
    note: str = ""


class Claim(_Strict):
    """A direction the paper reports: row `better` beats row `worse` in `metric`."""

    better: str
    worse: str
    metric: str
    says: str  # the paper's statement, one line


class Table(_Strict):
    title: str
    paper_data: str  # where the paper's numbers come from, e.g. "FreiHAND test"
    stages: list[str] = Field(min_length=1)  # DVC targets its rows need (`dvc exp run <stages>`)
    metrics_file: str  # a DVC metrics file every row's experiment writes
    metrics_prefix: str = ""  # dotted path inside it (e.g. "val")
    reference: str  # the row that is the paper's full method (compared with the upper bound)
    columns: list[Column] = Field(min_length=1)
    rows: list[Row] = Field(min_length=1)
    claims: list[Claim] = []

    @model_validator(mode="after")
    def _ids_resolve(self) -> "Table":
        ids = [r.id for r in self.rows]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate row ids in {self.title!r}: {ids}")
        cols = {c.key for c in self.columns}
        if self.reference not in ids:
            raise ValueError(f"reference {self.reference!r} is not a row of {self.title!r}")
        for r in self.rows:
            if set(r.paper) - cols:
                raise ValueError(f"row {r.id!r}: paper numbers for unknown columns {sorted(set(r.paper) - cols)}")
        for c in self.claims:
            for rid in (c.better, c.worse):
                if rid not in ids:
                    raise ValueError(f"claim {c.says!r}: no row {rid!r} in {self.title!r}")
            if c.metric not in cols:
                raise ValueError(f"claim {c.says!r}: no column {c.metric!r}")
        return self


class Profile(_Strict):
    """How much a run of the ablations trains, and which rows it runs."""

    set: dict[str, Scalar] = {}  # overrides under every row's (a row's own win)
    headline_only: bool = False  # run only the rows the headline comparisons need (CI's budget)
    seeds: list[int] = []  # every row once per seed (-S seed=N; intervals pool over them); []: params.yaml's

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(x < 0 for x in v):
            raise ValueError(f"seeds must be distinct and >= 0, got {v}")
        return v


MEAN_POSE = "mean_pose"  # a headline's `worse`: the constant mean-pose hand (the row's own vs_baseline)


class Headline(_Strict):
    """A comparison a run must measure (CI's profile is sized for these): row `better` against row
    `worse` of `table` in `metric`, the paper's direction (better is better); `worse: mean_pose`
    compares with the mean-pose baseline the training stage scores on the same frames."""

    says: str
    table: str
    better: str
    worse: str
    metric: str


class Spec(_Strict):
    mlflow_experiment: str = Field(min_length=1)  # MLflow experiment of the ablation runs (+ "-<profile>")
    profiles: dict[str, Profile]
    upper_bound: Row  # appended to every table
    tables: dict[str, Table] = Field(min_length=1)
    headline: list[Headline] = []

    @field_validator("tables")
    @classmethod
    def _table_ids(cls, v: dict[str, Table]) -> dict[str, Table]:
        import re

        for k in v:
            if not re.match(SLUG, k):
                raise ValueError(f"table id {k!r} must match {SLUG}")
        return v

    @model_validator(mode="after")
    def _profiles(self) -> "Spec":
        if "full" not in self.profiles:
            raise ValueError("profiles: needs 'full' (params.yaml as is)")
        for t_id, t in self.tables.items():
            if any(r.id == self.upper_bound.id for r in t.rows):
                raise ValueError(f"{t_id}: row id {self.upper_bound.id!r} is the upper bound's")
        for h in self.headline:
            if h.table not in self.tables:
                raise ValueError(f"headline {h.says!r}: no table {h.table!r}")
            ids = [r.id for r in self.rows(h.table)]
            for rid in (h.better, h.worse):
                if rid not in ids and not (rid == MEAN_POSE == h.worse):
                    raise ValueError(f"headline {h.says!r}: no row {rid!r} in {h.table}")
            if h.metric not in {c.key for c in self.tables[h.table].columns}:
                raise ValueError(f"headline {h.says!r}: no column {h.metric!r} in {h.table}")
            if h.worse == MEAN_POSE and h.metric != "pa_mpjpe_cm":
                raise ValueError(f"headline {h.says!r}: the mean pose is compared in pa_mpjpe_cm only")
        if any(p.headline_only for p in self.profiles.values()) and not self.headline:
            raise ValueError("a profile runs the headline rows only, but there is no headline")
        return self

    def rows(self, table: str) -> list[Row]:
        """The table's rows and the upper bound."""
        return [*self.tables[table].rows, self.upper_bound]

    def headline_rows(self) -> set[tuple[str, str]]:
        """(table id, row id) of every row a headline comparison reads."""
        return {(h.table, r) for h in self.headline for r in (h.better, h.worse) if r != MEAN_POSE}

    def runs_row(self, profile: str, table: str, row: str) -> bool:
        """Whether `profile` runs that row (a headline-only profile runs the headline's rows)."""
        return not self.profiles[profile].headline_only or (table, row) in self.headline_rows()


class AblationError(ValueError):
    """Bad ablation definitions or a failed ablation run; the message says which."""


# ----------------------------------------------------------------------------- params overrides
def set_dotted(tree: dict, key: str, value: Any) -> dict:
    """A copy of the nested `tree` with `key` ("a.b.c") set to value; missing sections are created."""
    out = json.loads(json.dumps(tree))
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise AblationError(f"{key}: {p} is not a section")
    node[parts[-1]] = value
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    for k, v in overrides.items():
        raw = set_dotted(raw, k, v)
    return raw


def check_overrides(raw_params: dict, overrides: dict[str, Any], where: str) -> None:
    """Validate params.yaml with `overrides` applied through the one schema; raise naming `where`."""
    for k in overrides:
        node: Any = raw_params
        for p in k.split("."):
            if not isinstance(node, dict) or p not in node:
                raise AblationError(f"{where}: {k}: not a key of params.yaml (DVC's -S would add it silently)")
            node = node[p]
    try:
        validate_params(apply_overrides(raw_params, overrides), where)
    except ParamsError as e:
        raise AblationError(str(e)) from None


def load_spec(path: str | Path, params_path: str | Path | None = "params.yaml") -> Spec:
    """Read and validate ablations.yaml; with params_path, check every row and profile override."""
    path = Path(path)
    if not path.is_file():
        raise AblationError(f"{path}: no such ablation file")
    try:
        spec = Spec.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as e:
        lines = [f"{path}: invalid ablation definitions"]
        lines += [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise AblationError("\n".join(lines)) from None
    if params_path is not None:
        raw = yaml.safe_load(Path(params_path).read_text())
        for name, prof in spec.profiles.items():
            check_overrides(raw, prof.set, f"{path}: profiles.{name}")
            for t_id, t in spec.tables.items():
                for r in spec.rows(t_id):
                    check_overrides(raw, {**prof.set, **r.set}, f"{path}: {t_id}.{r.id} (profile {name})")
    return spec


# ----------------------------------------------------------------------------- experiments
@dataclass
class Experiment:
    """One DVC experiment: a distinct set of overrides, the table rows it stands for."""

    name: str  # DVC experiment name: "<profile>-<first table>-<first row>[-s<seed>]"
    overrides: dict[str, Scalar]  # profile + row, row wins (+ seed)
    stages: list[str]  # DVC targets (union over its rows' tables)
    members: list[tuple[str, str]] = field(default_factory=list)  # (table id, row id)
    seed: int | None = None  # the profile's seed it runs with (None: params.yaml's)

    @property
    def tags(self) -> dict[str, str]:
        """MLflow tags: ablation_<table> = <row> for every table the run belongs to."""
        return {f"ablation_{t}": r for t, r in self.members}


def format_value(v: Scalar) -> str:
    """A value as DVC's -S (Hydra override grammar) reads it back with the same type."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _key(overrides: dict[str, Scalar]) -> str:
    return hashlib.sha1(json.dumps(overrides, sort_keys=True).encode()).hexdigest()


def plan_experiments(spec: Spec, profile: str, tables: list[str] | None = None,
                     base: dict | None = None) -> list[Experiment]:
    """The distinct experiments the chosen tables need under `profile`, in table/row order (each
    named, tagged and targeted for every table it serves, chosen or not). With
    `base` (params.yaml's content) rows are the same experiment when their params come out the same
    (e.g. `detect.backend: mediapipe` and no override); without it, when their overrides are equal."""
    if profile not in spec.profiles:
        raise AblationError(f"no profile {profile!r}; have {sorted(spec.profiles)}")
    chosen = list(spec.tables) if not tables else tables
    unknown = [t for t in chosen if t not in spec.tables]
    if unknown:
        raise AblationError(f"no tables {unknown}; have {sorted(spec.tables)}")
    by_key: dict[str, Experiment] = {}
    prof = spec.profiles[profile].set
    default = _key(prof if base is None else apply_overrides(base, prof))  # the profile alone
    for t_id in spec.tables:  # all tables: names, tags and targets do not depend on `tables`
        table = spec.tables[t_id]
        for row in spec.rows(t_id):
            ov = {**prof, **row.set}
            key = _key(ov if base is None else apply_overrides(base, ov))
            exp = by_key.get(key)
            if exp is None:
                name = (f"{profile}-default" if key == default else f"{profile}-{row.id}"
                        if row is spec.upper_bound else f"{profile}-{t_id}-{row.id}")
                exp = by_key[key] = Experiment(name.replace("_", "-"), ov, [])
            exp.members.append((t_id, row.id))
            exp.stages += [s for s in table.stages if s not in exp.stages]
    exps = [e for e in by_key.values() if any(t in chosen and spec.runs_row(profile, t, r) for t, r in e.members)]
    seeds = spec.profiles[profile].seeds
    if not seeds:
        return exps
    own = (base or {}).get("seed")
    return [dataclasses.replace(e, name=e.name if s == own else f"{e.name}-s{s}", seed=s,
                                overrides=e.overrides if s == own else {**e.overrides, "seed": s},
                                members=list(e.members), stages=list(e.stages))
            for e in exps for s in seeds]


def exp_run_args(exp: Experiment, spec: Spec, profile: str, queue: bool) -> list[str]:
    """`dvc exp run` arguments of one experiment (MLflow experiment and tags as params: listed in no
    stage's params, they never make a stage rerun)."""
    args = ["dvc", "exp", "run", "--queue" if queue else "--temp", "-n", exp.name]
    for k, v in exp.overrides.items():
        args += ["-S", f"{k}={format_value(v)}"]
    args += ["-S", f"mlflow.experiment={spec.mlflow_experiment}-{profile}"]
    for k, v in exp.tags.items():
        args += ["-S", f"+mlflow.tags.{k}={v}"]
    return args + list(exp.stages)
