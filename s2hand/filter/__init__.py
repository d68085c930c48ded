"""Video filtering by detected keypoints: keep continuous stretches (YouTube-3D-Hands, method.md s8)."""
from s2hand.filter.yt3d_filter import (
    FilterResult,
    Stretch,
    cut_detection_scores,
    filter_continuous,
    filter_table,
    keypoint_jump,
    true_cuts,
)

__all__ = ["FilterResult", "Stretch", "cut_detection_scores", "filter_continuous", "filter_table", "keypoint_jump", "true_cuts"]
