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
