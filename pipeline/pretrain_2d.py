"""Stage pretrain_2d: trains the 2D branch (stacked hourglass) alone with E_2d (paper eq. 10), from random init (no ImageNet hourglass exists); the 3D branch is frozen and not run.

    python -m pipeline.pretrain_2d
    torchrun --standalone --nproc_per_node=N -m pipeline.pretrain_2d     # DDP (pipeline/training.py)

Schedule: params train.pretrain_2d (epochs, lr, lr_step, lr_gamma, batch_size); shared settings train.*;
outputs and logging: pipeline/training.py.
"""
from pipeline.training import run_stage

if __name__ == "__main__":
    run_stage("pretrain_2d")
