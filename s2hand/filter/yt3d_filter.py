"""Keep the continuous stretches of videos, judged by detected 2D keypoints (method.md s8:
YouTube-3D-Hands kept 34 of 102 videos, 21,628 frames, after dropping cuts and frames where
the detection collapses), with the shot cuts found in the images.

    res = filter_table(table, kp, image_root=dataset_root)   # thumbnails of table.image
    res = filter_continuous(table.seq, table.frame, kp.peaks, kp.conf, thumbs=None)  # keypoints only
    table.subset(res.keep)                       # rows inside kept stretches
    cut_detection_scores(res.cuts, true_cuts(table), tolerance=1)

Per video (rows grouped by `seq`, ordered by `frame`):
 0. Cuts (with `thumbs`): before every frame whose thumbnail changes from the previous frame's
    by more than `image_change` and `image_ratio` x the median change around it
    (shots.image_cuts). Found on every frame, also where no hand is detected. A cut ends the
    current stretch; the next shot owes the last one no keypoint continuity.
 1. A frame is dropped when its mean keypoint confidence is below `min_mean_conf`
    (confidence collapse). Dropped frames end the current stretch; they are not cuts.
 2. Between consecutive kept frames a and b (at most `max_gap` frame numbers apart, counting
    dropped frames; a larger gap breaks the stretch without a cut) the keypoints break
    continuity before b when
        jump  = median over keypoints confident in both (conf > kp_conf) of |p_b - p_a|
                / hand size (3 x median pairwise keypoint distance, about the bounding-box
                  diagonal of a whole hand; see keypoint_jump)
                > jump_threshold
    or  jump > min_jump and jump > motion_ratio x (median jump over the last `motion_window`
        frame pairs of the current stretch, at least 3): sudden against the video's own motion
        and detector jitter (motion_ratio None turns this rule off)
    or  |log(size_b / size_a)| > log(scale_ratio_threshold)    (the hand changes size at once)
    or  fewer than `min_common` keypoints are confident in both (continuity cannot be checked).
    Before declaring the break, the next `lookahead` kept frames c are tried: if one continues
    a (no rule fires) and lies nearer a than b, the frames from b to before c are one-off bad
    detections ("glitches"): dropped, ending the stretch like a collapse.
    Else the stretch ends before b: a jump (with thumbs: inside a shot the keypoints jump where
    the detector goes wrong for a few frames, not at cuts) or, without thumbs, a cut.
 3. Stretches shorter than `min_stretch` frames are dropped; a video with fewer than
    `min_video_frames` rows (or, with `videos` given, none at all) is reported unavailable.
 4. Several rows with the same (seq, frame) (YT 3D: two hands in a frame): the one nearest the
    last kept row (smallest jump) is followed, the others are left out (n_duplicates).
A cut (and a jump) is reported as (seq, frame): it happens right before that frame, as
FrameTable.cut.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from s2hand.filter.shots import image_cuts, thumbnails


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
    jumps: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # keypoint breaks that are no image cut

    def summary(self) -> dict:
        """JSON-ready counts and the kept stretches."""
        kept_videos = sorted({s.seq for s in self.stretches})
        return {
            "n_rows": int(len(self.keep)),
            "n_kept_frames": int(self.keep.sum()),
            "n_kept_stretches": len(self.stretches),
            "n_kept_videos": len(kept_videos),
            "n_cuts": len(self.cuts),
            "n_jumps": len(self.jumps),
            "n_low_conf_frames": int(self.low_conf.sum()),
            "n_short_stretches": len(self.short_stretches),
            "n_short_stretch_frames": int(sum(s.n for s in self.short_stretches)),
            "unavailable_videos": [int(v) for v in self.unavailable],
            "n_duplicate_rows": self.n_duplicates,
            "n_glitch_frames": int(self.glitch.sum()) if self.glitch is not None else 0,
            "stretches": [s.to_dict() for s in self.stretches],
            "cuts": [[int(s), int(f)] for s, f in self.cuts],
            "jumps": [[int(s), int(f)] for s, f in self.jumps],
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
                      videos: Iterable[int] | None = None, thumbs: np.ndarray | None = None,
                      image_change: float | None = 0.042, image_ratio: float | None = 3.0) -> FilterResult:
    """Split videos into continuous stretches (see the module docstring); all arrays share N rows:
    seq (N,), frame (N,), peaks (N, 21, 2), conf (N, 21), thumbs (N, D) (shots.thumbnails; NaN
    rows: unreadable). With thumbs (and image_change not None) cuts come from the images and
    keypoint discontinuities are jumps; without, the keypoint rules give the cuts."""
    seq = np.asarray(seq, np.int64)
    frame = np.asarray(frame, np.int64)
    peaks = np.asarray(peaks, np.float64)
    conf = np.asarray(conf, np.float64)
    n = len(seq)
    by_image = thumbs is not None and image_change is not None
    if frame.shape != (n,) or peaks.shape != (n, 21, 2) or conf.shape != (n, 21) or (
            by_image and (np.ndim(thumbs) != 2 or len(thumbs) != n)):
        raise ValueError(f"filter_continuous: shapes seq {seq.shape}, frame {frame.shape}, peaks {peaks.shape}, "
                         f"conf {conf.shape}, thumbs {None if thumbs is None else np.shape(thumbs)} do not share "
                         f"N = {n} rows of (), (), (21, 2), (21,), (D,)")
    if (scale_ratio_threshold < 1 or jump_threshold <= 0 or min_stretch < 1 or max_gap < 1 or min_jump < 0
            or motion_window < 1 or lookahead < 0 or (motion_ratio is not None and motion_ratio <= 1)
            or (image_change is not None and image_change <= 0) or (image_ratio is not None and image_ratio <= 1)):
        raise ValueError("filter_continuous: need scale_ratio_threshold >= 1, jump_threshold > 0, min_jump >= 0, "
                         "motion_ratio > 1 (or None), motion_window >= 1, lookahead >= 0, min_stretch >= 1, "
                         "max_gap >= 1, image_change > 0 (or None), image_ratio > 1 (or None)")
    rules = _CutRules(frame, peaks, conf, jump_threshold, min_jump, motion_ratio, motion_window,
                      float(np.log(scale_ratio_threshold)), kp_conf, min_common, max_gap, lookahead)
    low_conf = conf.mean(1) < min_mean_conf
    found = _Found(frame, min_stretch, keep=np.zeros(n, bool), glitch=np.zeros(n, bool))
    for vid in sorted({int(v) for v in np.unique(seq)} | {int(v) for v in (videos or [])}):
        rows = np.flatnonzero(seq == vid)
        if len(rows) == 0 or len(rows) < min_video_frames:
            found.unavailable.append(vid)
            continue
        rows = rows[np.argsort(frame[rows], kind="stable")]
        frames, all_groups = zip(*_frame_groups(rows, frame))
        groups = [[r for r in g if not low_conf[r]] for g in all_groups]  # [] = collapsed
        found.duplicates += sum(max(len(g) - 1, 0) for g in groups)
        shot_start = np.zeros(len(groups), bool)  # an image cut right before the frame
        if by_image:
            firsts = [g[0] for g in all_groups]  # a frame's rows share its image
            shot_start[image_cuts(np.asarray(frames), np.asarray(thumbs, np.float64)[firsts], image_change,
                                  image_ratio, motion_window, max_gap)] = True
        _scan_video(vid, list(frames), groups, shot_start, rules, found, kp_cuts=not by_image)
    return FilterResult(found.stretches, found.cuts, found.keep, low_conf, found.short, found.unavailable,
                        found.duplicates, found.glitch, found.jumps)


@dataclasses.dataclass(frozen=True)
class _CutRules:
    """The cut rules of the module docstring over the rows' frame (N,), peaks (N, 21, 2) and conf
    (N, 21), with filter_continuous's thresholds."""
    frame: np.ndarray
    peaks: np.ndarray
    conf: np.ndarray
    jump_threshold: float
    min_jump: float
    motion_ratio: float | None
    motion_window: int
    log_ratio: float  # log(scale_ratio_threshold)
    kp_conf: float
    min_common: int
    max_gap: int
    lookahead: int

    def jump(self, a: int, b: int) -> tuple[float, float, int]:
        """keypoint_jump from row a to row b."""
        return keypoint_jump(self.peaks[a], self.conf[a], self.peaks[b], self.conf[b], self.kp_conf)

    def gap(self, a: int, b: int) -> int:
        """Frame numbers from row a to row b."""
        return int(self.frame[b] - self.frame[a])

    def continuous(self, a: int, b: int, motion: list[float]) -> bool:
        """Row b continues row a (no cut rule fires); motion: the per-frame jumps of the current stretch."""
        jump, dscale, k = self.jump(a, b)
        if k < self.min_common or jump > self.jump_threshold or dscale > self.log_ratio:
            return False
        gap = self.gap(a, b)
        local = float(np.median(motion[-self.motion_window:])) if len(motion) >= 3 else float("inf")
        return not (self.motion_ratio is not None and jump > self.min_jump and jump / gap > self.motion_ratio * local)

    def pick(self, group: list[int], prev: int | None) -> int:
        """One row of a frame: the only one, else the one nearest the last kept row (the most
        confident one without a last kept row)."""
        if len(group) == 1:
            return group[0]
        if prev is None:
            return max(group, key=lambda g: self.conf[g].mean())
        return min(group, key=lambda g: self.jump(prev, g)[0])

    def resumption(self, groups: list[list[int]], shot_start: np.ndarray, i: int, prev: int, r: int,
                   motion: list[float]) -> int | None:
        """The index of the frame group within `lookahead` after groups[i] (row r, which does not
        continue prev) whose row continues prev and lies nearer prev than r does: r and what
        follows it up to there are a glitch. None: r starts a new stretch. Never past a cut
        (shot_start (G,) bool, per group)."""
        for m in range(i + 1, min(i + 1 + self.lookahead, len(groups))):
            if shot_start[m]:
                break
            if not groups[m]:
                continue
            r2 = self.pick(groups[m], prev)
            if self.gap(prev, r2) > self.max_gap:
                break
            back, ahead = self.jump(prev, r2)[0], self.jump(r, r2)[0]
            if back < ahead and self.continuous(prev, r2, motion):  # r2 resumes prev, not r
                return m
        return None


@dataclasses.dataclass
class _Found:
    """What the scan of the videos has found so far (FilterResult's fields)."""
    frame: np.ndarray  # (N,)
    min_stretch: int
    keep: np.ndarray  # (N,) bool
    glitch: np.ndarray  # (N,) bool
    stretches: list[Stretch] = dataclasses.field(default_factory=list)
    short: list[Stretch] = dataclasses.field(default_factory=list)
    cuts: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    jumps: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    unavailable: list[int] = dataclasses.field(default_factory=list)
    duplicates: int = 0

    def close(self, vid: int, current: list[int], motion: list[float]) -> None:
        """End the current stretch (rows `current` of video `vid`): kept, or short; start afresh."""
        if current:
            s = Stretch(int(vid), int(self.frame[current[0]]), int(self.frame[current[-1]]), len(current),
                        tuple(current))
            (self.stretches if s.n >= self.min_stretch else self.short).append(s)
            self.keep[list(current)] = s.n >= self.min_stretch
        current.clear()
        motion.clear()


def _scan_video(vid: int, frames: list[int], groups: list[list[int]], shot_start: np.ndarray, rules: _CutRules,
                found: _Found, kp_cuts: bool = True) -> None:
    """One video's frame groups (frame numbers (G,), rows of each frame in frame order; [] where
    the confidence collapsed) into stretches, cuts, jumps and glitches (module docstring).
    shot_start (G,) bool: an image cut right before the frame; kp_cuts: keypoint
    discontinuities are cuts (no images), else jumps."""
    current: list[int] = []  # rows of the current stretch
    motion: list[float] = []  # per-frame jumps inside the current stretch
    prev = None  # last kept row (also across dropped frames, to see cuts hidden among them)
    i = 0
    while i < len(groups):
        if shot_start[i]:
            found.cuts.append((int(vid), int(frames[i])))
            found.close(vid, current, motion)
            prev = None  # the new shot owes the last one no continuity
        if not groups[i]:
            found.close(vid, current, motion)
            i += 1
            continue
        r = rules.pick(groups[i], prev)
        if prev is not None and rules.gap(prev, r) > rules.max_gap:
            found.close(vid, current, motion)  # too far apart to judge continuity: a break, not a cut
        elif prev is not None and not rules.continuous(prev, r, motion):
            resume = rules.resumption(groups, shot_start, i, prev, r, motion)
            if resume is not None:
                for g in groups[i:resume]:
                    found.glitch[g] = True
                found.close(vid, current, motion)  # the glitch breaks the stretch like a collapse, without a cut
                i = resume
                continue
            (found.cuts if kp_cuts else found.jumps).append((int(vid), int(rules.frame[r])))
            found.close(vid, current, motion)
        elif prev is not None and current:
            motion.append(rules.jump(prev, r)[0] / rules.gap(prev, r))
        current.append(int(r))
        prev = r
        i += 1
    found.close(vid, current, motion)


def true_cuts(seq: np.ndarray, frame: np.ndarray, cut: np.ndarray) -> list[tuple[int, int]]:
    """Ground-truth cuts (seq, frame) from FrameTable.seq/frame/cut."""
    idx = np.flatnonzero(np.asarray(cut, bool))
    return [(int(seq[i]), int(frame[i])) for i in idx]


def stretches_across_cuts(stretches: Sequence[Stretch], true_cuts: Sequence[tuple[int, int]]) -> list[Stretch]:
    """The kept stretches that run across a known cut (seq, frame): a cut the filter missed
    where it matters, inside what it calls continuous."""
    cuts = {(int(s), int(f)) for s, f in true_cuts}
    return [st for st in stretches
            if any((st.seq, f) in cuts for f in range(st.first_frame + 1, st.last_frame + 1))]


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


def filter_table(table, keypoints, image_root: str | Path | None = None, thumb_size: int = 4,
                 **thresholds) -> FilterResult:
    """filter_continuous on a FrameTable and its Keypoints (matched by image name); with
    image_root, cuts by the images' thumb_size x thumb_size thumbnails (shots.thumbnails)."""
    kp = keypoints.reorder(table.image)
    thumbs = None if image_root is None else thumbnails(image_root, table.image, thumb_size)
    return filter_continuous(table.seq, table.frame, kp.peaks, kp.conf, thumbs=thumbs, **thresholds)
