"""Real-dataset loaders, fetching and safe extraction, on tiny fixtures in each dataset's real layout.

    .venv/bin/python -m pytest -q tests/test_real_datasets.py
"""
from __future__ import annotations

import io
import json
import logging
import os
import pickle
import stat
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from s2hand.data import download, freihand, ho3d, prepare, stb, yt3d
from s2hand.data.download import ChecksumError, ExtractError, FetchError, Source, fetch, safe_extract, sha256sum
from s2hand.data.table import FrameTable, load_meta, load_split
from s2hand.hand.keypoints import OPENPOSE_NAMES

RNG = np.random.default_rng(0)


def _image(path: Path, ext_size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), RNG.integers(0, 255, (ext_size, ext_size, 3), dtype=np.uint8))


def _hand(n: int) -> np.ndarray:
    """(n, 21, 3) points in front of an OpenCV camera, metres."""
    return np.concatenate([RNG.uniform(-0.05, 0.05, (n, 21, 2)), RNG.uniform(0.4, 0.6, (n, 21, 1))], -1)


def _K(n: int) -> np.ndarray:
    K = np.tile(np.eye(3), (n, 1, 1))
    K[:, 0, 0] = K[:, 1, 1] = RNG.uniform(400, 600, n)
    K[:, :2, 2] = 112.0
    return K


def _dump(path: Path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(np.asarray(arr).tolist()))


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")], list(parent.iterdir())


# ----------------------------------------------------------------------------------- FreiHAND

N_FH, N_FH_EVAL = 3, 2


@pytest.fixture
def fh(tmp_path):
    root, eval_root = tmp_path / "FreiHAND_pub_v2", tmp_path / "FreiHAND_pub_v2_eval"
    K, xyz = _K(N_FH), _hand(N_FH)
    mano = RNG.normal(size=(N_FH, 1, 61))
    verts = RNG.normal(size=(N_FH, 778, 3))
    for name, arr in (("K", K), ("xyz", xyz), ("mano", mano), ("verts", verts)):
        _dump(root / f"training_{name}.json", arr)
    for i in range(4 * N_FH):
        _image(root / "training" / "rgb" / f"{i:08d}.jpg")
    eK, exyz = _K(N_FH_EVAL), _hand(N_FH_EVAL)
    _dump(root / "evaluation_K.json", eK)
    for i in range(N_FH_EVAL):
        _image(root / "evaluation" / "rgb" / f"{i:08d}.jpg")
    _dump(eval_root / "evaluation_xyz.json", exyz)
    _dump(eval_root / "evaluation_verts.json", RNG.normal(size=(N_FH_EVAL, 778, 3)))
    _dump(eval_root / "evaluation_K.json", eK)
    return dict(root=root, eval_root=eval_root, K=K, xyz=xyz, mano=mano.reshape(N_FH, 61), verts=verts, exyz=exyz)


def test_freihand_train_versions_share_annotation(fh):
    t = freihand.load_freihand(fh["root"], "train", val_fraction=0.0)
    assert len(t) == 4 * N_FH and isinstance(t, FrameTable)
    row = list(t.image).index("training/rgb/00000007.jpg")  # 7 = id 1 + version 2 * 3
    np.testing.assert_allclose(t.joints3d[row], fh["xyz"][1], atol=1e-6)
    np.testing.assert_allclose(t.verts[row], fh["verts"][1], atol=1e-6)
    np.testing.assert_allclose(t.pose[row], fh["mano"][1, :48], atol=1e-6)
    np.testing.assert_allclose(t.shape[row], fh["mano"][1, 48:58], atol=1e-6)
    uvw = fh["K"][1] @ fh["xyz"][1].T
    np.testing.assert_allclose(t.joints2d[row], (uvw[:2] / uvw[2]).T, rtol=1e-5)
    assert t.frame[row] == 7 and (t.seq == -1).all()


def test_freihand_val_split_is_held_out_gs_only(fh):
    val = freihand.load_freihand(fh["root"], "val", val_fraction=0.34)
    train = freihand.load_freihand(fh["root"], "train", val_fraction=0.34, with_verts=False)
    held = freihand.val_ids(N_FH, 0.34)
    assert len(held) == 1 and len(val) == 1 and len(train) == 4 * (N_FH - 1)
    assert val.image[0] == f"training/rgb/{held[0]:08d}.jpg"
    used = {int(Path(p).stem) % N_FH for p in train.image}
    assert held[0] not in used and train.verts is None


def test_freihand_test_split_and_missing_files(fh):
    t = freihand.load_freihand(fh["root"], "test", eval_root=fh["eval_root"])
    assert len(t) == N_FH_EVAL
    np.testing.assert_allclose(t.joints3d, fh["exyz"], atol=1e-6)
    assert t.verts.shape == (N_FH_EVAL, 778, 3)
    bare = freihand.load_freihand(fh["root"], "test")  # no evaluation ground truth: left empty
    assert bare.joints3d is None and bare.joints2d is None
    (fh["root"] / "training_xyz.json").unlink()
    with pytest.raises(FileNotFoundError, match="training_xyz.json"):
        freihand.load_freihand(fh["root"], "train")
    (fh["root"] / "evaluation" / "rgb" / "00000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="00000001.jpg"):
        freihand.load_freihand(fh["root"], "test")


# -------------------------------------------------------------------------------------- HO-3D


def _ho3d_meta(joints_gl, pose, K, with_hand=True):
    d = {"camMat": K, "objName": "006_mustard_bottle", "objRot": np.zeros((3, 1))}
    if with_hand:
        d.update(handJoints3D=joints_gl, handPose=pose, handBeta=np.arange(10.0), handTrans=np.zeros(3))
    else:
        d.update(handJoints3D=None, handPose=None, handBeta=None, handTrans=None)
    return d


@pytest.fixture
def ho(tmp_path):
    root = tmp_path / "HO3D_v2"
    K = np.array([[614.0, 0, 320], [0, 614.0, 240], [0, 0, 1]])
    frames = {"ABF10": ["0000", "0001", "0002"], "GSF10": ["0000"]}
    joints, poses = {}, {}
    for seq, fids in frames.items():
        for fid in fids:
            j = _hand(1)[0] * np.array([1, -1, -1])  # OpenGL: in front of the camera is z < 0
            p = RNG.normal(scale=0.3, size=48)
            joints[seq, fid], poses[seq, fid] = j, p
            _image(root / "train" / seq / "rgb" / f"{fid}.png")
            (root / "train" / seq / "meta").mkdir(parents=True, exist_ok=True)
            meta = _ho3d_meta(j, p, K, with_hand=(seq, fid) != ("ABF10", "0002"))
            with open(root / "train" / seq / "meta" / f"{fid}.pkl", "wb") as f:
                pickle.dump(meta, f, protocol=2)
    _image(root / "evaluation" / "SM1" / "rgb" / "0000.png")
    (root / "evaluation" / "SM1" / "meta").mkdir(parents=True)
    with open(root / "evaluation" / "SM1" / "meta" / "0000.pkl", "wb") as f:
        pickle.dump({"camMat": K, "handJoints3D": np.array([0.0, 0.0, -0.5]), "handBoundingBox": np.array([1, 2, 3, 4])}, f)
    (root / "train.txt").write_text("".join(f"{s}/{f}\n" for s, fs in frames.items() for f in fs))
    (root / "evaluation.txt").write_text("SM1/0000\n")
    return dict(root=root, K=K, joints=joints, poses=poses)


def test_ho3d_order_flip_and_splits(ho, caplog):
    with caplog.at_level(logging.WARNING):
        train = ho3d.load_ho3d(ho["root"], "train")
    assert len(train) == 2 and "1 frames without hand annotation" in caplog.text  # ABF10/0002 dropped
    names = ho3d.sequence_names(ho["root"])
    assert names == ["ABF10", "GSF10", "SM1"]
    assert (train.seq == names.index("ABF10")).all() and list(train.frame) == [0, 1]
    gl = ho["joints"]["ABF10", "0001"]
    # HO-3D keypoint 16 is the thumb tip, OpenPose 4; index 0 is the wrist in both
    thumb_tip = OPENPOSE_NAMES.index("thumb4")
    np.testing.assert_allclose(train.joints3d[1, thumb_tip], gl[16] * [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(train.joints3d[1, 0], gl[0] * [1, -1, -1], atol=1e-6)
    np.testing.assert_allclose(train.joints3d[1, OPENPOSE_NAMES.index("index1")], gl[1] * [1, -1, -1], atol=1e-6)
    assert (train.joints3d[..., 2] > 0).all()  # OpenCV: in front is z > 0
    uvw = ho["K"] @ train.joints3d[1].T
    np.testing.assert_allclose(train.joints2d[1], (uvw[:2] / uvw[2]).T, rtol=1e-5)
    # global rotation turned with the camera axes, finger pose untouched
    from scipy.spatial.transform import Rotation

    p = ho["poses"]["ABF10", "0001"]
    R = Rotation.from_rotvec(train.pose[1, :3]).as_matrix()
    np.testing.assert_allclose(R, np.diag([1, -1, -1]) @ Rotation.from_rotvec(p[:3]).as_matrix(), atol=1e-5)
    np.testing.assert_allclose(train.pose[1, 3:], p[3:], atol=1e-6)
    np.testing.assert_allclose(train.shape[0], np.arange(10.0))

    val = ho3d.load_ho3d(ho["root"], "val")
    assert len(val) == 1 and val.seq[0] == names.index("GSF10")
    kept = ho3d.load_ho3d(ho["root"], "trainval", keep_unannotated=True)
    assert len(kept) == 4 and np.isnan(kept.joints3d[2]).all()
    test = ho3d.load_ho3d(ho["root"], "test")
    assert len(test) == 1 and test.joints3d is None and test.image[0] == "evaluation/SM1/rgb/0000.png"


def test_ho3d_safe_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"camMat": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        ho3d.safe_load_pickle(path)
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"a": np.arange(3.0), "b": np.float32(2.0)}, protocol=5))
    out = ho3d.safe_load_pickle(ok)
    np.testing.assert_array_equal(out["a"], np.arange(3.0))
    old = tmp_path / "old.pkl"  # as written by numpy 1.x: numpy.core.multiarray
    old.write_bytes(pickle.dumps({"a": np.arange(3.0)}, protocol=2).replace(b"numpy._core", b"numpy.core"))
    np.testing.assert_array_equal(ho3d.safe_load_pickle(old)["a"], np.arange(3.0))


def test_ho3d_missing_meta_named(ho):
    (ho["root"] / "train" / "GSF10" / "meta" / "0000.pkl").unlink()
    with pytest.raises(FileNotFoundError, match=r"GSF10/meta/0000\.pkl"):
        ho3d.load_ho3d(ho["root"], "val")


# ---------------------------------------------------------------------------------------- STB

N_STB = 2


@pytest.fixture
def stb_root(tmp_path):
    root = tmp_path / "STB"
    paras = {}
    for seq in stb.SEQUENCES:
        xyz = _hand(N_STB) * 1000.0  # mm
        paras[seq] = xyz
        (root / "labels").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / "labels" / f"{seq}_SK.mat", {"handPara": np.transpose(xyz, (2, 1, 0))})
        for i in range(N_STB):
            _image(root / "images" / seq / f"SK_color_{i}.png")
    return root, paras


def test_stb_order_units_camera_and_splits(stb_root):
    root, paras = stb_root
    test = stb.load_stb(root, "test")
    train = stb.load_stb(root, "train")
    assert len(test) == 2 * N_STB and len(train) == 10 * N_STB
    assert set(test.seq) == {stb.SEQUENCES.index("B1Counting"), stb.SEQUENCES.index("B1Random")}
    assert list(test.image[:2]) == ["images/B1Counting/SK_color_0.png", "images/B1Counting/SK_color_1.png"]
    # independent depth -> colour camera: p_depth = R p_colour + t
    R = cv2.Rodrigues(np.array([0.00531, -0.01196, 0.00301]))[0]
    t = np.array([-24.0381, -0.4563, -1.2326])
    raw = paras["B1Counting"][1]  # (21, 3) mm, STB order, depth camera
    colour = np.linalg.solve(R, (raw - t).T).T / 1000.0
    # STB index 20 is the thumb tip (OpenPose 4); STB 1 is the pinky MCP (OpenPose 17)
    np.testing.assert_allclose(test.joints3d[1, OPENPOSE_NAMES.index("thumb4")], colour[20], atol=1e-6)
    np.testing.assert_allclose(test.joints3d[1, OPENPOSE_NAMES.index("pinky1")], colour[1], atol=1e-6)
    np.testing.assert_allclose(test.joints3d[1, OPENPOSE_NAMES.index("index4")], colour[16], atol=1e-6)
    np.testing.assert_allclose(test.joints3d[1, 0], colour[5] + 2 * (colour[0] - colour[5]), atol=1e-6)
    palm = stb.load_stb(root, "test", wrist="palm")
    np.testing.assert_allclose(palm.joints3d[1, 0], colour[0], atol=1e-6)
    np.testing.assert_allclose(test.K[0], stb.SK_COLOR_K, atol=1e-4)
    uvw = stb.SK_COLOR_K @ test.joints3d[1].T
    np.testing.assert_allclose(test.joints2d[1], (uvw[:2] / uvw[2]).T, rtol=1e-4)
    (root / "labels" / "B1Random_SK.mat").unlink()
    with pytest.raises(FileNotFoundError, match="B1Random_SK.mat"):
        stb.load_stb(root, "test")


# --------------------------------------------------------------------------------------- YT3D


@pytest.fixture
def yt(tmp_path):
    root = tmp_path / "yt3d"
    names = {1: "youtube/vidA/video/frames/11.png", 2: "youtube/vidA/video/frames/10.png",
             3: "youtube/vidB/video/frames/5.png"}
    images = [{"id": i, "name": n, "width": 8, "height": 8} for i, n in names.items()]
    verts = {k: RNG.uniform(0, 8, (778, 3)) for k in range(4)}
    anns = [
        {"id": 0, "image_id": 1, "is_left": 0, "vertices": verts[0].tolist()},
        {"id": 1, "image_id": 2, "is_left": 0, "vertices": verts[1].tolist()},
        {"id": 2, "image_id": 2, "is_left": 1, "vertices": verts[2].tolist()},
        {"id": 3, "image_id": 3, "is_left": 0, "vertices": verts[3].tolist()},  # vidB: frames not on disk
    ]
    root.mkdir()
    (root / "youtube_train.json").write_text(json.dumps({"images": images, "annotations": anns}))
    for n in list(names.values())[:2]:
        _image(root / n)
    return root, verts


def test_yt3d_rows_regressor_and_unavailable_videos(yt, caplog):
    root, verts = yt
    with caplog.at_level(logging.WARNING):
        t = yt3d.load_yt3d(root, "train")
    assert "vidB" in caplog.text
    assert len(t) == 2 and t.joints3d is None and t.verts is None and t.joints2d is None
    assert list(t.frame) == [10, 11] and (t.seq == yt3d.video_ids(root).index("vidA")).all()
    np.testing.assert_array_equal(t.K[0], np.eye(3))
    assert yt3d.unavailable_videos(root) == ["vidB"]
    vids = {v["video"]: v for v in yt3d.list_videos(root)}
    assert vids["vidA"]["available"] and vids["vidA"]["annotations"] == 3 and not vids["vidB"]["available"]

    mano16 = np.zeros((16, 778))
    mano16[np.arange(16), np.arange(16) * 10] = 1.0
    t = yt3d.load_yt3d(root, "train", joint_regressor=mano16, keep_vertices=True)
    v = verts[1]  # frame 10 comes first
    np.testing.assert_allclose(t.joints2d[0, OPENPOSE_NAMES.index("thumb4")], v[744, :2], atol=1e-4)
    np.testing.assert_allclose(t.joints2d[0, OPENPOSE_NAMES.index("ring4")], v[555, :2], atol=1e-4)
    np.testing.assert_allclose(t.joints2d[0, OPENPOSE_NAMES.index("index1")], v[10, :2], atol=1e-4)  # MANO 1
    np.testing.assert_allclose(t.joints2d[0, OPENPOSE_NAMES.index("thumb1")], v[130, :2], atol=1e-4)  # MANO 13
    assert t.verts.shape == (2, 778, 3)
    assert len(yt3d.load_yt3d(root, "train", include_left=True)) == 3
    with pytest.raises(FileNotFoundError, match="vidB"):
        yt3d.load_yt3d(root, "train", missing="error")
    with pytest.raises(FileNotFoundError, match="youtube_val.json"):
        yt3d.load_yt3d(root, "val")


# ------------------------------------------------------------------------------ safe_extract


def _zip(path: Path, entries: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _tar(path: Path, entries: list[tuple[str, bytes]], special: tarfile.TarInfo | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if special is not None:
            tf.addfile(special)
    return path


def _link(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


GOOD = [("top/a.txt", b"a"), ("top/sub/b.txt", b"b")]


@pytest.mark.parametrize("make", [
    lambda p: _zip(p / "x.zip", GOOD + [("../evil.txt", b"x")]),
    lambda p: _zip(p / "x.zip", GOOD + [("/tmp/abs_evil.txt", b"x")]),
    lambda p: _zip(p / "x.zip", GOOD + [("top/../../evil.txt", b"x")]),
    lambda p: _zip(p / "x.zip", GOOD, symlink="top/link"),
    lambda p: _tar(p / "x.tar.gz", GOOD + [("../evil.txt", b"x")]),
    lambda p: _tar(p / "x.tar.gz", GOOD + [("/tmp/abs_evil.txt", b"x")]),
    lambda p: _tar(p / "x.tar.gz", GOOD, special=_link("top/link", tarfile.SYMTYPE)),
    lambda p: _tar(p / "x.tar.gz", GOOD, special=_link("top/hard", tarfile.LNKTYPE)),
    lambda p: _tar(p / "x.tar.gz", GOOD, special=_link("top/dev", tarfile.CHRTYPE)),
], ids=["zip-dotdot", "zip-abs", "zip-inner-dotdot", "zip-symlink", "tar-dotdot", "tar-abs", "tar-symlink",
        "tar-hardlink", "tar-device"])
def test_safe_extract_refuses(tmp_path, make):
    archive = make(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExtractError, match="refusing"):
        safe_extract(archive, out / "dest")
    _no_leftovers(out, "dest")
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/abs_evil.txt").exists()


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_safe_extract_refuses_archive_bombs(tmp_path, kind):
    """Declared sizes are checked against the limits before anything is written."""
    make = _zip if kind == "zip" else _tar
    bomb = make(tmp_path / f"bomb.{kind}", [("top/zeros.bin", bytes(2_000_000))])  # ~2 kB packed
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExtractError, match="extract_max_ratio"):
        safe_extract(bomb, out / "dest", max_ratio=100)
    with pytest.raises(ExtractError, match="extract_max_gb"):
        safe_extract(bomb, out / "dest", max_bytes=1_000_000, max_ratio=1e9)
    _no_leftovers(out, "dest")
    assert safe_extract(bomb, out / "dest", max_ratio=1e9) == out / "dest"  # within the limits it unpacks


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_safe_extract_good_and_idempotent(tmp_path, kind):
    archive = _zip(tmp_path / "x.zip", GOOD) if kind == "zip" else _tar(tmp_path / "x.tar.gz", GOOD)
    dest = safe_extract(archive, tmp_path / "out" / "dest")
    assert (dest / "top" / "sub" / "b.txt").read_bytes() == b"b" and (dest / download.MARKER).is_file()
    (dest / "top" / "a.txt").write_bytes(b"changed")
    archive.unlink()  # the marker is enough: nothing is read again
    assert safe_extract(archive, dest) == dest and (dest / "top" / "a.txt").read_bytes() == b"changed"


def test_safe_extract_no_partial_output_on_corrupt_member(tmp_path):
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"A" * 100)
        zf.writestr("b.txt", b"B" * 100)
    data = archive.read_bytes()
    archive.write_bytes(data.replace(b"B" * 100, b"C" * 100))  # b.txt now fails its CRC
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(zipfile.BadZipFile):
        safe_extract(archive, out / "dest")
    _no_leftovers(out, "dest")


# ------------------------------------------------------------------------------------- fetch


def _source(tmp_path, **kw) -> Source:
    base = dict(dataset="demo", file="demo.zip", url=None, sha256=None, required=True, extract_to="demo",
                gated=False, homepage="https://example.org/demo", licence="research only")
    base.update(kw)
    return Source(**base)


def test_fetch_missing_says_where(tmp_path):
    raw = tmp_path / "data"
    with pytest.raises(FetchError) as err:
        fetch(_source(tmp_path, gated=True), raw)
    msg = str(err.value)
    assert str(raw / "demo" / "demo.zip") in msg and "licence-gated" in msg and "https://example.org/demo" in msg
    with pytest.raises(FetchError, match="no public download URL"):
        fetch(_source(tmp_path), raw)
    with pytest.raises(FetchError, match=r"downloading .* failed"):
        fetch(_source(tmp_path, url=(tmp_path / "nowhere.zip").as_uri()), raw)
    assert not (raw / "demo" / "demo.zip").exists()
    assert not [p for p in (raw / "demo").iterdir()]  # no half-downloaded file left


def test_fetch_verifies_checksums(tmp_path, caplog):
    raw = tmp_path / "data"
    path = raw / "demo" / "demo.zip"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"payload")
    digest = sha256sum(path)
    assert fetch(_source(tmp_path, sha256=digest), raw) == path
    with pytest.raises(ChecksumError, match="mismatch"):
        fetch(_source(tmp_path, sha256="0" * 64), raw)
    with caplog.at_level(logging.WARNING):
        fetch(_source(tmp_path), raw)
    assert "SKIPPED" in caplog.text and digest in caplog.text


def test_fetch_downloads_public_file_and_checks_it(tmp_path):
    served = tmp_path / "served.zip"
    served.write_bytes(b"remote bytes")
    raw = tmp_path / "data"
    good = _source(tmp_path, url=served.as_uri(), sha256=sha256sum(served))
    assert fetch(good, raw).read_bytes() == b"remote bytes"
    raw2 = tmp_path / "data2"
    with pytest.raises(ChecksumError):
        fetch(_source(tmp_path, url=served.as_uri(), sha256="1" * 64), raw2)
    assert not (raw2 / "demo" / "demo.zip").exists()


def test_manifest_is_consistent():
    m = download.load_manifest()
    assert set(m) == {"freihand", "ho3d", "stb", "yt3d"}
    fh = m["freihand"].files[0]
    assert fh.file == "FreiHAND_pub_v2.zip" and fh.url and not fh.gated
    assert m["ho3d"].gated and m["yt3d"].gated and m["ho3d"].need == "any"
    assert all(f.url is None for f in m["ho3d"].files + m["yt3d"].files)


# ------------------------------------------------------------------------------ prepare_real


def _zip_tree(folder: Path, archive: Path, prefix: str = "") -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())


def test_prepare_real_freihand_end_to_end(fh, tmp_path):
    raw = tmp_path / "data"
    _zip_tree(fh["root"], raw / "freihand" / "FreiHAND_pub_v2.zip")  # files at the top, as released
    _zip_tree(fh["eval_root"], raw / "freihand" / "FreiHAND_pub_v2_eval.zip", prefix="FreiHAND_pub_v2_eval/")
    out = tmp_path / "outputs" / "dataset"
    meta = prepare.prepare_real("freihand", raw, out, val_fraction=0.34)
    assert meta["splits"] == {"train": 8, "val": 1, "test": N_FH_EVAL} == load_meta(out)["splits"]
    assert (tmp_path / "outputs" / "extracted" / "freihand" / "FreiHAND_pub_v2" / download.MARKER).is_file()
    for split in ("train", "val", "test"):
        t = load_split(out, split)
        assert all((out / p).is_file() for p in t.image), t.image[:2]
        assert not Path(t.image[0]).is_absolute()
    assert load_split(out, "train").verts is None and load_split(out, "val").verts is not None
    np.testing.assert_allclose(load_split(out, "test").joints3d, fh["exyz"], atol=1e-6)
    # again, with the archives gone: the finished extraction is reused
    for a in (raw / "freihand").glob("*.zip"):
        a.unlink()
    assert prepare.prepare_real("freihand", raw, out, val_fraction=0.34)["splits"] == meta["splits"]


def test_prepare_real_reports_missing_and_uses_hand_unpacked(stb_root, tmp_path):
    raw = tmp_path / "data"
    with pytest.raises(FetchError, match=r"stb/STB\.zip"):
        prepare.prepare_real("stb", raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(FetchError, match="none of its files"):
        prepare.prepare_real("ho3d", raw, tmp_path / "out")
    (raw / "stb").mkdir(parents=True)
    stb_root[0].rename(raw / "stb" / "STB")  # unpacked by hand, no archive
    meta = prepare.prepare_real("stb", raw, tmp_path / "out", wrist="palm")
    assert meta["splits"] == {"train": 10 * N_STB, "test": 2 * N_STB} and meta["hand_side"] == "left"
    t = load_split(tmp_path / "out", "test")
    assert (tmp_path / "out" / t.image[0]).is_file()
    with pytest.raises(TypeError, match="unknown options"):
        prepare.prepare_real("stb", raw, tmp_path / "out", versions=("gs",))
