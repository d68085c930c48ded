"""Natural hand motion: smooth trajectories with changing speed and pauses.

A trajectory is a list of keyframes at irregular times; between keyframes values move with a
smoothstep easing (zero velocity at each keyframe, so the hand slows down, and sometimes
holds still for a while: a pause). Vector quantities (finger pose, translation, light) are
eased linearly between keys; rotations are slerped with the same easing.

    times = keyframe_times(rng, n_frames=30, fps=30)
    s = eased_positions(times, n_frames)             # (T,) float key index, e.g. 0.0 .. 3.0
    pose = interpolate_vectors(keys (K, D), s)       # (T, D)
    rot = interpolate_rotations(keys Rotation[K], s) # Rotation[T]
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def keyframe_times(rng: np.random.Generator, n_frames: int, fps: float, mean_gap_s: float = 0.45) -> np.ndarray:
    """Frame positions of keyframes, (K,) floats starting at 0 and ending at >= n_frames - 1.

    Gaps are drawn around `mean_gap_s`, so speed changes from segment to segment. Pauses are
    chosen separately (`pause_mask`, `apply_pauses`: a key repeating the previous one)."""
    times = [0.0]
    while times[-1] < n_frames - 1:
        gap = max(2.0, rng.gamma(3.0, mean_gap_s * fps / 3.0))
        times.append(times[-1] + gap)
    return np.asarray(times)


def pause_mask(rng: np.random.Generator, n_keys: int, pause_prob: float = 0.3) -> np.ndarray:
    """(K,) bool: key k repeats key k-1 (a pause). Key 0 never pauses."""
    m = rng.random(n_keys) < pause_prob
    m[0] = False
    return m


def eased_positions(times: np.ndarray, n_frames: int) -> np.ndarray:
    """(T,) fractional key index per frame, with smoothstep easing inside each segment."""
    t = np.arange(n_frames, dtype=np.float64)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    u = (t - times[seg]) / (times[seg + 1] - times[seg])
    u = np.clip(u, 0.0, 1.0)
    eased = u * u * (3.0 - 2.0 * u)
    return seg + eased


def apply_pauses(keys: np.ndarray, pauses: np.ndarray) -> np.ndarray:
    """Repeat the previous key wherever `pauses` is set. keys (K, ...)."""
    keys = keys.copy()
    for k in range(1, len(keys)):
        if pauses[k]:
            keys[k] = keys[k - 1]
    return keys


def interpolate_vectors(keys: np.ndarray, s: np.ndarray) -> np.ndarray:
    """keys (K, D), s (T,) fractional key index -> (T, D)."""
    k0 = np.clip(np.floor(s).astype(int), 0, len(keys) - 1)
    k1 = np.clip(k0 + 1, 0, len(keys) - 1)
    w = (s - k0)[:, None]
    return (1 - w) * keys[k0] + w * keys[k1]


def interpolate_rotations(keys: Rotation, s: np.ndarray) -> Rotation:
    """K key rotations, s (T,) fractional key index -> T rotations (slerp between keys)."""
    idx = np.arange(len(keys), dtype=np.float64)
    return Slerp(idx, keys)(np.clip(s, 0, len(keys) - 1))
