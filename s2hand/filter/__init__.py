"""Video filtering by detected keypoints and shot cuts in the images: keep continuous stretches
(YouTube-3D-Hands, method.md s8)."""
from s2hand.filter.shots import image_cuts, thumbnails
from s2hand.filter.yt3d_filter import (
    FilterResult,
    Stretch,
    cut_detection_scores,
    filter_continuous,
    filter_table,
    keypoint_jump,
    stretches_across_cuts,
    true_cuts,
)

__all__ = ["FilterResult", "Stretch", "cut_detection_scores", "filter_continuous", "filter_table", "image_cuts",
           "keypoint_jump", "stretches_across_cuts", "thumbnails", "true_cuts"]
