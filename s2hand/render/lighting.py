"""Per-face lighting of the texture code (method.md s3):

    lit colour = (l_a * c_a + l_d * c_d * max(0, n . d)) * C

L (B, 11) = [l_a (1), c_a (3), l_d (1), c_d (3), d (3)]. n is the unit face normal, outward for a
mesh wound counter-clockwise seen from outside (right-hand rule, as MANO and trimesh are), in the
same camera frame as the vertices. d is normalised here and points FROM THE SURFACE TOWARDS THE
LIGHT: a face whose outward normal equals d gets the full directional term. In camera coordinates
(x right, y down, z forward) d = (0, 0, -1) is a light at the camera, lighting the faces that face
the camera.

No clamping of the colour: the caller decides (the released code feeds tanh(texture)).

    normals = face_normals(verts, faces)                      # (B, F, 3), s2hand.hand.mesh
    lit = lit_face_colors(verts, faces, face_colors, light)   # (B, F, 3)
    lit = shade_faces(canonical_normals, face_colors, light)  # S2HAND(V)'s E_ts: given normals
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from s2hand.hand.mesh import face_normals


class Light(NamedTuple):
    ambient_intensity: Tensor  # (B, 1) l_a
    ambient_color: Tensor  # (B, 3) c_a
    directional_intensity: Tensor  # (B, 1) l_d
    directional_color: Tensor  # (B, 3) c_d
    direction: Tensor  # (B, 3) d, unit, surface -> light


def split_light(light: Tensor) -> Light:
    """(B, 11) light code -> its named parts, direction normalised."""
    assert light.shape[-1] == 11, light.shape
    l_a, c_a, l_d, c_d, d = torch.split(light, [1, 3, 1, 3, 3], dim=-1)
    return Light(l_a, c_a, l_d, c_d, F.normalize(d, dim=-1, eps=1e-8))


def shade_faces(normals: Tensor, face_colors: Tensor, light: Tensor) -> Tensor:
    """Lit colours from given normals (B, F, 3) or (F, 3), colours (B, F, 3), light (B, 11) -> (B, F, 3)."""
    L = split_light(light)
    cos = (normals * L.direction[:, None, :]).sum(-1, keepdim=True).clamp(min=0.0)  # (B, F, 1)
    ambient = (L.ambient_intensity * L.ambient_color)[:, None, :]  # (B, 1, 3)
    directional = (L.directional_intensity * L.directional_color)[:, None, :]  # (B, 1, 3)
    return (ambient + directional * cos) * face_colors


def lit_face_colors(verts: Tensor, faces: Tensor, face_colors: Tensor, light: Tensor) -> Tensor:
    """(B, V, 3) posed vertices, (F, 3) faces, (B, F, 3) colours C, (B, 11) light -> (B, F, 3)."""
    return shade_faces(face_normals(verts, faces), face_colors, light)
