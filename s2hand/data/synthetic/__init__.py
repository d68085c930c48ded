"""The embedded synthetic hand-video dataset (see generate.py)."""
