"""The embedded synthetic dataset: determinism, ground-truth consistency, splits, cuts, occlusion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from s2hand.config import SyntheticParams
from s2hand.data.synthetic import motion
from s2hand.data.synthetic.generate import generate_dataset, plan_sequences
from s2hand.data.table import load_meta, load_split
from s2hand.hand.limits import within_limits

SMALL = SyntheticParams(sequences=5, frames=12, wild_sequences=2, wild_frames=24, image_size=64,
                        occluder_prob=0.5, val_fraction=0.2, test_fraction=0.2)


@pytest.fixture(scope="module")
def dataset(npz_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    meta = generate_dataset(out, npz_path, SMALL, seed=3, workers=1, progress=False)
    return out, meta


def test_layout_and_splits_by_sequence(dataset):
    root, meta = dataset
    assert load_meta(root)["splits"] == meta["splits"]
    assert set(meta["splits"]) == {"train", "val", "test", "wild"}
    seqs = {sp: set(load_split(root, sp).seq.tolist()) for sp in meta["splits"]}
    for a in seqs:
        for b in seqs:
            if a != b:
                assert not seqs[a] & seqs[b], f"sequence in both {a} and {b}"
    assert sum(len(s) for s in seqs.values()) == SMALL.sequences + SMALL.wild_sequences
    t = load_split(root, "train")
    img = cv2.imread(str(root / t.image[0]))
    assert img.shape == (64, 64, 3)


def test_ground_truth_is_consistent(dataset, layer):
    root, _ = dataset
    t = load_split(root, "train")
    # 2D keypoints are the projection of the 3D keypoints
    p = np.einsum("nij,nkj->nki", t.K, t.joints3d)
    np.testing.assert_allclose(p[..., :2] / p[..., 2:], t.joints2d, atol=1e-3)
    # the stored pose and shape reproduce the stored mesh up to a translation
    with torch.no_grad():
        out = layer(torch.as_tensor(t.pose[:, :3]), torch.as_tensor(t.pose[:, 3:]), torch.as_tensor(t.shape), pca=False)
    v = out.verts.numpy()
    shift = (t.verts - v).mean(1, keepdims=True)
    np.testing.assert_allclose(v + shift, t.verts, atol=2e-4)
    assert within_limits(t.pose[:, 3:].astype(np.float64), tol_deg=0.01).all()
    # hands are in front of the camera and mostly inside the image
    assert (t.joints3d[..., 2] > 0.3).all()
    assert ((t.joints2d >= 0) & (t.joints2d < 64)).all(-1).mean() > 0.9


def test_silhouettes_cover_the_projected_hand(dataset):
    root, _ = dataset
    t = load_split(root, "train")
    masks = np.unpackbits(np.load(root / "train_masks.npy"), axis=-1)[..., :64].astype(bool)
    assert masks.shape == (len(t), 64, 64)
    assert (masks.sum((1, 2)) > 30).all(), "every frame shows the hand"
    # visible keypoints of a sequence without an object fall on the silhouette (dilated by 2 px)
    hits, total = 0, 0
    for i in range(len(t)):
        m = cv2.dilate(masks[i].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        for u, v in t.joints2d[i][t.visible[i]]:
            hits += m[int(v), int(u)]
            total += 1
    assert hits / total > 0.95


def test_cuts_only_in_wild_and_at_shot_changes(dataset):
    root, _ = dataset
    for split in ("train", "val", "test"):
        assert not load_split(root, split).cut.any()
    w = load_split(root, "wild")
    assert w.cut.any()
    for seq in np.unique(w.seq):
        rows = np.nonzero(w.seq == seq)[0]
        assert not w.cut[rows[0]], "a sequence does not start with a cut"
        for i in rows[1:]:
            jump = np.linalg.norm(w.joints3d[i] - w.joints3d[i - 1], axis=-1).mean()
            if not w.cut[i]:
                assert jump < 0.05, "inside a shot the hand moves smoothly"


def test_objects_occlude_some_keypoints(dataset):
    root, meta = dataset
    occluded = set(meta["occluded_sequences"])
    assert occluded, "this small config draws at least one object"
    tables = [load_split(root, sp) for sp in meta["splits"]]
    vis_occ = np.concatenate([t.visible[np.isin(t.seq, list(occluded))] for t in tables])
    assert (~vis_occ).any(), "objects hide some keypoints"


def test_deterministic_and_independent_of_workers(npz_path, tmp_path):
    p = SyntheticParams(sequences=3, frames=6, wild_sequences=1, wild_frames=16, image_size=48,
                        val_fraction=0.0, test_fraction=0.34)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    generate_dataset(a, npz_path, p, seed=7, workers=1, progress=False)
    generate_dataset(b, npz_path, p, seed=7, workers=2, progress=False)
    for split in ("train", "test", "wild"):
        ta, tb = load_split(a, split), load_split(b, split)
        np.testing.assert_array_equal(ta.joints3d, tb.joints3d)
        np.testing.assert_array_equal(ta.image, tb.image)
        ia, ib = cv2.imread(str(a / ta.image[-1])), cv2.imread(str(b / tb.image[-1]))
        np.testing.assert_array_equal(ia, ib)


def test_plan_splits_by_fraction():
    specs = plan_sequences(SyntheticParams(sequences=20, wild_sequences=3, val_fraction=0.15, test_fraction=0.15), 0)
    counts = {s: sum(x.split == s for x in specs) for s in ("train", "val", "test", "wild")}
    assert counts == {"train": 14, "val": 3, "test": 3, "wild": 3}


def test_motion_is_smooth_with_pauses():
    rng = np.random.default_rng(0)
    times = motion.keyframe_times(rng, 90, 30.0)
    s = motion.eased_positions(times, 90)
    assert s[0] == 0 and np.all(np.diff(s) >= 0), "key position advances monotonically"
    keys = np.array([[0.0], [1.0], [1.0], [3.0]] + [[3.0]] * (len(times) - 4 if len(times) > 4 else 0))[: len(times)]
    x = motion.interpolate_vectors(keys, s)[:, 0]
    speed = np.abs(np.diff(x))
    assert speed.max() < 1.0 and np.isfinite(x).all()
    # velocity is zero at keyframes (eased), so speed changes along the trajectory
    assert speed.min() < 0.2 * speed.max()
