"""CUDA graphs for the network's fixed-shape parts (`train.runtime.cuda_graphs`, bench `--cuda-graphs`).

    capture_network(system, batch_size, input_size, "all", channels_last=True)   # on CUDA, before training

On a GPU a small-batch training step is bound by the CPU launching kernels, not by the GPU
(docs/training.md, "On a GPU": 39.5 ms of GPU work in a 138 ms step at batch 64). The encoder,
the two heads and the hourglass take fixed-shape inputs, so each is captured once with
`torch.cuda.make_graphed_callables` and replayed as one launch per forward and one per backward.
The hand layer, renderer and losses stay eager (the renderer's shapes depend on the data).

Captured: the modules the stage runs (`branch` "3d": encoder, geometry and texture/light heads;
"2d": the hourglass; "all": both), in training mode, for inputs of exactly the captured shape,
dtype, memory layout and requires_grad. Any other call (eval mode, no_grad, another batch size) runs the eager
forward on the same parameters, so validation, pictures and a smaller last batch need nothing
special. Capture runs a few warm-up passes; the BatchNorm statistics they would move are put back,
so capturing changes no weight and no buffer. Autocast must run with cache_enabled=False
(S2HandSystem.run_net does). Not with DDP (its gradient hooks need a capture of their own; the
training loop runs a DDP network eagerly and says so).

Measured (H200, `bench --device cuda --face-selection torch`, input 224, render 64, bf16,
channels-last): the full finetune step at batch 64 from 109 ms (589 images/s) to 66-67 ms (954-974
images/s); the encoder step from 38 to 14 ms; batch 256: 2,139 images/s.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import Tensor, nn

from s2hand.nets.encoder import imagenet_normalize

if TYPE_CHECKING:
    from s2hand.model.system import S2HandSystem

log = logging.getLogger("s2hand.train")

Signature = list[tuple[torch.Size, torch.dtype, tuple[int, ...], bool]]


def _signature(args: Sequence[Tensor]) -> Signature:
    return [(a.shape, a.dtype, a.stride(), a.requires_grad) for a in args]


def _dispatch(module: nn.Module, eager: Callable, graphed: Callable, signature: Signature) -> Callable:
    """module.forward: the graph for training calls that match the captured inputs, else eager."""
    warned = []

    def forward(*args, **kwargs):
        if module.training and torch.is_grad_enabled():
            if (not kwargs and len(args) == len(signature) and all(isinstance(a, Tensor) for a in args)
                    and _signature(args) == signature):
                return graphed(*args)
            if not warned:
                warned.append(True)
                log.warning("%s: a training call with inputs other than the captured %s runs eagerly",
                            type(module).__name__, signature)
        return eager(*args, **kwargs)

    return forward


def graph_modules(modules: Sequence[nn.Module], sample_args: Sequence[tuple[Tensor, ...]],
                  autocast_dtype: torch.dtype | None) -> None:
    """Capture `modules` (in the order a forward runs them) with one graph each; their forward then
    dispatches (module docstring). sample_args: one tuple of CUDA tensors per module, with the
    requires_grad state, shape, dtype and layout of the real inputs."""
    if not modules:
        return
    eager = [m.forward for m in modules]
    saved = [{k: b.detach().clone() for k, b in m.named_buffers()} for m in modules]
    was_training = [m.training for m in modules]
    for m in modules:
        m.train()
    with torch.autocast("cuda", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None,
                        cache_enabled=False):
        torch.cuda.make_graphed_callables(tuple(modules), tuple(tuple(a) for a in sample_args),
                                          allow_unused_input=True)
    # The parameters' AccumulateGrad nodes now date from the capture's side stream, which the
    # replayed backward does not run on: autograd warns at every step that it syncs the two (cost
    # included in the measured figures; the capture is over, so nothing can break it)
    torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
    with torch.no_grad():  # the warm-up passes moved the BatchNorm statistics: put them back
        for m, buffers in zip(modules, saved):
            for k, b in m.named_buffers():
                b.copy_(buffers[k])
    for m, f, args, training in zip(modules, eager, sample_args, was_training):
        m.forward = _dispatch(m, f, m.forward, _signature(args))
        m.train(training)


def capture_network(system: "S2HandSystem", batch_size: int, input_size: int, branch: str, channels_last: bool) -> list[str]:
    """Capture the parts of `system.net` (on CUDA) that `branch` runs ("3d", "2d", "all") for
    batches of (batch_size, 3, input_size, input_size) images, channels-last or not as the training
    batches are; returns the captured modules' names."""
    net = system.net
    device = next(net.parameters()).device
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need the network on a CUDA device, it is on {device}")
    if system.ddp is not None:
        raise ValueError("train.runtime.cuda_graphs does not work with DDP (torchrun); set it to false")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    images = torch.rand(batch_size, 3, input_size, input_size, device=device).contiguous(memory_format=fmt)
    modules: list[nn.Module] = []
    args: list[tuple[Tensor, ...]] = []
    names: list[str] = []
    dtype = system.autocast_dtype
    if branch in ("3d", "all"):
        x = imagenet_normalize(images, net.encoder.mean, net.encoder.std)
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None,
                                             cache_enabled=False):
            was = net.encoder.training
            net.encoder.eval()  # a shape probe: eval mode leaves the BatchNorm statistics alone
            feat, low = net.encoder(x)
            net.encoder.train(was)
        modules += [net.encoder, net.geometry, net.texture_light]
        args += [(x,), (feat.detach().clone().requires_grad_(),), (low.detach().clone().requires_grad_(),)]
        names += ["encoder", "geometry", "texture_light"]
    if branch in ("2d", "all") and net.hourglass is not None:
        modules.append(net.hourglass)
        args.append((images,))
        names.append("hourglass")
    graph_modules(modules, args, dtype)
    return names
