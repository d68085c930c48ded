"""Stage pretrain_3d: trains the 3D branch (encoder + heads) alone with E_3d (paper eq. 2), from ImageNet init; the hourglass is frozen and not run.

    python -m pipeline.pretrain_3d
    torchrun --standalone --nproc_per_node=N -m pipeline.pretrain_3d     # DDP (pipeline/training.py)

Schedule: params train.pretrain_3d (epochs, lr, lr_step, lr_gamma, batch_size); shared settings train.*;
outputs and logging: pipeline/training.py.
"""
from pipeline.training import run_stage

if __name__ == "__main__":
    run_stage("pretrain_3d")
