"""Everything around the hand in a synthetic frame: backgrounds, skin, light, camera, objects.

Backgrounds are real photographs that ship inside scikit-image's wheel (no download); a
sequence pans slowly across a random crop of one of them, which reads as camera motion.
"""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from s2hand.data.images import read_rgb

# scikit-image's bundled sample photographs (files inside the wheel; nothing is fetched)
PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "brick.png",
    "camera.png", "grass.png", "gravel.png", "moon.png", "coins.png", "page.png",
)

# Skin tones (linear-ish RGB in [0,1]) from light to dark; a sequence picks one and varies it.
SKIN_TONES = np.array([
    [0.94, 0.76, 0.66], [0.89, 0.69, 0.57], [0.80, 0.58, 0.46], [0.70, 0.49, 0.37],
    [0.58, 0.39, 0.28], [0.45, 0.30, 0.21], [0.33, 0.22, 0.16],
])


@functools.cache
def _photo_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; grey photographs are tinted so backgrounds vary in colour too."""
    return read_rgb(_photo_dir() / name)


def available_photos() -> list[str]:
    return [p for p in PHOTOS if (_photo_dir() / p).is_file()]


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: smooth colour gradients plus blurred noise blobs."""
    base = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    noise = cv2.GaussianBlur(rng.normal(0, 40, (size, size, 3)).astype(np.float32), (0, 0), size / 20)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


class BackgroundPan:
    """A crop window moving linearly across a photograph over a sequence."""

    def __init__(self, rng: np.random.Generator, size: int, photos: list[str] | None):
        self.size = size
        if photos:
            img = load_photo(photos[rng.integers(len(photos))])
            if rng.random() < 0.5:
                img = img[:, ::-1]
            h, w = img.shape[:2]
            crop = int(min(h, w) * rng.uniform(0.35, 0.7))
            self.img = img
            self.crop = crop
            self.start = np.array([rng.uniform(0, w - crop), rng.uniform(0, h - crop)])
            self.end = np.clip(self.start + rng.normal(0, 0.15 * crop, 2), 0, [w - crop, h - crop])
            self.gain = rng.uniform(0.6, 1.1)
            if np.ptp(img.astype(np.int16), axis=2).max() < 8:  # a grey photograph: tint it
                self.gain = self.gain * rng.uniform(0.55, 1.15, 3)
        else:
            self.img = procedural_background(rng, size * 3)
            self.crop = size * 2
            self.start = rng.uniform(0, size, 2)
            self.end = rng.uniform(0, size, 2)
            self.gain = 1.0

    def frame(self, u: float) -> np.ndarray:
        """(size, size, 3) uint8 at sequence position u in [0, 1]."""
        x, y = (1 - u) * self.start + u * self.end
        # affine crop with sub-pixel offset: keeps the pan smooth
        s = self.size / self.crop
        m = np.array([[s, 0, -x * s], [0, s, -y * s]], dtype=np.float64)
        out = cv2.warpAffine(self.img, m, (self.size, self.size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        return np.clip(out.astype(np.float32) * self.gain, 0, 255).astype(np.uint8)


def skin_face_colors(rng: np.random.Generator, n_faces: int, face_centres: np.ndarray) -> np.ndarray:
    """(F, 3) per-face albedo in [0, 1]: a skin tone, a smooth spatial variation, fine noise.

    face_centres (F, 3) in the canonical frame (m) drive the smooth part, so that colour
    varies across the hand (e.g. redder palm creases) rather than per face at random."""
    tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.08, 3)
    freq = rng.normal(0, 25.0, (3, 3))
    phase = rng.uniform(0, 2 * np.pi, 3)
    smooth = 0.06 * np.sin(face_centres @ freq + phase)  # (F, 3)
    fine = rng.normal(0, 0.025, (n_faces, 1))
    return np.clip(tone * (1 + smooth + fine), 0, 1)


def sample_light(rng: np.random.Generator) -> np.ndarray:
    """(11,) light code: ambient intensity, ambient colour, directional intensity, colour, direction.

    Direction points from the surface towards the light in camera coordinates (mostly from
    the camera side, z < 0, and from above, y < 0)."""
    la = rng.uniform(0.35, 0.6)
    ca = np.clip(1 + rng.normal(0, 0.06, 3), 0.8, 1.1)
    ld = rng.uniform(0.55, 0.9)
    cd = np.clip(1 + rng.normal(0, 0.06, 3), 0.8, 1.1)
    d = np.array([rng.normal(0, 0.6), rng.uniform(-1.0, 0.2), -rng.uniform(0.4, 1.2)])
    d /= np.linalg.norm(d)
    return np.concatenate([[la], ca, [ld], cd, d])


def camera_facing_rotation() -> Rotation:
    """Canonical hand (fingers -x, palm -y, thumb +z) -> camera frame with fingers up (-y),
    palm towards the camera (-z) and the thumb to the image's right (+x)."""
    m = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # columns: images of e_x, e_y, e_z
    return Rotation.from_matrix(m)


def sample_global_rotation(rng: np.random.Generator, wide: bool) -> Rotation:
    """A hand orientation: palm or back of the hand towards the camera, tilted and rolled.

    `wide` allows larger departures (edge-on and back-of-hand views), as in the wild."""
    yaw_max = 150 if wide else 80
    yaw = rng.uniform(-yaw_max, yaw_max)  # about the camera's vertical axis
    pitch = rng.uniform(-45, 45)  # about the camera's x axis
    roll = rng.uniform(-70, 70)  # in-plane
    view = Rotation.from_euler("zyx", [roll, yaw, pitch], degrees=True)
    return view * camera_facing_rotation()


def intrinsics(size: int, focal_factor: float, rng: np.random.Generator) -> np.ndarray:
    """(3, 3) pinhole K for a size x size image, focal = focal_factor * size, centre jittered."""
    f = focal_factor * size * rng.uniform(0.95, 1.05)
    c = size / 2 + rng.normal(0, 0.02 * size, 2)
    return np.array([[f, 0, c[0]], [0, f, c[1]], [0, 0, 1.0]])


def occluder_mesh(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An everyday-object stand-in: a box, cylinder or ball, a few cm across.

    Returns vertices (V, 3) centred at the origin (m), faces (F, 3), a base colour (3,),
    and an offset (3,) in the hand's canonical frame (in front of the palm, -y)."""
    kind = rng.integers(3)
    if kind == 0:
        m = trimesh.creation.box(extents=rng.uniform(0.03, 0.08, 3))
    elif kind == 1:
        m = trimesh.creation.cylinder(radius=rng.uniform(0.015, 0.035), height=rng.uniform(0.06, 0.14), sections=16)
    else:
        m = trimesh.creation.icosphere(subdivisions=2, radius=rng.uniform(0.02, 0.04))
    m.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    color = rng.uniform(0.1, 0.95, 3)
    offset = np.array([rng.uniform(-0.09, -0.03), -rng.uniform(0.03, 0.06), rng.uniform(-0.02, 0.03)])
    return np.asarray(m.vertices), np.asarray(m.faces), color, offset


def boundary_loop(faces: np.ndarray) -> np.ndarray:
    """(R,) vertex indices of a mesh's single open boundary (the wrist opening of a hand mesh), in order.

    Raises if the mesh has no boundary or more than one loop."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    border = uniq[count == 1]
    if len(border) == 0:
        raise ValueError("mesh is closed: no wrist opening to attach a forearm to")
    nbrs: dict[int, list[int]] = {}
    for a, b in border.tolist():
        nbrs.setdefault(a, []).append(b)
        nbrs.setdefault(b, []).append(a)
    loop = [border[0, 0]]
    prev = -1
    while True:
        nxt = [v for v in nbrs[loop[-1]] if v != prev]
        if not nxt or nxt[0] == loop[0]:
            break
        prev = loop[-1]
        loop.append(nxt[0])
    if len(loop) != len(nbrs):
        raise ValueError(f"mesh has {len(border)} boundary edges but its first loop has {len(loop)}: not a single wrist opening")
    return np.asarray(loop)


def forearm_mesh(loop: np.ndarray, palm_centre: np.ndarray, length: float = 0.25, rings: int = 6,
                 flare: float = 1.3) -> tuple[np.ndarray, np.ndarray]:
    """A forearm tube continuing the hand mesh out of its wrist opening.

    loop (T, R, 3) posed vertices of the wrist opening (in order), palm_centre (T, 3): the tube
    runs from the opening away from the palm for `length` m, widening to `flare` times the
    wrist section. Its first ring is the opening itself, so hand and arm join without a seam.
    Returns vertices (T, rings * R, 3) and faces (2 * (rings - 1) * R, 3), wound outward."""
    T, R, _ = loop.shape
    centre = loop.mean(1)  # (T, 3)
    axis = centre - palm_centre
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    offset = loop - centre[:, None]  # (T, R, 3)
    radial = offset - (offset * axis[:, None]).sum(-1, keepdims=True) * axis[:, None]  # in the cross-section plane
    u = np.linspace(0.0, 1.0, rings)
    verts = np.empty((T, rings, R, 3))
    for i, ui in enumerate(u):
        shape = offset if i == 0 else radial  # the first ring is the opening, exactly
        verts[:, i] = centre[:, None] + axis[:, None] * (ui * length) + shape * (1 + (flare - 1) * ui)
    k = np.arange(R)
    quads = []
    for i in range(rings - 1):
        a, b = i * R + k, i * R + (k + 1) % R
        c, d = a + R, b + R
        quads += [np.stack([a, b, d], 1), np.stack([a, d, c], 1)]
    faces = np.concatenate(quads)
    verts = verts.reshape(T, rings * R, 3)
    # wind outward: the first face's normal must point away from the axis
    v0, v1, v2 = verts[0, faces[0]]
    n = np.cross(v1 - v0, v2 - v0)
    out = v0 - (centre[0] + axis[0] * ((v0 - centre[0]) @ axis[0]))
    if n @ out < 0:
        faces = faces[:, ::-1].copy()
    return verts, faces
