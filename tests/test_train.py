"""Training: data geometry, every loss term and its gradients, resume, determinism, stage chaining, DDP.

A tiny generated dataset (3 sequences of 6 frames at 64 px: 12 train, 6 val frames), simulated
keypoints, input 64 px, render 32 px, a small random-init network.
    .venv/bin/python -m pytest -q tests/test_train.py            # the fast set
    .venv/bin/python -m pytest -q -m slow tests/test_train.py    # DDP (2 gloo processes)
"""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from s2hand.config import Params, validate_params
from s2hand.data.table import FrameTable, load_split
from s2hand.detect import load_keypoints
from s2hand.model.files import load_system
from s2hand.model.frames import HandFrames
from s2hand.model.predict import predict
from s2hand.model.scores import validation_metrics
from s2hand.model.system import S2HandSystem
from s2hand.render import project
from s2hand.train import StagePaths, TrainingInterrupted, train_stage
from s2hand.train.batches import epoch_batches
from tests.conftest import merged, tiny_params


@pytest.fixture(scope="session")
def tiny_data(tiny_training_data):
    return tiny_training_data(6)


STAGE = {"epochs": 2, "lr": 1e-3, "lr_step": 1, "lr_gamma": 0.5, "batch_size": 4}
TRAIN = {  # merged into tiny_params' train section
    "augment": {"scale": 0.1, "shift": 0.05, "rotation_deg": 30.0},
    "runtime": {"device": "cpu", "checkpoint_every": 2, "val_batch_size": 8, "pictures": 2},
    "pretrain_2d": STAGE, "pretrain_3d": STAGE, "finetune": STAGE,
}


def train_params(**train: object) -> Params:
    """The tiny params with two-epoch stages on the CPU; `train` merged into the train section."""
    return tiny_params(train=merged(TRAIN, train))


def paths_for(tiny_data, out, stage: str) -> StagePaths:
    data, kp, hand = tiny_data
    return StagePaths(dataset=data, keypoints=kp, hand_model=hand, model_out=out / stage / "model.pt",
                      resume_dir=out / ".resume" / stage, pictures_dir=out / "pictures")


def _batch(tiny_data, params: Params, n: int = 4) -> dict:
    data, kp_dir, _ = tiny_data
    table = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(table.image)
    ds = HandFrames(table, data, kp, params.train.input_size, params.train.augment, seed=0)
    items = [ds[(i, 0)] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class Recorder:
    """A TrainLogger that keeps every step's metrics: steps[step] = {name: value}."""

    def __init__(self):
        self.steps: dict[int, dict] = {}

    def log_metrics(self, metrics, step):
        self.steps.setdefault(step, {}).update(metrics)

    def log_artifact(self, path, artifact_path=None):
        pass


def _net_state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["net"]


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- data


def test_augmented_item_is_geometrically_consistent(tiny_data):
    """Projecting the (rotated) 3D joints with the item's K lands on its transformed 2D joints."""
    data, kp_dir, _ = tiny_data
    table = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(table.image)
    ds = HandFrames(table, data, kp, 48, validate_params({"train": {"augment": {"rotation_deg": 90}}}).train.augment, 0)
    for key in [(0, 0), (3, 1), (5, 7), 2]:
        it = ds[key]
        assert it["image"].shape == (3, 48, 48) and 0 <= it["image"].min() and it["image"].max() <= 1
        uv = project(it["joints3d"][None], it["K"][None])[0]
        assert torch.allclose(uv, it["joints2d"], atol=1e-3), (key, (uv - it["joints2d"]).abs().max())
    assert not torch.equal(ds[(0, 0)]["K"], ds[(0, 1)]["K"])  # the augmentation changes with the epoch
    assert torch.equal(ds[(0, 1)]["image"], ds[(0, 1)]["image"])  # and is a function of (index, epoch)


def test_train_rows_drop_frames_with_too_few_or_too_unsure_keypoints():
    from s2hand.model.frames import train_rows as _train_rows

    conf = np.zeros((4, 21), np.float32)
    conf[1, :3] = 0.9  # 3 confident keypoints
    conf[2, :] = 0.5  # all found, unsure
    conf[3, :] = 0.95
    assert _train_rows(conf, 1).tolist() == [1, 2, 3]
    assert _train_rows(conf, 5).tolist() == [2, 3]
    assert _train_rows(conf, 1, 0.8).tolist() == [1, 3]
    assert _train_rows(conf, 0, 0.0).tolist() == [0, 1, 2, 3]


def test_epoch_batches_partition_the_epoch_between_processes():
    single = epoch_batches(20, 2, seed=3, epoch=1)
    ranks = [epoch_batches(20, 2, seed=3, epoch=1, rank=r, world=2) for r in range(2)]
    assert sorted(i for b in single for i, _ in b) == list(range(20))
    both = [i for r in ranks for b in r for i, _ in b]
    assert sorted(both) == list(range(20)) and len(ranks[0]) == len(ranks[1]) == 5
    assert epoch_batches(20, 2, 3, 2) != single


# ----------------------------------------------------------------------------- model


def test_training_step_terms_finite_and_gradients_reach_every_part(tiny_data):
    params = train_params()
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, tiny_data[2])
    system.train()
    batch = _batch(tiny_data, params)
    total, parts, terms = system.training_loss(batch, "finetune")
    assert set(terms) == {"loc", "ori", "pixel", "ssim", "beta", "tex", "scale", "joint", "2d", "cons"}
    for k, v in terms.items():
        assert torch.isfinite(v), k
    assert torch.isclose(total, sum(parts.values()))
    total.backward()
    net = system.net
    probes = {
        "encoder": net.encoder.backbone.conv_stem.weight,
        "pose head": net.geometry.pose[-1].weight,
        "shape head": net.geometry.shape[-1].weight,
        "scale head": net.geometry.scale[-1].weight,
        "rotation head": net.geometry.rot[-1].weight,
        "translation head": net.geometry.trans[-1].weight,
        "texture head": net.texture_light.texture[-1].weight,
        "light head": net.texture_light.light[-1].weight,
        "2D branch": net.hourglass.stem[0].weight,
    }
    for name, prm in probes.items():
        assert prm.grad is not None and torch.isfinite(prm.grad).all() and prm.grad.abs().sum() > 0, name
    # the initial hand is in view: projected keypoints inside the image
    _, extra = system.loss_terms(batch, "pretrain_3d")
    uv = extra["pred"].j_pro
    assert (uv > 0).all() and (uv < params.train.input_size).all()
    assert extra["render"].silhouette.mean() > 0.02


@pytest.mark.parametrize("mode", ["paper", "detach"])
def test_photometric_placement_gradient_follows_loss_photo_placement(tiny_data, mode):
    """detach: E_pixel and E_SSIM leave the hand's scale and translation alone (they still shape
    the pose, rotation and texture); paper: they reach all of them."""
    params = train_params(loss={"photo_placement": mode})
    torch.manual_seed(0)
    system = S2HandSystem.from_params(params, tiny_data[2])
    system.train()
    terms, extra = system.loss_terms(_batch(tiny_data, params), "pretrain_3d")
    out = extra["out"]
    heads = {k: out[k] for k in ("scale", "trans", "rot", "pose_pca", "face_colors")}
    grads = torch.autograd.grad(terms["pixel"] + terms["ssim"], list(heads.values()), allow_unused=True)
    norm = {k: (0.0 if g is None else g.abs().sum().item()) for k, g in zip(heads, grads)}
    for k in ("rot", "pose_pca", "face_colors"):
        assert norm[k] > 0, (mode, k)
    for k in ("scale", "trans"):
        assert (norm[k] > 0) == (mode == "paper"), (mode, k, norm[k])
    # the keypoint terms still place the hand either way
    g_loc = torch.autograd.grad(terms["loc"], [out["trans"]])[0]
    assert g_loc.abs().sum() > 0


@pytest.mark.parametrize("stage, expected", [("pretrain_2d", {"2d"}),
                                             ("pretrain_3d", {"loc", "ori", "pixel", "ssim", "beta", "tex", "scale", "joint"})])
def test_pretraining_stages_use_their_branch_only(tiny_data, stage, expected):
    params = train_params()
    system = S2HandSystem.from_params(params, tiny_data[2])
    terms, _ = system.loss_terms(_batch(tiny_data, params), stage)
    assert set(terms) == expected


# ----------------------------------------------------------------------------- loop


def _with_truncated_frame(tiny_data, tmp_path) -> tuple[tuple, str]:
    """A copy of the tiny dataset whose first train image is a JPEG cut in half."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data[0], data)
    rel = str(load_split(data, "train").image[0])
    jpg = (data / rel).read_bytes()
    (data / rel).write_bytes(jpg[: len(jpg) // 2])
    return (data, *tiny_data[1:]), rel


def test_a_bad_frame_is_skipped_and_counted_never_learnt_from(tiny_data, tmp_path):
    from s2hand.data.images import ImageError
    from s2hand.train.batches import collate_skipping

    data, rel = _with_truncated_frame(tiny_data, tmp_path)
    table = load_split(data[0], "train")
    with pytest.raises(ImageError, match="truncated JPEG"):
        HandFrames(table, data[0], None, 64)[0]
    ds = HandFrames(table, data[0], None, 64, skip_bad=True)
    assert ds[0] is None and ds[1] is not None
    # the window holding the bad frame is dropped whole, so a video batch still reshapes to (m, n)
    batch = collate_skipping([ds[1], ds[0], ds[2], ds[3]], window=2)
    assert batch["image"].shape[0] == 2 and int(batch["skipped"]) == 1
    assert torch.equal(batch["index"], torch.tensor([2, 3]))
    assert set(collate_skipping([None, None])) == {"skipped"}
    s = train_stage(train_params(runtime={"max_steps": 3}), "pretrain_2d", paths_for(data, tmp_path / "run", "pretrain_2d"))
    assert s["skipped_frames"] == 1 and s["steps"] == 3


def test_resume_after_interruption_equals_uninterrupted_run_and_seed_determines_weights(tiny_data, tmp_path):
    params = train_params()
    # uninterrupted, twice: same seed, same weights
    s1 = train_stage(params, "pretrain_3d", paths_for(tiny_data, tmp_path / "a", "pretrain_3d"))
    train_stage(params, "pretrain_3d", paths_for(tiny_data, tmp_path / "b", "pretrain_3d"))
    ref = _net_state(tmp_path / "a" / "pretrain_3d" / "model.pt")
    _assert_same_state(ref, _net_state(tmp_path / "b" / "pretrain_3d" / "model.pt"))
    assert s1["steps"] == 6 and not s1["resumed"]
    assert np.isfinite(s1["val"]["pa_mpjpe_cm"]) and "pa_mpvpe_cm" in s1["val"]
    assert "pa_mpjpe_cm" in s1["baseline_mean_pose"]
    vs = s1["vs_baseline"]  # paired per-frame comparison, same numbers as the two means
    assert vs["diff_cm"] == pytest.approx(s1["val"]["pa_mpjpe_cm"] - s1["baseline_mean_pose"]["pa_mpjpe_cm"], abs=1e-9)
    assert vs["frames"] == len(load_split(tiny_data[0], "val")) and vs["groups"] >= 1
    assert vs["lo_cm"] is None or vs["lo_cm"] <= vs["diff_cm"] <= vs["hi_cm"]
    assert not (tmp_path / "a" / ".resume" / "pretrain_3d").exists()  # removed when done

    # interrupted at step 3 (last checkpoint at step 2), then rerun: continues from the checkpoint
    paths = paths_for(tiny_data, tmp_path / "c", "pretrain_3d")
    with pytest.raises(TrainingInterrupted):
        train_stage(params, "pretrain_3d", paths, interrupt_at_step=3)
    ck = torch.load(paths.resume_dir / "last.pt", map_location="cpu", weights_only=True)
    assert (ck["step"], ck["epoch"], ck["batch"]) == (2, 0, 2)
    assert ck["optimizer"]["state"] and all(s["step"] == 2 for s in ck["optimizer"]["state"].values())
    s3 = train_stage(params, "pretrain_3d", paths)
    assert s3["resumed"] and s3["steps"] == 6 and s3["vs_baseline"] == vs
    _assert_same_state(ref, _net_state(paths.model_out))

    # a different seed gives different weights
    other = validate_params({**params.model_dump(), "seed": 1})
    train_stage(other, "pretrain_3d", paths_for(tiny_data, tmp_path / "d", "pretrain_3d"))
    assert not torch.equal(ref["geometry.pose.2.weight"], _net_state(tmp_path / "d" / "pretrain_3d" / "model.pt")["geometry.pose.2.weight"])


def test_weight_average_is_what_validation_and_the_model_file_hold_and_it_resumes(tiny_data, tmp_path):
    """With train.<stage>.ema = d the model file holds d W1 + (1 - d) W2 after two steps (W1, W2: the live
    weights after steps 1 and 2, from runs without averaging), validation reports that network, training
    itself is unchanged, and an interrupted run resumes to the same average."""
    d = 0.75

    def run(name: str, steps: int, ema: float, **kw) -> tuple[dict, dict]:
        params = train_params(pretrain_3d={"ema": ema}, runtime={"max_steps": steps, "checkpoint_every": 1})
        paths = paths_for(tiny_data, tmp_path / name, "pretrain_3d")
        return train_stage(params, "pretrain_3d", paths, **kw), paths

    w1 = _net_state(run("w1", 1, 0.0)[1].model_out)
    w2 = _net_state(run("w2", 2, 0.0)[1].model_out)
    s, paths = run("avg", 2, d)
    avg = _net_state(paths.model_out)
    moved = 0
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, d * w1[k] + (1 - d) * w2[k], rtol=1e-5, atol=1e-7, msg=k)
            moved += int(not torch.equal(w1[k], w2[k]))
    assert moved > 10  # parameters and BatchNorm statistics that changed between the steps

    system, _ = load_system(paths.model_out, tiny_data[2], device="cpu")
    val = load_split(tiny_data[0], "val")
    ds = HandFrames(val, tiny_data[0], None, 64, None, 0)
    m = validation_metrics(predict(system, ds, 8, "cpu", branch="3d"), val)
    assert m["pa_mpjpe_cm"] == pytest.approx(s["val"]["pa_mpjpe_cm"], rel=1e-5)

    with pytest.raises(TrainingInterrupted):  # the checkpoint at step 1 holds the average too
        run("resumed", 2, d, interrupt_at_step=1)
    assert torch.load(tmp_path / "resumed" / ".resume" / "pretrain_3d" / "last.pt", weights_only=True)["average"]
    resumed, paths = run("resumed", 2, d)
    assert resumed["resumed"]
    _assert_same_state(avg, _net_state(paths.model_out))


def test_stale_resume_checkpoint_is_ignored(tiny_data, tmp_path):
    params = train_params(runtime={"max_steps": 1})
    paths = paths_for(tiny_data, tmp_path, "pretrain_2d")
    with pytest.raises(TrainingInterrupted):
        train_stage(train_params(), "pretrain_2d", paths, interrupt_at_step=2)  # checkpoint at step 2
    s = train_stage(params, "pretrain_2d", paths)  # other params: starts afresh
    assert not s["resumed"] and s["steps"] == 1 and s["vs_baseline"] == {}  # no 3D output


class _Planted:
    """Unpickling this runs code: what a planted resume file would do."""

    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        return (os.mknod, (self.flag,))


def test_planted_resume_checkpoint_runs_no_code(tiny_data, tmp_path):
    paths = paths_for(tiny_data, tmp_path, "pretrain_2d")
    paths.resume_dir.mkdir(parents=True)
    flag = tmp_path / "pwned"
    torch.save({"fingerprint": "x", "p": _Planted(flag)}, paths.resume_dir / "last.pt")
    s = train_stage(train_params(runtime={"max_steps": 1}), "pretrain_2d", paths)
    assert not flag.exists() and not s["resumed"] and s["steps"] == 1


def test_resume_fingerprint_covers_params_inputs_and_code(tiny_data, monkeypatch):
    from s2hand.train.loop import run_fingerprint

    files = [tiny_data[0] / "train.npz"]
    base = run_fingerprint(train_params(), "pretrain_3d", 1, files)
    assert run_fingerprint(train_params(), "pretrain_3d", 1, files) == base
    assert run_fingerprint(train_params(runtime={"pictures": 1}), "pretrain_3d", 1, files) == base  # logging only
    assert run_fingerprint(train_params(input_size=32), "pretrain_3d", 1, files) != base
    assert run_fingerprint(train_params(), "pretrain_3d", 2, files) != base
    assert run_fingerprint(train_params(), "pretrain_3d", 1, files + [tiny_data[1] / "train.json"]) != base
    monkeypatch.setattr("s2hand.train.loop.code_digest", lambda: "0" * 16)
    assert run_fingerprint(train_params(), "pretrain_3d", 1, files) != base


def test_stages_chain_into_finetune(tiny_data, tmp_path):
    params = train_params(runtime={"max_steps": 2})
    pre = {stage: train_stage(params, stage, paths_for(tiny_data, tmp_path, stage))
           for stage in ("pretrain_2d", "pretrain_3d")}
    p2d, p3d = (tmp_path / s / "model.pt" for s in ("pretrain_2d", "pretrain_3d"))
    init = {"pretrain_2d": p2d, "pretrain_3d": p3d}
    s = train_stage(params, "finetune", paths_for(tiny_data, tmp_path, "finetune"), init_from=init)
    assert s["steps"] == 2 and {"pa_mpjpe_cm", "pa_mpvpe_cm", "proj_mpjpe_px", "hg_mpjpe_px"} <= set(s["val"])
    assert (tmp_path / "pictures" / "finetune.png").stat().st_size > 1000
    # per-frame values of the final validation: one per val frame, averaging to the split's numbers
    f = s["frames"]
    assert len(f["pa_mpjpe_cm"]) == len(f["seq"]) == len(f["frame"]) > 0
    assert f["pa_mpjpe_cm"].mean() == pytest.approx(s["val"]["pa_mpjpe_cm"], rel=1e-4)
    assert f["pa_mpvpe_cm"].mean() == pytest.approx(s["val"]["pa_mpvpe_cm"], rel=1e-4)
    assert pre["pretrain_2d"]["frames"] == {}  # no 3D predictions
    # finetune started from both: its validation before training equals each pretrained branch's final one
    h = s["history"][0]
    assert h["step"] == 0
    assert h["hg_mpjpe_px"] == pytest.approx(pre["pretrain_2d"]["val"]["hg_mpjpe_px"], rel=1e-5)
    assert h["pa_mpjpe_cm"] == pytest.approx(pre["pretrain_3d"]["val"]["pa_mpjpe_cm"], rel=1e-5)


# ----------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, params: Params, paths: StagePaths, queue) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        summary = train_stage(params, "pretrain_3d", paths)
        queue.put((rank, summary.get("steps")))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: ~35 s on 2 cores
def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    import torch.multiprocessing as mp

    params = train_params(pretrain_3d={"batch_size": 2}, runtime={"max_steps": 3})
    paths = paths_for(tiny_data, tmp_path, "pretrain_3d")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), params, paths, queue), nprocs=2, join=True,
                       start_method="spawn")
    results = dict(queue.get() for _ in range(2))
    assert results[0] == 3  # rank 0 reports; 3 steps of 2 x 2 frames
    assert paths.model_out.is_file()


def test_render_params_reach_the_renderer(tiny_data):
    raw = train_params().model_dump()
    raw["render"].update(face_selection="pytorch3d", faces_per_pixel=4)
    system = S2HandSystem.from_params(validate_params(raw), tiny_data[2])
    assert system.renderer.face_selection == "pytorch3d" and system.renderer.faces_per_pixel == 4
    with pytest.raises(Exception, match="face_selection"):
        raw["render"]["face_selection"] = "cuda"
        validate_params(raw)


def test_training_rows_apply_the_temporal_filter_to_videos_only():
    from types import SimpleNamespace

    from s2hand.model.frames import training_rows

    rng = np.random.default_rng(0)
    base = rng.normal(size=(21, 2)) * 10 + 60
    peaks = np.stack([base + f for f in range(8)]).astype(np.float32)
    peaks[5] = peaks[5][::-1]
    conf = np.ones((8, 21), np.float32)
    table = FrameTable(image=np.array([f"{i}.jpg" for i in range(8)]), K=np.tile(np.eye(3), (8, 1, 1)),
                       seq=np.zeros(8, np.int64), frame=np.arange(8))
    kp = SimpleNamespace(peaks=peaks, conf=conf)
    params = train_params(max_disagreement=0.2).train
    rows = training_rows(table, kp, params)
    assert 5 not in rows and len(rows) >= 5
    assert training_rows(table, kp, train_params(max_disagreement=0.0).train).tolist() == list(range(8))  # off
    still = FrameTable(image=table.image, K=table.K)  # seq -1: nothing to compare with, all pass
    assert training_rows(still, kp, params).tolist() == list(range(8))


def test_cuda_graph_dispatch_replays_only_matching_training_calls(tiny_data):
    """s2hand.train.graphs: a captured module replays its graph only for training-mode calls with
    grad on and inputs of the captured shape, dtype and layout; anything else runs eager. Capture
    itself needs CUDA (tests/test_gpu.py runs it) and refuses a CPU network with a message."""
    from s2hand.train.graphs import _dispatch, _signature, capture_network

    m = torch.nn.Linear(3, 2)
    calls: list[str] = []
    eager, graphed = m.forward, lambda x: calls.append("graph") or m.weight.sum()
    m.forward = _dispatch(m, lambda *a, **k: calls.append("eager") or eager(*a, **k), graphed,
                          _signature([torch.zeros(4, 3)]))
    m.train()
    m(torch.ones(4, 3))
    m(torch.ones(5, 3))  # another batch size
    m(torch.ones(4, 3, dtype=torch.float64).float().t().contiguous().t())  # another layout
    with torch.no_grad():
        m(torch.ones(4, 3))
    m.eval()
    m(torch.ones(4, 3))
    assert calls == ["graph", "eager", "eager", "eager", "eager"]
    system = S2HandSystem.from_params(train_params(), tiny_data[2])
    with pytest.raises(ValueError, match="CUDA"):
        capture_network(system, 4, 64, "all", channels_last=False)


def test_each_step_logs_every_term_and_a_non_finite_loss_stops_the_stage(tiny_data, tmp_path, monkeypatch):
    """Per step: train/total, train/lr, train/epoch, each unweighted term and each weighted one, read
    back in one go; the weighted terms sum to the total. A NaN loss stops the stage with the terms."""
    rec = Recorder()
    params = train_params(runtime={"max_steps": 2})
    train_stage(params, "pretrain_3d", paths_for(tiny_data, tmp_path, "pretrain_3d"), logger=rec)
    m = rec.steps[1]
    terms = {"loc", "ori", "pixel", "ssim", "beta", "tex", "scale", "joint"}
    assert {"train/total", "train/lr", "train/epoch"} | {f"train/{t}" for t in terms} <= set(m)
    weighted = [v for k, v in m.items() if k.startswith("train/weighted_")]
    assert len(weighted) >= len(terms) - 1 and sum(weighted) == pytest.approx(m["train/total"], rel=1e-5)
    assert all(isinstance(v, (int, float)) for v in m.values())  # plain numbers, not tensors

    real = S2HandSystem.training_loss

    def nan_loss(self, batch, stage, *args, **kwargs):
        total, parts, terms = real(self, batch, stage, *args, **kwargs)
        return total * float("nan"), parts, terms

    monkeypatch.setattr(S2HandSystem, "training_loss", nan_loss)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 1"):
        train_stage(params, "pretrain_3d", paths_for(tiny_data, tmp_path / "nan", "pretrain_3d"))


# ----------------------------------------------------------------------------- pseudo labels


def test_pseudo_labels_fit_save_load_and_reach_the_training_energy(tiny_data, tmp_path):
    """The pseudo_labels path end to end on tiny data: fits of some frames, saved by image name,
    loaded onto the table (mask where a frame has none), then E_pseudo in pretrain_3d's logged
    energy at train.pseudo_labels.weight; a file of another component count is refused."""
    from s2hand.evaluate.keypoint_fit import fit_codes
    from s2hand.hand.layer import HandLayer
    from s2hand.train.pseudo_labels import load_pseudo_labels, save_pseudo_labels

    data, kp_dir, hand = tiny_data
    params = train_params(pseudo_labels={"weight": 2.0, "iters": 5}, runtime={"max_steps": 2})
    table = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(table.image)
    layer = HandLayer.from_file(hand, params.hand.num_pca_comps)
    rows = np.arange(0, len(table), 2)
    codes = fit_codes(layer, kp.peaks[rows], kp.conf[rows], table.K[rows], params.weights, 64.0, iters=5)
    assert codes["pose"].shape == (len(rows), params.hand.num_pca_comps) and np.isfinite(codes["pose"]).all()
    path = tmp_path / "pseudo.npz"
    save_pseudo_labels(path, table.image[rows], codes)
    t = load_pseudo_labels(path, table, params.hand.num_pca_comps)
    assert t["pseudo_mask"].tolist() == [i % 2 == 0 for i in range(len(table))]
    np.testing.assert_allclose(t["pseudo_pose"][rows], codes["pose"], rtol=1e-6)
    assert not t["pseudo_pose"][1::2].any()
    with pytest.raises(ValueError, match="pose components"):
        load_pseudo_labels(path, table, params.hand.num_pca_comps + 1)

    paths = paths_for(tiny_data, tmp_path, "pretrain_3d")
    with pytest.raises(FileNotFoundError, match="pseudo_labels"):
        train_stage(params, "pretrain_3d", paths)
    paths.pseudo_labels = path
    rec = Recorder()
    train_stage(params, "pretrain_3d", paths, logger=rec)
    m = rec.steps[1]
    assert m["train/pseudo"] > 0 and m["train/weighted_pseudo"] == pytest.approx(2.0 * m["train/pseudo"], rel=1e-5)



def test_propagate_labels_lends_the_nearest_fit_of_the_same_shot_only():
    """A frame without a fit takes the nearest fitted frame's code within the radius (ties: the
    earlier frame), never across a cut, another sequence or from a still image; the input is not
    modified; radius 0 changes nothing."""
    from s2hand.train.pseudo_labels import propagate_labels

    #            seq 0, a cut before frame 6                   seq 1          still images
    seq = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, -1, -1])
    frame = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 0, 1])
    cut = np.zeros(14, bool)
    cut[6] = True
    fitted = np.array([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0], bool)
    pose = np.where(fitted[:, None], np.arange(14.0)[:, None], 0.0) * np.ones((1, 3))
    t = {"pseudo_mask": fitted, "pseudo_pose": pose, "pseudo_shape": pose[:, :1] * np.ones((1, 10))}
    before = {k: v.copy() for k, v in t.items()}
    out, source = propagate_labels(t, seq, frame, cut, radius=2)
    #                          0  1  2  3  4  5   6   7   8   9  10  11  12  13
    assert source.tolist() == [2, 2, 2, 2, 4, 4, -1, -1, -1, -1, -1, -1, 12, -1]  # 3: tie 2/4 -> 2
    assert out["pseudo_mask"].tolist() == (source >= 0).tolist()
    np.testing.assert_array_equal(out["pseudo_pose"][source >= 0, 0], source[source >= 0])
    np.testing.assert_array_equal(out["pseudo_shape"][5], np.full(10, 4.0))
    for k, v in before.items():
        np.testing.assert_array_equal(t[k], v)
    same, src0 = propagate_labels(t, seq, frame, cut, radius=0)
    assert same["pseudo_mask"].tolist() == fitted.tolist() and src0.tolist() == np.where(fitted, np.arange(14), -1).tolist()
    with pytest.raises(ValueError, match="radius"):
        propagate_labels(t, seq, frame, cut, radius=-1)


def test_lent_labels_join_the_training_rows_without_their_detections(tiny_data, tmp_path):
    """train.pseudo_labels.propagate: the frames that borrow a fit are trained on, with that fit as
    target and their own detection removed (confidence 0), the fitted frames keep theirs."""
    from s2hand.train.loop import _lend_labels
    from s2hand.train.pseudo_labels import load_pseudo_labels, save_pseudo_labels

    data, kp_dir, _ = tiny_data
    table = load_split(data, "train")
    kp = load_keypoints(kp_dir / "train.json").reorder(table.image)
    rows = np.arange(0, len(table), 3)
    codes = {"pose": np.random.default_rng(0).normal(size=(len(rows), 6)), "shape": np.zeros((len(rows), 10))}
    save_pseudo_labels(tmp_path / "p.npz", table.image[rows], codes)
    targets = load_pseudo_labels(tmp_path / "p.npz", table, 6)
    new_rows, new_kp = _lend_labels(targets, table, kp, rows, 1, "pretrain_3d")
    borrowed = np.setdiff1d(new_rows, rows)
    assert len(borrowed) > 0 and set(rows) <= set(new_rows)
    assert targets["pseudo_mask"][new_rows].all()
    assert not new_kp.conf[borrowed].any()
    np.testing.assert_array_equal(new_kp.conf[rows], kp.conf[rows])
    for i in borrowed:  # the fit of a neighbour one frame away in the same sequence
        near = [j for j in rows if table.seq[j] == table.seq[i] and abs(int(table.frame[j]) - int(table.frame[i])) == 1]
        assert any(np.allclose(targets["pseudo_pose"][i], targets["pseudo_pose"][j]) for j in near)
