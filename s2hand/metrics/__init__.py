"""Evaluation metrics: the FreiHAND/HO-3D online evaluation (`freihand`), video smoothness and
consistency (`video`), 2D keypoints (`pose2d`), the submission file format (`submission`) and
paired comparisons of two methods with sequence-level confidence intervals (`compare`)."""
from s2hand.metrics.compare import paired_comparison, per_frame_pa_mpjpe
from s2hand.metrics.freihand import (
    ALL_METRIC_KEYS,
    AUC_THRESHOLDS_M,
    F_THRESHOLDS_M,
    align_by_keypoint_transform,
    auc,
    evaluate_freihand,
    fscore,
    pck_curve,
    point_errors,
    procrustes_align,
    procrustes_transform,
    scale_translation_align,
)
from s2hand.metrics.pose2d import frames_within_distance, mpjpe_2d
from s2hand.metrics.submission import (
    SubmissionError,
    read_freihand_gt,
    read_submission,
    write_submission,
)
from s2hand.metrics.video import (
    acceleration,
    acceleration_error,
    sequence_acceleration,
    sequence_acceleration_error,
    sequence_mean,
    sequence_shape_sd,
    sequence_texture_sd,
    shape_sd,
    texture_sd,
)

__all__ = [
    "paired_comparison", "per_frame_pa_mpjpe",
    "ALL_METRIC_KEYS", "AUC_THRESHOLDS_M", "F_THRESHOLDS_M", "align_by_keypoint_transform", "auc",
    "evaluate_freihand", "fscore", "pck_curve", "point_errors", "procrustes_align", "procrustes_transform",
    "scale_translation_align", "frames_within_distance", "mpjpe_2d", "SubmissionError", "read_freihand_gt",
    "read_submission", "write_submission", "acceleration", "acceleration_error", "sequence_acceleration",
    "sequence_acceleration_error", "sequence_mean", "sequence_shape_sd", "sequence_texture_sd", "shape_sd",
    "texture_sd",
]
