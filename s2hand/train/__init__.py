"""Training of S2HAND (method.md s4, s6): data, the assembled model, the resumable loop, validation,
pictures and a throughput benchmark.

    from s2hand.train import S2HandSystem, StagePaths, train_stage
    summary = train_stage(params, "pretrain_3d", StagePaths(...))      # see loop.py
    python -m s2hand.train.bench                                        # images/s per component

Files: data.py (Dataset, augmentation with K), system.py (network + hand layer + camera + renderer
+ loss terms), loop.py (stages, resume, DDP), evaluate.py (metrics, mean-pose baseline),
pictures.py, bench.py. Tests: .venv/bin/python -m pytest -q tests/test_train.py
"""
from .data import HandFrames, epoch_batches, frame_affine
from .evaluate import mean_pose_baseline, predict, validation_metrics
from .loop import NullLogger, StagePaths, TrainingInterrupted, TrainLogger, distributed_env, train_stage
from .system import STAGE_BRANCH, STAGES, HandPrediction, S2HandSystem, build_net

__all__ = [
    "HandFrames", "epoch_batches", "frame_affine",
    "mean_pose_baseline", "predict", "validation_metrics",
    "NullLogger", "StagePaths", "TrainingInterrupted", "TrainLogger", "distributed_env", "train_stage",
    "STAGE_BRANCH", "STAGES", "HandPrediction", "S2HandSystem", "build_net",
]
