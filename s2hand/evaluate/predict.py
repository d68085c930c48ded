"""`s2hand predict`: 3D hand joints and meshes for a folder of images or a video file.

    s2hand predict clips/hand.mp4 --out preds/hand                    # S2HAND (finetune checkpoint)
    s2hand predict frames/ --out preds/f --checkpoint outputs/checkpoints/finetune_video/model.pt \
        --format ho3d --fx 600                                        # HO-3D order and OpenGL frame
    s2hand predict frames/ --out preds/f --K K.json --no-obj          # K.json: [[fx,0,cx],[0,fy,cy],[0,0,1]]

Writes into --out (replaced as a whole, atomically; see check_out for which folders it refuses):
    .s2hand-predict  the marker: this folder is an output of `s2hand predict`, safe to replace
    pred.json     [xyz N x 21 x 3, verts N x V x 3], metres, the online-evaluation submission layout
                  (FreiHAND: OpenPose order, OpenCV camera; --format ho3d: HO-3D order, OpenGL camera)
    frames.json   the frame names, the K used (pixels of the input image), the crop, and the projected
                  joints in input-image pixels (N x 21 x 2)
    meshes/*.obj  one mesh per frame (trimesh), camera coordinates, metres (unless --no-obj)
    overlay.mp4   (video input) each frame's crop | projected skeleton and mesh overlay
    overlay.png   (image input) a grid of overlays of the first --strip-frames frames

Each frame is centre-cropped to a square (its shorter side) and resized to the network's input
size (the checkpoint's train.input_size) exactly as training resizes frames
(s2hand.model.frames.frame_affine / warp_image), and K follows the crop and the resize.

Camera. The network sees only pixels: its 3D output (pose, shape, the hand's place in camera
space) does not depend on K. K matters for the 2D overlay and for reading the 3D translation
metrically: the network learnt depth under the training data's cameras, so K should match them in
field of view. Give --K (3 x 3 JSON, pixels of the input image) or --fx (focal in pixels, principal
point at the image centre). The default focal is DEFAULT_FOCAL_RATIO x the crop side: the embedded
synthetic data's cameras (fx about 296 px on 128 px frames, a 25 degree field of view); FreiHAND's
are similar (about 2 x the side).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from s2hand.cli import Command, CommandError
from s2hand.data.images import ImageError, read_rgb

DEFAULT_CHECKPOINT = "outputs/checkpoints/finetune/model.pt"
DEFAULT_HAND_MODEL = "outputs/hand_model/MANO_RIGHT.npz"
DEFAULT_FOCAL_RATIO = 2.3  # focal length / crop side (module docstring)
OUT_MARKER = ".s2hand-predict"  # in every --out folder this command writes: that folder may be replaced
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
PANEL = 256  # px of each overlay panel


# ---- input -------------------------------------------------------------------------------------

def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CommandError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


class FrameSource:
    """Frames of a folder of images, a single image or a video file, in order: (name, RGB)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fps: float | None = None
        if not self.path.exists():
            raise CommandError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.files, self.is_video = list_images(self.path), False
        elif self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.files, self.is_video = [self.path], False
        else:
            cap = cv2.VideoCapture(str(self.path))
            ok = cap.isOpened()
            self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if ok else 0
            self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or None if ok else None
            cap.release()
            if not ok:
                raise CommandError(f"{self.path}: not a readable video (or an image type other than {IMAGE_SUFFIXES})")
            self.files, self.is_video = [], True

    def __len__(self) -> int:
        return self.count if self.is_video else len(self.files)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        if not self.is_video:
            for f in self.files:
                try:  # the checked reader every stage shares: never a silently grey-filled frame
                    image = read_rgb(f)
                except ImageError as e:
                    raise CommandError(f"{f}: not a readable image ({e.failure.reason})") from None
                yield f.stem, image
            return
        cap = cv2.VideoCapture(str(self.path))
        i = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                yield f"frame_{i:06d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()
        if i == 0:
            raise CommandError(f"{self.path}: the video has no readable frame")


def intrinsics(height: int, width: int, fx: float | None = None, K_file: str | Path | None = None) -> np.ndarray:
    """K (3, 3) in pixels of a (height, width) image: from K_file (a 3 x 3 JSON list, or {"K": ...}),
    else focal fx (default DEFAULT_FOCAL_RATIO x the shorter side) at the image centre."""
    if K_file is not None:
        try:
            raw = json.loads(Path(K_file).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CommandError(f"--K {K_file}: cannot read a JSON 3 x 3 matrix ({e})") from None
        K = np.asarray(raw["K"] if isinstance(raw, dict) and "K" in raw else raw, dtype=object)
        try:
            K = K.astype(np.float64)
        except (TypeError, ValueError):
            raise CommandError(f"--K {K_file}: not a numeric 3 x 3 matrix") from None
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CommandError(f"--K {K_file}: need [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0, got shape {K.shape}")
        return K
    f = DEFAULT_FOCAL_RATIO * min(height, width) if fx is None else float(fx)
    if not f > 0:
        raise CommandError(f"--fx must be > 0, got {fx}")
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def prepare(image: np.ndarray, K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Centre square crop + resize to `size` as training does -> image (size, size, 3) uint8,
    K of it (3, 3), crop (x0, y0, side) in input-image pixels."""
    from s2hand.model.frames import frame_affine, warp_image

    h, w = image.shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    crop = image[y0:y0 + side, x0:x0 + side]
    Kc = np.asarray(K, np.float64).copy()
    Kc[0, 2] -= x0
    Kc[1, 2] -= y0
    M, K_out = frame_affine(Kc, side, size)
    return np.ascontiguousarray(warp_image(crop, M, size)), K_out, (float(x0), float(y0), float(side))


# ---- run ---------------------------------------------------------------------------------------

def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a folder of images, one image, or a video file (anything OpenCV reads)")
    p.add_argument("--out", required=True, help="output folder (replaced as a whole if a previous output of this "
                                                 "command or empty; anything else is refused unless --force)")
    p.add_argument("--force", action="store_true",
                   help="replace --out even when it is a non-empty folder that this command did not write")
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help=f"model file (default {DEFAULT_CHECKPOINT})")
    p.add_argument("--hand-model", default=DEFAULT_HAND_MODEL, help=f"hand model npz (default {DEFAULT_HAND_MODEL})")
    p.add_argument("--params", help="params.yaml for evaluate.batch_size, evaluate.device and video.camera "
                                    "(default: ./params.yaml if present, else the schema defaults)")
    p.add_argument("--format", choices=("freihand", "ho3d"), default="freihand",
                   help="pred.json layout: freihand (OpenPose order, OpenCV frame) or ho3d (its order, OpenGL frame)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--fx", type=float, help="focal length in pixels of the input images (principal point: centre)")
    cam.add_argument("--K", dest="K_file", help="JSON 3 x 3 intrinsics in pixels of the input images")
    p.add_argument("--no-obj", action="store_true", help="do not write meshes/*.obj")
    p.add_argument("--strip-frames", type=int, default=32, help="frames in overlay.png for image input (0: none)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")


def check_out(out: Path, source: Path, force: bool) -> None:
    """Refuse an --out whose replacement would delete what this command did not write: the input,
    a folder that holds the input or the working directory, a file, or a non-empty folder without
    OUT_MARKER (unless `force`)."""
    o, src, cwd = out.resolve(), source.resolve(), Path.cwd().resolve()
    if o == src or o in src.parents:
        raise CommandError(f"--out {out}: it is or contains the input {source}; choose another folder")
    if o == cwd or o in cwd.parents:
        raise CommandError(f"--out {out}: it is or contains the working directory; choose a new folder")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise CommandError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not force and not (out / OUT_MARKER).is_file() and any(out.iterdir()):
        raise CommandError(f"--out {out}: a non-empty folder that `s2hand predict` did not write (no {OUT_MARKER}); "
                           "choose a new folder, or pass --force to replace it and everything in it")


def _load_params(path: str | None):
    from s2hand.config import Params, ParamsError, load_params

    try:
        if path is not None:
            return load_params(path)
        return load_params("params.yaml") if Path("params.yaml").is_file() else Params()
    except ParamsError as e:
        raise CommandError(str(e).replace("\n", "; ")) from None


def predict_frames(args: argparse.Namespace) -> dict:
    """Run the network over the input; write the outputs (module docstring). -> a summary dict."""
    import torch
    import trimesh
    from tqdm import tqdm

    from s2hand.io import atomic_dir, write_json
    from s2hand.metrics.submission import write_submission
    from s2hand.model.device import pick_device
    from s2hand.model.files import CheckpointError, load_system
    from s2hand.render.skeleton import draw_skeleton

    from .figures import overlay_panel, png_bytes

    params = _load_params(args.params)
    source = FrameSource(args.input)
    check_out(Path(args.out), source.path, args.force)
    if args.max_frames < 0 or args.strip_frames < 0:
        raise CommandError("--max-frames and --strip-frames must be >= 0")
    device = pick_device(params.evaluate.device)
    try:
        from s2hand.model.files import read_checkpoint

        stage = str(read_checkpoint(args.checkpoint).get("stage", ""))
        ortho = stage == "finetune_video" and params.video.camera == "orthographic"
        system, info = load_system(args.checkpoint, args.hand_model, orthographic=ortho, device=device)
    except (CheckpointError, FileNotFoundError) as e:
        raise CommandError(str(e)) from None
    S, bs = info["input_size"], params.evaluate.batch_size
    faces = system.layer.faces.cpu().numpy()
    total = len(source) if not args.max_frames else min(len(source), args.max_frames) if len(source) else args.max_frames

    names: list[str] = []
    joints, verts, j2d = [], [], []
    crops: list[tuple[float, float, float]] = []
    K_first: np.ndarray | None = None
    overlays: list[np.ndarray] = []
    writer = None
    pending: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, tuple]] = []

    with atomic_dir(args.out) as tmp:
        (tmp / OUT_MARKER).write_text("an output folder of `s2hand predict`: the next run into it replaces it\n")
        if not args.no_obj:
            (tmp / "meshes").mkdir()

        def flush() -> None:
            nonlocal writer
            if not pending:
                return
            images = torch.stack([torch.from_numpy(p[2]).permute(2, 0, 1).float() / 255.0 for p in pending]).to(device)
            Ks = torch.as_tensor(np.stack([p[3] for p in pending]), dtype=torch.float32, device=device)
            _, pred = system.predict(images, Ks)
            for b, (name, _, small, K_in, crop) in enumerate(pending):
                v = pred.verts[b].float().cpu().numpy().astype(np.float64)
                jp = pred.j_pro[b].float().cpu().numpy().astype(np.float64)  # (21, 2) input px of the crop
                names.append(name)
                joints.append(pred.joints[b].float().cpu().numpy().astype(np.float64))
                verts.append(v)
                crops.append(crop)
                x0, y0, side = crop
                j2d.append(jp * (side / S) + np.array([x0, y0]))
                if not args.no_obj:
                    trimesh.Trimesh(v, faces, process=False).export(tmp / "meshes" / f"{name}.obj")
                need_panel = source.is_video or len(overlays) < args.strip_frames
                if need_panel:
                    r = PANEL / S
                    img = cv2.resize(small, (PANEL, PANEL), interpolation=cv2.INTER_LINEAR)
                    Kp = K_in * np.array([[r], [r], [1.0]])
                    panel = draw_skeleton(overlay_panel(img, v, faces, Kp, None, system.orthographic), jp * r)
                    if source.is_video:
                        frame = np.concatenate([img, panel], axis=1)
                        if writer is None:
                            writer = cv2.VideoWriter(str(tmp / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                                     source.fps or 30.0, (frame.shape[1], frame.shape[0]))
                        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    else:
                        overlays.append(panel)
            pending.clear()

        with tqdm(total=total or None, desc="predict", unit="frame", disable=None) as bar:
            for name, image in source:
                if args.max_frames and len(names) + len(pending) >= args.max_frames:
                    break
                h, w = image.shape[:2]
                K = intrinsics(h, w, args.fx, args.K_file)
                if K_first is None:
                    K_first = K
                small, K_in, crop = prepare(image, K, S)
                pending.append((name, image, small, K_in, crop))
                if len(pending) >= bs:
                    flush()
                bar.update(1)
            flush()
        if writer is not None:
            writer.release()
        if not names:
            raise CommandError(f"{args.input}: no frame to predict")
        write_submission(tmp / "pred.json", np.stack(joints), np.stack(verts), fmt=args.format)
        if overlays:
            cols = min(8, len(overlays))
            blank = np.full_like(overlays[0], 255)
            grid = overlays + [blank] * (-len(overlays) % cols)
            rows = [np.concatenate(grid[i:i + cols], axis=1) for i in range(0, len(grid), cols)]
            (tmp / "overlay.png").write_bytes(png_bytes(np.concatenate(rows, axis=0)))
        write_json(tmp / "frames.json", {
            "source": str(args.input), "checkpoint": str(args.checkpoint), "stage": info["stage"],
            "format": args.format, "input_size": S, "orthographic": bool(ortho), "fps": source.fps,
            "K": K_first.tolist(), "frames": names, "crop_x0_y0_side": [list(c) for c in crops],
            "joints2d_px": np.round(np.stack(j2d), 3).tolist(),
        })
        for f in (tmp, *tmp.rglob("*")):  # mkdtemp / mkstemp make them private
            f.chmod(0o755 if f.is_dir() else 0o644)
    return {"frames": len(names), "out": str(args.out)}


def _run(args: argparse.Namespace) -> int:
    summary = predict_frames(args)
    print(f"{summary['frames']} frames -> {summary['out']} (pred.json, frames.json"
          f"{'' if args.no_obj else ', meshes/'}, overlay)")
    return 0


PREDICT = Command(help="3D joints and meshes for a folder of images or a video (pred.json, OBJ, overlay)",
                  add_arguments=_arguments, run=_run)
