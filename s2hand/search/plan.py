"""The loss-weight search, defined (supplementary section 1; method.md s7). Pure: no I/O.

Three phases, each a sequence of steps whose candidates are independent (one parallel batch):

1. Order of magnitude. The location weight is fixed (`geo` = `anchor`, 1 as in the paper);
   the weights of `phase1_weights` are determined one after the other in PHASE1_ORDER. A weight
   not yet determined is 0 (its loss is off, as in Tables 11/12). Each weight starts at the power
   of ten that makes its weighted loss match the sum of the already-fixed weighted losses
   (`matched_start`), then is multiplied / divided by 10 while that helps (`improves`); the best
   trial is kept and the weight fixed. Weights not in `phase1_weights` are preset at their
   initial values (params.yaml's, rescaled to the anchor: `rescale`).
2. Divide-and-conquer refinement. Each group of `phase2_groups` (GROUPS) is an ordinary grid
   of its weights' current values times `factors`; groups in order, each fixed after its grid.
   Full profile: 3 + 3^4 + 3 + 3^2 + 3^2 = 105 runs (S2HAND), + 3 + 3 = 111 (S2HAND(V)).
3. Sensitivity (Table 10): the selected weights, then each of `sensitivity_weights` times
   0.5 and 2 with the others fixed.

Our 13 weights are hierarchical (method.md s4: E = w3d (wgeo (Eloc + wori Eori) + wphoto
(Epixel + wssim Essim) + wregu (Ebeta + wC EC + ws Es + wJ EJ)) + w2d E2d + wcons Econs
[+ wquat Equat + wts Ets]), the supplementary's phi are flat, one per sub-loss. Each weight
*determines* one sub-loss (DETERMINES): geo -> loc, ori -> ori, regu -> beta, tex -> C, ...;
a child weight (ori, ssim, tex, scale, joint) is the ratio phi_child / phi_parent, so varying it
alone varies exactly its phi. The supplementary's groups in our names (GROUPS):
    E_loc -> geo;  E_regu -> regu, tex, scale, joint;  E_ori -> ori;
    E_2d & E_cons -> branch2d, cons;  E_photo -> photo, ssim;  E_quat -> quat;  E_T&S -> ts.
branch3d (w3d) is not searched (the common scale of the 3D branch; with geo it only sets
phi_loc). Varying geo in phase 2 moves phi_loc and phi_ori together (phi_ori = geo * ori);
the paper's flat E_loc grid moves phi_loc alone: same search space, other coordinates.

Usage:
    from s2hand.config import GridSearchParams    # the grid_search section's schema
    from s2hand.search.plan import build_plan
    plan = build_plan(GridSearchParams(profile="full", variant="s2hand_v"))
    plan.phase2_runs  # 111
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

# the grid_search section's schema and the vocabulary it checks against live in s2hand.config
from s2hand.config import ANCHOR, TEMPORAL, WEIGHT_NAMES, GridSearchParams, searched_weights

# sub-loss -> the weights whose product is its effective (flat) weight phi
SUBLOSSES: dict[str, tuple[str, ...]] = {
    "loc": ("branch3d", "geo"),
    "ori": ("branch3d", "geo", "ori"),
    "pixel": ("branch3d", "photo"),
    "ssim": ("branch3d", "photo", "ssim"),
    "beta": ("branch3d", "regu"),
    "tex": ("branch3d", "regu", "tex"),
    "scale": ("branch3d", "regu", "scale"),
    "joint": ("branch3d", "regu", "joint"),
    "2d": ("branch2d",),
    "cons": ("cons",),
    "quat": ("quat",),
    "ts": ("ts",),
}
# searched weight -> the sub-loss it determines (its phi, given its parents)
DETERMINES: dict[str, str] = {
    "geo": "loc", "ori": "ori", "photo": "pixel", "ssim": "ssim", "regu": "beta", "tex": "tex",
    "scale": "scale", "joint": "joint", "branch2d": "2d", "cons": "cons", "quat": "quat", "ts": "ts",
}
# weights that scale the whole loss together (branch3d kept): `rescale` multiplies these
SCALE_WEIGHTS = ("geo", "photo", "regu", "branch2d", "cons", "quat", "ts")

# method.md s7: ori, then the regularisers, the 2D and consistency weights, photometric
PHASE1_ORDER: tuple[str, ...] = ("ori", "regu", "tex", "scale", "joint", "branch2d", "cons", "photo", "ssim", "quat", "ts")
# supplementary s1.1, in the order the paper lists them (config.GroupName: the same names, same order)
GROUPS: dict[str, tuple[str, ...]] = {
    "loc": ("geo",),
    "regu": ("regu", "tex", "scale", "joint"),
    "ori": ("ori",),
    "2d_cons": ("branch2d", "cons"),
    "photo": ("photo", "ssim"),
    "quat": ("quat",),
    "ts": ("ts",),
}

# the reduced profile (fits a small budget); phase 1: 1 + 3 per weight, phase 2: 3^len(group) per group
REDUCED = {
    "s2hand": {"phase1": ("ori", "photo"), "groups": ("ori", "photo"), "sensitivity": ("ori", "photo", "joint")},
    "s2hand_v": {"phase1": ("ori", "photo", "quat", "ts"), "groups": ("photo", "quat"), "sensitivity": ("photo", "quat", "ts")},
}


@dataclass(frozen=True)
class SearchPlan:
    """A GridSearchParams with the profile resolved: what `runner.run_search` executes."""

    variant: str
    phase1_weights: tuple[str, ...]
    phase1_steps: int
    phase1_rule: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (group name, its weights)
    factors: tuple[float, ...]
    sensitivity_weights: tuple[str, ...]
    sensitivity_factors: tuple[float, ...]
    anchor: float
    output_geo: float | None

    @property
    def excluded(self) -> tuple[str, ...]:
        """Weights held at 0 throughout (the temporal ones for S2HAND)."""
        return TEMPORAL if self.variant == "s2hand" else ()

    @property
    def phase2_runs(self) -> int:
        return sum(len(self.factors) ** len(ws) for _, ws in self.groups)

    @property
    def sensitivity_runs(self) -> int:
        return 1 + len(self.sensitivity_factors) * len(self.sensitivity_weights)

    @property
    def phase1_min_runs(self) -> int:
        """Phase 1 with no extra steps: the anchor-only base trial + (start, /10, x10) per weight."""
        return (1 + 3 * len(self.phase1_weights)) if self.phase1_weights else 0

    @property
    def min_runs(self) -> int:
        return self.phase1_min_runs + self.phase2_runs + self.sensitivity_runs

    @property
    def max_runs(self) -> int:
        return (1 + (1 + 2 * self.phase1_steps) * len(self.phase1_weights) if self.phase1_weights else 0) + (
            self.phase2_runs + self.sensitivity_runs
        )


def build_plan(p: GridSearchParams) -> SearchPlan:
    """Resolve the profile: fields left null take the reduced or full profile's values."""
    allowed = searched_weights(p.variant)
    if p.profile == "full":
        phase1 = tuple(w for w in PHASE1_ORDER if w in allowed)
        groups = tuple(g for g, ws in GROUPS.items() if all(w in allowed for w in ws))
        sens = tuple(w for w in allowed if w != ANCHOR)
        steps = 4
    else:
        r = REDUCED[p.variant]
        phase1, groups, sens, steps = r["phase1"], r["groups"], r["sensitivity"], 1
    return SearchPlan(
        variant=p.variant,
        phase1_weights=tuple(p.phase1_weights) if p.phase1_weights is not None else phase1,
        phase1_steps=p.phase1_steps or steps,
        phase1_rule=p.phase1_rule,
        groups=tuple((g, GROUPS[g]) for g in (p.phase2_groups if p.phase2_groups is not None else groups)),
        factors=tuple(p.factors),
        sensitivity_weights=tuple(p.sensitivity_weights) if p.sensitivity_weights is not None else sens,
        sensitivity_factors=tuple(p.sensitivity_factors),
        anchor=p.anchor,
        output_geo=p.output_geo,
    )


# ---------------------------------------------------------------------------------------------
# weight arithmetic

def canon(v: float) -> float:
    """Round to 6 significant digits, so 0.001 * 2 * 0.5 == 0.001 and trial keys are stable."""
    return float(f"{float(v):.6g}")


def rescale(weights: Mapping[str, float], geo: float) -> dict[str, float]:
    """Multiply SCALE_WEIGHTS by geo / weights['geo']: the same loss up to a common factor.

    Ratios (ori, ssim, tex, scale, joint) and branch3d are unchanged. Adam is invariant to a
    common scale of the loss (up to its epsilon), so the search may run at phi_loc = 1 and the
    result be written in the units of method.md s6 (geo = 0.001).
    """
    c = geo / weights["geo"]
    return {k: canon(v * c) if k in SCALE_WEIGHTS else canon(v) for k, v in weights.items()}


def effective_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """phi of every sub-loss: the product of the weights above it (SUBLOSSES)."""
    return {s: math.prod(weights[w] for w in ws) for s, ws in SUBLOSSES.items()}


def weighted_losses(weights: Mapping[str, float], losses: Mapping[str, float]) -> dict[str, float]:
    """phi_X * E_X for every sub-loss reported in `losses` (unweighted values)."""
    phi = effective_weights(weights)
    return {s: phi[s] * float(losses[s]) for s in SUBLOSSES if s in losses}


def initial_weights(plan: SearchPlan, params_weights: Mapping[str, float]) -> dict[str, float]:
    """Phase-1 starting configuration, search scale: geo = anchor, phase-1 weights and the
    excluded ones 0, every other weight preset at its params value rescaled to the anchor."""
    w = rescale({k: float(params_weights[k]) for k in WEIGHT_NAMES}, plan.anchor)
    for k in plan.phase1_weights + plan.excluded:
        w[k] = 0.0
    return w


def matched_start(weight: str, current: Mapping[str, float], losses: Mapping[str, float], fixed_sum: float) -> float | None:
    """The power of ten at which `weight`'s weighted loss equals the fixed weighted-loss sum.

    `losses` are the unweighted sub-losses of the current best trial (where `weight` is 0);
    None when its loss was not reported, is 0, or nothing is fixed yet.
    """
    e = losses.get(DETERMINES[weight])
    unit = effective_weights({**current, weight: 1.0})[DETERMINES[weight]]
    if not e or not unit or fixed_sum <= 0 or not math.isfinite(e):
        return None
    return canon(10.0 ** round(math.log10(fixed_sum / (unit * e))))


def improves(new: tuple[float, float], old: tuple[float, float], rule: str) -> bool:
    """(accuracy_error, fixed_loss_sum) of a x10 / /10 step against the previous value."""
    acc, fixed = new[0] < old[0], new[1] < old[1]
    return (acc and fixed) if rule == "both" else (acc or fixed)


def grid(current: Mapping[str, float], names: tuple[str, ...], factors: tuple[float, ...]) -> list[dict[str, float]]:
    """The group's grid: every combination of current value x factor, in itertools.product order."""
    cells = []
    for combo in itertools.product(factors, repeat=len(names)):
        w = dict(current)
        for n, f in zip(names, combo):
            w[n] = canon(current[n] * f)
        cells.append(w)
    return cells


def sensitivity_set(selected: Mapping[str, float], names: tuple[str, ...], factors: tuple[float, ...]) -> list[tuple[str, dict[str, float]]]:
    """('base', selected), then (f'{name}*{factor:g}', selected with name * factor) per weight."""
    out: list[tuple[str, dict[str, float]]] = [("base", dict(selected))]
    for n in names:
        for f in factors:
            out.append((f"{n}*{f:g}", {**selected, n: canon(selected[n] * f)}))
    return out
