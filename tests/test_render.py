"""Cameras, lighting, the differentiable renderer and the painter agree with each other.

    .venv/bin/python -m pytest -q tests/test_render.py
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import trimesh

from s2hand.hand.mesh import face_normals
from s2hand.render import (
    HandRenderer,
    crop_intrinsics,
    lit_face_colors,
    project,
    render_many,
    render_mesh,
    scale_intrinsics,
    shade_faces,
    split_light,
)
from s2hand.render.bench import handlike_mesh

INPUT = 224
F_PX = 600.0  # focal length of the 224 px test camera


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 OpenMP threads on a shared 2-core box can be far slower
    yield
    torch.set_num_threads(n)


def camera(batch: int = 1, orthographic: bool = False, depth: float = 0.5) -> torch.Tensor:
    f = F_PX / depth if orthographic else F_PX  # orthographic: px per metre, same scale at `depth`
    K = torch.tensor([[f, 0.0, INPUT / 2], [0.0, f, INPUT / 2], [0.0, 0.0, 1.0]])
    return K.repeat(batch, 1, 1)


def sphere(centre, radius: float = 0.02, subdivisions: int = 2):
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    verts = torch.tensor(m.vertices, dtype=torch.float32) + torch.tensor(centre, dtype=torch.float32)
    return verts[None], torch.tensor(m.faces, dtype=torch.long)


def pixel_grid(R: int):
    i, j = torch.meshgrid(torch.arange(R) + 0.5, torch.arange(R) + 0.5, indexing="ij")
    return j, i  # u, v of pixel centres


def centroid(weights: torch.Tensor) -> torch.Tensor:
    u, v = pixel_grid(weights.shape[-1])
    return torch.stack([(weights * u).sum() / weights.sum(), (weights * v).sum() / weights.sum()])


LIGHT = torch.tensor([[0.6, 1.0, 0.9, 0.8, 0.5, 1.0, 1.0, 1.0, 0.3, -0.2, -1.0]])


# ---------------------------------------------------------------- camera
def test_project_perspective_and_orthographic():
    K = camera()
    p = torch.tensor([[[0.1, -0.05, 0.5]]])
    assert torch.allclose(project(p, K), torch.tensor([[[112 + 120.0, 112 - 60.0]]]))
    Ko = camera(orthographic=True)
    assert torch.allclose(project(p * torch.tensor([1, 1, 3.0]), Ko, orthographic=True), project(p, K))


def test_scale_and_crop_intrinsics_keep_pixel_centres():
    K = camera()
    p = torch.tensor([[[0.02, 0.01, 0.5]]])
    # resizing maps continuous coordinates by the ratio: pixel centre 0.5 -> 0.25 at half size
    assert torch.allclose(project(p, scale_intrinsics(K, 224, 112)), project(p, K) / 2)
    Kc = crop_intrinsics(K, torch.tensor([50.0]), torch.tensor([30.0]), torch.tensor([100.0]), 50)
    assert torch.allclose(project(p, Kc), (project(p, K) - torch.tensor([50.0, 30.0])) / 2)


# ---------------------------------------------------------------- lighting
def test_face_normals_point_outwards():
    verts, faces = sphere([0.0, 0.0, 0.5])
    n = face_normals(verts, faces)  # (1, F, 3)
    centres = verts[0, faces].mean(1) - torch.tensor([0.0, 0.0, 0.5])
    assert ((n[0] * centres).sum(-1) > 0).all()
    assert torch.allclose(n.norm(dim=-1), torch.ones(1, len(faces)))


def test_ambient_only_gives_c_times_la_ca():
    verts, faces = sphere([0.0, 0.0, 0.5])
    C = torch.rand(1, len(faces), 3)
    L = torch.tensor([[0.7, 0.9, 0.8, 0.6, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, -1.0]])
    lit = lit_face_colors(verts, faces, C, L)
    assert torch.allclose(lit, C * 0.7 * torch.tensor([0.9, 0.8, 0.6]))


def test_face_facing_the_light_gets_more():
    verts, faces = sphere([0.0, 0.0, 0.5])
    C = torch.ones(1, len(faces), 3)
    L = torch.tensor([[0.2, 1.0, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0, 0.0, 0.0, -5.0]])  # d: surface -> light (camera)
    lit = lit_face_colors(verts, faces, C, L)[0, :, 0]
    n = face_normals(verts, faces)[0]
    towards, away = n[:, 2].argmin(), n[:, 2].argmax()  # faces looking at / away from the camera
    assert lit[towards] > lit[away]
    assert torch.isclose(lit[towards], 0.2 + 0.8 * (-n[towards, 2]), atol=1e-6)
    assert torch.isclose(lit[away], torch.tensor(0.2))  # max(0, n.d) clamps
    assert torch.allclose(split_light(L).direction, torch.tensor([[0.0, 0.0, -1.0]]))


def test_shade_faces_with_given_normals():
    verts, faces = sphere([0.0, 0.0, 0.5])
    C = torch.rand(2, len(faces), 3)
    L = LIGHT.repeat(2, 1)
    verts = verts.repeat(2, 1, 1)
    n = face_normals(verts, faces)
    assert torch.allclose(shade_faces(n, C, L), lit_face_colors(verts, faces, C, L))
    assert torch.allclose(shade_faces(n[0], C, L), lit_face_colors(verts, faces, C, L))  # (F, 3) shared normals


# ---------------------------------------------------------------- differentiable renderer
@pytest.mark.parametrize("orthographic", [False, True])
def test_projection_lands_where_the_renderer_draws(orthographic):
    R = 64
    for centre in ([0.0, 0.0, 0.5], [0.03, -0.02, 0.5], [-0.05, 0.04, 0.55]):
        verts, faces = sphere(centre, radius=0.01)
        r = HandRenderer(faces, R, INPUT, orthographic=orthographic)
        K = camera(orthographic=orthographic)
        out = r(verts, torch.ones(1, len(faces), 3), None, K)
        target = project(torch.tensor([[centre]]), scale_intrinsics(K, INPUT, R), orthographic)[0, 0]
        assert (centroid(out.silhouette[0, 0]) - target).norm() < 1.0
        paint = render_mesh(verts[0].numpy(), faces.numpy(), np.full((len(faces), 3), 0.5), (K[0] * torch.tensor(
            [[R / INPUT], [R / INPUT], [1.0]])).numpy(), R, orthographic=orthographic)
        assert (centroid(torch.tensor(paint.mask, dtype=torch.float32)) - target).norm() < 1.0


@pytest.mark.parametrize("orthographic", [False, True])
def test_gradients_reach_vertices_colours_and_light(orthographic):
    verts, faces = sphere([0.01, -0.01, 0.5], radius=0.03)
    verts = verts.repeat(2, 1, 1).requires_grad_()
    C = torch.full((2, len(faces), 3), 0.5, requires_grad=True)
    L = LIGHT.repeat(2, 1).requires_grad_()
    r = HandRenderer(faces, 32, INPUT, orthographic=orthographic)
    out = r(verts, C, L, camera(2, orthographic))
    assert out.image.shape == (2, 3, 32, 32) and out.silhouette.shape == (2, 1, 32, 32)
    loss = ((out.image - 0.3) ** 2).mean() + out.silhouette.mean()
    loss.backward()
    for g in (verts.grad, C.grad, L.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_torch_face_selection_and_fragments_match_plain_pytorch3d():
    mesh = handlike_mesh()
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)[None] + torch.tensor([0.0, 0.02, 0.5])
    faces = torch.tensor(mesh.faces)
    C = 0.3 + 0.5 * torch.rand(1, len(faces), 3)
    outs, grads = [], []
    for opts in ({}, {"grad_mode": "pytorch3d", "face_selection": "pytorch3d"}):
        v = verts.clone().requires_grad_()
        out = HandRenderer(faces, 40, INPUT, **opts)(v, C, LIGHT, camera())
        (out.image.mean() + out.silhouette.mean()).backward()
        outs.append(out)
        grads.append(v.grad.flatten())
    assert (outs[0].image - outs[1].image).abs().max() < 1e-2
    assert (outs[0].silhouette - outs[1].silhouette).abs().max() < 1e-3
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


@pytest.mark.parametrize("sigma, k", [(1e-4, 4), (1e-5, 8)])
def test_front_face_pass_keeps_a_dense_mesh_solid(sigma, k):
    verts, faces = sphere([0.0, 0.0, 0.5], radius=0.04, subdivisions=4)  # faces much smaller than the blur
    R = 32
    r = HandRenderer(faces, R, INPUT, blur_sigma=sigma, faces_per_pixel=k)
    out = r(verts, torch.ones(1, len(faces), 3), None, camera())
    inside = (pixel_grid(R)[0] - 16) ** 2 + (pixel_grid(R)[1] - 16) ** 2 < (0.04 * F_PX / 0.5 * R / INPUT - 1) ** 2
    assert (out.silhouette[0, 0][inside] > 0.5).all()
    assert (out.pix_to_face[0][inside] >= 0).all()


def test_empty_render_is_background_with_finite_gradients():
    verts, faces = sphere([0.0, 0.0, -0.5])  # behind the camera
    verts.requires_grad_()
    r = HandRenderer(faces, 16, INPUT, background=(0.2, 0.4, 0.6))
    out = r(verts, torch.ones(1, len(faces), 3), LIGHT, camera())
    assert out.silhouette.abs().max() == 0
    assert torch.allclose(out.image[0, :, 3, 5], torch.tensor([0.2, 0.4, 0.6]))
    out.image.sum().backward()
    assert torch.isfinite(verts.grad).all()


# ---------------------------------------------------------------- painter
@pytest.mark.parametrize("R", [64, 128])
def test_painter_agrees_with_the_differentiable_renderer(R):
    mesh = handlike_mesh()
    verts = torch.tensor(mesh.vertices, dtype=torch.float32)[None] + torch.tensor([0.01, 0.02, 0.5])
    faces = torch.tensor(mesh.faces)
    C = torch.tensor([0.8, 0.6, 0.5]).expand(1, len(faces), 3)
    lit = lit_face_colors(verts, faces, C, LIGHT)  # smooth shading: comparable colours
    out = HandRenderer(faces, R, INPUT)(verts, C, LIGHT, camera())
    K = scale_intrinsics(camera()[0], INPUT, R).numpy()
    paint = render_mesh(verts[0].numpy(), mesh.faces, lit[0].numpy(), K, R)
    sil = out.silhouette[0, 0].numpy() > 0.5
    iou = (sil & paint.mask).sum() / (sil | paint.mask).sum()
    assert iou > 0.95
    core = cv2.erode((sil & paint.mask).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    diff = np.abs(out.image[0].permute(1, 2, 0).numpy() - paint.image / 255.0)[core]
    assert diff.mean() < 0.03, (iou, diff.mean())
    assert (paint.face_index >= 0).tolist() == paint.mask.tolist()


def test_painter_background_and_outputs():
    verts, faces = sphere([0.0, 0.0, 0.5], radius=0.03)
    K = scale_intrinsics(camera()[0], INPUT, 48).numpy()
    colors = np.tile([[0.2, 0.5, 0.9]], (len(faces), 1))
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    p = render_mesh(verts[0].numpy(), faces.numpy(), colors, K, 48, background=bg)
    assert p.image.dtype == np.uint8 and p.image.shape == (48, 48, 3)
    assert p.mask[24, 24] and not p.mask[0, 0]
    assert (p.image[0, 0] == bg[0, 0]).all()
    assert np.abs(p.image[24, 24].astype(int) - [51, 128, 230]).max() <= 1
    assert (p.depth[p.mask] > 0.45).all() and (p.depth[~p.mask] == 0).all()
    white = render_mesh(verts[0].numpy(), faces.numpy(), colors, K, 48)
    assert (white.image[0, 0] == 255).all() and (white.mask == p.mask).all()
    many = render_many(np.stack([verts[0].numpy()] * 2), faces.numpy(), np.stack([colors] * 2), np.stack([K] * 2), 48,
                       backgrounds=np.stack([bg] * 2))
    assert many.image.shape == (2, 48, 48, 3) and (many.image[1] == p.image).all()


# ---------------------------------------------------------------- face selection
def _posed_hands(layer, B: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        hand = layer(0.6 * torch.randn(B, 3, generator=g), torch.randn(B, 30, generator=g), torch.zeros(B, 10))
    place = torch.tensor([[0.0, 0.0, 0.5], [0.01, -0.01, 0.45], [-0.01, 0.0, 0.6], [0.0, 0.01, 0.4]])[:B]
    return hand.verts - hand.joints[:, 9:10] + place[:, None]  # (B, V, 3)


@pytest.mark.parametrize("R, orthographic", [(32, False), (64, False), (64, True), (97, False)])
def test_select_faces_matches_pytorch3d(layer, R, orthographic):
    """The vectorised selection picks pytorch3d's faces: the soft k (as sets: order differs only on
    exact depth ties) up to float rounding on the blur boundary, and the front face exactly."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    from s2hand.render.raster import select_faces

    verts = _posed_hands(layer)
    K = camera(len(verts), orthographic)
    r = HandRenderer(layer.faces, R, INPUT, orthographic=orthographic)
    ndc = r.to_ndc(verts, K)
    meshes = Meshes(verts=ndc, faces=layer.faces.expand(len(verts), -1, -1))
    ref = rasterize_meshes(meshes, image_size=R, blur_radius=r.blur_radius, faces_per_pixel=8, bin_size=0,
                           perspective_correct=not orthographic, clip_barycentric_coords=True)[0]
    ref_hard = rasterize_meshes(meshes, image_size=R, blur_radius=0.0, faces_per_pixel=1, bin_size=0,
                                perspective_correct=not orthographic)[0]
    soft, hard = select_faces(ndc, layer.faces, R, r.blur_radius, 8, perspective=not orthographic)
    assert (hard >= 0).float().mean() > 0.05  # hands in view
    assert torch.equal(hard, ref_hard)
    differ = (soft.sort(-1).values != ref.sort(-1).values).any(-1)
    assert differ.float().mean() < 2e-3
    assert (soft == ref).all(-1).float().mean() > 0.99


def test_select_faces_edge_cases(layer, monkeypatch):
    from s2hand.render.raster import select_faces

    verts = _posed_hands(layer, B=2)
    r = HandRenderer(layer.faces, 32, INPUT)
    ndc = r.to_ndc(verts, camera(2))
    # behind the camera: nothing; off to the side: nothing; too many pairs: None (caller falls back)
    for v in (ndc * torch.tensor([1.0, 1.0, -1.0]), ndc + torch.tensor([5.0, 0.0, 0.0])):
        soft, hard = select_faces(v, layer.faces, 32, r.blur_radius, 8)
        assert (soft == -1).all() and (hard == -1).all()
    assert select_faces(ndc, layer.faces, 32, r.blur_radius, 8, max_pairs=10) is None
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    # the renderer falls back to pytorch3d then and draws the same
    import s2hand.render.raster as raster

    C = torch.full((2, len(layer.faces), 3), 0.5)
    a = r(verts, C, LIGHT.repeat(2, 1), camera(2))
    calls = []
    monkeypatch.setattr(raster, "MAX_PAIRS", 10)
    monkeypatch.setattr("s2hand.render.renderer.rasterize_meshes",
                        lambda *a, **kw: calls.append(1) or rasterize_meshes(*a, **kw))
    b = r(verts, C, LIGHT.repeat(2, 1), camera(2))
    assert len(calls) == 2  # soft and front-face passes
    assert (a.silhouette - b.silhouette).abs().mean() < 1e-4
