"""Where closure is lost (s2hand.evaluate.closure): the filter's bias, the agreement rows, the CLI."""
import numpy as np
import yaml

from s2hand.data.table import load_split
from s2hand.evaluate.closure import agreement_row, filter_bias, main
from tests.conftest import tiny_params


def test_filter_bias_is_level_for_a_blind_filter_and_shows_one_that_drops_fists():
    s = np.linspace(0.4, 1.0, 400)  # true straightness, closed to open
    blind = np.arange(400) % 2 == 0
    b = filter_bias(s, blind)
    assert abs(b["closed_quarter"] - 0.5) < 0.01 and abs(b["open_half"] - 0.5) < 0.01 and b["all"] == 0.5
    only_open = s >= np.median(s)
    b = filter_bias(s, only_open)
    assert b["closed_quarter"] == 0.0 and b["open_half"] == 1.0


def test_agreement_row_of_the_truth_itself_is_perfect(tiny_training_data):
    data, _, _ = tiny_training_data(6)
    table = load_split(data, "train")
    row = agreement_row("truth", table.joints3d, table)
    assert row["r"] > 0.999 and abs(row["gap_ratio"] - 1.0) < 1e-9 and row["frames"] == len(table)
    assert row["closed_pred"] == row["closed_gt"]


def test_closure_cli_writes_the_filter_and_label_rows(tiny_training_data, tmp_path):
    data, kp, hand = tiny_training_data(6)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params(train={"pseudo_labels": {"iters": 3}}).model_dump(mode="json")))
    out = tmp_path / "closure.json"
    rows = main(["--params", str(params), "--dataset", str(data), "--keypoints", str(kp), "--hand-model", str(hand),
                 "--frames", "0", "--out", str(out)])["rows"]
    assert [r["row"] for r in rows] == ["filter: share kept", "labels: fit to exact 2D", "labels: fit to detections"]
    assert all(np.isfinite(r["gap_ratio"]) for r in rows[1:])
    assert out.is_file()


def test_network_rows_score_all_frames_then_kept_and_not(tiny_training_data, tmp_path):
    import torch

    from s2hand.evaluate.closure import network_rows
    from s2hand.model.files import model_record
    from s2hand.model.system import S2HandSystem

    data, kp, hand = tiny_training_data(10)
    params = tiny_params()
    torch.manual_seed(0)
    torch.save(model_record(S2HandSystem.from_params(params, hand).eval(), params, "finetune", 1), tmp_path / "m.pt")
    rows = network_rows(tmp_path / "m.pt", hand, params, data, kp, np.arange(10), splits=("train", "val"))
    by_name = {r["row"]: r for r in rows}
    assert list(by_name)[:2] == ["network: train, kept", "network: val, all"]
    assert by_name["network: val, all"]["frames"] == len(load_split(data, "val"))
    assert by_name["network: train, kept"]["frames"] == 10
    # an untrained network predicts one hand (pose head initialised near the mean): no closure follows
    assert abs(by_name["network: val, all"]["gap_ratio"]) < 0.05
