"""S2HAND(V) stage finetune_video: video batches, E_quat / E_T&S terms and gradients, the motion
term variants, the orthographic camera, the stage run with its S2HAND vs S2HAND(V) comparison,
and dvc.yaml's params (weights.quat / weights.ts only reach finetune_video).

A tiny generated dataset (3 sequences of 10 frames at 64 px; 2 train and 1 val sequence),
simulated keypoints, input 64 px, render 32 px, a small random-init network.
    .venv/bin/python -m pytest -q tests/test_video.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from s2hand.config import Params
from s2hand.data.table import load_split
from s2hand.detect import load_keypoints
from s2hand.model.frames import HandFrames
from s2hand.model.system import S2HandSystem
from s2hand.train import StagePaths, TrainingInterrupted, train_stage
from s2hand.train.batches import video_epoch_batches, video_training_frames
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def video_data(tiny_training_data):
    return tiny_training_data(10)


def video_params(video: dict | None = None, **stage) -> Params:
    """The tiny params with a one-epoch finetune_video of `stage`'s schedule; `video` merged into
    windows of 3 frames 3 apart, 2 batches an epoch."""
    sched = {"epochs": 1, "lr": 1e-3, "lr_step": 1, "lr_gamma": 0.5, "batch_size": 6, **stage}
    runtime = {"device": "cpu", "checkpoint_every": 1, "val_batch_size": 16, "pictures": 0}
    return tiny_params(train={"runtime": runtime, "finetune_video": sched},
                       video={"n": 3, "interval": 3, "max_batches": 2, **(video or {})})


def _video_batch(video_data, params: Params) -> tuple[dict, list[int]]:
    data, kp_dir, _ = video_data
    table = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(table.image)
    ds = HandFrames(table, data, kp, params.train.input_size, params.train.augment, seed=0)
    v = params.video
    batches = video_epoch_batches(table, params.train.finetune_video.batch_size, v.n, v.interval, 0, 0)
    keys = batches[0]
    items = [ds[k] for k in keys]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}, [i for i, _ in keys]


def test_video_batches_reshape_to_windows(video_data):
    data = video_data[0]
    table = load_split(data, "train")
    params = video_params()
    for epoch in (0, 1):
        batches = video_epoch_batches(table, 6, 3, 3, 0, epoch)
        assert batches and all(len(b) == 6 and all(e == epoch for _, e in b) for b in batches)
        for b in batches:
            idx = np.array([i for i, _ in b]).reshape(2, 3)  # (m, n)
            assert (table.seq[idx] == table.seq[idx][:, :1]).all()
            assert (np.diff(table.frame[idx], axis=1) == 3).all()
    assert video_epoch_batches(table, 6, 3, 3, 0, 0) == video_epoch_batches(table, 6, 3, 3, 0, 0)
    assert len(video_epoch_batches(table, 6, 3, 3, 0, 0, max_batches=1)) == 1
    # two processes split the batches
    r0, r1 = (video_epoch_batches(table, 6, 3, 3, 0, 0, rank=r, world=2) for r in (0, 1))
    assert not ({i for b in r0 for i in b} & {i for b in r1 for i in b}) or len(r0) == len(r1)
    # a left-out row is a gap no window crosses
    sub = np.delete(np.arange(len(table)), 4)
    for b in video_epoch_batches(table, 6, 3, 3, 0, 0, subset=sub):
        assert 4 not in [i for i, _ in b]
    _, idx = _video_batch(video_data, params)
    assert np.asarray(idx).reshape(2, 3).shape == (2, 3)


def test_video_step_terms_and_gradients(video_data):
    params = video_params()
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, video_data[2])
    batch, _ = _video_batch(video_data, params)
    opt = torch.optim.Adam(system.net.parameters(), lr=1e-3)
    for _ in range(2):
        total, parts, terms = system.training_loss(batch, "finetune_video")
        assert {"quat", "ts", "loc", "pixel", "2d", "cons"} <= set(terms)
        assert all(torch.isfinite(v) for v in terms.values()), {k: float(v) for k, v in terms.items()}
        assert torch.allclose(total, sum(parts.values()))
        assert torch.isclose(parts["quat"], params.weights.quat * terms["quat"])
        assert float(terms["ts"].detach()) > 0
        opt.zero_grad()
        total.backward()
        grads = [p.grad for n, p in system.net.named_parameters() if n.startswith("encoder.") and p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        opt.step()
    # the video terms alone reach the 3D branch
    system.net.zero_grad()
    _, _, terms = system.training_loss(batch, "finetune_video")
    (terms["quat"] + terms["ts"]).backward()
    g = [p.grad for n, p in system.net.named_parameters() if n.startswith(("geometry.", "texture_light."))
         and p.grad is not None]
    assert g and all(torch.isfinite(x).all() for x in g) and sum(float(x.abs().sum()) for x in g) > 0


@pytest.mark.parametrize("kind", ["quaternion", "temporal", "smooth", "none"])
def test_motion_term_kinds_run(video_data, kind):
    params = video_params({"temporal_loss": kind, "ts": kind != "none"})
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, video_data[2])
    batch, _ = _video_batch(video_data, params)
    total, _, terms = system.training_loss(batch, "finetune_video")
    assert torch.isfinite(terms["quat"]) and torch.isfinite(total)
    assert ("ts" in terms) == (kind != "none")
    if kind == "none":
        assert float(terms["quat"]) == 0.0
    total.backward()


def test_orthographic_camera_variant(video_data):
    params = video_params({"camera": "orthographic"})
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, video_data[2], orthographic=True)
    assert system.orthographic and system.renderer.orthographic
    batch, _ = _video_batch(video_data, params)
    total, _, terms = system.training_loss(batch, "finetune_video")
    assert all(torch.isfinite(v) for v in terms.values())
    total.backward()
    # u = fx X + cx: the projection ignores depth
    out, pred = system.predict(batch["image"][:2], batch["K"][:2])
    K = batch["K"][:2]
    expect = pred.joints[..., :2] * torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None] + K[:, None, :2, 2]
    assert torch.allclose(pred.j_pro, expect, atol=1e-4)


def test_extra_wild_frames_join_as_new_sequences(video_data):
    data, kp_dir, _ = video_data
    train = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(train.image)
    rows = np.arange(5)
    table, kps = video_training_frames(train, kp, train, kp, rows)
    assert len(table) == len(kps) == len(train) + 5
    assert not set(table.seq[len(train):]) & set(train.seq)
    assert (table.frame[len(train):] == train.frame[rows]).all()
    assert table.joints3d is None
    assert len(video_epoch_batches(table, 6, 3, 3, 0, 0)) >= len(video_epoch_batches(train, 6, 3, 3, 0, 0))


def test_finetune_video_stage_resumes_and_compares(video_data, tmp_path):
    data, kp, hand = video_data
    params = video_params()
    torch.manual_seed(0)
    init = tmp_path / "finetune" / "model.pt"
    init.parent.mkdir()
    torch.save({"net": S2HandSystem.from_params(params, hand).net.state_dict()}, init)

    def paths(name):
        return StagePaths(dataset=data, keypoints=kp, hand_model=hand, model_out=tmp_path / name / "model.pt",
                          resume_dir=tmp_path / name / ".resume")

    with pytest.raises(TrainingInterrupted):
        train_stage(params, "finetune_video", paths("a"), init_from={"finetune": init}, interrupt_at_step=1)
    s = train_stage(params, "finetune_video", paths("a"), init_from={"finetune": init})
    assert s["resumed"] and s["steps"] == 2
    for key in ("s2hand", "s2hand_v"):
        c = s["comparison"][key]
        assert {"pa_mpjpe_cm", "acc_mm_frame2", "quat_loss", "texture_sd", "shape_sd"} <= set(c)
        assert all(np.isfinite(v) for v in c.values())
    b = train_stage(params, "finetune_video", paths("b"), init_from={"finetune": init})
    wa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["net"]
    wb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["net"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "a resumed run takes the uninterrupted run's steps"
    assert b["comparison"]["s2hand"] == s["comparison"]["s2hand"]


def _downstream(stages: dict, root: str) -> set[str]:
    outs = {name: [str(o if isinstance(o, str) else next(iter(o))) for o in st.get("outs", [])]
            for name, st in stages.items()}
    found, changed = {root}, True
    while changed:
        changed = False
        for name, st in stages.items():
            if name in found:
                continue
            produced = [o for f in found for o in outs[f]]
            if any(str(d).startswith(tuple(produced)) for d in st.get("deps", [])):
                found.add(name)
                changed = True
    return found


def test_only_finetune_video_reads_the_video_weights():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    allowed = _downstream(stages, "finetune_video")
    for name, st in stages.items():
        for p in st.get("params", []):
            keys = [p] if isinstance(p, str) else [k for f in p.values() for k in f]
            for k in keys:
                assert k != "weights", f"{name} declares all of weights: weights.quat/ts would rerun it"
                if k in ("weights.quat", "weights.ts", "video", "train.finetune_video"):
                    assert name in allowed, f"{name} declares {k}"
    ft = stages["finetune_video"]["params"]
    assert {"weights.quat", "weights.ts", "video", "train.finetune_video"} <= set(ft)
