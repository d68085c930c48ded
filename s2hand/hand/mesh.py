"""Face normals of a triangle mesh: the one implementation that lighting (s2hand.render.lighting),
the hand layer's canonical normals and the figures' shading share.

    n = face_normals(verts, faces)     # verts (..., V, 3), faces (F, 3) -> (..., F, 3) unit normals

Torch tensors in, torch out (differentiable); numpy arrays in, numpy out (same computation, in the
arrays' dtype). The normal of face (v0, v1, v2) is (v1 - v0) x (v2 - v0), normalised: outward for a
mesh wound counter-clockwise seen from outside (right-hand rule, as MANO and trimesh are).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def face_normals(verts: Tensor | np.ndarray, faces: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """(..., V, 3) vertices, (F, 3) faces -> (..., F, 3) unit normals (v1 - v0) x (v2 - v0)
    (a degenerate face gives 0)."""
    if isinstance(verts, np.ndarray):
        faces_t = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
        return face_normals(torch.from_numpy(np.ascontiguousarray(verts)), faces_t).numpy()
    v0, v1, v2 = (verts[..., faces[:, k], :] for k in range(3))  # (..., F, 3) each
    return F.normalize(torch.cross(v1 - v0, v2 - v0, dim=-1), dim=-1, eps=1e-12)
