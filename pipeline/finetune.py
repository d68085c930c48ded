"""Stage finetune: trains everything with E_S2HAND (paper eq. 1), starting from pretrain_3d's 3D branch and pretrain_2d's hourglass.

    python -m pipeline.finetune
    torchrun --standalone --nproc_per_node=N -m pipeline.finetune     # DDP (pipeline/training.py)

Schedule: params train.finetune (epochs, lr, lr_step, lr_gamma, batch_size); shared settings train.*;
outputs and logging: pipeline/training.py.
"""
from pipeline.training import run_stage

if __name__ == "__main__":
    run_stage("finetune")
