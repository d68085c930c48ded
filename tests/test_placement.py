"""The best-fitting rigid placement of a posed hand (s2hand/losses/placement.py) and the keypoint
terms that use it (train.loss.keypoint_placement: fit)."""
from __future__ import annotations

import torch

from s2hand.losses.placement import fit_placement, place_rigid
from s2hand.nets import axis_angle_facing_camera
from s2hand.render import project
from s2hand.train.system import pose_hand

K = torch.tensor([[300.0, 0, 64], [0, 300.0, 64], [0, 0, 1]])


def test_place_rigid_is_the_hand_layers_global_rotation(layer):
    g = torch.Generator().manual_seed(0)
    rot, pose = torch.randn(4, 3, generator=g), torch.randn(4, layer.num_pca_comps, generator=g)
    shape = 0.5 * torch.randn(4, 10, generator=g)
    posed = pose_hand(layer, torch.zeros(4, 3), pose, shape).joints
    torch.testing.assert_close(place_rigid(posed, rot, torch.ones(4, 1), torch.zeros(4, 3)),
                               pose_hand(layer, rot, pose, shape).joints, atol=1e-6, rtol=0)
    t = torch.tensor([0.01, -0.02, 0.6])
    torch.testing.assert_close(place_rigid(posed, rot, -2 * torch.ones(4, 1), t.expand(4, 3)),
                               2 * pose_hand(layer, rot, pose, shape).joints + t, atol=1e-6, rtol=0)


def test_search_finds_the_placement_of_exact_keypoints(layer):
    """From the heads' initial placement, the search brings a posed hand onto keypoints made by
    another placement of the same hand: the 2D error falls from tens of pixels to about one."""
    g = torch.Generator().manual_seed(1)
    n = 6
    posed = pose_hand(layer, torch.zeros(n, 3), 0.5 * torch.randn(n, layer.num_pca_comps, generator=g),
                      torch.zeros(n, 10)).joints
    rot0 = torch.tensor(axis_angle_facing_camera()).expand(n, 3)
    true = (rot0 + 0.3 * torch.randn(n, 3, generator=g), torch.full((n, 1), 1.05),
            torch.tensor([0.02, -0.01, 0.62]) + 0.01 * torch.randn(n, 3, generator=g))
    cam = K.expand(n, 3, 3)
    kp = project(place_rigid(posed, *true), cam)
    conf = torch.ones(n, 21)
    init = (rot0, torch.full((n, 1), 0.95), torch.tensor([0.0, 0.0, 0.65]).expand(n, 3))

    def err(placement):
        return (project(place_rigid(posed, *placement), cam) - kp).norm(dim=-1).mean()

    fitted = fit_placement(posed, kp, conf, cam, init, iters=200, w_ori=100.0, image_size=128.0)
    assert err(init) > 10 and err(fitted) < 1.5, (float(err(init)), float(err(fitted)))
    assert all(not v.requires_grad for v in fitted)


def test_fit_placement_terms_send_pose_gradient_only_through_the_fitted_placement(layer):
    """Under keypoint_placement 'fit' the finger pose gets its gradient at the fitted placement, the
    rotation its own at the network's placement with the pose held: both get one, and finite."""
    from s2hand.config import validate_params
    from s2hand.train.system import S2HandSystem

    params = validate_params({"train": {"loss": {"keypoint_placement": "fit", "placement_fit_iters": 5}},
                              "weights": {"photo": 0.0}})
    system = S2HandSystem(net=None, layer=layer, renderer=None, weights=params.weights, loss=params.train.loss,
                          input_size=128)
    n = 3
    g = torch.Generator().manual_seed(2)
    out = {"rot": torch.tensor(axis_angle_facing_camera()).repeat(n, 1).requires_grad_(),
           "pose_pca": (0.1 * torch.randn(n, layer.num_pca_comps, generator=g)).requires_grad_(),
           "shape": torch.zeros(n, 10, requires_grad=True), "scale": torch.full((n, 1), 0.95, requires_grad=True),
           "trans": torch.tensor([[0.0, 0.0, 0.65]]).repeat(n, 1).requires_grad_()}
    kp = 64 + 20 * torch.randn(n, 21, 2, generator=g)
    terms = system._keypoint_terms_at_fitted_placement(out, kp, torch.ones(n, 21), K.expand(n, 3, 3))
    (terms["loc"] + terms["ori"]).backward()
    for name in ("rot", "pose_pca", "scale", "trans"):
        grad = out[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert float(terms["loc"]) > 0 and float(terms["ori"]) > 0
