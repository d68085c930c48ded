"""params.yaml schema: defaults, paper weights, and errors that name the bad key."""
from pathlib import Path

import pytest
import yaml

from s2hand.config import ParamsError, flatten, load_params, validate_params

ROOT = Path(__file__).resolve().parent.parent


# where params.yaml (the embedded default) departs from the schema's defaults, which are the paper's
# method: each with the reason beside it in params.yaml (docs/training.md, "Learning on the embedded default")
DEPARTURES = {
    ("hand", "num_pca_comps"): (30, 6),
    ("train", "keypoint_convention"): ("model", "calibrated"),
    ("train", "pseudo_labels", "weight"): (0.0, 1.0),
    ("train", "pretrain_3d", "photometric"): (True, False),
    ("weights", "quat"): (0.05, 5.0),
    ("train", "finetune_video", "lr"): (0.00025, 0.0001),
    ("filter", "image_change"): (None, 0.042),
}


def _flatten(d: dict, prefix: tuple = ()) -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, prefix + (k,)) if isinstance(v, dict) else {prefix + (k,): v})
    return out


def test_repository_params_validate_and_match_schema_defaults():
    """params.yaml spells out every key at the schema's default, but for the listed departures."""
    p = _flatten(load_params(ROOT / "params.yaml").model_dump())
    d = _flatten(validate_params({}).model_dump())
    assert p.keys() == d.keys()
    differ = {k: (d[k], p[k]) for k in p if p[k] != d[k]}
    assert differ == DEPARTURES, "params.yaml should spell out the schema's defaults (departures: DEPARTURES)"


def test_paper_weights_are_the_defaults():
    w = validate_params({}).weights
    assert (w.branch3d, w.branch2d, w.cons, w.geo, w.photo, w.regu) == (1, 0.001, 0.0002, 0.001, 0.005, 0.01)
    assert (w.ori, w.ssim, w.tex, w.scale, w.joint, w.quat, w.ts) == (100, 0.2, 0.5, 10, 10, 0.05, 0.01)
    assert len(w.model_fields) == 13


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"weights": {"qaut": 0.1}}, "weights.qaut"),
        ({"weights": {"quat": -1}}, "weights.quat"),
        ({"weights": {"quat": "high"}}, "weights.quat"),
        ({"render": {"size": 4}}, "render.size"),
        ({"data": {"name": "imagenet"}}, "data.name"),
        ({"data": {"synthetic": {"frames": 1}}}, "data.synthetic.frames"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert f"  {key}:" in str(err.value)


def test_load_params_reports_the_file(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump({"seed": -3}))
    with pytest.raises(ParamsError, match=r"params.yaml.*\n  seed:"):
        load_params(f)
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")


def test_flatten_gives_dotted_leaves():
    flat = flatten(validate_params({"weights": {"quat": 0.1}}))
    assert flat["weights.quat"] == 0.1
    assert flat["data.synthetic.image_size"] == 128
    assert all(not isinstance(v, dict) for v in flat.values())


@pytest.mark.parametrize("key, value", [
    ("weights.quat", float("inf")), ("weights.quat", float("nan")), ("weights.quat", "0.1"),
    ("weights.quat", True), ("train.pretrain_2d.lr", "1e-3"), ("grid_search.factors", [0.5, float("inf")]),
    ("detect.mediapipe.pad", ["0.5"]),
])
def test_numbers_must_be_finite_numbers(key, value):
    raw: dict = {}
    node = raw
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    with pytest.raises(ParamsError) as err:
        validate_params(raw)
    assert f"  {key}" in str(err.value)


def test_yaml_floats_in_exponent_form_are_numbers(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("blur_sigma: 1.0e-5 ", "blur_sigma: 1e-5 ")
    assert "blur_sigma: 1e-5" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").render.blur_sigma == 1e-5


@pytest.mark.parametrize("section", ["weights", "train.pretrain_2d", "grid_search"])
def test_a_deleted_or_misspelt_section_is_an_error(tmp_path, section):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    *parents, leaf = section.split(".")
    node = raw
    for p in parents:
        node = node[p]
    del node[leaf]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match=f"missing sections.*{section}"):
        load_params(tmp_path / "params.yaml")
    node[leaf + "s"] = {}  # misspelt: an unknown key
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="unknown key"):
        load_params(tmp_path / "params.yaml")


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("seed: 0\nweights:\n  quat: [0.1\n  ts: 1\n")
    with pytest.raises(ParamsError, match=r"params.yaml:\d+:\d+: YAML syntax error"):
        load_params(f)
