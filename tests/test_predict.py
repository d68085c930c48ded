"""`s2hand predict` on a few generated images and a tiny video, with an untrained network: the
submission file (FreiHAND and HO-3D layouts), OBJ meshes, overlays, intrinsics through the crop,
and the error paths.
    .venv/bin/python -m pytest -q tests/test_predict.py
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from s2hand import cli
from s2hand.evaluate.predict import DEFAULT_FOCAL_RATIO, intrinsics, prepare
from s2hand.metrics.submission import read_submission
from s2hand.render.painter import project_np
from tests.test_evaluate import tiny_checkpoint


@pytest.fixture(scope="module")
def setup(npz_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ck = tiny_checkpoint(root / "model.pt", npz_path)
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir()
    for i in range(3):  # non-square, to exercise the centre crop
        cv2.imwrite(str(images / f"img{i}.png"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    (images / "notes.txt").write_text("not an image, ignored")
    video = root / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 48))
    for i in range(4):
        w.write(np.full((48, 48, 3), 40 * i, np.uint8))
    w.release()
    return {"root": root, "ck": ck, "hand": npz_path, "images": images, "video": video}


def _predict(setup, src, out, *extra: str) -> int:
    return cli.main(["predict", str(src), "--out", str(out), "--checkpoint", str(setup["ck"]),
                     "--hand-model", str(setup["hand"]), *extra])


def test_predict_images(setup, tmp_path):
    out = tmp_path / "out"
    assert _predict(setup, setup["images"], out, "--fx", "150") == 0
    xyz, verts = read_submission(out / "pred.json", expect_n=3)
    assert xyz.shape == (3, 21, 3) and verts.shape[0] == 3 and np.isfinite(verts).all()
    frames = json.loads((out / "frames.json").read_text())
    assert frames["frames"] == ["img0", "img1", "img2"] and frames["input_size"] == 64
    assert np.allclose(frames["K"], [[150, 0, 40], [0, 150, 30], [0, 0, 1]])
    assert frames["crop_x0_y0_side"][0] == [10.0, 0.0, 60.0]
    # the reported 2D joints are the 3D joints projected with K in the original image
    j2d = np.asarray(frames["joints2d_px"])
    np.testing.assert_allclose(j2d[1], project_np(xyz[1], np.asarray(frames["K"])), atol=2e-3)
    mesh = trimesh.load(out / "meshes" / "img2.obj", process=False)
    np.testing.assert_allclose(mesh.vertices, verts[2], atol=1e-5)
    assert cv2.imread(str(out / "overlay.png")).shape[1] == 3 * 256
    # the HO-3D layout is the same prediction in HO-3D's order and OpenGL frame
    out2 = tmp_path / "ho3d"
    assert _predict(setup, setup["images"], out2, "--fx", "150", "--format", "ho3d", "--no-obj") == 0
    hx, hv = read_submission(out2 / "pred.json", fmt="ho3d")
    np.testing.assert_allclose(hx, xyz, atol=1e-6)
    np.testing.assert_allclose(hv, verts, atol=1e-6)
    assert not (out2 / "meshes").exists()


def test_predict_video(setup, tmp_path):
    out = tmp_path / "vid"
    assert _predict(setup, setup["video"], out, "--max-frames", "3") == 0
    xyz, _ = read_submission(out / "pred.json")
    assert len(xyz) == 3
    frames = json.loads((out / "frames.json").read_text())
    assert frames["frames"] == ["frame_000000", "frame_000001", "frame_000002"]
    assert frames["K"][0][0] == pytest.approx(DEFAULT_FOCAL_RATIO * 48)
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3


def test_prepare_keeps_projection_consistent():
    """A 3D point projected with the input K, then cropped and resized, lands where K_out puts it."""
    K = intrinsics(60, 100, fx=120.0)
    _, K_out, (x0, y0, side) = prepare(np.zeros((60, 100, 3), np.uint8), K, 64)
    p = np.array([[0.03, -0.02, 0.5], [-0.01, 0.04, 0.7]])
    uv = project_np(p, K)
    np.testing.assert_allclose((uv - [x0, y0]) * 64 / side, project_np(p, K_out), atol=1e-9)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or folder"),
    ("empty", "no images"),
    ("bad_K", "need \\[\\[fx,0,cx\\]"),
    ("bad_checkpoint", "not a torch checkpoint"),
    ("not_video", "not a readable video"),
    ("truncated", "truncated JPEG"),
])
def test_predict_errors(setup, tmp_path, capsys, case, message):
    src, extra = setup["images"], []
    if case == "missing":
        src = tmp_path / "nothing"
    elif case == "empty":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "bad_K":
        (tmp_path / "K.json").write_text(json.dumps([[1, 0], [0, 1]]))
        extra = ["--K", str(tmp_path / "K.json")]
    elif case == "bad_checkpoint":
        (tmp_path / "x.pt").write_bytes(b"junk")
        extra = ["--checkpoint", str(tmp_path / "x.pt")]
    elif case == "truncated":
        src = tmp_path / "frames"
        src.mkdir()
        ok, jpg = cv2.imencode(".jpg", np.full((48, 48, 3), 128, np.uint8))
        (src / "a.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    elif case == "not_video":
        src = tmp_path / "clip.mp4"
        src.write_bytes(b"junk")
    out = tmp_path / "out"
    args = ["predict", str(src), "--out", str(out), "--hand-model", str(setup["hand"])]
    args += extra if "--checkpoint" in extra else ["--checkpoint", str(setup["ck"]), *extra]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("s2hand predict: error:"), err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_predict_never_deletes_what_it_did_not_write(setup, tmp_path, capsys, monkeypatch):
    """--out is replaced only when empty or a previous output (its marker); the input, a folder that
    holds it, the working directory and foreign folders are refused and left as they were."""
    images = tmp_path / "x" / "imgs"
    images.mkdir(parents=True)
    for f in setup["images"].iterdir():
        (images / f.name).write_bytes(f.read_bytes())
    foreign = tmp_path / "x" / "out"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "notes.txt").write_text("mine")
    before = {p: _listing(p) for p in (tmp_path, images)}
    monkeypatch.chdir(tmp_path / "cwd")
    for out, message in [(foreign, "did not write"), (images, "contains the input"),
                         (images.parent, "contains the input"), (Path("."), "working directory"),
                         (images / "img0.png", "not a folder")]:
        assert _predict(setup, images, out) == 1, out
        err = capsys.readouterr().err
        assert err.startswith("s2hand predict: error:") and message in err, err
        assert {p: _listing(p) for p in (tmp_path, images)} == before  # nothing deleted, no tmp folder left
    # its own output is replaced on the next run; --force replaces a foreign folder
    assert _predict(setup, images, tmp_path / "new", "--no-obj") == 0
    assert (tmp_path / "new" / ".s2hand-predict").is_file()
    assert _predict(setup, images, tmp_path / "new", "--no-obj") == 0
    assert _predict(setup, images, foreign, "--no-obj", "--force") == 0
    assert not (foreign / "thesis.tex").exists() and (foreign / "pred.json").is_file()
