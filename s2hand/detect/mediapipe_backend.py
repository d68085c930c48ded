"""MediaPipe Hands as the 2D keypoint detector (runs offline on CPU; OpenPose needs a build).

    kp = detect(table, dataset_root)                                 # defaults below
    kp = detect(table, dataset_root, pad=(0.5, 0.0, 1.0), workers=2, model_complexity=1)

Per image: read (BGR), pad every side by `pad` x the longer side (`pad_mode` replicate or
constant grey), resize by `upscale`, run Hands(static_image_mode=True) and map the 21
landmarks back to the original pixels. `pad` may be a list: the next padding is tried only
when no hand was found with the previous one. MediaPipe's landmark order is the OpenPose order.
With several hands found, the one of the wanted side (`hand`) is kept, best score first.
If no hand of that side is found, `wrong_side` decides: "keep" (default) keeps the
best-scoring hand, "drop" treats the image as having no hand (the next padding is tried).
On the embedded synthetic set a right hand labelled left is mostly a mirrored reading (thumb
and little finger sides swapped): 43 % (train) and 72 % (val) of such frames had a mean
keypoint error above 0.3 wrist-to-middle-MCP lengths, against 17 % and 28 % of the
right-labelled ones. Dropping them took the train frames found from 77 % to 66 %, the share of
such gross errors among them from 25 % to 19 %, and the mean error from 6.5 to 5.7 px (128 px
images); yet the default S2HAND trained on them did worse (val PA-MPJPE 1.204 against 1.144 cm
with "keep": fewer frames, 136 steps instead of 160), so "keep" stays the default
(docs/training.md). MediaPipe labels sides as if the image were mirrored (selfie
camera); `image_mirrored=False` (the default) swaps its labels to the true side.

Confidence. MediaPipe gives no per-landmark confidence: the `visibility` and `presence`
fields of hand landmarks are not populated (HasField is False, value 0.0 in mediapipe 0.10.14),
so they enter only if a future version fills them. We use
    conf_i = score * fit_i (* visibility_i if populated)
    score  = the palm detector's score for this hand (the palm detection nearest to the
             landmarks' palm, read from the graph's `palm_detections` stream; if that stream
             is unavailable, the handedness classifier's score, which is in [0.5, 1])
    fit_i  = clip(inside_i / (border_margin * D), 0, 1), inside_i = distance (px) of the
             landmark inside the original image's border (negative outside), D = diagonal
             of the landmarks' bounding box: a landmark outside the image gets 0, one within
             border_margin * D of the border gets proportionally less.
The hand landmark model's own presence score only gates the output (min_presence_confidence);
the legacy API does not return it. No hand found -> all 21 confidences 0, positions 0.

Measured on the embedded synthetic set (128 px JPEGs, train split 840 frames unless said;
shared 2-core machine under load, so speeds are rough):
    pad 0, thresholds 0.5 (MediaPipe defaults)   detected 46 %, MPJPE 4.9 px   (every 3rd frame)
    pad 0.5, thresholds 0.5                      detected 49 %, MPJPE 4.8 px
    pad 0.25 + upscale 2, thresholds 0.5         detected 45 %, MPJPE 4.4 px   (upscale: no gain)
    pad 0.5, thresholds 0.2                      detected 59 %, MPJPE 5.5 px
    pad (0.5, 0, 1) retried, thresholds 0.2      detected 77 %, MPJPE 7.0 px, Fig.-7 AUC(0-40 px) 0.44
    the same, thresholds 0.1                     detected 85 %, MPJPE 8.2 px   (every 3rd frame)
    model_complexity 0                           fewer detections (35 % vs 42 % at pad 0.25)
The defaults are the retried paddings with thresholds 0.2. Confidence ranks errors moderately
(Spearman(conf, error) about -0.35 over detected keypoints). Speed 34-35 frames/s with one
worker, 37-44 with workers=2 (about 20 ms of CPU per image; start-up about 1 s per worker).
`workers` > 1 uses spawned processes: the calling script needs an `if __name__ == "__main__":`
guard. They run under concurrent.futures (not multiprocessing.Pool, which silently replaces a
dead worker and then waits forever for the chunk it held); a worker that dies stops the
detection with an error naming its chunk. 9,500 frames (128 px) took 90 s with workers=2.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from s2hand.data.table import FrameTable
from s2hand.data.images import iter_images
from s2hand.detect.keypoint_file import Keypoints

PALM = (0, 5, 9, 13, 17)
_SWAP = {"Left": "Right", "Right": "Left"}


def _import_mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp
    except ImportError as err:  # pragma: no cover
        raise ImportError("mediapipe backend: `import mediapipe` failed; install mediapipe (see setup.sh)") from err
    return mp


def make_hands(model_complexity: int = 1, max_num_hands: int = 2, min_detection_confidence: float = 0.5,
               min_presence_confidence: float = 0.5):
    """A static-image Hands graph that also outputs `palm_detections` (falls back to the plain
    solution if the graph has no such stream). Use as a context manager or call .close()."""
    mp = _import_mediapipe()
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import hands as mp_hands

    class _HandsWithPalms(SolutionBase):
        def __init__(self) -> None:
            super().__init__(
                binary_graph_path=mp_hands._BINARYPB_FILE_PATH,
                side_inputs={"model_complexity": model_complexity, "num_hands": max_num_hands,
                             "use_prev_landmarks": False},
                calculator_params={
                    "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": min_detection_confidence,
                    "handlandmarkcpu__ThresholdingCalculator.threshold": min_presence_confidence,
                },
                outputs=["multi_hand_landmarks", "multi_handedness", "palm_detections"],
            )

        def process(self, image):
            return super().process(input_data={"image": image})

    try:
        return _HandsWithPalms()
    except Exception:  # noqa: BLE001 - another mediapipe version: no palm scores
        return mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_num_hands,
                                        model_complexity=model_complexity,
                                        min_detection_confidence=min_detection_confidence,
                                        min_tracking_confidence=min_presence_confidence)


def prepare(img_bgr: np.ndarray, pad: float, upscale: float, pad_mode: str) -> tuple[np.ndarray, int]:
    """Padded, resized RGB image and the padding in original pixels."""
    p = int(round(pad * max(img_bgr.shape[:2])))
    if p > 0:
        if pad_mode == "replicate":
            img_bgr = cv2.copyMakeBorder(img_bgr, p, p, p, p, cv2.BORDER_REPLICATE)
        else:
            img_bgr = cv2.copyMakeBorder(img_bgr, p, p, p, p, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    if upscale != 1.0:
        interp = cv2.INTER_CUBIC if upscale > 1 else cv2.INTER_AREA
        img_bgr = cv2.resize(img_bgr, None, fx=upscale, fy=upscale, interpolation=interp)
    return cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB), p


def keypoints_from_result(result, shape: tuple[int, int], padded_shape: tuple[int, int], pad_px: int,
                          upscale: float, hand: str = "right", image_mirrored: bool = False,
                          border_margin: float = 0.05, wrong_side: str = "keep") -> tuple[np.ndarray, np.ndarray]:
    """(peaks (21, 2) px in the original image, conf (21,)) from one Hands result; with
    wrong_side "drop" a result with no hand of the wanted side counts as no hand."""
    peaks, conf = np.zeros((21, 2), np.float32), np.zeros(21, np.float32)
    if not result.multi_hand_landmarks:
        return peaks, conf
    ph, pw = padded_shape
    palms = []
    for det in getattr(result, "palm_detections", None) or []:
        b = det.location_data.relative_bounding_box
        palms.append((b.xmin + b.width / 2, b.ymin + b.height / 2, det.score[0] if det.score else 0.0))
    cands = []
    for lms, hd in zip(result.multi_hand_landmarks, result.multi_handedness):
        lm = lms.landmark
        rel = np.array([[p.x, p.y] for p in lm])  # (21, 2) relative to the padded, resized image
        vis = np.array([p.visibility if p.HasField("visibility") else 1.0 for p in lm])
        cls = hd.classification[0]
        side = cls.label if image_mirrored else _SWAP.get(cls.label, cls.label)
        score = cls.score
        if palms:
            c = rel[list(PALM)].mean(0)
            score = min(palms, key=lambda q: (q[0] - c[0]) ** 2 + (q[1] - c[1]) ** 2)[2]
        cands.append((side.lower() == hand or hand == "any", score, rel, vis))
    right_side, score, rel, vis = max(cands, key=lambda t: (t[0], t[1]))
    if not right_side and wrong_side == "drop":
        return peaks, conf
    xy = rel * np.array([pw, ph]) / upscale - pad_px  # (21, 2) original px
    h, w = shape
    inside = np.minimum.reduce([xy[:, 0], xy[:, 1], w - xy[:, 0], h - xy[:, 1]])
    diag = float(np.linalg.norm(xy.max(0) - xy.min(0)))
    margin = max(border_margin * diag, 1e-6)
    fit = np.clip(inside / margin, 0, 1) if border_margin > 0 else (inside >= 0).astype(float)
    return xy.astype(np.float32), (score * fit * vis).astype(np.float32)


_WORKER = {}


def _init_worker(hands_kw: dict) -> None:
    _WORKER["hands"] = make_hands(**hands_kw)


def _detect_chunk(args) -> tuple[np.ndarray, np.ndarray, list]:
    root, rels, opts = args
    hands = _WORKER["hands"]
    peaks = np.zeros((len(rels), 21, 2), np.float32)
    conf = np.zeros((len(rels), 21), np.float32)
    failures = []
    for i, img, failure in iter_images(root, rels):
        if failure is not None:
            failures.append(failure)
            continue
        for pad in opts["pad"]:  # next padding only if nothing was found
            rgb, p = prepare(img, pad, opts["upscale"], opts["pad_mode"])
            result = hands.process(rgb)
            peaks[i], conf[i] = keypoints_from_result(
                result, img.shape[:2], rgb.shape[:2], p, opts["upscale"], opts["hand"], opts["image_mirrored"],
                opts["border_margin"], opts["wrong_side"])
            if conf[i].any():
                break
    return peaks, conf, failures


def die_with_parent(parent: int) -> None:
    """In a worker: ask Linux to send SIGKILL when the parent process ends, so a killed stage's
    workers (hundreds of MB each) do not live on orphaned. No-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: nobody is left to signal us
        os._exit(1)


def _init_tied(parent: int, initializer, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def run_chunks(fn, jobs: list, workers: int, initializer=None, initargs: tuple = ()):
    """Yield (fn(job), job) in order, over `workers` spawned processes (concurrent.futures).

    Workers die with this process (die_with_parent), even when it is killed outright. A worker
    that dies (killed for memory, a crash in native code) raises RuntimeError naming its
    job instead of hanging: multiprocessing.Pool would replace the worker and wait forever for the
    job it held. (No max_tasks_per_child: on Python 3.11 to 3.14 a pool that retires workers that
    way can stop spawning new ones and hang, CPython gh-115634; measured here on 9,500 frames.)"""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_init_tied,
                             initargs=(os.getpid(), initializer, initargs)) as pool:  # workers end with this process
        futures = [pool.submit(fn, job) for job in jobs]
        try:
            for future, job in zip(futures, jobs):
                try:
                    yield future.result(), job
                except BrokenProcessPool as e:
                    first = job[1][0] if isinstance(job, tuple) and len(job) > 1 and job[1] else job
                    raise RuntimeError(f"a worker process died on the job starting at {first!r} (out of "
                                       "memory, or a crash in native code); rerun with workers: 1 to see "
                                       "its error") from e
        finally:
            for f in futures:
                f.cancel()


def detect_paths(root: str | Path, rel_paths: Sequence[str], *, model_complexity: int = 1, max_num_hands: int = 2,
                 min_detection_confidence: float = 0.2, min_presence_confidence: float = 0.2,
                 hand: str = "right", image_mirrored: bool = False, upscale: float = 1.0,
                 pad: float | Sequence[float] = (0.5, 0.0, 1.0),
                 pad_mode: str = "replicate", border_margin: float = 0.05, wrong_side: str = "keep", workers: int = 1,
                 chunk: int = 64, progress: bool = False) -> Keypoints:
    """Detect on root / each relative path (see the module docstring for the options)."""
    if hand not in ("right", "left", "any"):
        raise ValueError(f"mediapipe backend: hand must be right, left or any, got {hand!r}")
    if pad_mode not in ("replicate", "constant"):
        raise ValueError(f"mediapipe backend: pad_mode must be replicate or constant, got {pad_mode!r}")
    if wrong_side not in ("keep", "drop"):
        raise ValueError(f"mediapipe backend: wrong_side must be keep or drop, got {wrong_side!r}")
    if model_complexity not in (0, 1):
        raise ValueError(f"mediapipe backend: model_complexity must be 0 or 1, got {model_complexity}")
    pads = [float(pad)] if np.isscalar(pad) else [float(x) for x in pad]
    if upscale <= 0 or not pads or min(pads) < 0 or border_margin < 0 or workers < 1 or max_num_hands < 1:
        raise ValueError("mediapipe backend: need upscale > 0, pad(s) >= 0, border_margin >= 0, workers >= 1, "
                         "max_num_hands >= 1")
    rels = [str(r) for r in rel_paths]
    hands_kw = dict(model_complexity=model_complexity, max_num_hands=max_num_hands,
                    min_detection_confidence=min_detection_confidence,
                    min_presence_confidence=min_presence_confidence)
    opts = dict(pad=pads, upscale=upscale, pad_mode=pad_mode, hand=hand, image_mirrored=image_mirrored,
                border_margin=border_margin, wrong_side=wrong_side)
    jobs = [(str(root), rels[i:i + chunk], opts) for i in range(0, len(rels), chunk)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(rels), desc="mediapipe", unit="img")
    parts = []
    if workers == 1 or len(jobs) <= 1:
        _init_worker(hands_kw)
        try:
            for job in jobs:
                parts.append(_detect_chunk(job))
                bar and bar.update(len(job[1]))
        finally:
            _WORKER.pop("hands").close()
    else:
        for part, job in run_chunks(_detect_chunk, jobs, workers, _init_worker, (hands_kw,)):
            parts.append(part)
            bar and bar.update(len(job[1]))
    if bar is not None:
        bar.close()
    peaks = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 21, 2), np.float32)
    conf = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 21), np.float32)
    failures = [f for p in parts for f in p[2]]
    return Keypoints(peaks, conf, rels, failures)


def detect(table: FrameTable, image_root: str | Path, **options) -> Keypoints:
    return detect_paths(image_root, list(table.image), **options)
