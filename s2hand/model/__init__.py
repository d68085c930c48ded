"""The S2HAND model that training, evaluation and the grid search share: the frames it sees, the
assembled system, its model files, inference and its scores.

    from s2hand.model import HandFrames, S2HandSystem, load_system, predict, validation_metrics
    ds = HandFrames(table, "outputs/dataset", keypoints, input_size=128)      # frames.py
    system = S2HandSystem.from_params(params, "outputs/hand_model/MANO_RIGHT.npz")   # system.py
    system, info = load_system("outputs/checkpoints/finetune/model.pt", hand_model)  # files.py
    preds = predict(system, ds, batch_size=32, device="cpu")                  # scores.py
    m = validation_metrics(preds, ds.table)

Files: frames.py (Dataset, crop/resize/augmentation geometry with K, the frames training keeps),
system.py (network + hand layer + camera + renderer + loss terms), files.py (what a model file
holds and loading it back), scores.py (inference over a split, validation and video metrics, the
mean-pose baseline). Training (s2hand.train), evaluation (s2hand.evaluate) and the grid search
(s2hand.search) build on it; it imports none of them.
"""
from .files import CheckpointError, load_system, read_checkpoint
from .frames import HandFrames, frame_affine, training_rows
from .scores import mean_pose_baseline, predict, validation_metrics
from .system import STAGE_BRANCH, STAGES, HandPrediction, S2HandSystem, build_net

__all__ = [
    "CheckpointError", "load_system", "read_checkpoint",
    "HandFrames", "frame_affine", "training_rows",
    "mean_pose_baseline", "predict", "validation_metrics",
    "STAGE_BRANCH", "STAGES", "HandPrediction", "S2HandSystem", "build_net",
]
