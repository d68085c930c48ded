"""The embedded synthetic hand-video dataset: rendered sequences with full 3D ground truth.

Deterministic from (seed, sequence id): each sequence draws from its own random stream, so
the result does not depend on the number of worker processes.

Per sequence: one hand shape and skin, natural finger motion (s2hand.hand.poses through
motion.py's eased keyframes with pauses), a moving global rotation and position, changing
light, a photograph background panning slowly (camera motion), optionally a held object
occluding the hand (HO-3D-like). "Wild" sequences (the YT-3D stand-in) are edited: 2 to
wild_max_shots shots joined by cuts, wider views; their cut positions are stored.

    meta = generate_dataset(out_dir, "outputs/hand_model/MANO_RIGHT.npz", SyntheticParams(), seed=0)
    generate_dataset(out_dir, hand_model, p, seed=0, splits=["wild"])  # only the wild split, as above

Layout written (s2hand.data.table): meta.json, {train,val,test,wild}.npz,
{split}_masks.npy (N, S, S/8 packed hand silhouettes), images/<split>/sXXXX/fXXXX.jpg.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from s2hand.config import SyntheticParams
from s2hand.data.synthetic import motion, scene
from s2hand.data.table import FrameTable, save_meta
from s2hand.hand.keypoints import OPENPOSE_NAMES
from s2hand.hand.poses import sample_natural_poses

if TYPE_CHECKING:
    from s2hand.hand.layer import HandLayer

FOCAL_FACTOR = 2.4  # focal length in image widths: a hand 0.55-0.8 m away spans 55-80 % of the frame
DEPTH_RANGE = (0.55, 0.8)
_INDEX_MCP, _PINKY_MCP, _MIDDLE_MCP = OPENPOSE_NAMES.index("index1"), OPENPOSE_NAMES.index("pinky1"), OPENPOSE_NAMES.index("middle1")
PALM = [0, _INDEX_MCP, _MIDDLE_MCP, OPENPOSE_NAMES.index("ring1"), _PINKY_MCP]


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    seq: int
    split: str
    n_frames: int
    wild: bool
    occluder: bool
    grasp_prob: float = 0.15  # share of finger keyframes that are grasps (s2hand.hand.poses)
    gesture_prob: float = 0.0  # share of finger keyframes that are gestures (s2hand.hand.poses.GESTURES)
    max_shots: int = 3  # wild: 2 to max_shots shots joined by cuts


def plan_sequences(p: SyntheticParams, seed: int) -> list[SequenceSpec]:
    """Which sequence goes to which split, and which ones have objects; by sequence id.

    The wild sequences draw their objects from a stream of their own, so the wild split's size
    (wild_sequences, wild_frames, wild_max_shots) leaves train, val and test untouched; each
    sequence is then rendered from its own stream (render_sequence)."""
    rng = np.random.default_rng([seed, 10**6])
    ids = rng.permutation(p.sequences)
    n_test = int(round(p.sequences * p.test_fraction))
    n_val = int(round(p.sequences * p.val_fraction))
    split_of = {int(s): ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, s in enumerate(ids)}
    occ = rng.random(p.sequences) < p.occluder_prob
    wild_occ = np.random.default_rng([seed, 10**6 + 1]).random(p.wild_sequences) < p.occluder_prob
    specs = [SequenceSpec(s, split_of[s], p.frames, False, bool(occ[s]), p.grasp_prob, p.gesture_prob)
             for s in range(p.sequences)]
    specs += [
        SequenceSpec(p.sequences + w, "wild", p.wild_frames, True, bool(wild_occ[w]), p.grasp_prob,
                     p.gesture_prob, p.wild_max_shots)
        for w in range(p.wild_sequences)
    ]
    return specs


# ----------------------------------------------------------------------------- per process
_WORKER: dict = {}


def _init_worker(hand_model: str, image_size: int, supersample: int, photos: bool, out_dir: str,
                 forearm: bool = True) -> None:
    torch.set_num_threads(1)
    from s2hand.hand.layer import HandLayer

    layer = HandLayer.from_file(hand_model, num_pca_comps=45, flat_hand_mean=True).eval()
    with torch.no_grad():
        rest = layer(global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45), betas=torch.zeros(1, 10), pca=False)
    faces = layer.faces.cpu().numpy()
    centres = rest.verts[0].numpy()[faces].mean(1)
    _WORKER.update(layer=layer, faces=faces, centres=centres, size=image_size, ss=supersample,
                   photos=scene.available_photos() if photos else [], out=Path(out_dir),
                   wrist_loop=scene.boundary_loop(faces) if forearm else None)


def _shots(rng: np.random.Generator, n: int, wild: bool, min_len: int = 8, max_shots: int = 3) -> list[tuple[int, int]]:
    """[(first, end)] frame ranges of the shots; wild sequences get 2 to max_shots shots of >= min_len
    frames (fewer where n frames do not hold them), the others one."""
    k = min(int(rng.integers(2, max_shots + 1)), n // min_len) if wild else 1
    if k <= 1:
        return [(0, n)]
    extra = np.floor(rng.dirichlet(np.ones(k)) * (n - k * min_len)).astype(int)
    lengths = min_len + extra
    lengths[-1] += n - lengths.sum()
    edges = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    return list(zip(edges[:-1], edges[1:]))


def _shot_trajectory(rng: np.random.Generator, n: int, fps: float, wild: bool, size: int, grasp_prob: float = 0.15,
                     gesture_prob: float = 0.0):
    """Per-frame finger pose (n,45), global rotation, image-plane centre (n,2), depth (n,), light (n,11)."""
    times = motion.keyframe_times(rng, n, fps)
    k = len(times)
    pauses = motion.pause_mask(rng, k)
    s = motion.eased_positions(times, n)
    pose = motion.interpolate_vectors(motion.apply_pauses(sample_natural_poses(k, rng, grasp_prob, gesture_prob), pauses), s)
    base = scene.sample_global_rotation(rng, wide=wild)
    wobble = Rotation.from_rotvec(rng.normal(0, np.deg2rad(18), (k, 3)))
    rot_keys = wobble * base
    rot_keys = Rotation.from_quat(motion.apply_pauses(rot_keys.as_quat(canonical=True), pauses))
    rot = motion.interpolate_rotations(rot_keys, s)
    centre = motion.interpolate_vectors(motion.apply_pauses(size * (0.5 + rng.normal(0, 0.06, (k, 2))), pauses), s)
    depth = motion.interpolate_vectors(motion.apply_pauses(rng.uniform(*DEPTH_RANGE, (k, 1)), pauses), s)[:, 0]
    lights = np.stack([scene.sample_light(rng) for _ in range(2)])
    light = motion.interpolate_vectors(lights, np.linspace(0, 1, n))
    light[:, 8:] /= np.linalg.norm(light[:, 8:], axis=1, keepdims=True)
    return pose, rot, centre, depth, light


class _Motion(NamedTuple):
    """A sequence's per-frame motion, camera and shots (render_sequence)."""
    pose: np.ndarray  # (n, 45) finger axis-angle
    rotvec: np.ndarray  # (n, 3) global rotation, axis-angle
    centre: np.ndarray  # (n, 2) image point of the palm centre, px
    depth: np.ndarray  # (n,) depth of the palm centre, m
    light: np.ndarray  # (n, 11)
    K: np.ndarray  # (n, 3, 3)
    cut: np.ndarray  # (n,) bool: a cut right before the frame
    backgrounds: list[tuple[int, int, scene.BackgroundPan]]  # (first, end, pan) per shot


def render_sequence(spec: SequenceSpec, seed: int, fps: float) -> dict[str, np.ndarray]:
    """Render one sequence's frames to JPEG files; return its ground truth arrays."""
    w = _WORKER
    faces = w["faces"]
    rng = np.random.default_rng([seed, spec.seq])
    n = spec.n_frames
    beta = np.clip(rng.normal(0, 0.8, 10), -2, 2)
    albedo = scene.skin_face_colors(rng, len(faces), w["centres"])
    obj = scene.occluder_mesh(rng) if spec.occluder else None
    mo = _sequence_motion(rng, spec, fps, w["size"], w["photos"])
    verts, joints = _place_hand(w["layer"], mo, beta)
    parts = _scene_parts(verts, joints, faces, albedo, mo.rotvec, obj, w["wrist_loop"])
    joints2d = np.einsum("nij,nkj->nki", mo.K, joints)
    joints2d = joints2d[..., :2] / joints2d[..., 2:3]
    images, masks, visible = _render_frames(parts, mo, joints2d, len(faces), w["size"], w["ss"])
    rels = _write_images(spec, images, w["out"])
    return dict(
        image=np.array(rels), K=mo.K.astype(np.float32), joints3d=joints.astype(np.float32),
        verts=verts.astype(np.float32), pose=np.concatenate([mo.rotvec, mo.pose], 1).astype(np.float32),
        shape=np.tile(beta, (n, 1)).astype(np.float32), seq=np.full(n, spec.seq, np.int64),
        frame=np.arange(n, dtype=np.int64), joints2d=joints2d.astype(np.float32), visible=visible, cut=mo.cut,
        masks=np.packbits(masks, axis=-1), occluded=np.full(n, spec.occluder),
    )


def _sequence_motion(rng: np.random.Generator, spec: SequenceSpec, fps: float, size: int, photos: list[str]
                     ) -> _Motion:
    """The sequence's shots, each with its own trajectory, camera and background pan."""
    n = spec.n_frames
    pose = np.zeros((n, 45)); rotvec = np.zeros((n, 3)); centre = np.zeros((n, 2)); depth = np.zeros(n)
    light = np.zeros((n, 11)); K = np.zeros((n, 3, 3)); cut = np.zeros(n, bool)
    backgrounds = []
    for i, (a, b) in enumerate(_shots(rng, n, spec.wild, max_shots=spec.max_shots)):
        p, r, c, d, l = _shot_trajectory(rng, b - a, fps, spec.wild, size, spec.grasp_prob, spec.gesture_prob)
        pose[a:b], rotvec[a:b], centre[a:b], depth[a:b], light[a:b] = p, r.as_rotvec(), c, d, l
        K[a:b] = scene.intrinsics(size, FOCAL_FACTOR * (rng.uniform(0.8, 1.2) if spec.wild else 1.0), rng)
        cut[a] = i > 0
        backgrounds.append((a, b, scene.BackgroundPan(rng, size, photos)))
    return _Motion(pose, rotvec, centre, depth, light, K, cut, backgrounds)


def _place_hand(layer: HandLayer, mo: _Motion, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The posed hand with its palm centre at the sampled image point and depth -> verts (n, V, 3),
    joints (n, 21, 3), camera space, m (float64)."""
    n = len(mo.pose)
    with torch.no_grad():
        out = layer(global_orient=torch.as_tensor(mo.rotvec, dtype=torch.float32),
                    hand_pose=torch.as_tensor(mo.pose, dtype=torch.float32),
                    betas=torch.as_tensor(beta, dtype=torch.float32).expand(n, 10), pca=False)
    verts, joints = out.verts.double().numpy(), out.joints.double().numpy()
    anchor = joints[:, PALM].mean(1)  # (n, 3)
    ray = np.einsum("nij,nj->ni", np.linalg.inv(mo.K), np.concatenate([mo.centre, np.ones((n, 1))], 1))
    shift = ray * mo.depth[:, None] - anchor
    verts += shift[:, None]
    joints += shift[:, None]
    return verts, joints


def _scene_parts(verts: np.ndarray, joints: np.ndarray, faces: np.ndarray, albedo: np.ndarray, rotvec: np.ndarray,
                 obj: tuple[np.ndarray, ...] | None, wrist_loop: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Everything drawn, as (verts (n, V, 3), faces (F, 3), colours (F, 3)): the hand first (its
    faces index the mask), then the forearm and the held object."""
    parts = [(verts, faces, albedo)]
    if wrist_loop is not None:
        arm_v, arm_f = scene.forearm_mesh(verts[:, wrist_loop], joints[:, PALM].mean(1))
        parts.append((arm_v, arm_f, np.broadcast_to(albedo.mean(0), (len(arm_f), 3))))
    if obj is not None:
        ov, of, ocolor, _ = obj
        normal = np.cross(joints[:, _INDEX_MCP] - joints[:, 0], joints[:, _PINKY_MCP] - joints[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        radius = np.linalg.norm(ov, axis=1).max()
        centre3d = joints[:, PALM].mean(1) + normal * (radius + 0.012)
        R = Rotation.from_rotvec(rotvec).as_matrix()
        obj_verts = np.einsum("nij,vj->nvi", R, ov) + centre3d[:, None]
        parts.append((obj_verts, of, np.broadcast_to(ocolor, (len(of), 3))))
    return parts


def _render_frames(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], mo: _Motion, joints2d: np.ndarray,
                   hand_faces: int, size: int, supersample: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Paint the lit scene over each frame's background -> images [(S, S, 3) uint8 RGB], hand
    masks (n, S, S) and joint visibility (n, 21): inside the image and not behind the forearm
    or the object. joints2d (n, 21, 2) px; the first `hand_faces` faces are the hand's."""
    from s2hand.render.lighting import lit_face_colors
    from s2hand.render.painter import render_mesh

    n = len(mo.K)
    offsets = np.cumsum([0] + [len(v[0]) for v, _, _ in parts])
    all_v = np.concatenate([v for v, _, _ in parts], axis=1)  # (n, V_all, 3)
    all_f = np.concatenate([f + o for (_, f, _), o in zip(parts, offsets)])
    all_lit = torch.cat([
        lit_face_colors(torch.as_tensor(v), torch.as_tensor(f), torch.as_tensor(np.ascontiguousarray(c)).expand(n, -1, -1),
                        torch.as_tensor(mo.light)) for v, f, c in parts
    ], dim=1).clamp(0, 1).numpy()  # (n, F_all, 3)
    visible = ((joints2d >= 0) & (joints2d < size)).all(-1)
    masks = np.zeros((n, size, size), bool)
    images = []
    for t in range(n):
        a, b, pan = next(x for x in mo.backgrounds if x[0] <= t < x[1])
        bg = pan.frame((t - a) / max(1, b - a - 1))
        painted = render_mesh(all_v[t], all_f, all_lit[t], mo.K[t], size, background=bg, supersample=supersample)
        face_idx = painted.face_index
        masks[t] = (face_idx >= 0) & (face_idx < hand_faces)
        covered = face_idx >= hand_faces  # a joint behind the forearm or the object is not visible
        px = np.clip(np.floor(joints2d[t]).astype(int), 0, size - 1)
        visible[t] &= ~covered[px[:, 1], px[:, 0]]
        images.append(painted.image)
    return images, masks, visible


def _write_images(spec: SequenceSpec, images: list[np.ndarray], out: Path) -> list[str]:
    """The frames as JPEG files under out/images/<split>/sXXXX/ -> their paths relative to out."""
    rels = []
    for t, img in enumerate(images):
        rel = Path("images") / spec.split / f"s{spec.seq:04d}" / f"f{t:04d}.jpg"
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"{path}: could not write image")
        rels.append(rel.as_posix())
    return rels


def _render_task(args: tuple[SequenceSpec, int, float]) -> tuple[SequenceSpec, dict]:
    spec, seed, fps = args
    return spec, render_sequence(spec, seed, fps)


def generate_dataset(out_dir: str | Path, hand_model: str | Path, p: SyntheticParams, seed: int,
                     workers: int = 2, progress: bool = True, splits: Collection[str] | None = None) -> dict:
    """Render the whole dataset into `out_dir` (which the caller makes atomic); returns meta.
    `splits` (e.g. ["wild"]): render only these; their frames are the same as in the whole."""
    out_dir = Path(out_dir)
    specs = [s for s in plan_sequences(p, seed) if splits is None or s.split in splits]
    t0 = time.perf_counter()
    init = (str(hand_model), p.image_size, p.supersample, p.photo_backgrounds, str(out_dir), p.forearm)
    tasks = [(s, seed, p.fps) for s in specs]
    if workers > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
            results = list(_progress(pool.imap(_render_task, tasks), len(tasks), progress))
    else:
        _init_worker(*init)
        results = [_render_task(t) for t in _progress(tasks, len(tasks), progress)]
    elapsed = time.perf_counter() - t0

    splits: dict[str, int] = {}
    for split in ("train", "val", "test", "wild"):
        parts = [r for s, r in results if s.split == split]
        if not parts:
            continue
        cat = {k: np.concatenate([r[k] for r in parts]) for k in parts[0]}
        np.save(out_dir / f"{split}_masks.npy", cat.pop("masks"))
        np.save(out_dir / f"{split}_occluded.npy", cat.pop("occluded"))
        FrameTable(**cat).save(out_dir / f"{split}.npz")
        splits[split] = len(cat["image"])
    n_frames = sum(splits.values())
    meta = {
        "name": "synthetic", "image_size": p.image_size, "fps": p.fps, "splits": splits,
        "keypoint_order": "openpose", "units": "m", "camera": "opencv",
        "sequences": {sp: sorted({s.seq for s in specs if s.split == sp}) for sp in splits},
        "occluded_sequences": sorted(s.seq for s in specs if s.occluder),
        "seed": seed, "params": p.model_dump(),
    }
    save_meta(out_dir, meta)  # no timings in the output: it must be identical on every run
    return {**meta, "render_seconds": round(elapsed, 2), "workers": workers,
            "frames_per_second": round(n_frames / max(elapsed, 1e-9), 2)}


def _progress(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="render sequences", unit="seq")
