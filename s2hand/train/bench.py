"""Training throughput, component by component (images per second of full training steps:
forward, backward, Adam step).

    python -m s2hand.train.bench                      # CPU, batch 8: params' input/render sizes and 224 px
    python -m s2hand.train.bench --device cuda        # batch 64, bf16 autocast, channels_last, CUDA graphs, 224 px
    python -m s2hand.train.bench --input-size 224 --render-size 64 --batch 8 --reps 5
    python -m s2hand.train.bench --device cuda --profile   # + torch.profiler's top operators of the full step
    python -m s2hand.train.bench --device cuda --face-selection torch   # the renderer's face selection
    python -m s2hand.train.bench --device cuda --compile   # torch.compile the network and the hand layer
    python -m s2hand.train.bench --device cuda --no-cuda-graphs   # eager (default: params' runtime.cuda_graphs)

Rows (each includes the ones above it):
    encoder      encoder + geometry/texture heads (the 3D branch's network), a dummy loss
    + hand       + hand layer, camera, E_loc, E_ori, E_regu           (pretrain_3d without photometry)
    + render     + renderer, E_pixel, E_SSIM                          (pretrain_3d)
    + 2D branch  + hourglass, E_2d, E_cons: every term                (finetune)
The target for the CPU default (issue 4): the last row at most twice the first's time per step.
Network and losses follow params.yaml's train section (hourglass size, encoder, ...). Inputs are
random images with a dataset-like camera; a shared machine makes the numbers noisy (the median of
--reps steps is reported).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from s2hand.config import Params, load_params, validate_params

from .graphs import capture_network
from s2hand.model.system import S2HandSystem


def bench_params(params: Params, input_size: int, render_size: int, device: str,
                 face_selection: str | None = None) -> Params:
    raw = params.model_dump()
    raw["train"]["input_size"] = input_size
    raw["render"]["size"] = render_size
    if face_selection is not None:
        raw["render"]["face_selection"] = face_selection
    raw["train"]["runtime"]["device"] = device
    return validate_params(raw)


def fake_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = 2.4 * size  # the synthetic dataset's focal length (s2hand.data.synthetic.generate)
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]).repeat(batch, 1, 1)
    kp = size / 2 + size / 4 * (torch.rand(batch, 21, 2, generator=g) - 0.5)
    out = {"image": torch.rand(batch, 3, size, size, generator=g), "K": K, "kp": kp,
           "conf": torch.rand(batch, 21, generator=g)}
    return {k: v.to(device) for k, v in out.items()}


def _encoder_loss(system: S2HandSystem, batch: dict) -> torch.Tensor:
    out = system.run_net(batch["image"], "3d")
    return sum(out[k].float().square().mean() for k in ("pose_pca", "shape", "scale", "rot", "trans",
                                                         "face_colors", "light"))


def _stage_loss(stage: str, photo: bool):
    def loss(system: S2HandSystem, batch: dict) -> torch.Tensor:
        saved = system.weights
        if not photo:
            system.weights = saved.model_copy(update={"photo": 0.0})
        try:
            return system.training_loss(batch, stage)[0]
        finally:
            system.weights = saved
    return loss


ROWS = (("encoder", _encoder_loss), ("+ hand", _stage_loss("pretrain_3d", False)),
        ("+ render", _stage_loss("pretrain_3d", True)), ("+ 2D branch", _stage_loss("finetune", True)))


def time_steps(system: S2HandSystem, batch: dict, loss_fn, reps: int, warmup: int = 2) -> float:
    """Median seconds of a training step (zero_grad, forward, backward, Adam step)."""
    params = [p for p in system.net.parameters() if p.requires_grad]
    cuda = batch["image"].is_cuda
    opt = torch.optim.Adam(params, lr=1e-5, fused=True if cuda else None)  # as s2hand.train.loop
    times = []
    for i in range(warmup + reps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(system, batch).backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def profile_step(system: S2HandSystem, batch: dict, loss_fn, steps: int = 1, top: int = 20) -> str:
    """torch.profiler's operator table (self time, the device's on CUDA) over `steps` training steps."""
    from torch.profiler import ProfilerActivity, profile

    cuda = batch["image"].is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    time_steps(system, batch, loss_fn, reps=1, warmup=1)
    with profile(activities=activities) as prof:
        time_steps(system, batch, loss_fn, reps=steps, warmup=0)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def run(params: Params, hand_model: str, device: str, batch: int, input_size: int, render_size: int,
        reps: int, bf16: bool, channels_last: bool, profile: bool = False, face_selection: str | None = None,
        compile: bool = False, cuda_graphs: bool = False) -> list[dict]:
    p = bench_params(params, input_size, render_size, device, face_selection)
    torch.manual_seed(0)
    dev = torch.device(device)
    system = S2HandSystem.from_params(p, hand_model).to(dev).train()
    if compile:  # torch.compile the network and the hand layer in place (state dict keys unchanged)
        system.net.compile()
        system.layer.compile()
    if bf16 and dev.type == "cuda":
        system.autocast_dtype = torch.bfloat16
    b = fake_batch(batch, input_size, dev)
    if channels_last and dev.type == "cuda":
        system.net.to(memory_format=torch.channels_last)
        b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
    if cuda_graphs:
        capture_network(system, batch, input_size, "all", channels_last and dev.type == "cuda")
    rows = []
    for name, fn in ROWS:
        s = time_steps(system, b, fn, reps)
        rows.append({"row": name, "device": device, "batch": batch, "input": input_size, "render": render_size,
                     "faces": p.render.face_selection + (" compiled" if compile else "")
                     + (" graphs" if cuda_graphs else ""),
                     "ms_per_step": round(1000 * s, 1), "images_per_s": round(batch / s, 1)})
    if profile:
        print(f"profile: full step ({ROWS[-1][0]}), {device}, batch {batch}, input {input_size}, render {render_size}")
        print(profile_step(system, b, ROWS[-1][1]))
    base = rows[0]["ms_per_step"]
    for r in rows:
        r["x_encoder"] = round(r["ms_per_step"] / base, 2)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--hand-model", default="outputs/hand_model/MANO_RIGHT.npz")
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cpu, and cuda if present")
    ap.add_argument("--batch", type=int, default=None, help="default: 8 on the CPU, 64 on CUDA")
    ap.add_argument("--input-size", type=int, default=None, help="default: params' and 224 (CPU), 224 (CUDA)")
    ap.add_argument("--render-size", type=int, default=None, help="default: params' render.size")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--fp32", action="store_true", help="CUDA: no bf16 autocast")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's top operators of the full step")
    ap.add_argument("--face-selection", choices=["auto", "torch", "pytorch3d"], default=None,
                    help="the renderer's face selection (default: params' render.face_selection)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network and the hand layer")
    ap.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                    help="CUDA: replay encoder, heads and hourglass as CUDA graphs (default: params' "
                         "train.runtime.cuda_graphs)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    devices = [args.device] if args.device else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        batch = args.batch or (64 if device == "cuda" else 8)
        render = args.render_size or params.render.size
        sizes = [args.input_size] if args.input_size else (
            [224] if device == "cuda" else sorted({params.train.input_size, 224}))
        for size in sizes:
            rows += run(params, args.hand_model, device, batch, size, render, args.reps,
                        bf16=not args.fp32, channels_last=True, profile=args.profile,
                        face_selection=args.face_selection, compile=args.compile,
                        cuda_graphs=device == "cuda" and (params.train.runtime.cuda_graphs
                                                          if args.cuda_graphs is None else args.cuda_graphs))
    cols = ["row", "device", "batch", "input", "render", "faces", "ms_per_step", "images_per_s", "x_encoder"]
    print(f"torch threads: {torch.get_num_threads()}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
