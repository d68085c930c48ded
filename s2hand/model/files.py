"""Model files: what one holds (model_record, written by training) and the trained model back from it.

    torch.save(model_record(system, params, stage, step), "outputs/checkpoints/finetune/model.pt")
    system, info = load_system("outputs/checkpoints/finetune/model.pt", "outputs/hand_model/MANO_RIGHT.npz")
    system.predict(images, K)     # eval mode, 3D branch

A checkpoint (model_record) holds the network's state dict, the encoder spec
and the `train` and `hand` params it was trained with; the network is rebuilt from those, not from
today's params.yaml, so a model stays loadable after params change. The encoder is built from the
spec with random weights (then overwritten by the checkpoint's), which needs neither the ImageNet
file nor a download; the spec matters because the state dict alone does not say it: the shipped
Lite0 weights are a TensorFlow port ("same" padding, BatchNorm eps 1e-3, inputs scaled by
127/128), and the same tensors in timm's plain efficientnet_lite0 compute something else. The camera
(perspective or orthographic, S2HAND(V)'s Table 8 variant) is not in the checkpoint: the caller
says which.
"""
from __future__ import annotations

from pathlib import Path

import torch

from s2hand.config import HandParams, Params, TrainParams
from s2hand.model.system import S2HandSystem
from s2hand.nets import EncoderSpec


def model_record(system: S2HandSystem, params: Params, stage: str, step: int) -> dict:
    """What a model file holds (read back by load_system): the network's
    state dict, the encoder spec (architecture and input statistics, which the state dict does not
    record), the train and hand params the network is rebuilt from, stage, step and seed."""
    return {"net": system.net.state_dict(), "encoder": system.net.encoder.spec.as_dict(), "stage": stage,
            "step": int(step), "train": params.train.model_dump(), "hand": params.hand.model_dump(),
            "seed": params.seed}


class CheckpointError(ValueError):
    """A checkpoint file that is missing or is not a trained S2HAND model."""


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a torch checkpoint ({type(e).__name__}: {e})") from None
    missing = [k for k in ("net", "train", "hand") if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise CheckpointError(f"{path}: not a trained model file (no {', '.join(missing)}; "
                              "outputs/checkpoints/<stage>/model.pt are)")
    if "encoder" not in ck:
        raise CheckpointError(f"{path}: written by an older version without the encoder spec, so the network "
                              "cannot be rebuilt exactly; retrain its stage (dvc repro -f <stage>)")
    return ck


def load_system(checkpoint: str | Path, hand_model: str | Path, orthographic: bool = False,
                device: torch.device | str = "cpu") -> tuple[S2HandSystem, dict]:
    """(system in eval mode on `device`, {"stage", "step", "input_size"}) from a model file."""
    ck = read_checkpoint(checkpoint)
    train = TrainParams.model_validate(ck["train"])
    params = Params(train=train, hand=HandParams.model_validate(ck["hand"]))
    try:
        spec = EncoderSpec.from_dict(ck["encoder"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{checkpoint}: bad encoder spec {ck['encoder']!r}: {e}") from None
    system = S2HandSystem.from_params(params, hand_model, orthographic=orthographic, encoder_spec=spec)
    try:
        system.net.load_state_dict(ck["net"])
    except RuntimeError as e:
        raise CheckpointError(f"{checkpoint}: weights do not fit the network its params describe "
                              f"(hand model {hand_model} with another face count?): {str(e)[:300]}") from None
    system.to(device).eval()
    return system, {"stage": str(ck.get("stage", "")), "step": int(ck.get("step", 0)),
                    "input_size": int(train.input_size)}
