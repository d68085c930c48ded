"""Keypoint detection: file format, backends, image failures, quality metrics.

    .venv/bin/python -m pytest tests/test_detect.py -q
"""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from s2hand.data.table import FrameTable
from s2hand.detect import BACKENDS, KeypointFileError, Keypoints, detect, load_keypoints, save_keypoints
from s2hand.data.images import read_image
from s2hand.detect.quality import detection_quality, plot_quality
from s2hand.detect.simulated_backend import difficulty_terms
from s2hand.hand.keypoints import BONES

# ---------------------------------------------------------------- a crude generated hand

# right hand, palm towards the camera, fingers up (-y), thumb at +x; metres, OpenPose order
_MCP = {"index": (0.025, -0.085), "middle": (0.004, -0.088), "ring": (-0.016, -0.084), "pinky": (-0.034, -0.076)}
_LEN = {"index": (0.040, 0.025, 0.022), "middle": (0.045, 0.028, 0.024), "ring": (0.042, 0.026, 0.023),
        "pinky": (0.033, 0.020, 0.020)}
_SPLAY = {"index": 0.12, "middle": 0.0, "ring": -0.12, "pinky": -0.25}


def canonical_hand(curl: float = 0.0) -> np.ndarray:
    """(21, 3) keypoints of an open right hand; curl in [0, 1] bends the fingers away from the camera."""
    j = [np.zeros(3), np.array([0.02, -0.02, 0]), np.array([0.045, -0.04, -0.005]),
         np.array([0.06, -0.06, -0.008]), np.array([0.072, -0.078, -0.01])]
    for f in ("index", "middle", "ring", "pinky"):
        p = np.array([*_MCP[f], 0.0])
        j.append(p.copy())
        ang = 0.0
        for seg in _LEN[f]:
            ang += curl * 0.6
            d = np.array([np.sin(_SPLAY[f]) * np.cos(ang), -np.cos(_SPLAY[f]) * np.cos(ang), np.sin(ang)])
            p = p + seg * d
            j.append(p.copy())
    return np.stack(j)


def _rot(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_hand_table(n_seq: int = 2, n_frames: int = 6, size: int = 128, seed: int = 0,
                    cuts: dict[int, list[int]] | None = None) -> FrameTable:
    """Smooth hand videos (slow rotation, drift and curl); at a cut frame the pose jumps."""
    rng = np.random.default_rng(seed)
    f = 1.6 * size
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    j3s, j2s, seqs, frames, cut_flags, names = [], [], [], [], [], []
    for s in range(n_seq):
        state = rng.uniform(-1, 1, 5)
        for t in range(n_frames):
            is_cut = t in (cuts or {}).get(s, [])
            if is_cut:
                state = state + rng.choice([-1, 1], 5) * rng.uniform(1.0, 1.5, 5)
            ax, ay, az, curl, dx = state + 0.015 * t
            j = canonical_hand(0.3 + 0.25 * np.tanh(curl)) - np.array([0.0, -0.06, 0.0])
            j = j @ _rot(0.3 * ax, 0.4 * ay, 0.8 * az).T + np.array([0.03 * dx, 0.0, 0.5])
            uv = j @ K.T
            j3s.append(j)
            j2s.append(uv[:, :2] / uv[:, 2:])
            seqs.append(s)
            frames.append(t)
            cut_flags.append(is_cut)
            names.append(f"images/{s:03d}/{t:04d}.jpg")
    j2 = np.array(j2s, np.float32)
    visible = ((j2 >= 0) & (j2 < size)).all(-1)
    return FrameTable(image=np.array(names), K=np.repeat(K[None], len(names), 0).astype(np.float32),
                      joints3d=np.array(j3s, np.float32), joints2d=j2, visible=visible,
                      seq=np.array(seqs, np.int64), frame=np.array(frames, np.int64), cut=np.array(cut_flags))


def draw_hand(j2d: np.ndarray, size: int, f_over_z: float, seed: int = 0) -> np.ndarray:
    """A flat skin-coloured hand drawn over the keypoints (BGR uint8)."""
    rng = np.random.default_rng(seed)
    img = np.clip(np.array([70, 100, 130]) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    skin = (140, 170, 215)
    p = np.round(j2d).astype(np.int32)
    width = max(2, int(0.017 * f_over_z))
    wrist_dir = p[0] - p[9]
    forearm = np.array([p[0] + wrist_dir * 2 + [width * 2, 0], p[0] + wrist_dir * 2 - [width * 2, 0]])
    palm = np.concatenate([p[[0, 1, 5, 9, 13, 17]], forearm])
    cv2.fillPoly(img, [cv2.convexHull(p[[0, 1, 2, 5, 9, 13, 17]])], skin, cv2.LINE_AA)
    cv2.fillPoly(img, [cv2.convexHull(palm[[0, 6, 7]].reshape(-1, 1, 2))], skin, cv2.LINE_AA)
    for a, b in BONES:
        if a != 0 or b == 1:
            cv2.line(img, tuple(map(int, p[a])), tuple(map(int, p[b])), skin, width, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (3, 3), 0)


def write_images(table: FrameTable, root, size: int) -> None:
    f_over_z = float(table.K[0, 0, 0]) / 0.5
    for i, rel in enumerate(table.image):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), draw_hand(table.joints2d[i], size, f_over_z, seed=i))


# ---------------------------------------------------------------- fixtures and a stand-in OpenPose

@pytest.fixture
def hand_dataset(tmp_path):
    table = make_hand_table(n_seq=1, n_frames=3, size=128)
    write_images(table, tmp_path, 128)
    return table, tmp_path


class _FakeOp(types.ModuleType):
    """Mimics pyopenpose's hand-only API: returns keypoints at the box centre, score 0.8;
    nothing (score 0) for images whose mean is below 10 (a 'black' frame)."""

    def __init__(self):
        super().__init__("pyopenpose")
        self.configured = None
        self.boxes = []
        fake = self

        class Rectangle:
            def __init__(self, x, y, w, h):
                self.x, self.y, self.width, self.height = x, y, w, h

        class Datum:
            def __init__(self):
                self.cvInputData = None
                self.handRectangles = None
                self.handKeypoints = None

        class WrapperPython:
            def configure(self, params):
                fake.configured = dict(params)

            def start(self):
                pass

            def stop(self):
                pass

            def emplaceAndPop(self, datums):
                for d in datums:
                    left, right = d.handRectangles[0]
                    fake.boxes.append((left, right))
                    out = []
                    for r in (left, right):
                        kp = np.zeros((1, 21, 3), np.float32)
                        if r.width > 0 and d.cvInputData.mean() > 10:
                            kp[0, :, 0] = r.x + r.width / 2 + np.arange(21)
                            kp[0, :, 1] = r.y + r.height / 2
                            kp[0, :, 2] = 0.8
                            kp[0, 20, 2] = 0.0  # one keypoint not found
                        out.append(kp)
                    d.handKeypoints = out
                return True

        self.Rectangle, self.Datum, self.WrapperPython = Rectangle, Datum, WrapperPython
        self.VectorDatum = list


@pytest.fixture
def fake_openpose(monkeypatch):
    fake = _FakeOp()
    monkeypatch.setitem(sys.modules, "openpose", None)  # `from openpose import pyopenpose` fails
    monkeypatch.setitem(sys.modules, "pyopenpose", fake)
    return fake


def _options(backend, tmp_path):
    if backend == "openpose":
        (tmp_path / "models").mkdir(exist_ok=True)
        return {"model_folder": tmp_path / "models"}
    if backend == "mediapipe":
        return {"pad": 0.25}
    return {}


# ---------------------------------------------------------------- keypoint file

def test_keypoint_file_round_trip_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    peaks = rng.uniform(0, 128, (4, 21, 2)).astype(np.float32)
    conf = rng.uniform(0, 1, (4, 21)).astype(np.float32)
    conf[2] = 0
    names = [f"images/{i}.jpg" for i in range(4)]
    path = tmp_path / "kp.json"
    save_keypoints(path, peaks, conf, names)
    raw = json.loads(path.read_text())
    assert isinstance(raw, list) and len(raw) == 3
    assert np.array(raw[0]).shape == (4, 21, 2) and np.array(raw[1]).shape == (4, 21, 1) and raw[2] == names
    kp = load_keypoints(path)
    assert kp.peaks.dtype == np.float32 and kp.conf.dtype == np.float32
    np.testing.assert_allclose(kp.peaks, peaks, atol=1e-3)
    np.testing.assert_allclose(kp.conf, conf, atol=1e-5)
    assert kp.names == names and (kp.conf[2] == 0).all()
    assert not list(tmp_path.glob(".kp.json.tmp-*"))  # atomic write left no temporary file
    back = kp.reorder(names[::-1])
    assert back.names == names[::-1] and np.allclose(back.peaks[0], kp.peaks[3])
    with pytest.raises(KeypointFileError, match="no detections"):
        kp.reorder(["other.jpg"])
    save_keypoints(tmp_path / "empty.json", np.zeros((0, 21, 2)), np.zeros((0, 21)), [])
    assert len(load_keypoints(tmp_path / "empty.json")) == 0


@pytest.mark.parametrize("content, message", [
    ([[[[0, 0]] * 21], [[[1]] * 21], ["a", "b"]], "one entry per image"),
    ([[[[0, 0]] * 20], [[[1]] * 21], ["a"]], "peaks have shape"),
    ([[[[0, 0, 0]] * 21], [[[1]] * 21], ["a"]], "peaks have shape"),
    ([[[[0, 0]] * 21], [[[1, 1]] * 21], ["a"]], "values have shape"),
    ([[[[0, 0]] * 21], [[[-0.5]] * 21], ["a"]], "negative confidences"),
    ([[[[0, 0]] * 21], [[[1]] * 21], [3]], "names must be strings"),
    ({"peaks": []}, "expected a JSON list"),
    ([[], []], "expected a JSON list"),
])
def test_load_keypoints_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(KeypointFileError, match=message):
        load_keypoints(path)


def test_load_keypoints_rejects_nan_and_missing(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('[[' + json.dumps([[0, 0]] * 20 + [[0, 0]]).replace("[0, 0]]", "[NaN, 0]]", 1)
                    + '], [' + json.dumps([[1]] * 21) + '], ["a"]]')
    with pytest.raises(KeypointFileError, match="non-finite peaks"):
        load_keypoints(path)
    (tmp_path / "broken.json").write_text("[[1, 2")
    with pytest.raises(KeypointFileError, match="not valid JSON"):
        load_keypoints(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError):
        load_keypoints(tmp_path / "absent.json")
    with pytest.raises(KeypointFileError, match="non-finite values"):
        save_keypoints(tmp_path / "x.json", np.zeros((1, 21, 2)), np.full((1, 21), np.nan), ["a"])


# ---------------------------------------------------------------- every backend, through the file

@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_output_format(backend, hand_dataset, fake_openpose, tmp_path):
    table, root = hand_dataset
    kp = detect(table, root, backend, **_options(backend, tmp_path))
    assert isinstance(kp, Keypoints) and kp.names == list(table.image)
    assert kp.peaks.shape == (len(table), 21, 2) and kp.conf.shape == (len(table), 21)
    assert np.isfinite(kp.peaks).all() and (kp.conf >= 0).all() and kp.failures == []
    save_keypoints(tmp_path / f"{backend}.json", kp.peaks, kp.conf, kp.names)
    back = load_keypoints(tmp_path / f"{backend}.json")
    np.testing.assert_allclose(back.peaks, kp.peaks, atol=1e-3)
    np.testing.assert_allclose(back.conf, kp.conf, atol=1e-5)


def test_unknown_backend_is_named(hand_dataset):
    table, root = hand_dataset
    with pytest.raises(ValueError, match="unknown detector backend 'opnpose'.*mediapipe"):
        detect(table, root, "opnpose")


def test_ground_truth_backend_is_exact(hand_dataset):
    table, root = hand_dataset
    kp = detect(table, root, "ground_truth")
    assert (kp.conf == 1).all() and np.array_equal(kp.peaks, table.joints2d)
    q = detection_quality(kp, table.joints2d, table.visible)
    assert q["mpjpe_px"] == 0 and q["curve"]["fraction"][0] == 1.0 and q["detection_rate"] == 1.0


# ---------------------------------------------------------------- simulated

def test_simulated_is_seeded_and_noise_grows_with_occlusion():
    table = make_hand_table(n_seq=4, n_frames=50, seed=1)
    a = detect(table, None, "simulated", seed=3)
    b = detect(table, None, "simulated", seed=3)
    c = detect(table, None, "simulated", seed=4)
    assert np.array_equal(a.peaks, b.peaks) and np.array_equal(a.conf, b.conf)
    assert not np.array_equal(a.peaks, c.peaks)

    vis = table.subset(np.arange(len(table)))
    vis.visible = np.ones_like(table.visible)
    occ = table.subset(np.arange(len(table)))
    occ.visible = np.zeros_like(table.visible)
    opts = dict(seed=0, outlier_prob=0.0, keypoint_miss_prob=0.0, frame_miss_prob=0.0, frame_miss_occluded=0.0)
    kv, ko = detect(vis, None, "simulated", **opts), detect(occ, None, "simulated", **opts)
    ev = np.linalg.norm(kv.peaks - vis.joints2d, axis=-1).mean()
    eo = np.linalg.norm(ko.peaks - occ.joints2d, axis=-1).mean()
    assert eo > 2 * ev > 0
    assert ko.conf.mean() < 0.6 * kv.conf.mean()
    # misses: occluded frames are missed more often, and missed keypoints have conf 0 at (0, 0)
    mv, mo = detect(vis, None, "simulated", seed=0), detect(occ, None, "simulated", seed=0)
    assert (mo.conf == 0).mean() > (mv.conf == 0).mean()
    assert (mo.peaks[mo.conf == 0] == 0).all()
    with pytest.raises(TypeError, match="unknown noise parameters"):
        detect(table, None, "simulated", sigmaa=1.0)


def test_simulated_difficulty_sees_self_occlusion_and_foreshortening():
    table = make_hand_table(n_seq=1, n_frames=1)
    flat = table.subset([0])
    j = canonical_hand(0.0) + np.array([0, 0.05, 0.5])
    flat.joints3d = j[None].astype(np.float32)
    uv = j @ flat.K[0].T
    flat.joints2d = (uv[:, :2] / uv[:, 2:])[None].astype(np.float32)
    _, selfo, fore = difficulty_terms(flat)
    assert selfo.max() < 1e-6 and fore.max() < 0.05  # flat hand facing the camera: easy
    curled = flat.subset([0])
    j = canonical_hand(1.0) + np.array([0, 0.05, 0.5])
    curled.joints3d = j[None].astype(np.float32)
    uv = j @ curled.K[0].T
    curled.joints2d = (uv[:, :2] / uv[:, 2:])[None].astype(np.float32)
    _, selfo, fore = difficulty_terms(curled)
    assert selfo[0, 8] > 0.5 and fore[0, 8] > 0.3  # index tip curled behind the palm


# ---------------------------------------------------------------- images and mediapipe

def test_bad_images_are_counted_with_paths(hand_dataset, fake_openpose, tmp_path):
    table, root = hand_dataset
    (root / table.image[0]).write_bytes(b"not an image at all")
    good = (root / table.image[1]).read_bytes()
    (root / table.image[1]).write_bytes(good[: len(good) // 2])  # truncated JPEG
    (root / table.image[2]).unlink()
    img, failure = read_image(root / table.image[2])
    assert img is None and failure.reason == "missing file"
    for backend in ("mediapipe", "openpose"):
        kp = detect(table, root, backend, **_options(backend, tmp_path))
        assert [f.path for f in kp.failures] == list(table.image)
        reasons = [f.reason for f in kp.failures]
        assert "cannot decode" in reasons[0] and "truncated" in reasons[1] and reasons[2] == "missing file"
        assert (kp.conf == 0).all()


def test_mediapipe_detects_a_drawn_hand_and_not_a_blank_image(hand_dataset):
    table, root = hand_dataset
    cv2.imwrite(str(root / "blank.png"), np.full((128, 128, 3), 90, np.uint8))
    from s2hand.detect.mediapipe_backend import detect_paths

    # MediaPipe calls this flat drawn hand a left one: keep it (the default, drop, would discard it)
    kp = detect_paths(root, list(table.image) + ["blank.png"], pad=0.25, wrong_side="keep")
    assert (kp.conf[-1] == 0).all() and (kp.peaks[-1] == 0).all()
    hit = kp.conf[:-1].max(1) > 0
    assert hit.sum() >= 2, "MediaPipe found the drawn hand in fewer than 2 of 3 images"
    q = detection_quality(kp.subset(np.flatnonzero(hit)), table.joints2d[hit])
    assert q["mpjpe_px"] < 15, q["mpjpe_px"]  # a crude drawing of a 128 px hand
    assert (kp.conf <= 1).all()
    # two worker processes give the same answer
    kp2 = detect_paths(root, list(table.image) + ["blank.png"], pad=0.25, workers=2, chunk=2, wrong_side="keep")
    np.testing.assert_allclose(kp2.peaks, kp.peaks, atol=1e-3)


def _square_or_die(job: int) -> int:
    if job == 3:
        os._exit(7)  # a worker killed mid-job (as by the OOM killer or a native crash)
    return job * job


def test_worker_death_fails_loudly_instead_of_hanging():
    from s2hand.detect.mediapipe_backend import run_chunks

    assert [r for r, _ in run_chunks(_square_or_die, [0, 1, 2], workers=2)] == [0, 1, 4]
    with pytest.raises(RuntimeError, match="worker process died"):
        list(run_chunks(_square_or_die, [0, 1, 2, 3, 4, 5], workers=2))


def _write_pid_and_wait(job: str) -> None:
    import time

    Path(job).write_text(str(os.getpid()))
    time.sleep(120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_end_with_a_killed_parent(tmp_path):
    """kill -9 of the stage leaves no orphaned worker behind (each holds hundreds of MB)."""
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "worker.pid"
    code = ("from s2hand.detect.mediapipe_backend import run_chunks\n"
            "from tests.test_detect import _write_pid_and_wait\n"
            f"list(run_chunks(_write_pid_and_wait, [{str(pid_file)!r}], workers=1))\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent)
    try:
        for _ in range(600):
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for _ in range(100):
        try:  # gone, or a zombie waiting for its new parent to reap it
            if Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)  # clean up before failing
    pytest.fail(f"worker {worker} outlived its killed parent")


def test_mediapipe_confidence_falls_at_the_border():
    from s2hand.detect.mediapipe_backend import keypoints_from_result

    class P:  # landmark without a populated visibility field
        def __init__(self, x, y):
            self.x, self.y = x, y

        def HasField(self, name):
            return False

    xs = np.linspace(-0.1, 0.95, 21)
    lms = types.SimpleNamespace(landmark=[P(x, 0.5) for x in xs])
    hd = types.SimpleNamespace(classification=[types.SimpleNamespace(label="Left", score=0.9)])
    res = types.SimpleNamespace(multi_hand_landmarks=[lms], multi_handedness=[hd], palm_detections=None)
    peaks, conf = keypoints_from_result(res, (100, 100), (100, 100), 0, 1.0, border_margin=0.1)
    np.testing.assert_allclose(peaks[:, 0], xs * 100, atol=1e-4)
    assert conf[0] == 0 and conf[1] == 0  # outside the image
    assert np.isclose(conf[10], 0.9)  # well inside: the hand score
    assert 0.3 < conf[20] < 0.6  # 5 px inside the border, margin 0.1 * 105 px
    # padding and upscaling are undone
    peaks2, _ = keypoints_from_result(res, (100, 100), (300, 300), 25, 2.0)
    np.testing.assert_allclose(peaks2[:, 0], xs * 300 / 2 - 25, atol=1e-4)


def test_mediapipe_wrong_side_keep_or_drop():
    from s2hand.detect.mediapipe_backend import keypoints_from_result

    class P:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def HasField(self, name):
            return False

    def result(*labels):
        hands = [types.SimpleNamespace(landmark=[P(0.3 + 0.1 * k + 0.01 * i, 0.5) for i in range(21)]) for k in range(len(labels))]
        sides = [types.SimpleNamespace(classification=[types.SimpleNamespace(label=lab, score=0.8)]) for lab in labels]
        return types.SimpleNamespace(multi_hand_landmarks=hands, multi_handedness=sides, palm_detections=None)

    # MediaPipe's "Right" is the true left hand (mirrored labels): only a "Left" label is a right hand
    wrong = result("Right")
    _, keep = keypoints_from_result(wrong, (100, 100), (100, 100), 0, 1.0, hand="right")
    peaks, drop = keypoints_from_result(wrong, (100, 100), (100, 100), 0, 1.0, hand="right", wrong_side="drop")
    assert keep.max() > 0 and drop.max() == 0 and not peaks.any()
    # with a hand of the wanted side among several, drop keeps that one
    both = result("Right", "Left")
    p_keep, _ = keypoints_from_result(both, (100, 100), (100, 100), 0, 1.0, hand="right")
    p_drop, c_drop = keypoints_from_result(both, (100, 100), (100, 100), 0, 1.0, hand="right", wrong_side="drop")
    np.testing.assert_allclose(p_drop, p_keep)
    assert np.isclose(p_drop[0, 0], 40.0, atol=1e-4) and c_drop.max() > 0
    # hand "any" never drops
    _, c_any = keypoints_from_result(wrong, (100, 100), (100, 100), 0, 1.0, hand="any", wrong_side="drop")
    assert c_any.max() > 0


# ---------------------------------------------------------------- openpose adapter

def test_openpose_adapter_with_stand_in(hand_dataset, fake_openpose, tmp_path):
    table, root = hand_dataset
    cv2.imwrite(str(root / "black.png"), np.zeros((100, 160, 3), np.uint8))
    from s2hand.detect.openpose_backend import detect_paths

    kp = detect_paths(root, [table.image[0], "black.png"], model_folder=tmp_path, net_resolution="256x256")
    cfg = fake_openpose.configured
    assert cfg["hand"] is True and cfg["hand_detector"] == 2 and cfg["body"] == 0
    assert cfg["model_folder"] == str(tmp_path) and cfg["hand_net_resolution"] == "256x256"
    left, right = fake_openpose.boxes[0]
    assert left.width == 0 and right.width == right.height == 128 and (right.x, right.y) == (0, 0)
    np.testing.assert_allclose(kp.peaks[0, :, 0], 64 + np.arange(21))
    assert np.allclose(kp.conf[0, :20], 0.8) and kp.conf[0, 20] == 0
    left, right = fake_openpose.boxes[1]
    assert right.width == right.height == 160 and right.y == -30  # square box around a 160x100 image
    assert (kp.conf[1] == 0).all()
    detect_paths(root, [table.image[0]], model_folder=tmp_path, hand="left")
    assert fake_openpose.boxes[-1][0].width == 128 and fake_openpose.boxes[-1][1].width == 0
    kp = detect_paths(root, [table.image[0]], model_folder=tmp_path, hand="any")
    assert fake_openpose.boxes[-1][0].width == fake_openpose.boxes[-1][1].width == 128
    assert np.allclose(kp.conf[0, :20], 0.8)
    with pytest.raises(ValueError, match="right, left or any"):
        detect_paths(root, [table.image[0]], model_folder=tmp_path, hand="both")


def test_openpose_missing_gives_clear_error(monkeypatch, hand_dataset, tmp_path):
    table, root = hand_dataset
    monkeypatch.setitem(sys.modules, "openpose", None)
    monkeypatch.setitem(sys.modules, "pyopenpose", None)
    with pytest.raises(ImportError, match="BUILD_PYTHON.*model_folder"):
        detect(table, root, "openpose", model_folder=tmp_path)
    with pytest.raises(FileNotFoundError, match="model_folder"):
        detect(table, root, "openpose", model_folder=tmp_path / "nope")


# ---------------------------------------------------------------- quality

def test_quality_on_hand_made_cases(tmp_path):
    gt = np.random.default_rng(0).uniform(0, 100, (4, 21, 2)).astype(np.float32)
    names = [str(i) for i in range(4)]
    perfect = detection_quality(Keypoints(gt.copy(), np.ones((4, 21)), names), gt)
    assert perfect["mpjpe_px"] == 0 and perfect["curve"]["fraction"][0] == 1.0
    assert perfect["conf_error_spearman"] is None  # constant confidences

    shifted = gt + np.array([3.0, 0.0], np.float32)  # every keypoint 3 px off
    conf = np.ones((4, 21))
    conf[3] = 0  # frame 3 not detected
    conf[0, 5] = 0  # one keypoint missed
    q = detection_quality(Keypoints(shifted, conf, names), gt, visible=np.ones((4, 21), bool),
                          max_threshold_px=10, num_thresholds=11)
    assert np.isclose(q["mpjpe_px"], 3.0, atol=1e-4) and q["detection_rate"] == 0.75
    assert np.isclose(q["keypoint_detection_rate"], (84 - 22) / 84)
    thr, frac = q["curve"]["threshold_px"], q["curve"]["fraction"]
    assert frac[thr.index(2.0)] == 0 and frac[thr.index(4.0)] == 0.75 and max(frac) == 0.75
    assert np.isclose(q["mpjpe_px_per_keypoint"]["thumb4"], 3.0, atol=1e-4)
    assert q["mpjpe_px_occluded"] is None
    json.dumps(q)  # JSON-ready
    plot_quality(q, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 1000

    # honest confidences: a large error with a low confidence gives a negative rank correlation
    noisy = gt.copy()
    c = np.ones((4, 21))
    noisy[:, :10] += 20.0
    c[:, :10] = 0.2
    assert detection_quality(Keypoints(noisy, c, names), gt)["conf_error_spearman"] < -0.9


def _moving_hand(frames: int, seed: int = 0) -> np.ndarray:
    """(frames, 21, 2) a fixed hand shape that drifts, grows and turns a little each frame."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(21, 2)) * 10
    out = []
    for f in range(frames):
        a = 0.03 * f
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out.append((base @ R.T) * (1 + 0.02 * f) + np.array([60 + 2 * f, 50 - f]))
    return np.stack(out).astype(np.float32)


def test_neighbour_disagreement_flags_the_odd_frame_out_and_ignores_motion():
    from s2hand.detect.temporal import neighbour_disagreement

    peaks = np.concatenate([_moving_hand(10), _moving_hand(10, seed=1)])  # two sequences
    conf = np.ones((20, 21), np.float32)
    seq = np.repeat([0, 1], 10)
    frame = np.tile(np.arange(10), 2)
    bad = 4
    peaks[bad] = peaks[bad][::-1]  # keypoints in the wrong places (as a mirrored / misread hand)
    conf[13] = 0  # no detection
    d = neighbour_disagreement(peaks, conf, seq, frame)
    good = np.setdiff1d(np.arange(20), [bad, 13])
    assert np.isfinite(d[good]).all() and d[good].max() < 0.1  # motion, scale and turn are not errors
    assert d[bad] > 0.5
    assert np.isinf(d[13])  # nothing to judge
    # a cut separates shots: across it frames are not neighbours
    cut = np.zeros(20, bool)
    cut[[2, 3, 4, 5, 6, 7, 8, 9]] = True  # every frame from 2 on its own shot
    d_cut = neighbour_disagreement(peaks, conf, seq, frame, cut)
    assert np.isinf(d_cut[3]) and np.isfinite(d_cut[15])
    # still images cannot be judged
    assert np.isinf(neighbour_disagreement(peaks, conf, np.full(20, -1), frame)).all()
    with pytest.raises(ValueError):
        neighbour_disagreement(peaks, conf, seq, frame, radius=0)
