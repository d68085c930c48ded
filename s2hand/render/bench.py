"""Timing of the renderers on a generated hand-like mesh (palm ellipsoid + 5 capsule fingers).

    python -m s2hand.render.bench                 # CPU, batch 8, torch threads 1
    python -m s2hand.render.bench --device cuda   # where a GPU is present

Prints a table: HandRenderer forward and forward+backward (ms per batch) at several render sizes,
for this module's defaults and for pytorch3d used plainly, and painter frames/s. Figures on a
shared machine are noisy.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import trimesh

from .lighting import lit_face_colors
from .painter import render_mesh
from .renderer import HandRenderer


def handlike_mesh() -> trimesh.Trimesh:
    """About 2,700 faces, 1,400 vertices, metres, centred near the origin, fingers towards -y."""
    parts = [trimesh.creation.icosphere(subdivisions=3, radius=1.0)]
    parts[0].apply_scale([0.045, 0.05, 0.015])
    up = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])
    for x, length in [(-0.03, 0.06), (-0.01, 0.075), (0.01, 0.08), (0.03, 0.07)]:
        finger = trimesh.creation.capsule(height=length, radius=0.008, count=[12, 12])
        finger.apply_transform(up)
        finger.apply_translation([x, -0.05 - length / 2, 0.0])
        parts.append(finger)
    thumb = trimesh.creation.capsule(height=0.05, radius=0.009, count=[12, 12])
    thumb.apply_transform(up)
    thumb.apply_transform(trimesh.transformations.rotation_matrix(-0.9, [0, 0, 1]))
    thumb.apply_translation([0.06, -0.01, 0.0])
    parts.append(thumb)
    return trimesh.util.concatenate(parts)


def scene(batch: int, input_size: int = 224, seed: int = 0):
    """Batch of the hand-like mesh in front of a 224 px camera, random colours and lights."""
    mesh = handlike_mesh()
    g = torch.Generator().manual_seed(seed)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)[None] + torch.tensor([0.0, 0.02, 0.5])
    verts = verts + 0.01 * torch.randn(batch, 1, 3, generator=g)
    faces = torch.tensor(mesh.faces, dtype=torch.long)
    K = torch.tensor([[600.0, 0, input_size / 2], [0, 600.0, input_size / 2], [0, 0, 1]]).repeat(batch, 1, 1)
    colors = 0.3 + 0.5 * torch.rand(batch, len(faces), 3, generator=g)
    light = torch.rand(batch, 11, generator=g)
    light[:, 8:] = torch.tensor([0.3, -0.2, -1.0])
    return verts, faces, colors, light, K


def _time(fn, reps: int, sync, warmup: bool = True) -> float:
    if warmup:
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t) / reps * 1e3


# (label, HandRenderer options): this module's defaults, and pytorch3d used plainly (global naive
# rasteriser on CPU, its own backward, k faces per pixel only)
VARIANTS = (
    ("default", {}),
    ("plain pytorch3d", {"face_selection": "pytorch3d", "grad_mode": "pytorch3d", "front_face_pass": False}),
)


def bench_renderer(sizes, batch: int, device: str, reps: int) -> list[str]:
    verts, faces, colors, light, K = (t.to(device) for t in scene(batch))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for size in sizes:
        for label, opts in VARIANTS:
            r = HandRenderer(faces, size, 224, **opts).to(device)

            def fwd():
                with torch.no_grad():
                    r(verts, colors, light, K)

            def fwd_bwd():
                v, c, li = (t.clone().requires_grad_() for t in (verts, colors, light))
                out = r(v, c, li, K)
                (out.image.mean() + out.silhouette.mean()).backward()

            slow = size > 64 and label != "default"
            n, warm = (1, False) if slow else (reps, True)
            rows.append(f"| {size} | {label} | {_time(fwd, n, sync, warm):.0f} | {_time(fwd_bwd, n, sync, warm):.0f} |")
            print(rows[-1], flush=True)
    return rows


def bench_painter(sizes, frames: int, supersample: int) -> list[str]:
    verts, faces, colors, light, K = scene(frames)
    lit = lit_face_colors(verts, faces, colors, light).numpy()
    verts, faces, K = verts.numpy(), faces.numpy(), K.numpy()
    rows = []
    for size in sizes:
        Ks = K * np.array([size / 224, size / 224, 1.0])[:, None]
        render_mesh(verts[0], faces, lit[0], Ks[0], size, supersample=supersample)
        t = time.perf_counter()
        for i in range(frames):
            render_mesh(verts[i], faces, lit[i], Ks[i], size, supersample=supersample)
        dt = (time.perf_counter() - t) / frames
        rows.append(f"| {size} | {supersample} | {dt * 1e3:.2f} | {1 / dt:.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 112, 224])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads; 2 OpenMP threads on a busy 2-core box can be far slower than 1")
    ap.add_argument("--painter-frames", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_faces = len(handlike_mesh().faces)
    print(f"HandRenderer, batch {args.batch}, {n_faces} faces, device {args.device}, torch threads {args.threads}")
    print("| render px | variant | forward ms | forward+backward ms |\n|---|---|---|---|")
    bench_renderer(args.sizes, args.batch, args.device, args.reps)
    print(f"\nPainter (numpy + OpenCV, one process), {n_faces} faces")
    print("| image px | supersample | ms / frame | frames/s |\n|---|---|---|---|")
    print("\n".join(bench_painter([128, 256], args.painter_frames, 2) + bench_painter([128, 256], args.painter_frames, 3)))


if __name__ == "__main__":
    main()
