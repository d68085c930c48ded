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
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from s2hand.cli import Command, CommandError
from s2hand.data.images import ImageError, read_rgb

if TYPE_CHECKING:
    import torch

    from s2hand.config import Params

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
    from s2hand.io import atomic_dir

    params = _load_params(args.params)
    source = FrameSource(args.input)
    check_out(Path(args.out), source.path, args.force)
    if args.max_frames < 0 or args.strip_frames < 0:
        raise CommandError("--max-frames and --strip-frames must be >= 0")
    system, info, ortho, device = _load_model(args, params)
    with atomic_dir(args.out) as tmp:
        (tmp / OUT_MARKER).write_text("an output folder of `s2hand predict`: the next run into it replaces it\n")
        if not args.no_obj:
            (tmp / "meshes").mkdir()
        outputs = _Outputs(args, system, info["input_size"], device, tmp, source)
        K_first = _predict_source(args, source, outputs, params.evaluate.batch_size)
        outputs.close()
        if not outputs.names:
            raise CommandError(f"{args.input}: no frame to predict")
        _write_results(args, tmp, outputs, info, ortho, source, K_first)
        for f in (tmp, *tmp.rglob("*")):  # mkdtemp / mkstemp make them private
            f.chmod(0o755 if f.is_dir() else 0o644)
    return {"frames": len(outputs.names), "out": str(args.out)}


def _load_model(args: argparse.Namespace, params: Params) -> tuple[torch.nn.Module, dict, bool, torch.device]:
    """(system, its info, orthographic, device): the --checkpoint's network on evaluate.device,
    with the orthographic camera for a finetune_video model under video.camera orthographic."""
    from s2hand.model.device import pick_device
    from s2hand.model.files import CheckpointError, load_system, read_checkpoint

    device = pick_device(params.evaluate.device)
    try:
        stage = str(read_checkpoint(args.checkpoint).get("stage", ""))
        ortho = stage == "finetune_video" and params.video.camera == "orthographic"
        system, info = load_system(args.checkpoint, args.hand_model, orthographic=ortho, device=device)
    except (CheckpointError, FileNotFoundError) as e:
        raise CommandError(str(e)) from None
    return system, info, ortho, device


class _Frame(NamedTuple):
    """A frame prepared for the network (prepare)."""
    name: str
    small: np.ndarray  # (S, S, 3) uint8 RGB, the resized centre crop
    K: np.ndarray  # (3, 3) of `small`
    crop: tuple[float, float, float]  # x0, y0, side in input-image pixels


def _predict_source(args: argparse.Namespace, source: FrameSource, outputs: "_Outputs", batch_size: int
                    ) -> np.ndarray | None:
    """Read, prepare and predict the source's frames (at most --max-frames) in batches of
    `batch_size`. -> the K of the first frame (input-image pixels)"""
    from tqdm import tqdm

    n = len(source)
    total = n if not args.max_frames else min(n, args.max_frames) if n else args.max_frames
    pending: list[_Frame] = []
    K_first: np.ndarray | None = None
    with tqdm(total=total or None, desc="predict", unit="frame", disable=None) as bar:
        for name, image in source:
            if args.max_frames and len(outputs.names) + len(pending) >= args.max_frames:
                break
            h, w = image.shape[:2]
            K = intrinsics(h, w, args.fx, args.K_file)
            if K_first is None:
                K_first = K
            pending.append(_Frame(name, *prepare(image, K, outputs.input_size)))
            if len(pending) >= batch_size:
                outputs.add(pending)
                pending = []
            bar.update(1)
        outputs.add(pending)
    return K_first


class _Outputs:
    """What predict_frames writes, frame by frame: the meshes, the overlays (video: overlay.mp4 as
    it goes; images: the panels of overlay.png), and the predictions it collects for the files."""

    def __init__(self, args: argparse.Namespace, system: torch.nn.Module, input_size: int, device: torch.device,
                 tmp: Path, source: FrameSource):
        self.args, self.system, self.input_size, self.device, self.tmp = args, system, int(input_size), device, tmp
        self.is_video, self.fps = source.is_video, source.fps
        self.faces = system.layer.faces.cpu().numpy()
        self.names: list[str] = []
        self.joints: list[np.ndarray] = []  # (21, 3) per frame, camera space, m
        self.verts: list[np.ndarray] = []  # (V, 3) per frame
        self.j2d: list[np.ndarray] = []  # (21, 2) per frame, input-image px
        self.crops: list[tuple[float, float, float]] = []
        self.overlays: list[np.ndarray] = []  # image input: (PANEL, PANEL, 3) panels for overlay.png
        self.writer = None  # video input: overlay.mp4

    def add(self, frames: list[_Frame]) -> None:
        """Predict a batch of frames (none: nothing to do) and write / collect their outputs."""
        import torch

        if not frames:
            return
        images = torch.stack([torch.from_numpy(f.small).permute(2, 0, 1).float() / 255.0 for f in frames])
        images = images.to(self.device)  # (B, 3, S, S)
        Ks = torch.as_tensor(np.stack([f.K for f in frames]), dtype=torch.float32, device=self.device)
        _, pred = self.system.predict(images, Ks)
        for b, frame in enumerate(frames):
            v = pred.verts[b].float().cpu().numpy().astype(np.float64)
            jp = pred.j_pro[b].float().cpu().numpy().astype(np.float64)  # (21, 2) input px of the crop
            self._collect(frame, pred.joints[b].float().cpu().numpy().astype(np.float64), v, jp)

    def _collect(self, frame: _Frame, joints: np.ndarray, v: np.ndarray, jp: np.ndarray) -> None:
        """One frame's prediction: joints (21, 3), verts v (V, 3), projected joints jp (21, 2) in crop px."""
        import trimesh

        self.names.append(frame.name)
        self.joints.append(joints)
        self.verts.append(v)
        self.crops.append(frame.crop)
        x0, y0, side = frame.crop
        self.j2d.append(jp * (side / self.input_size) + np.array([x0, y0]))
        if not self.args.no_obj:
            trimesh.Trimesh(v, self.faces, process=False).export(self.tmp / "meshes" / f"{frame.name}.obj")
        if self.is_video or len(self.overlays) < self.args.strip_frames:
            self._overlay(frame, v, jp)

    def _overlay(self, frame: _Frame, v: np.ndarray, jp: np.ndarray) -> None:
        """The frame's overlay panel (mesh and skeleton on the crop): a frame of overlay.mp4 beside
        the crop, or a panel of overlay.png."""
        from s2hand.render.skeleton import draw_skeleton

        from .figures import overlay_panel

        r = PANEL / self.input_size
        img = cv2.resize(frame.small, (PANEL, PANEL), interpolation=cv2.INTER_LINEAR)
        Kp = frame.K * np.array([[r], [r], [1.0]])
        panel = draw_skeleton(overlay_panel(img, v, self.faces, Kp, None, self.system.orthographic), jp * r)
        if not self.is_video:
            self.overlays.append(panel)
            return
        both = np.concatenate([img, panel], axis=1)
        if self.writer is None:
            self.writer = cv2.VideoWriter(str(self.tmp / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                          self.fps or 30.0, (both.shape[1], both.shape[0]))
        self.writer.write(cv2.cvtColor(both, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        """Finish overlay.mp4."""
        if self.writer is not None:
            self.writer.release()


def _write_results(args: argparse.Namespace, tmp: Path, outputs: _Outputs, info: dict, ortho: bool,
                   source: FrameSource, K_first: np.ndarray) -> None:
    """pred.json, overlay.png (image input) and frames.json (module docstring)."""
    from s2hand.io import write_json
    from s2hand.metrics.submission import write_submission

    from .figures import png_bytes

    write_submission(tmp / "pred.json", np.stack(outputs.joints), np.stack(outputs.verts), fmt=args.format)
    if outputs.overlays:
        cols = min(8, len(outputs.overlays))
        blank = np.full_like(outputs.overlays[0], 255)
        grid = outputs.overlays + [blank] * (-len(outputs.overlays) % cols)
        rows = [np.concatenate(grid[i:i + cols], axis=1) for i in range(0, len(grid), cols)]
        (tmp / "overlay.png").write_bytes(png_bytes(np.concatenate(rows, axis=0)))
    write_json(tmp / "frames.json", {
        "source": str(args.input), "checkpoint": str(args.checkpoint), "stage": info["stage"],
        "format": args.format, "input_size": outputs.input_size, "orthographic": bool(ortho), "fps": source.fps,
        "K": K_first.tolist(), "frames": outputs.names, "crop_x0_y0_side": [list(c) for c in outputs.crops],
        "joints2d_px": np.round(np.stack(outputs.j2d), 3).tolist(),
    })


def _run(args: argparse.Namespace) -> int:
    summary = predict_frames(args)
    print(f"{summary['frames']} frames -> {summary['out']} (pred.json, frames.json"
          f"{'' if args.no_obj else ', meshes/'}, overlay)")
    return 0


PREDICT = Command(help="3D joints and meshes for a folder of images or a video (pred.json, OBJ, overlay)",
                  add_arguments=_arguments, run=_run)
