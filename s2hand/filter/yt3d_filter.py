"""Keep the continuous stretches of videos, judged by detected 2D keypoints (method.md s8:
YouTube-3D-Hands kept 34 of 102 videos, 21,628 frames, after dropping cuts and frames where
the detection collapses).

    res = filter_continuous(table.seq, table.frame, kp.peaks, kp.conf, jump_threshold=0.35)
    table.subset(res.keep)                       # rows inside kept stretches
    cut_detection_scores(res.cuts, true_cuts(table), tolerance=1)

Per video (rows grouped by `seq`, ordered by `frame`):
 1. A frame is dropped when its mean keypoint confidence is below `min_mean_conf`
    (confidence collapse). Dropped frames end the current stretch; they are not cuts.
 2. Between consecutive kept frames a and b (at most `max_gap` frame numbers apart, counting
    dropped frames; a larger gap breaks the stretch without a cut) a cut is declared before b
    when
        jump  = median over keypoints confident in both (conf > kp_conf) of |p_b - p_a|
                / hand size (3 x median pairwise keypoint distance, about the bounding-box
                  diagonal of a whole hand; see keypoint_jump)
                > jump_threshold
    or  jump > min_jump and jump > motion_ratio x (median jump over the last `motion_window`
        frame pairs of the current stretch, at least 3): sudden against the video's own motion
        and detector jitter (motion_ratio None turns this rule off)
    or  |log(size_b / size_a)| > log(scale_ratio_threshold)    (the hand changes size at once)
    or  fewer than `min_common` keypoints are confident in both (continuity cannot be checked;
        counted as a cut).
    Before declaring the cut, the next `lookahead` kept frames c are tried: if one continues a
    (no rule fires) and lies nearer a than b, the frames from b to before c are one-off bad
    detections ("glitches"): dropped, ending the stretch like a collapse, without a cut.
 3. Stretches shorter than `min_stretch` frames are dropped; a video with fewer than
    `min_video_frames` rows (or, with `videos` given, none at all) is reported unavailable.
 4. Several rows with the same (seq, frame) (YT 3D: two hands in a frame): the one nearest the
    last kept row (smallest jump) is followed, the others are left out (n_duplicates).
A cut is reported as (seq, frame): the cut happens right before that frame, as FrameTable.cut.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Stretch:
    seq: int
    first_frame: int
    last_frame: int
    n: int  # kept frames in the stretch
    rows: tuple[int, ...]  # row indices into the input arrays, in frame order

    def to_dict(self) -> dict:
        return {"seq": self.seq, "first_frame": self.first_frame, "last_frame": self.last_frame, "n": self.n}


@dataclasses.dataclass
class FilterResult:
    stretches: list[Stretch]  # kept stretches, by seq then first frame
    cuts: list[tuple[int, int]]  # detected cuts (seq, frame)
    keep: np.ndarray  # (N,) bool: row belongs to a kept stretch
    low_conf: np.ndarray  # (N,) bool: row dropped for collapsed confidence
    short_stretches: list[Stretch]  # stretches dropped as too short
    unavailable: list[int]  # videos with no or too few rows
    n_duplicates: int = 0  # rows skipped because another hand of the same frame was followed
    glitch: np.ndarray | None = None  # (N,) bool: row dropped as a one-off bad detection

    def summary(self) -> dict:
        """JSON-ready counts and the kept stretches."""
        kept_videos = sorted({s.seq for s in self.stretches})
        return {
            "n_rows": int(len(self.keep)),
            "n_kept_frames": int(self.keep.sum()),
            "n_kept_stretches": len(self.stretches),
            "n_kept_videos": len(kept_videos),
            "n_cuts": len(self.cuts),
            "n_low_conf_frames": int(self.low_conf.sum()),
            "n_short_stretches": len(self.short_stretches),
            "n_short_stretch_frames": int(sum(s.n for s in self.short_stretches)),
            "unavailable_videos": [int(v) for v in self.unavailable],
            "n_duplicate_rows": self.n_duplicates,
            "n_glitch_frames": int(self.glitch.sum()) if self.glitch is not None else 0,
            "stretches": [s.to_dict() for s in self.stretches],
            "cuts": [[int(s), int(f)] for s, f in self.cuts],
        }


def _frame_groups(rows: np.ndarray, frame: np.ndarray):
    """(frame number, [rows]) in frame order; rows must be sorted by frame."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or frame[rows[i]] != frame[rows[start]]:
            yield int(frame[rows[start]]), [int(r) for r in rows[start:i]]
            start = i


def keypoint_jump(pa: np.ndarray, ca: np.ndarray, pb: np.ndarray, cb: np.ndarray,
                  kp_conf: float = 0.1) -> tuple[float, float, int]:
    """(jump, |log scale ratio|, common) between two frames' keypoints (21, 2) and confidences
    (21,), over the keypoints confident in both; jump and ratio are inf below 3 such keypoints.
    Hand size = 3 x median pairwise distance of those keypoints (about the bounding-box
    diagonal of a whole hand, but robust to a few outlying keypoints); scale ratio = median
    over keypoint pairs of log(distance in b / distance in a)."""
    common = (ca > kp_conf) & (cb > kp_conf)
    k = int(common.sum())
    if k < 3:
        return float("inf"), float("inf"), k
    a, b = pa[common], pb[common]
    i, j = np.triu_indices(k, 1)
    da, db = np.linalg.norm(a[i] - a[j], axis=-1), np.linalg.norm(b[i] - b[j], axis=-1)
    ok = (da > 0) & (db > 0)
    size = 1.5 * (np.median(da) + np.median(db))
    if not ok.any() or size <= 0:
        return float("inf"), float("inf"), k
    disp = float(np.median(np.linalg.norm(b - a, axis=-1)))
    return disp / size, abs(float(np.median(np.log(db[ok] / da[ok])))), k


def filter_continuous(seq: np.ndarray, frame: np.ndarray, peaks: np.ndarray, conf: np.ndarray, *,
                      jump_threshold: float = 0.35, min_jump: float = 0.12, motion_ratio: float | None = 4.0,
                      motion_window: int = 10, scale_ratio_threshold: float = 1.5,
                      min_mean_conf: float = 0.2, kp_conf: float = 0.1, min_common: int = 5,
                      max_gap: int = 3, lookahead: int = 2, min_stretch: int = 10, min_video_frames: int = 1,
                      videos: Iterable[int] | None = None) -> FilterResult:
    """Split videos into continuous stretches (see the module docstring); all arrays share N rows:
    seq (N,), frame (N,), peaks (N, 21, 2), conf (N, 21)."""
    seq = np.asarray(seq, np.int64)
    frame = np.asarray(frame, np.int64)
    peaks = np.asarray(peaks, np.float64)
    conf = np.asarray(conf, np.float64)
    n = len(seq)
    if frame.shape != (n,) or peaks.shape != (n, 21, 2) or conf.shape != (n, 21):
        raise ValueError(f"filter_continuous: shapes seq {seq.shape}, frame {frame.shape}, peaks {peaks.shape}, "
                         f"conf {conf.shape} do not share N = {n} rows of (), (), (21, 2), (21,)")
    if (scale_ratio_threshold < 1 or jump_threshold <= 0 or min_stretch < 1 or max_gap < 1 or min_jump < 0
            or motion_window < 1 or lookahead < 0 or (motion_ratio is not None and motion_ratio <= 1)):
        raise ValueError("filter_continuous: need scale_ratio_threshold >= 1, jump_threshold > 0, min_jump >= 0, "
                         "motion_ratio > 1 (or None), motion_window >= 1, lookahead >= 0, min_stretch >= 1, "
                         "max_gap >= 1")

    low_conf = conf.mean(1) < min_mean_conf
    glitch = np.zeros(n, bool)
    keep = np.zeros(n, bool)
    stretches: list[Stretch] = []
    short: list[Stretch] = []
    cuts: list[tuple[int, int]] = []
    all_videos = sorted({int(v) for v in np.unique(seq)} | {int(v) for v in (videos or [])})
    unavailable = []
    duplicates = 0
    log_ratio = float(np.log(scale_ratio_threshold))

    def continuous(a: int, b: int, motion: list[float]) -> bool:
        """Frame b continues frame a (the cut rules of the module docstring, none firing)."""
        jump, dscale, k = keypoint_jump(peaks[a], conf[a], peaks[b], conf[b], kp_conf)
        if k < min_common or jump > jump_threshold or dscale > log_ratio:
            return False
        gap = int(frame[b] - frame[a])
        local = float(np.median(motion[-motion_window:])) if len(motion) >= 3 else float("inf")
        return not (motion_ratio is not None and jump > min_jump and jump / gap > motion_ratio * local)

    def pick(group: list[int], prev: int | None) -> int:
        """One row of a frame: the only one, else the one nearest the last kept row."""
        if len(group) == 1:
            return group[0]
        if prev is None:
            return max(group, key=lambda g: conf[g].mean())
        return min(group, key=lambda g: keypoint_jump(peaks[prev], conf[prev], peaks[g], conf[g], kp_conf)[0])

    for vid in all_videos:
        rows = np.flatnonzero(seq == vid)
        if len(rows) == 0 or len(rows) < min_video_frames:
            unavailable.append(vid)
            continue
        rows = rows[np.argsort(frame[rows], kind="stable")]
        groups = [[r for r in g if not low_conf[r]] for _, g in _frame_groups(rows, frame)]  # [] = collapsed
        duplicates += sum(max(len(g) - 1, 0) for g in groups)
        current: list[int] = []
        motion: list[float] = []  # per-frame jumps inside the current stretch

        def close() -> None:
            if current:
                s = Stretch(int(vid), int(frame[current[0]]), int(frame[current[-1]]), len(current), tuple(current))
                (stretches if s.n >= min_stretch else short).append(s)
                keep[list(current)] = s.n >= min_stretch
            current.clear()
            motion.clear()

        prev = None  # last kept row (also across dropped frames, to see cuts hidden among them)
        i = 0
        while i < len(groups):
            if not groups[i]:
                close()
                i += 1
                continue
            r = pick(groups[i], prev)
            if prev is not None and int(frame[r] - frame[prev]) > max_gap:
                close()  # too far apart to judge continuity: a break, not a cut
            elif prev is not None and not continuous(prev, r, motion):
                # a glitch (one bad detection) if a frame within `lookahead` continues prev
                resume = None
                for m in range(i + 1, min(i + 1 + lookahead, len(groups))):
                    if not groups[m]:
                        continue
                    r2 = pick(groups[m], prev)
                    if int(frame[r2] - frame[prev]) > max_gap:
                        break
                    back = keypoint_jump(peaks[prev], conf[prev], peaks[r2], conf[r2], kp_conf)[0]
                    ahead = keypoint_jump(peaks[r], conf[r], peaks[r2], conf[r2], kp_conf)[0]
                    if back < ahead and continuous(prev, r2, motion):  # r2 resumes prev, not r
                        resume = m
                        break
                if resume is not None:
                    for g in groups[i:resume]:
                        glitch[g] = True
                    close()  # the glitch breaks the stretch like a collapse, without a cut
                    i = resume
                    continue
                cuts.append((int(vid), int(frame[r])))
                close()
            elif prev is not None and current:
                jump = keypoint_jump(peaks[prev], conf[prev], peaks[r], conf[r], kp_conf)[0]
                motion.append(jump / int(frame[r] - frame[prev]))
            current.append(int(r))
            prev = r
            i += 1
        close()
    return FilterResult(stretches, cuts, keep, low_conf, short, unavailable, duplicates, glitch)


def true_cuts(seq: np.ndarray, frame: np.ndarray, cut: np.ndarray) -> list[tuple[int, int]]:
    """Ground-truth cuts (seq, frame) from FrameTable.seq/frame/cut."""
    idx = np.flatnonzero(np.asarray(cut, bool))
    return [(int(seq[i]), int(frame[i])) for i in idx]


def cut_detection_scores(pred_cuts: Sequence[tuple[int, int]], true_cuts: Sequence[tuple[int, int]],
                         tolerance: int = 0) -> dict:
    """Precision, recall and F1 of detected cuts; a prediction matches an unmatched true cut of
    the same video at most `tolerance` frames away (greedy, nearest first). With no true and no
    predicted cuts all three are 1."""
    pred = sorted({(int(s), int(f)) for s, f in pred_cuts})
    true = sorted({(int(s), int(f)) for s, f in true_cuts})
    pairs = sorted(
        (abs(pf - tf), i, j)
        for i, (ps, pf) in enumerate(pred) for j, (ts, tf) in enumerate(true)
        if ps == ts and abs(pf - tf) <= tolerance
    )
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    tp = len(used_p)
    fp, fn = len(pred) - tp, len(true) - tp
    precision = tp / len(pred) if pred else (1.0 if not true else 0.0)
    recall = tp / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def filter_table(table, keypoints, **thresholds) -> FilterResult:
    """filter_continuous on a FrameTable and its Keypoints (matched by image name)."""
    kp = keypoints.reorder(table.image)
    return filter_continuous(table.seq, table.frame, kp.peaks, kp.conf, **thresholds)
