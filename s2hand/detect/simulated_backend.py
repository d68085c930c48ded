"""Simulated detector: ground-truth 2D keypoints plus noise whose size and confidence depend
on how hard each keypoint is to see. A stand-in for OpenPose where no detector runs; it reads
no images, only the frame table (joints2d; visible, joints3d and K when present).

    kp = detect(table, seed=0)                      # default NoiseModel
    kp = detect(table, seed=1, sigma=0.05)          # any NoiseModel field as a keyword

Noise model, per frame n and keypoint i (all sizes relative to the hand size h_n = diagonal of
the bounding box of the 21 ground-truth 2D keypoints, px):
    difficulty  d = occ + w_self * self + w_fore * fore                       (>= 0)
        occ  = 1 where `visible` is False (object or image border), else 0
        self = clip((z_i - z_palm) / (depth_scale * H3d), 0, 1): self-occlusion proxy, how far
               the keypoint lies behind the palm (z_palm = mean depth of the wrist and the five
               MCP/CMC joints, H3d = diagonal of the 3D keypoints' bounding box)
        fore = clip(1 - |bone_2d| / (f |bone_3d| / z_bone), 0, 1): foreshortening of the bone
               ending at the keypoint (0 parallel to the image, 1 pointing at the camera;
               f = mean focal length of K); 0 for the wrist
    position    gt + N(0, (sigma + sigma_hard * d)^2 h^2) per axis; with probability
                outlier_prob * (1 + outlier_gain * d) the keypoint is instead an outlier, moved
                uniformly inside a disc of radius outlier_scale * h
    confidence  conf_max * exp(-conf_decay * d) * exp(conf_jitter * N(0, 1)), times
                outlier_conf for outliers, clipped to [0.01, 1]
    misses      a keypoint is missed with probability min(1, keypoint_miss_prob * d); a whole
                frame with probability frame_miss_prob + frame_miss_occluded * (fraction of
                keypoints with occ = 1). Missed keypoints get confidence 0 and position (0, 0),
                as OpenPose writes them.
One numpy Generator seeded with `seed` draws every random number in a fixed order, so the same
table and seed give the same output.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from s2hand.data.table import FrameTable
from s2hand.detect.keypoint_file import Keypoints
from s2hand.hand.keypoints import BONES

PALM = (0, 1, 5, 9, 13, 17)  # wrist and the base joint of each finger (OpenPose order)


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    sigma: float = 0.02  # base position noise std (fraction of hand size)
    sigma_hard: float = 0.08  # extra std per unit of difficulty
    w_self: float = 0.6  # weight of the self-occlusion proxy in the difficulty
    w_fore: float = 0.4  # weight of the foreshortening proxy in the difficulty
    depth_scale: float = 0.25  # depth behind the palm (fraction of 3D hand size) that counts as fully hidden
    outlier_prob: float = 0.01  # base probability of a gross outlier
    outlier_gain: float = 4.0  # outlier probability grows by this factor per unit of difficulty
    outlier_scale: float = 0.3  # outlier displacement radius (fraction of hand size)
    outlier_conf: float = 0.5  # confidence factor of outliers (the detector half-knows)
    conf_max: float = 0.9  # confidence of an easy keypoint
    conf_decay: float = 1.2  # confidence falls as exp(-conf_decay * difficulty)
    conf_jitter: float = 0.15  # log-normal spread of the confidence
    keypoint_miss_prob: float = 0.1  # per unit of difficulty
    frame_miss_prob: float = 0.02  # whole-frame miss, base
    frame_miss_occluded: float = 0.3  # whole-frame miss, per fraction of occluded keypoints

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"simulated backend: {f.name} must be >= 0, got {getattr(self, f.name)}")


def difficulty_terms(table: FrameTable, depth_scale: float = 0.25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(occ, self, fore), each (N, 21) in [0, 1]; see the module docstring."""
    n = len(table)
    occ = np.zeros((n, 21)) if table.visible is None else (~np.asarray(table.visible, bool)).astype(np.float64)
    selfo = np.zeros((n, 21))
    fore = np.zeros((n, 21))
    if table.joints3d is not None:
        j3 = np.asarray(table.joints3d, np.float64)  # (N, 21, 3)
        size3 = np.linalg.norm(j3.max(1) - j3.min(1), axis=-1)  # (N,)
        z_palm = j3[:, PALM, 2].mean(1)  # (N,)
        selfo = np.clip((j3[..., 2] - z_palm[:, None]) / np.maximum(depth_scale * size3[:, None], 1e-9), 0, 1)
        if table.joints2d is not None and table.K is not None:
            j2 = np.asarray(table.joints2d, np.float64)
            f = 0.5 * (table.K[:, 0, 0] + table.K[:, 1, 1])  # (N,)
            par = np.array([p for p, _ in BONES])
            chi = np.array([c for _, c in BONES])
            len2 = np.linalg.norm(j2[:, chi] - j2[:, par], axis=-1)  # (N, 20)
            len3 = np.linalg.norm(j3[:, chi] - j3[:, par], axis=-1)
            z = np.maximum(0.5 * (j3[:, chi, 2] + j3[:, par, 2]), 1e-6)
            expected = f[:, None] * len3 / z
            fore[:, chi] = np.clip(1 - len2 / np.maximum(expected, 1e-9), 0, 1)
    return occ, selfo, fore


def detect(table: FrameTable, image_root: str | Path | None = None, *, seed: int = 0, **noise) -> Keypoints:
    """Noisy keypoints for every row of `table`; `noise` overrides NoiseModel fields."""
    unknown = set(noise) - {f.name for f in dataclasses.fields(NoiseModel)}
    if unknown:
        raise TypeError(f"simulated backend: unknown noise parameters {sorted(unknown)}")
    m = NoiseModel(**noise)
    if table.joints2d is None:
        raise ValueError("simulated backend: this frame table has no joints2d annotation")
    gt = np.asarray(table.joints2d, np.float64)  # (N, 21, 2)
    n = len(table)
    rng = np.random.default_rng(seed)

    occ, selfo, fore = difficulty_terms(table, m.depth_scale)
    d = occ + m.w_self * selfo + m.w_fore * fore  # (N, 21)
    h = np.maximum(np.linalg.norm(gt.max(1) - gt.min(1), axis=-1), 1.0)[:, None]  # (N, 1) px

    # fixed draw order: gaussian, outlier flag, outlier offset, confidence jitter, misses
    gauss = rng.standard_normal((n, 21, 2))
    u_out = rng.random((n, 21))
    ang = rng.random((n, 21)) * 2 * np.pi
    rad = np.sqrt(rng.random((n, 21)))
    jitter = rng.standard_normal((n, 21))
    u_kmiss = rng.random((n, 21))
    u_fmiss = rng.random(n)

    peaks = gt + gauss * ((m.sigma + m.sigma_hard * d) * h)[..., None]
    outlier = u_out < m.outlier_prob * (1 + m.outlier_gain * d)
    offset = np.stack([np.cos(ang), np.sin(ang)], -1) * (rad * m.outlier_scale * h)[..., None]
    peaks = np.where(outlier[..., None], gt + offset, peaks)

    conf = m.conf_max * np.exp(-m.conf_decay * d) * np.exp(m.conf_jitter * jitter)
    conf = np.clip(np.where(outlier, conf * m.outlier_conf, conf), 0.01, 1.0)

    missed = u_kmiss < np.minimum(1.0, m.keypoint_miss_prob * d)
    missed |= (u_fmiss < m.frame_miss_prob + m.frame_miss_occluded * occ.mean(1))[:, None]
    conf[missed] = 0.0
    peaks[missed] = 0.0
    return Keypoints(peaks.astype(np.float32), conf.astype(np.float32), [str(s) for s in table.image])
