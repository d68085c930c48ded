"""Stage finetune_video: S2HAND(V) (method.md s5), E_V = E_S2HAND + wquat E_motion + wts E_T&S,
from S2HAND's finetune model, on batches of m sequences x n frames (s2hand.data.sampler).

    python -m pipeline.finetune_video
    dvc exp run -S weights.quat=0.1          # reruns this stage only

Params: video.* (motion term, E_T&S on/off, n, interval, camera, extra_wild, max_batches),
weights.quat, weights.ts, train.finetune_video; the rest as finetune. Writes
outputs/checkpoints/finetune_video/model.pt and reports/train/finetune_video.json, whose
"comparison" holds PA-MPJPE, ACC, the quaternion-loss metric and texture / shape S.D. on the
val split for the S2HAND finetune model (before the first step) and for S2HAND(V).
"""
from pipeline.training import run_stage

if __name__ == "__main__":
    run_stage("finetune_video")
