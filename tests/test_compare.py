"""Paired comparisons (s2hand.metrics.compare): the difference and its sequence-level interval.
    .venv/bin/python -m pytest -q tests/test_compare.py
"""
from __future__ import annotations

import numpy as np
import pytest

from s2hand.metrics import evaluate_freihand, paired_comparison, per_frame_pa_mpjpe
from s2hand.metrics.compare import MIN_GROUPS


def _errors(seed: int = 0, groups: int = 12, frames: int = 15, shift: float = -0.05, group_sd: float = 0.0):
    r = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), frames)
    b = 1.0 + r.normal(0, 0.1, len(g))
    a = b + shift + r.normal(0, group_sd, groups)[g] + r.normal(0, 0.05, len(g))
    return a, b, g


def test_per_frame_errors_average_to_the_freihand_number():
    r = np.random.default_rng(0)
    gt = r.normal(0, 0.05, (7, 21, 3))
    pred = gt @ np.linalg.qr(r.normal(size=(3, 3)))[0] * 1.3 + 0.2 + r.normal(0, 0.004, gt.shape)
    e = per_frame_pa_mpjpe(pred, gt)
    assert e.shape == (7,) and (e > 0).all()
    assert e.mean() * 100 == pytest.approx(evaluate_freihand(gt, gt, pred, pred)["pa_mpjpe_cm"], rel=1e-12)
    assert np.allclose(per_frame_pa_mpjpe(gt, gt), 0, atol=1e-7)  # 0.1 um
    with pytest.raises(ValueError, match="must be equal"):
        per_frame_pa_mpjpe(pred[:, :20], gt)


def test_identical_methods_differ_by_nothing():
    a, _, g = _errors()
    c = paired_comparison(a, a, g)
    assert c["diff"] == 0 and c["lo"] == 0 and c["hi"] == 0
    assert not c["better"] and not c["worse"] and c["frames_better"] == 0


def test_a_clear_gain_is_better_and_swapping_mirrors_the_interval():
    a, b, g = _errors(shift=-0.05)
    c = paired_comparison(a, b, g)
    assert c["better"] and not c["worse"] and c["lo"] <= c["diff"] <= c["hi"] < 0
    assert c["diff"] == pytest.approx(np.mean(a - b)) and c["groups"] == 12 and c["frames"] == 180
    s = paired_comparison(b, a, g)
    assert s["worse"] and s["diff"] == pytest.approx(-c["diff"])
    assert s["lo"] == pytest.approx(-c["hi"]) and s["hi"] == pytest.approx(-c["lo"])


def test_correlated_sequences_widen_the_interval():
    """When the gain varies by sequence, resampling frames overstates certainty; groups do not."""
    a, b, g = _errors(shift=-0.02, group_sd=0.05)
    by_group, by_frame = paired_comparison(a, b, g), paired_comparison(a, b)
    assert by_frame["groups"] == 180
    assert (by_group["hi"] - by_group["lo"]) > 2 * (by_frame["hi"] - by_frame["lo"])


def test_still_images_are_their_own_groups_and_few_groups_decide_nothing():
    a, b, g = _errors(shift=-0.05, groups=8, frames=20)
    still = np.full_like(g, -1)
    assert paired_comparison(a, b, still)["groups"] == 160
    assert paired_comparison(a, b, g)["better"]  # MIN_GROUPS groups: a verdict
    for few in (np.zeros_like(g), g % (MIN_GROUPS - 1)):  # one group; MIN_GROUPS - 1 groups
        c = paired_comparison(a, b, few)
        assert c["groups"] == len(np.unique(few)) and c["lo"] is None and c["hi"] is None
        assert not c["better"] and not c["worse"] and c["diff"] == pytest.approx(np.mean(a - b))
    assert paired_comparison(a, b, g, seed=3)["lo"] != paired_comparison(a, b, g, seed=4)["lo"]
    assert paired_comparison(a, b, g, seed=3) == paired_comparison(a, b, g, seed=3)


def test_bad_input_is_refused():
    a, b, g = _errors()
    with pytest.raises(ValueError, match="must be equal"):
        paired_comparison(a, b[:-1], g)
    with pytest.raises(ValueError, match="finite"):
        paired_comparison(np.r_[a[:-1], np.nan], b, g)
    with pytest.raises(ValueError, match="one id per frame"):
        paired_comparison(a, b, g[:-1])
    with pytest.raises(ValueError, match="level"):
        paired_comparison(a, b, g, level=1.0)


def test_per_frame_accuracy_averages_to_the_freihand_numbers():
    from s2hand.metrics.compare import per_frame_accuracy

    r = np.random.default_rng(3)
    gt_j, gt_v = r.normal(0, 0.05, (9, 21, 3)), r.normal(0, 0.05, (9, 40, 3))
    pred_j, pred_v = gt_j + r.normal(0, 0.01, gt_j.shape), gt_v + r.normal(0, 0.01, gt_v.shape)
    e = evaluate_freihand(gt_j, gt_v, pred_j, pred_v)
    f = per_frame_accuracy(pred_j, gt_j, pred_v, gt_v)
    assert all(v.shape == (9,) for v in f.values())
    for k in ("pa_mpjpe_cm", "pa_mpvpe_cm", "auc_j", "auc_v"):  # the same names per frame and for the split
        assert f[k].mean() == pytest.approx(e[k], rel=1e-9, abs=1e-12)
    assert set(per_frame_accuracy(pred_j, gt_j)) == {"pa_mpjpe_cm", "auc_j"}


def test_verdict_reads_the_interval_in_the_papers_direction():
    from s2hand.metrics.compare import VERDICTS, verdict

    a, b, g = _errors(shift=-0.05)
    c = paired_comparison(a, b, g)
    assert c["better"]
    assert verdict(c, paper_lower=True) == "held"
    assert verdict(c, paper_lower=False) == "reversed"
    assert verdict(paired_comparison(b, a, g), paper_lower=True) == "reversed"
    assert verdict(paired_comparison(a, a, g), paper_lower=True) == "not measurable"
    few = paired_comparison(a[:30], b[:30], g[:30])  # 2 groups: no interval
    assert few["lo"] is None and verdict(few, True) == "not measurable"
    assert verdict(None, True) == "not measurable"
    assert {verdict(c, True), verdict(c, False), verdict(None, True)} == set(VERDICTS)
