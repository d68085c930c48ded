"""A model's predictions over a whole split (eval mode, unaugmented frames, numpy out).

    preds = predict(system, dataset, batch_size=32, device="cpu")   # joints, verts, j_pro, hg
    preds = predict(system, dataset, 32, "cpu", video=True)         # + pose, shape, lit (video_metrics)
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from s2hand.render.lighting import shade_faces

from .system import S2HandSystem


@torch.no_grad()
def predict(system: S2HandSystem, dataset, batch_size: int, device: torch.device | str,
            branch: str = "all", num_workers: int = 0, video: bool = False) -> dict[str, np.ndarray]:
    """Run the network over a whole (unaugmented) dataset in eval mode -> numpy arrays:
    joints (N, 21, 3), verts (N, V, 3), j_pro (N, 21, 2) [3D branch], hg (N, 21, 2) [2D branch];
    with video also pose (N, 48), shape (N, 10) and lit (N, F, 3) (texture lit with the canonical
    face normals, as E_T&S sees it) for video_metrics."""
    modes = [(m, m.training) for m in system.modules()]  # restored module by module (frozen BatchNorm stays so)
    system.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    acc: dict[str, list] = {}
    try:
        for batch in loader:
            images = batch["image"].to(device)
            K = batch["K"].to(device)
            if system.autocast_dtype is not None and images.is_cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            out = system.run_net(images, branch, ddp=False)
            if out["pose_pca"] is not None:
                pred = system.decode(out, K)
                for k, v in (("joints", pred.joints), ("verts", pred.verts), ("j_pro", pred.j_pro)):
                    acc.setdefault(k, []).append(v.float().cpu().numpy())
                if video:
                    normals = system.layer.canonical_face_normals().to(out["face_colors"])
                    lit = shade_faces(normals, out["face_colors"].float(), out["light"].float())
                    for k, v in (("pose", pred.full_pose), ("shape", out["shape"]), ("lit", lit)):
                        acc.setdefault(k, []).append(v.float().cpu().numpy())
            if out["kp2d"] is not None:
                acc.setdefault("hg", []).append(out["kp2d"][-1].float().cpu().numpy())
    finally:
        for m, mode in modes:
            m.training = mode
    return {k: np.concatenate(v) for k, v in acc.items()}
