"""The training-throughput benchmark (s2hand.train.bench): rows, options, and what they time."""
from __future__ import annotations

import pytest

from s2hand.train.bench import ROWS, bench_params, run
from tests.test_train import train_params


def test_bench_params_override_sizes_device_and_face_selection():
    p = bench_params(train_params(), input_size=48, render_size=24, device="cpu", face_selection="pytorch3d")
    assert (p.train.input_size, p.render.size, p.train.runtime.device, p.render.face_selection) == (48, 24, "cpu",
                                                                                                     "pytorch3d")
    assert bench_params(train_params(), 48, 24, "cpu").render.face_selection == train_params().render.face_selection


@pytest.mark.slow  # times every row: ~15 s per face selection on 2 cores
@pytest.mark.parametrize("faces", ["torch", "pytorch3d"])
def test_bench_times_every_row_with_the_chosen_face_selection(npz_path, faces):
    rows = run(train_params(), str(npz_path), "cpu", batch=2, input_size=64, render_size=16, reps=1, bf16=False,
               channels_last=False, face_selection=faces)
    assert [r["row"] for r in rows] == [name for name, _ in ROWS]
    assert all(r["faces"] == faces and r["ms_per_step"] > 0 and r["images_per_s"] > 0 for r in rows)
    assert rows[0]["x_encoder"] == 1.0
