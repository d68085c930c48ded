"""Oracle labels (s2hand.evaluate.oracle): the true codes, the labels file, the run's params, the CLI."""
import json

import numpy as np
import pytest
import torch
import yaml

from s2hand.data.table import load_split
from s2hand.evaluate.oracle import ground_truth_codes, main, oracle_params, write_oracle_labels
from s2hand.hand.layer import HandLayer
from s2hand.train.pseudo_labels import load_pseudo_labels
from tests.conftest import tiny_params


def test_codes_of_a_pose_in_the_basis_are_its_own(layer):
    c = np.random.default_rng(0).normal(0, 0.5, (5, layer.num_pca_comps))
    pose = layer.finger_pose(torch.as_tensor(c, dtype=torch.float32)).double().numpy()  # (5, 45)
    np.testing.assert_allclose(ground_truth_codes(layer, pose), c, atol=1e-4)
    with pytest.raises(ValueError, match="finger poses"):
        ground_truth_codes(layer, pose[:, :30])


def test_labels_file_reads_back_as_pseudo_labels_of_every_frame(tiny_training_data, tmp_path):
    data, _, hand = tiny_training_data(6)
    table = load_split(data, "train")
    layer = HandLayer.from_file(hand, 6)
    residual = write_oracle_labels(tmp_path / "labels.npz", table, layer)
    assert np.isfinite(residual) and residual >= 0
    t = load_pseudo_labels(tmp_path / "labels.npz", table, 6)
    assert t["pseudo_mask"].all()
    np.testing.assert_allclose(t["pseudo_pose"], ground_truth_codes(layer, table.pose[:, 3:]), atol=1e-6)
    np.testing.assert_allclose(t["pseudo_shape"], table.shape, atol=1e-6)


def test_all_frames_turns_the_training_filters_off():
    raw = yaml.safe_load(open("params.yaml"))
    kept, every = oracle_params(raw, "kept"), oracle_params(raw, "all")
    assert kept.train.max_disagreement == raw["train"]["max_disagreement"]
    assert (every.train.max_disagreement, every.train.min_keypoints, every.train.min_confidence) == (0.0, 0, 0.0)
    with pytest.raises(ValueError, match="kept"):
        oracle_params(raw, "some")


def test_cli_trains_pretrain_3d_on_the_true_codes_and_scores_closure(tiny_training_data, tmp_path):
    data, kp, hand = tiny_training_data(10)  # closure rows need 8 frames or more
    stage = {"epochs": 1, "lr": 1e-3, "lr_step": 1, "lr_gamma": 0.5, "batch_size": 4}
    params = tiny_params(hand={"num_pca_comps": 6}, train={"pretrain_3d": stage, "runtime": {"device": "cpu"}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    out = tmp_path / "oracle"
    result = main(["--frames", "all", "--out", str(out), "--params", str(tmp_path / "params.yaml"),
                   "--dataset", str(data), "--keypoints", str(kp), "--hand-model", str(hand), "--splits", "val"])
    assert (out / "model.pt").is_file() and json.loads((out / "oracle.json").read_text())["frames"] == "all"
    assert result["train_frames"] == len(load_split(data, "train"))  # every frame, the filters off
    assert [r["row"] for r in result["closure"]] == ["oracle (all): val"]
