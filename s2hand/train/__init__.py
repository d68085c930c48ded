"""Training of S2HAND (method.md s4, s6): the resumable loop, its batches, pseudo labels,
pictures and a throughput benchmark. The model it trains (frames, system, scores) is s2hand.model.

    from s2hand.train import StagePaths, train_stage
    summary = train_stage(params, "pretrain_3d", StagePaths(...))      # see loop.py
    python -m s2hand.train.bench                                        # images/s per component

Files: loop.py (stages, resume, DDP), graphs.py (CUDA graphs), pseudo_labels.py, pictures.py,
bench.py. Tests: .venv/bin/python -m pytest -q tests/test_train.py
"""
from .loop import NullLogger, StagePaths, TrainingInterrupted, TrainLogger, distributed_env, train_stage

__all__ = ["NullLogger", "StagePaths", "TrainingInterrupted", "TrainLogger", "distributed_env", "train_stage"]
