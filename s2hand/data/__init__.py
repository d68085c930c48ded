"""Datasets: the embedded synthetic one (synthetic/), loaders of the real ones (freihand, ho3d, stb,
yt3d), the prepared layout every stage reads (table.py) and the video-window sampler (sampler.py)."""
