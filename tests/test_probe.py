"""The ridge probe (s2hand.evaluate.probe): grouped alpha choice, plumbing to PA-MPJPE, features."""
import numpy as np
import pytest
import torch

from s2hand.data.table import load_split
from s2hand.evaluate.probe import fit_probe, pooled_features, pose_targets, run_probe
from s2hand.model.frames import HandFrames
from s2hand.nets.encoder import build_encoder


def _groups(n: int, k: int) -> np.ndarray:
    return np.repeat(np.arange(k), n // k)


def test_probe_recovers_a_linear_map_and_shrinks_noise_to_the_mean(rng):
    x = rng.normal(size=(200, 12))
    w = rng.normal(size=(12, 3))
    y = x @ w + 0.01 * rng.normal(size=(200, 3))
    search, cv = fit_probe(x, y, _groups(200, 10), alphas=(1e-2, 1e2, 1e5))
    assert search.best_params_["ridge__alpha"] == 1e-2
    assert cv[1e-2] < cv[1e2] < cv[1e5]
    assert np.abs(search.predict(x) - y).max() < 0.1

    noise = rng.normal(size=(200, 12))  # features that say nothing about y
    search, _ = fit_probe(noise, y, _groups(200, 10), alphas=(1e-2, 1e2, 1e5))
    assert search.best_params_["ridge__alpha"] == 1e5
    assert np.abs(search.predict(noise) - y.mean(0)).max() < 0.05 * np.abs(y).max()


def test_probe_needs_enough_groups_for_its_folds(rng):
    with pytest.raises(ValueError, match="at least 5 groups"):
        fit_probe(rng.normal(size=(40, 3)), rng.normal(size=(40, 2)), _groups(40, 4))


def test_features_that_hold_the_pose_beat_the_mean_pose(tiny_training_data, layer):
    data, _, _ = tiny_training_data(6)
    train, val = load_split(data, "train"), load_split(data, "val")
    # one feature row per frame that is the ground truth itself: the probe must read it back (12
    # frames, 55 features: it interpolates its own frames; scored on them, this tests the plumbing)
    x = pose_targets(train)
    r = run_probe(x, train, x, train, layer, alphas=(1e-6, 1e3), folds=2)
    assert r.alpha == 1e-6
    assert r.train_pa_mpjpe_cm < 0.05 and r.val_pa_mpjpe_cm == pytest.approx(r.train_pa_mpjpe_cm)
    assert r.baseline_pa_mpjpe_cm > 0.5
    assert r.vs_baseline["diff_cm"] < -0.4 and r.vs_baseline["lo_cm"] is None  # too few sequences for a verdict
    r = run_probe(x, train, pose_targets(val), val, layer, alphas=(1e-6, 1e3), folds=2)
    assert r.val_frames == len(val) and np.isfinite(r.val_pa_mpjpe_cm)
    with pytest.raises(ValueError, match="feature rows"):
        run_probe(pose_targets(train)[:-1], train, pose_targets(val), val, layer, folds=2)


def test_pooled_features_are_the_eval_mode_global_feature(tiny_training_data):
    data, _, _ = tiny_training_data(6)
    ds = HandFrames(load_split(data, "val"), data, None, 64)
    torch.manual_seed(0)
    enc = build_encoder("lite0", "random").train()
    f = pooled_features(enc, ds, batch_size=4)
    assert f.shape == (len(ds), enc.num_features) and f.dtype == np.float32
    assert enc.training  # mode restored
    np.testing.assert_array_equal(f, pooled_features(enc, ds, batch_size=len(ds)))  # eval mode: batch-independent


def test_head_training_lowers_the_keypoint_energy_and_uses_a_given_rotation(layer, rng):
    from s2hand.config import LossWeights
    from s2hand.evaluate.keypoint_fit import decode, initial_code
    from s2hand.evaluate.probe import head_joints, rotation_error_deg, train_head
    from s2hand.nets.heads import GeometryHead, axis_angle_facing_camera

    # 64 frames whose keypoints are projections of hands the features determine (features = a
    # random linear image of the true pose code), so a head can fit them
    n, size = 64, 128.0
    code = initial_code(n, layer.num_pca_comps)
    code["pose"] = torch.as_tensor(0.5 * rng.normal(size=(n, layer.num_pca_comps)), dtype=torch.float32)
    code["rot"] = code["rot"] + torch.as_tensor(0.2 * rng.normal(size=(n, 3)), dtype=torch.float32)
    K = torch.tensor([[150.0, 0, 64], [0, 150.0, 64], [0, 0, 1]]).repeat(n, 1, 1)
    with torch.no_grad():
        _, _, kp, _ = decode(layer, code, K)
    x = np.concatenate([code["pose"].numpy(), code["rot"].numpy()], 1) @ rng.normal(size=(33, 64))
    conf = np.ones((n, 21), np.float32)
    torch.manual_seed(0)
    head = GeometryHead(64, num_pose=layer.num_pca_comps, init_rot=axis_angle_facing_camera())
    seen = []
    energies = train_head(head, layer, LossWeights(), x, K.numpy(), kp.numpy(), conf, size, epochs=30,
                          batch_size=16, lr=1e-3, on_epoch=seen.append)
    assert seen == list(range(30)) and len(energies) == 30 and all(np.isfinite(energies))
    assert energies[-1] < 0.5 * energies[0]
    assert head.training  # head_joints below restores it too
    joints, rot = head_joints(head, layer, x, K.numpy())
    assert joints.shape == (n, 21, 3) and head.training
    given = code["rot"].numpy()
    _, rot_given = head_joints(head, layer, x, K.numpy(), rot=given)
    np.testing.assert_array_equal(rot_given, given)
    assert rotation_error_deg(given, given).max() < 1e-4
    assert rotation_error_deg(np.zeros((1, 3)), np.array([[0.0, 0.0, np.pi / 2]]))[0] == pytest.approx(90.0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_head(head, layer, LossWeights(), x[:8], K.numpy()[:8], kp.numpy()[:8], conf[:8], size, 1, batch_size=16)


def test_unaugmented_inputs_match_what_training_reads(tiny_training_data):
    from s2hand.detect.keypoint_file import load_keypoints
    from s2hand.evaluate.probe import unaugmented_inputs

    data, kp_dir, _ = tiny_training_data(6)
    table = load_split(data, "val")
    kp = load_keypoints(kp_dir / "val.json").reorder(table.image)
    ds = HandFrames(table, data, kp, 96)
    K, peaks = unaugmented_inputs(table.K, 64, 96, kp.peaks, kp.conf)
    for i in range(len(ds)):
        item = ds[i]
        np.testing.assert_allclose(K[i], item["K"].numpy(), rtol=1e-6)
        np.testing.assert_allclose(peaks[i], item["kp"].numpy(), rtol=1e-5, atol=1e-4)


def test_head_probe_command_writes_its_epochs(tiny_training_data, tmp_path):
    import json

    from s2hand.evaluate.probe import main

    import yaml

    data, kp_dir, hand = tiny_training_data(6)
    params = yaml.safe_load(open("params.yaml"))
    params["train"]["max_disagreement"] = 0.0  # the tiny videos are too short for the temporal filter
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "heads.json"
    main(["--heads", "--model", "imagenet", "--dataset", str(data), "--keypoints", str(kp_dir), "--hand-model",
          str(hand), "--input-size", "64", "--epochs", "2", "--batch-size", "4", "--rotation", "ground_truth",
          "--params", str(tmp_path / "params.yaml"), "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["rotation"] == "ground_truth" and [e["epoch"] for e in r["epochs"]] == [0, 1, 2]
    assert all(np.isfinite(e["val_pa_mpjpe_cm"]) for e in r["epochs"]) and "energy" in r["epochs"][1]
