"""CUDA: the renderer, a training step and a short training stage on the GPU agree with the CPU.

Skipped where no CUDA device is present (CI has none). On a GPU machine:
    .venv/bin/python -m pytest -q -m gpu tests/test_gpu.py
On a machine without `anny`, point the tests at a built hand model instead of building one:
    S2HAND_TEST_HAND_MODEL=outputs/hand_model/MANO_RIGHT.npz python -m pytest -q tests/test_gpu.py
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2hand.config import Params
from s2hand.data.table import load_split
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames
from s2hand.model.predict import predict
from s2hand.model.scores import validation_metrics
from s2hand.model.system import S2HandSystem
from s2hand.render import HandRenderer
from s2hand.train import StagePaths, train_stage
from tests.test_train import _batch, train_params

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

INPUT = 224
LIGHT = torch.tensor([[0.6, 1.0, 0.9, 0.8, 0.5, 1.0, 1.0, 1.0, 0.3, -0.2, -1.0]])


def camera(batch: int) -> torch.Tensor:
    return torch.tensor([[600.0, 0.0, INPUT / 2], [0.0, 600.0, INPUT / 2], [0.0, 0.0, 1.0]]).repeat(batch, 1, 1)


@pytest.mark.parametrize("faces", ["pytorch3d", "torch"])
@pytest.mark.parametrize("R", [64, 224])
def test_renderer_on_cuda_matches_the_cpu(layer, R, faces):
    """The CPU (torch face selection and fragments) and CUDA (pytorch3d's binning, or the same
    torch face selection) pick the same faces for posed hands: same silhouettes and images,
    parallel vertex gradients. Exact depth ties (rare on a posed hand) may fill the last soft slot
    differently: a pixel or two, so the check is on the share of pixels that differ, not the maximum."""
    g = torch.Generator().manual_seed(0)
    B = 4
    with torch.no_grad():
        hand = layer(0.6 * torch.randn(B, 3, generator=g), torch.randn(B, 30, generator=g), torch.zeros(B, 10))
    place = torch.tensor([[0.0, 0.0, 0.5], [0.01, -0.01, 0.45], [-0.01, 0.0, 0.6], [0.0, 0.01, 0.4]])
    verts = hand.verts - hand.joints[:, 9:10] + place[:, None]  # (B, V, 3) middle MCP at `place`
    C = 0.3 + 0.5 * torch.rand(B, len(layer.faces), 3, generator=g)
    L = LIGHT.repeat(B, 1)
    outs, grads = [], []
    for dev in ("cpu", "cuda"):
        v = verts.detach().clone().to(dev).requires_grad_()
        selection = "auto" if dev == "cpu" else faces
        out = HandRenderer(layer.faces.cpu(), R, INPUT, face_selection=selection).to(dev)(
            v, C.to(dev), L.to(dev), camera(B).to(dev))
        (out.image.square().mean() + out.silhouette.mean()).backward()
        outs.append(out)
        grads.append(v.grad.cpu())
    cpu, gpu = outs
    assert cpu.silhouette.mean() > 0.05  # the hands are in view
    d_sil = (cpu.silhouette - gpu.silhouette.detach().cpu()).abs()
    d_img = (cpu.image - gpu.image.detach().cpu()).abs().amax(dim=1)
    assert d_sil.mean() < 1e-4 and (d_sil > 1e-3).float().mean() < 1e-3
    assert (d_img > 1e-2).float().mean() < 1e-3
    assert (cpu.pix_to_face != gpu.pix_to_face.cpu()).float().mean() < 1e-3
    for b in range(B):
        assert torch.nn.functional.cosine_similarity(grads[0][b].flatten(), grads[1][b].flatten(), dim=0) > 0.99


def gpu_params(faces: str = "auto", **runtime) -> Params:
    """test_train's tiny setting on CUDA, one epoch per stage, with the renderer's face selection `faces`."""
    p = train_params(runtime={"device": "cuda", **runtime},
                    **{stage: {"epochs": 1} for stage in ("pretrain_2d", "pretrain_3d", "finetune")})
    return p.model_copy(update={"render": p.render.model_copy(update={"face_selection": faces})})


@pytest.fixture(scope="module")
def tiny_data(tiny_training_data):
    return tiny_training_data(6)


@pytest.mark.parametrize("faces", ["pytorch3d", "torch"])
def test_training_step_on_cuda_matches_the_cpu(tiny_data, faces):
    """Same weights, same batch: every E_S2HAND term agrees between the CPU and CUDA in float32,
    and stays finite and close under bf16 autocast with channels-last."""
    params = gpu_params(faces)
    torch.manual_seed(0)
    cpu = S2HandSystem.from_params(gpu_params(), tiny_data[2]).eval()  # eval: BatchNorm uses its running stats
    gpu = S2HandSystem.from_params(params, tiny_data[2]).eval()
    gpu.net.load_state_dict(cpu.net.state_dict())
    gpu.to("cuda")
    batch = _batch(tiny_data, params)
    gbatch = {k: v.cuda() for k, v in batch.items()}
    total_cpu, _, terms_cpu = cpu.training_loss(batch, "finetune")
    _, _, terms_gpu = gpu.training_loss(gbatch, "finetune")
    for k in terms_cpu:
        assert terms_gpu[k].item() == pytest.approx(terms_cpu[k].item(), rel=2e-3, abs=1e-5), k

    gpu.autocast_dtype = torch.bfloat16
    gpu.net.to(memory_format=torch.channels_last)
    gbatch["image"] = gbatch["image"].contiguous(memory_format=torch.channels_last)
    total, _, terms_bf16 = gpu.training_loss(gbatch, "finetune")
    total.backward()
    for k in terms_cpu:
        assert torch.isfinite(terms_bf16[k]), k
    assert total.item() == pytest.approx(total_cpu.item(), rel=0.1)
    for name, p in gpu.net.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_stages_train_on_cuda_and_the_model_files_load_on_the_cpu(tiny_data, tmp_path, cuda_graphs):
    """pretrain_2d, pretrain_3d, then finetune on CUDA (bf16, channels-last; with and without CUDA
    graphs) for a few steps; the finetune model file reloads on the CPU and gives the validation
    error the GPU run reported."""
    params = gpu_params("auto", max_steps=3, cuda_graphs=cuda_graphs)
    data, kp, hand = tiny_data

    def paths(stage: str) -> StagePaths:
        return StagePaths(dataset=data, keypoints=kp, hand_model=hand, model_out=tmp_path / stage / "model.pt",
                          resume_dir=tmp_path / ".resume" / stage, pictures_dir=tmp_path / "pictures")

    for stage in ("pretrain_2d", "pretrain_3d"):
        train_stage(params, stage, paths(stage))
    init = {stage: tmp_path / stage / "model.pt" for stage in ("pretrain_2d", "pretrain_3d")}
    s = train_stage(params, "finetune", paths("finetune"), init_from=init)
    assert s["steps"] == 3 and np.isfinite(s["val"]["pa_mpjpe_cm"])

    system, _ = load_system(tmp_path / "finetune" / "model.pt", hand, device="cpu")
    val = load_split(data, "val")
    ds = HandFrames(val, data, None, params.train.input_size, None, params.seed)
    m = validation_metrics(predict(system, ds, 8, "cpu", branch="all"), val)
    assert m["pa_mpjpe_cm"] == pytest.approx(s["val"]["pa_mpjpe_cm"], rel=0.02)  # bf16 on the GPU


def test_cuda_graphs_replay_the_eager_step(tiny_data):
    """train.runtime.cuda_graphs: capturing moves no weight or buffer; with the encoder, heads and
    hourglass replayed as CUDA graphs a finetune step gives the eager step's loss and gradients
    (float32), and three SGD steps end at the same loss; another batch size, eval mode and no_grad
    run the eager forward."""
    from s2hand.train.graphs import capture_network

    params = gpu_params()
    torch.manual_seed(0)
    systems = [S2HandSystem.from_params(params, tiny_data[2]).cuda().train() for _ in range(2)]
    systems[1].net.load_state_dict(systems[0].net.state_dict())
    batch = {k: v.cuda() for k, v in _batch(tiny_data, params).items()}
    B, S = batch["image"].shape[0], params.train.input_size
    before = {k: v.clone() for k, v in systems[1].net.state_dict().items()}
    assert capture_network(systems[1], B, S, "all", channels_last=False) == [
        "encoder", "geometry", "texture_light", "hourglass"]
    for k, v in systems[1].net.state_dict().items():
        assert torch.equal(v, before[k]), k
    opts = [torch.optim.SGD(s.net.parameters(), lr=1e-2) for s in systems]
    for step in range(3):
        totals, grads = [], []
        for s, opt in zip(systems, opts):
            opt.zero_grad(set_to_none=True)
            total, _, terms = s.training_loss(batch, "finetune")
            total.backward()
            grads.append(torch.cat([p.grad.flatten() for p in s.net.parameters()]))
            opt.step()
            totals.append(total.item())
        assert totals[1] == pytest.approx(totals[0], rel=1e-3), step
        if step == 0:  # same gradients up to float rounding (cuDNN may pick other kernels in a capture)
            assert (grads[1] - grads[0]).norm() <= 1e-3 * grads[0].norm()
    for s in systems:
        s.eval()
    with torch.no_grad():
        eager, graphed = (s.run_net(batch["image"], "all") for s in systems)
    assert torch.allclose(eager["pose_pca"], graphed["pose_pca"], rtol=1e-2, atol=1e-4)
    systems[1].train()
    half = {k: v[: B // 2] for k, v in batch.items()}  # another shape: eager, and gradients still flow
    opts[1].zero_grad(set_to_none=True)
    total, _, _ = systems[1].training_loss(half, "finetune")
    total.backward()
    grads = [p.grad for p in systems[1].net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
