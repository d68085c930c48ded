"""YouTube 3D Hands (YT 3D) -> FrameTable.

Layout (github.com/snap-research/arielai_youtube_3d_hands, README and load_db.py), `root` = the
folder holding the JSON files (data/yt3d/ here):
    youtube_{train,val,test}.json  {"images": [{id, name, width, height}],
                                    "annotations": [{vertices (778, 3), is_left, image_id, id}]}
    youtube/<VIDEO_ID>/video/frames/<FRAME>.png   the "name" of an image, relative to root;
                                    frames come from the videos through the repository's
                                    download_images.py, and many videos are gone from YouTube.
The vertices follow MANO's vertex order and are aligned with the image: x, y in pixels, the
third coordinate a depth on the same scale. They are not metres and there are no intrinsics.
Therefore:
- K is the 3x3 identity, a placeholder that says "orthographic, pixels": a vertex projects to
  its own (x, y). Use the orthographic camera (paper Table 8, marked *) for this set.
- joints3d is None; verts is None unless `keep_vertices` (then in the image-aligned pixel units
  above, not metres; meta says so).
- joints2d is filled only when a joint regressor is given: (21, 778) rows in OpenPose order, or
  MANO's (16, 778) J_regressor plus the fingertip vertex ids `tip_ids` (thumb, index, middle,
  ring, pinky), combined and reordered here.
- Left hands (is_left) are dropped unless `include_left` (FrameTable has no handedness).
seq = index of the video id in `video_ids(root)` (all JSON files present), frame = the frame
number in the file name; an image with two right hands gives two rows with the same seq, frame.
Videos whose frames are missing on disk are skipped and reported (`list_videos`, a warning).

    table = load_yt3d(Path("data/yt3d"), "train")
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from s2hand.data.table import FrameTable
from s2hand.hand.keypoints import MANO21_TO_OPENPOSE

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
NAME_RE = re.compile(r"(?:^|/)youtube/([^/]+)/video/frames/(\d+)\.\w+$")
NAME_FIELD_RE = re.compile(r'"name"\s*:\s*"([^"]+)"')
TIP_IDS_CODE = (744, 320, 443, 555, 672)  # thumb, index, middle, ring, pinky (released S2HAND code)
META = {"image_size": None, "fps": None, "hand_side": "right", "pose": None,
        "camera": "orthographic: K = identity, vertex x, y are pixels"}


def json_path(root: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"YT3D split: one of {SPLITS}, got {split!r}")
    return Path(root) / f"youtube_{split}.json"


def _read(root: Path, split: str) -> dict:
    path = json_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing YouTube 3D Hands annotation file")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ValueError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    return data


def parse_name(name: str) -> tuple[str, int]:
    """'youtube/VIDEO_ID/video/frames/123.png' -> ('VIDEO_ID', 123)."""
    m = NAME_RE.search(name)
    if m is None:
        raise ValueError(f"YT3D image name {name!r}: expected youtube/VIDEO_ID/video/frames/FRAME.png")
    return m.group(1), int(m.group(2))


def video_ids(root: str | Path) -> list[str]:
    """Sorted video ids over every youtube_*.json present: seq ids index this list."""
    root = Path(root)
    ids = set()
    for split in SPLITS:
        path = json_path(root, split)
        if path.is_file():  # the names only: a regex over the text, not a parse of every vertex
            ids |= {parse_name(m.replace("\\/", "/"))[0] for m in NAME_FIELD_RE.findall(path.read_text())}
    return sorted(ids)


def list_videos(root: str | Path) -> list[dict]:
    """One entry per (split, video): annotated frames and how many of them are on disk.

    [{"split", "video", "images", "annotations", "images_present", "available"}], where
    available means at least one annotated frame exists under root.
    """
    root = Path(root)
    out = []
    for split in SPLITS:
        if not json_path(root, split).is_file():
            continue
        data = _read(root, split)
        per: dict[str, dict] = {}
        by_image = {}
        for im in data["images"]:
            vid, _ = parse_name(im["name"])
            e = per.setdefault(vid, {"split": split, "video": vid, "images": 0, "annotations": 0, "images_present": 0})
            e["images"] += 1
            e["images_present"] += int(os.path.isfile(root / im["name"]))
            by_image[im["id"]] = vid
        for ann in data["annotations"]:
            if ann["image_id"] in by_image:
                per[by_image[ann["image_id"]]]["annotations"] += 1
        for vid in sorted(per):
            per[vid]["available"] = per[vid]["images_present"] > 0
            out.append(per[vid])
    return out


def full_regressor(joint_regressor: np.ndarray, tip_ids=TIP_IDS_CODE) -> np.ndarray:
    """(21, 778) in OpenPose order, from itself or from MANO's (16, 778) J_regressor plus tips."""
    R = np.asarray(joint_regressor, dtype=np.float64)
    if R.shape == (21, 778):
        return R
    if R.shape != (16, 778):
        raise ValueError(f"joint_regressor: expected (21, 778) OpenPose order or (16, 778) MANO, got {R.shape}")
    tips = np.zeros((5, 778))
    tips[np.arange(5), list(tip_ids)] = 1.0
    return np.concatenate([R, tips])[MANO21_TO_OPENPOSE]


def load_yt3d(
    root: str | Path,
    split: str,
    *,
    include_left: bool = False,
    joint_regressor: np.ndarray | None = None,
    tip_ids: tuple[int, ...] = TIP_IDS_CODE,
    keep_vertices: bool = False,
    missing: str = "skip",
) -> FrameTable:
    root = Path(root)
    if missing not in ("skip", "error"):
        raise ValueError(f"missing: 'skip' or 'error', got {missing!r}")
    data = _read(root, split)
    vids = video_ids(root)
    reg = None if joint_regressor is None else full_regressor(joint_regressor, tip_ids)
    images = {im["id"]: im for im in data["images"]}
    rows, left, lost, lost_videos, present = [], 0, 0, set(), {}
    for ann in data["annotations"]:
        im = images.get(ann["image_id"])
        if im is None:
            raise ValueError(f"{json_path(root, split)}: annotation {ann.get('id')} names unknown image {ann['image_id']}")
        if ann.get("is_left") and not include_left:
            left += 1
            continue
        name = im["name"]
        if name not in present:
            present[name] = os.path.isfile(root / name)
        vid, frame = parse_name(name)
        if not present[name]:
            if missing == "error":
                raise FileNotFoundError(f"{root / name}: missing YT3D frame (video {vid}); extract it with download_images.py")
            lost += 1
            lost_videos.add(vid)
            continue
        verts = np.asarray(ann["vertices"], dtype=np.float32) if (reg is not None or keep_vertices) else None
        if verts is not None and verts.shape != (778, 3):
            raise ValueError(f"{json_path(root, split)}: annotation {ann.get('id')}: vertices {verts.shape}, expected (778, 3)")
        rows.append((name, vids.index(vid), frame, int(ann.get("id", len(rows))), verts))
    if left:
        log.info("YT3D %s: %d left-hand annotations dropped (include_left=False)", split, left)
    if lost:
        log.warning("YT3D %s: %d annotations skipped, their frames are missing on disk: %d videos unavailable (%s)",
                    split, lost, len(lost_videos), ", ".join(sorted(lost_videos)))
    if not rows:
        raise FileNotFoundError(f"YT3D {split}: no annotated frame found under {root / 'youtube'} "
                                "(extract the frames with the dataset's download_images.py)")
    rows.sort(key=lambda r: (r[1], r[2], r[3]))
    n = len(rows)
    V = np.stack([r[4] for r in rows]) if rows[0][4] is not None else None  # (N, 778, 3)
    joints2d = None if reg is None else np.einsum("jv,nvc->njc", reg, V[..., :2]).astype(np.float32)
    return FrameTable(
        image=np.array([r[0] for r in rows]), K=np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)).copy(),
        verts=V if keep_vertices else None,
        seq=np.array([r[1] for r in rows], np.int64), frame=np.array([r[2] for r in rows], np.int64),
        joints2d=joints2d,
    )


def unavailable_videos(root: str | Path) -> list[str]:
    """Video ids with annotations but no frame on disk."""
    return sorted({v["video"] for v in list_videos(root) if not v["available"]})
