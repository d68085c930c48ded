"""Learning curves (s2hand/curves.py): stages chained on one axis of images seen, references read,
the figure written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from s2hand.curves import chain_curve, draw_pipeline_curves, read_references


def _report(stage, points, base=1.5):
    return {"stage": stage, "baseline_mean_pose": {"pa_mpjpe_cm": base},
            "curve": [{"images": i, "step": i // 8, "pa_mpjpe_cm": v} for i, v in points]}


def test_chain_curve_lays_stages_end_to_end_without_repeating_the_handover():
    x, y, bounds = chain_curve([_report("pretrain_3d", [(0, 1.5), (100, 1.4), (200, 1.3)]),
                                _report("finetune", [(0, 1.3), (50, 1.25)]),
                                _report("finetune_video", [(0, 1.25), (30, 1.26)])])
    np.testing.assert_array_equal(x, [0, 100, 200, 250, 280])
    np.testing.assert_array_equal(y, [1.5, 1.4, 1.3, 1.25, 1.26])
    assert bounds == [200, 250]
    with pytest.raises(ValueError, match="no validation curve"):
        chain_curve([{"stage": "finetune"}])


def test_pipeline_figure_with_a_reference(tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    for name, pts in (("pretrain_3d", [(0, 1.5), (100, 1.4)]), ("finetune", [(0, 1.4), (50, 1.35)])):
        (train / f"{name}.json").write_text(json.dumps(_report(name, pts)))
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "gt.json").write_text(json.dumps({"label": "ground-truth 3D", "seed": 0,
                                               "curve": [{"images": 0, "pa_mpjpe_cm": 1.5},
                                                         {"images": 150, "pa_mpjpe_cm": 1.2}]}))
    assert list(read_references(refs)) == ["ground-truth 3D"]
    out = draw_pipeline_curves(train, tmp_path / "curve.png", "this run", refs)
    assert out.stat().st_size > 5000
    with pytest.raises(FileNotFoundError):
        draw_pipeline_curves(tmp_path / "none", tmp_path / "x.png", "this run", refs)
