"""The S2HAND model that training, evaluation and the grid search share: the frames it sees, the
assembled system, its model files, inference and its scores.

    from s2hand.model import HandFrames, S2HandSystem, load_system, predict, validation_metrics
    ds = HandFrames(table, "outputs/dataset", keypoints, input_size=128)      # frames.py
    system = S2HandSystem.from_params(params, "outputs/hand_model/MANO_RIGHT.npz")   # system.py
    system, info = load_system("outputs/checkpoints/finetune/model.pt", hand_model)  # files.py
    preds = predict(system, ds, batch_size=32, device="cpu")                  # predict.py
    m = validation_metrics(preds, ds.table)                                    # scores.py
    device = pick_device(params.evaluate.device)                               # device.py

Files: frames.py (Dataset, crop/resize/augmentation geometry with K, the frames training keeps),
system.py (network + hand layer + camera + renderer + loss terms), files.py (what a model file
holds and loading it back), predict.py (inference over a split), scores.py (validation and video
metrics, per-frame values), baseline.py (the mean-pose baseline), device.py (CPU or CUDA).
Training (s2hand.train), evaluation (s2hand.evaluate) and the grid search (s2hand.search) build
on it; it imports none of them.
"""
from .baseline import mean_pose_baseline
from .device import pick_device
from .files import CheckpointError, load_system, model_record, read_checkpoint
from .frames import HandFrames, frame_affine, training_rows
from .predict import predict
from .scores import validation_metrics, video_metrics
from .system import STAGE_BRANCH, STAGES, HandPrediction, S2HandSystem, build_net

__all__ = [
    "mean_pose_baseline", "pick_device",
    "CheckpointError", "load_system", "model_record", "read_checkpoint",
    "HandFrames", "frame_affine", "training_rows",
    "predict", "validation_metrics", "video_metrics",
    "STAGE_BRANCH", "STAGES", "HandPrediction", "S2HandSystem", "build_net",
]
