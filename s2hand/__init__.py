"""S2HAND / S2HAND(V): self-supervised 3D hand reconstruction, as an importable library.

Folders, one idea each: `hand/` (MANO-format hand model and keypoint orders), `render/`
(differentiable and data renderers, cameras), `data/` (datasets: the embedded synthetic one
and loaders for the real ones). Nothing here knows of DVC or MLflow.
"""
__version__ = "0.1.0"
