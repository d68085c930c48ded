"""The embedded synthetic dataset: determinism, ground-truth consistency, splits, cuts, occlusion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from s2hand.config import SyntheticParams
from s2hand.data.synthetic import motion
from s2hand.data.synthetic.generate import _shots, generate_dataset, plan_sequences
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


def test_wild_size_leaves_the_other_splits_unchanged():
    """train/val/test sequences (split, length, object, motion mix) do not depend on the wild
    split's size; each sequence renders from its own stream (seed, id), so their frames are the
    same too."""
    def plan(**wild):
        p = SyntheticParams(sequences=40, occluder_prob=0.5, val_fraction=0.1, test_fraction=0.1, **wild)
        return [s for s in plan_sequences(p, 5) if s.split != "wild"]

    base = plan(wild_sequences=0)
    assert plan(wild_sequences=6, wild_frames=60, wild_max_shots=3) == base
    assert plan(wild_sequences=300, wild_frames=200, wild_max_shots=9) == base
    wild = [s for s in plan_sequences(SyntheticParams(sequences=40, wild_sequences=3, wild_max_shots=5), 5)
            if s.split == "wild"]
    assert [s.seq for s in wild] == [40, 41, 42] and all(s.max_shots == 5 and s.wild for s in wild)


def test_wild_shots():
    """2 to max_shots shots of at least 8 frames, covering the video; as many as fit."""
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(200):
        shots = _shots(rng, 60, True, max_shots=6)
        lengths = [b - a for a, b in shots]
        assert shots[0][0] == 0 and shots[-1][1] == 60 and min(lengths) >= 8
        assert all(shots[i][1] == shots[i + 1][0] for i in range(len(shots) - 1))
        counts.add(len(shots))
    assert counts == {2, 3, 4, 5, 6}
    assert {len(_shots(rng, 20, True, max_shots=6)) for _ in range(50)} == {2}  # 20 frames hold 2 shots of 8
    assert _shots(rng, 60, False, max_shots=6) == [(0, 60)]


def test_wild_split_alone_renders_as_in_the_whole(dataset, npz_path, tmp_path):
    root, _ = dataset
    meta = generate_dataset(tmp_path, npz_path, SMALL, seed=3, workers=1, progress=False, splits=["wild"])
    assert set(meta["splits"]) == {"wild"} and not (tmp_path / "train.npz").exists()
    a, b = load_split(root, "wild"), load_split(tmp_path, "wild")
    for k in ("image", "joints3d", "cut"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert all((root / n).read_bytes() == (tmp_path / n).read_bytes() for n in a.image[::7])


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


def test_forearm_continues_the_wrist_opening(layer):
    from s2hand.data.synthetic import scene

    faces = layer.faces.cpu().numpy()
    loop = scene.boundary_loop(faces)
    # one ordered loop: consecutive vertices share a boundary edge, and it closes
    edges = {tuple(sorted(e)) for f in faces.tolist() for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    assert len(loop) == len(set(loop.tolist())) >= 8
    assert all(tuple(sorted((int(a), int(b)))) in edges for a, b in zip(loop, np.roll(loop, -1)))
    with torch.no_grad():
        out = layer(torch.tensor([[0.3, -0.5, 1.0], [0.0, 0.0, 0.0]]), torch.zeros(2, 45), torch.zeros(2, 10), pca=False)
    verts, joints = out.verts.double().numpy(), out.joints.double().numpy()
    palm = joints[:, [0, 5, 9, 13, 17]].mean(1)
    av, af = scene.forearm_mesh(verts[:, loop], palm, length=0.25, rings=6)
    R = len(loop)
    assert av.shape == (2, 6 * R, 3) and af.shape == (2 * 5 * R, 3)
    np.testing.assert_allclose(av[:, :R], verts[:, loop])  # no seam: the first ring is the opening
    # the tube leaves the hand: its far end is further from the palm than the wrist is
    far = av[:, -R:].mean(1)
    assert (np.linalg.norm(far - palm, axis=1) > np.linalg.norm(joints[:, 0] - palm, axis=1) + 0.2).all()
    # every face is wound outward (normal points away from the tube's axis)
    axis = far - av[:, :R].mean(1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    tri = av[:, af]  # (2, F, 3, 3)
    n = np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    c = tri.mean(2) - av[:, None, :R].mean(2)
    radial = c - (c * axis[:, None]).sum(-1, keepdims=True) * axis[:, None]
    assert ((n * radial).sum(-1) > 0).mean() > 0.95
    with pytest.raises(ValueError, match="closed"):
        scene.boundary_loop(np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]]))


def test_forearm_is_drawn_but_not_in_the_mask(npz_path, tmp_path):
    p = SMALL.model_copy(update=dict(sequences=3, wild_sequences=0, occluder_prob=0.0, val_fraction=0.0, test_fraction=0.0))
    with_arm, without = tmp_path / "arm", tmp_path / "no_arm"
    generate_dataset(with_arm, npz_path, p, seed=5, workers=1, progress=False)
    generate_dataset(without, npz_path, p.model_copy(update=dict(forearm=False)), seed=5, workers=1, progress=False)
    a, b = load_split(with_arm, "train"), load_split(without, "train")
    np.testing.assert_array_equal(a.joints3d, b.joints3d)  # same scene, same ground truth
    ma, mb = np.load(with_arm / "train_masks.npy"), np.load(without / "train_masks.npy")
    assert (ma == mb).mean() > 0.99  # the hand's silhouette (the arm may hide a sliver of it)
    diff = [np.abs(cv2.imread(str(with_arm / f)).astype(int) - cv2.imread(str(without / f)).astype(int)).sum(-1) > 30
            for f in a.image[:6]]
    hand = np.unpackbits(ma[:6], axis=-1)[..., :64].astype(bool)
    changed_outside = np.mean([(d & ~h).mean() for d, h in zip(diff, hand)])
    assert changed_outside > 0.01  # the arm shows up outside the hand's silhouette
